#!/usr/bin/env bash
# Where the full stack's time goes: samples the load-test servers with
# `perf record` while wrk drives them, and groups the server's self time by
# crate, scaled to CPU microseconds per request.
#
#   bash scripts/profile-stack.sh                 # bare, jwt and sigv4, 5 s each
#   bash scripts/profile-stack.sh --seconds 10 bare jwt
#
# Needs perf (`apt-get install -y linux-perf`) and wrk. Writes the table to
# target/bench-run/profile.md and the raw `perf report` outputs beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT="$ROOT/target/bench-run"
SECONDS_PER_RUN=5
VARIANTS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_PER_RUN=$2; shift 2 ;;
    bare | jwt | sigv4) VARIANTS+=("$1"); shift ;;
    *) echo "usage: $0 [--seconds N] [bare] [jwt] [sigv4]" >&2; exit 2 ;;
  esac
done
[ ${#VARIANTS[@]} -gt 0 ] || VARIANTS=(bare jwt sigv4)
command -v perf >/dev/null || { echo "perf is missing: apt-get install -y linux-perf" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
mkdir -p "$OUT"

# Symbols for every crate: the bench profile carries debug info.
cargo build --profile bench -p portcullis-loadtest >"$OUT/profile-build.log" 2>&1 ||
  { cat "$OUT/profile-build.log" >&2; exit 1; }
BIN="$ROOT/target/release/portcullis-loadtest"
REQUEST_PATH="/loyalty/C-1001/get?customer=C-1001&fields=points"   # as scripts/bench.sh
PORT=18090
SERVER=""
trap '[ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null || true' EXIT

: >"$OUT/profile.csv"
for v in "${VARIANTS[@]}"; do
  "$BIN" serve --variant "$v" --addr "127.0.0.1:$PORT" >"$OUT/profile-server-$v.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.1; done
  HDR=()
  while IFS= read -r line; do HDR+=(-H "$line"); done \
    < <("$BIN" headers --variant "$v" --host "127.0.0.1:$PORT" --path "$REQUEST_PATH")
  # Warm up (connections, caches), then measure.
  wrk -t1 -c64 -d1s "${HDR[@]}" "http://127.0.0.1:$PORT$REQUEST_PATH" >/dev/null
  cpu0=$(cat /proc/"$SERVER"/task/*/schedstat | awk '{s += $1} END {printf "%.0f", s}')
  perf record -F 1999 -g -o "$OUT/perf-$v.data" -p "$SERVER" -- sleep "$((SECONDS_PER_RUN + 1))" \
    >"$OUT/perf-record-$v.log" 2>&1 &
  PERF=$!
  sleep 0.5
  requests=$(wrk -t1 -c64 -d"${SECONDS_PER_RUN}s" "${HDR[@]}" "http://127.0.0.1:$PORT$REQUEST_PATH" |
    awk '/ requests in / {print $1}')
  cpu=$(( $(cat /proc/"$SERVER"/task/*/schedstat | awk '{s += $1} END {printf "%.0f", s}') - cpu0 ))
  wait "$PERF" || true
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""
  perf report -i "$OUT/perf-$v.data" --no-children --sort dso,sym --stdio -g none \
    >"$OUT/perf-report-$v.txt" 2>/dev/null
  echo "$v|$requests|$cpu" >>"$OUT/profile.csv"
  echo "profile-stack.sh: $v: $requests requests, $((cpu / requests)) ns of server CPU each" >&2
done

python3 - "$OUT" >"$OUT/profile.md" <<'PY'
import re, sys, collections
out = sys.argv[1]
runs = [l.strip().split("|") for l in open(f"{out}/profile.csv") if l.strip()]
# Group a symbol by the crate it is from: the first path segment of the
# demangled name (`<portcullis_waf::X as Y>::f` -> portcullis_waf).
GROUPS = [
    ("kernel (TCP, scheduling)", lambda dso, sym: dso.startswith("[kernel") or sym.startswith("[k]")),
    ("allocator", lambda dso, sym: re.search(r"\b(malloc|free|realloc|calloc|cfree|_int_malloc|_int_free|_int_realloc|malloc_consolidate|tcache\w*|__rdl_\w+|__rust_(alloc|dealloc|realloc))\b", sym) is not None),
    ("libc mem*", lambda dso, sym: "libc" in dso and re.search(r"__mem\w+|__str\w+", sym) is not None),
]
def crate_of(sym):
    s = sym.split("] ", 1)[-1]
    m = re.search(r"([a-z_][a-z0-9_]*)::", s.lstrip("<&*"))
    return m.group(1) if m else "other"
table = collections.defaultdict(dict)
per_req = {}
for v, n, cpu in runs:
    per_req[v] = int(cpu) / int(n) / 1000
    shares = collections.Counter()
    for line in open(f"{out}/perf-report-{v}.txt", errors="replace"):
        m = re.match(r"\s+([\d.]+)%\s+(\S+)\s+(.*)$", line)
        if not m:
            continue
        pct, dso, sym = float(m.group(1)), m.group(2), m.group(3).strip()
        for name, test in GROUPS:
            if test(dso, sym):
                shares[name] += pct
                break
        else:
            crate = crate_of(sym)
            if crate in ("sha2", "hmac", "aws_lc_rs", "aws_lc_sys", "ring"):
                crate = "crypto (sha2, hmac, aws-lc)"
            shares[crate] += pct
    total = sum(shares.values()) or 1
    for k, pct in shares.items():
        table[k][v] = pct / total * per_req[v]
variants = [r[0] for r in runs]
rows = sorted(table, key=lambda k: -max(table[k].get(v, 0) - table[k].get("bare", 0) for v in variants))
head = " | ".join(f"{v} µs/req" for v in variants)
diffs = [v for v in variants if v != "bare" and "bare" in variants]
print(f"| where (perf self time, by crate) | {head} |" + "".join(f" {v} − bare |" for v in diffs))
print("|---|" + "---:|" * (len(variants) + len(diffs)))
for k in rows:
    vals = [table[k].get(v, 0.0) for v in variants]
    if max(vals) < 0.05:
        continue
    cells = " | ".join(f"{x:.2f}" for x in vals)
    extra = "".join(f" {table[k].get(v, 0) - table[k].get('bare', 0):+.2f} |" for v in diffs)
    print(f"| {k} | {cells} |{extra}")
cells = " | ".join(f"{per_req[v]:.2f}" for v in variants)
extra = "".join(f" {per_req[v] - per_req['bare']:+.2f} |" for v in diffs)
print(f"| **total (server CPU per request)** | {cells} |{extra}")
PY
cat "$OUT/profile.md"
