#!/usr/bin/env bash
# usage: scripts/callgrind-serve.sh BIN VARIANT PORT OUTPREFIX
#   e.g. cargo build --release -p portcullis-loadtest
#        scripts/callgrind-serve.sh target/release/portcullis-loadtest jwt 18081 /tmp/cg-jwt
# Callgrind of `portcullis-loadtest serve --threads 1`: 50 warm-up requests,
# counters zeroed, 6 s of `wrk -t1 -c8`, a dump, then per request (over
# wrk's count): calls to http's Extensions::insert and to malloc, and
# instructions. Needs valgrind, wrk and curl.
set -euo pipefail
BIN=$1; V=$2; PORT=$3; OUT=$4
REQUEST_PATH="/loyalty/C-1001/get?customer=C-1001&fields=points"
rm -f "$OUT".cg*
valgrind --tool=callgrind --callgrind-out-file="$OUT.cg" "$BIN" serve --variant "$V" --threads 1 --addr "127.0.0.1:$PORT" >"$OUT.server.log" 2>&1 &
VPID=$!
for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.2; done
HDR=()
while IFS= read -r line; do HDR+=(-H "$line"); done < <("$BIN" headers --variant "$V" --host "127.0.0.1:$PORT" --path "$REQUEST_PATH")
code=$(curl -s -o /dev/null -w '%{http_code}' "${HDR[@]}" "http://127.0.0.1:$PORT$REQUEST_PATH")
[ "$code" = 200 ] || { echo "warm-up answered $code"; kill -INT $VPID; exit 1; }
for _ in $(seq 50); do curl -s -o /dev/null "${HDR[@]}" "http://127.0.0.1:$PORT$REQUEST_PATH"; done
callgrind_control --zero $VPID >/dev/null
wrk -t1 -c8 -d6s "${HDR[@]}" "http://127.0.0.1:$PORT$REQUEST_PATH" >"$OUT.wrk.txt"
callgrind_control --dump=measured $VPID >/dev/null
sleep 1
kill -KILL $VPID 2>/dev/null; wait $VPID 2>/dev/null || true
REQS=$(awk '/ requests in / {print $1}' "$OUT.wrk.txt")
NON2XX=$(awk '/Non-2xx/ {print $5}' "$OUT.wrk.txt")
DUMP=$(ls -t "$OUT".cg* | grep -v '\.cg$' | head -1)
python3 - "$DUMP" "$REQS" "${NON2XX:-0}" "$V" <<'PY'
import sys, re
path, reqs, bad, v = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
names = {}
calls = {}
cfn = None
total = None
for line in open(path, errors="replace"):
    if line.startswith("cfn="):
        m = re.match(r"cfn=\((\d+)\)(?: (.*))?", line.strip())
        if m:
            if m.group(2): names[m.group(1)] = m.group(2)
            cfn = names.get(m.group(1))
        else:
            cfn = line.strip()[4:]
    elif line.startswith("fn="):
        m = re.match(r"fn=\((\d+)\)(?: (.*))?", line.strip())
        if m and m.group(2): names[m.group(1)] = m.group(2)
    elif line.startswith("calls=") and cfn is not None:
        calls[cfn] = calls.get(cfn, 0) + int(line.split()[0][6:])
    elif line.startswith("summary:") or line.startswith("totals:"):
        total = int(line.split()[1])
mallocs = sum(n for f, n in calls.items() if f in ("malloc", "__libc_malloc", "__GI___libc_malloc"))
callocs = sum(n for f, n in calls.items() if f in ("calloc", "__libc_calloc"))
reallocs = sum(n for f, n in calls.items() if f in ("realloc", "__libc_realloc", "__GI___libc_realloc"))
inserts = sum(n for f, n in calls.items() if f == "http::extensions::Extensions::insert")
print(f"{v}: Extensions::insert {inserts/reqs:.2f}/req")
print(f"{v}: {reqs} requests (non-2xx {bad}); malloc {mallocs/reqs:.2f}/req, realloc {reallocs/reqs:.2f}/req, calloc {callocs/reqs:.2f}/req; instructions {total/reqs:,.0f}/req")
PY
