#!/usr/bin/env bash
# The Portcullis benchmarks in one command (issue 13). Writes the tables into
# BENCHMARKS.md, between its "bench.sh:begin" and "bench.sh:end" markers, and
# keeps every raw output under target/bench-run/.
#
#   bash scripts/bench.sh            # the full run (about 20 minutes once built)
#   bash scripts/bench.sh --quick    # short measurements (about 5 minutes once built)
#
# Options:
#   --quick            3 s load runs, 1 s criterion measurements, 1 s scaling runs
#   --pin              server on core 0 (one worker thread), wrk on core 1
#   --skip-load        no wrk runs (criterion, memory and scaling only)
#   --skip-criterion   no criterion benches
#   --no-write         leave BENCHMARKS.md alone (tables go to target/bench-run/tables.md)
#   --report-only      measure nothing: rebuild the tables from target/bench-run/ as a
#                      previous (possibly interrupted) run left it
#
# Needs: wrk (apt-get install -y wrk), curl, redis-cli and a Redis on
# $REDIS_URL (default redis://127.0.0.1:6379) for the Redis variant; Linux
# (/proc) for the memory figure.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

QUICK=0 PIN=0 LOAD=1 CRITERION=1 WRITE=1 REPORT_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    --pin) PIN=1 ;;
    --skip-load) LOAD=0 ;;
    --skip-criterion) CRITERION=0 ;;
    --no-write) WRITE=0 ;;
    --report-only) REPORT_ONLY=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

if [ "$QUICK" = 1 ]; then
  DURATION=3 ROUNDS=3 SCALE_SECONDS=1
  CRIT_ARGS=(--warm-up-time 0.3 --measurement-time 1 --sample-size 10 --noplot)
  MODE="--quick"
else
  DURATION=10 ROUNDS=5 SCALE_SECONDS=3
  CRIT_ARGS=(--warm-up-time 1 --measurement-time 3 --noplot)
  MODE="full"
fi
CONNECTIONS=64
REQUEST_PATH="/loyalty/C-1001/get?customer=C-1001&fields=points"
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export REDIS_URL
OUT="$ROOT/target/bench-run"
if [ "$REPORT_ONLY" = 0 ]; then
  rm -rf "$OUT"
fi
mkdir -p "$OUT"
STARTED=$(date -u +%s)

log() { echo "bench.sh: $*" >&2; }
load_average() { cut -d' ' -f1-3 /proc/loadavg; }

if [ "$REPORT_ONLY" = 0 ]; then
# --- The machine and the commit, recorded automatically. -------------------
{
  echo "- command: \`bash scripts/bench.sh${*:+ $*}\` (mode: $MODE)"
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- commit: $(git rev-parse --short=12 HEAD)$(git diff --quiet HEAD -- crates examples 2>/dev/null || echo ' (working tree has uncommitted changes)')"
  echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
  echo "- toolchain: $(rustc -V), wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}')"
  echo "- load average at start: $(load_average)"
} > "$OUT/machine.md"

log "building (release)"
cargo build --release -p portcullis-loadtest >"$OUT/build.log" 2>&1 || { cat "$OUT/build.log" >&2; exit 1; }
BIN="$ROOT/target/release/portcullis-loadtest"

PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

# --- Full-stack load test. ---------------------------------------------------
if [ "$LOAD" = 1 ]; then
  command -v wrk >/dev/null || { log "wrk is missing: apt-get install -y wrk"; exit 1; }
  SERVER_PREFIX=() WRK_PREFIX=() SERVER_THREADS=()
  if [ "$PIN" = 1 ]; then
    SERVER_PREFIX=(taskset -c 0) WRK_PREFIX=(taskset -c 1) SERVER_THREADS=(--threads 1)
  fi
  VARIANTS=(bare jwt sigv4)
  if redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1; then
    VARIANTS+=(redis)
  else
    log "no Redis at $REDIS_URL: the Redis variant is skipped"
  fi
  declare -A PORT=([bare]=18080 [jwt]=18081 [sigv4]=18082 [redis]=18083)
  declare -A SERVER_PID=()
  for v in "${VARIANTS[@]}"; do
    "${SERVER_PREFIX[@]}" "$BIN" serve --variant "$v" --addr "127.0.0.1:${PORT[$v]}" "${SERVER_THREADS[@]}" \
      >"$OUT/server-$v.log" 2>&1 &
    PIDS+=($!)
    SERVER_PID[$v]=$!
  done
  # CPU time the server's threads have run, in ns (schedstat's first field).
  server_cpu_ns() { cat /proc/"${SERVER_PID[$1]}"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f", s}'; }
  for v in "${VARIANTS[@]}"; do
    for _ in $(seq 100); do
      curl -s -o /dev/null "http://127.0.0.1:${PORT[$v]}/" && break
      sleep 0.1
    done
  done

  headers() { # variant -> curl/wrk header arguments in the array HDR
    local v=$1 flag=$2 line
    HDR=()
    while IFS= read -r line; do HDR+=("$flag" "$line"); done \
      < <("$BIN" headers --variant "$v" --host "127.0.0.1:${PORT[$v]}" --path "$REQUEST_PATH")
  }
  # Sanity: every variant answers 200 to the benchmark request, and the
  # stacked ones really check (no key: 403; a bad signature or token: 403/401).
  for v in "${VARIANTS[@]}"; do
    headers "$v" -H
    url="http://127.0.0.1:${PORT[$v]}$REQUEST_PATH"
    ok=$(curl -s -o /dev/null -w '%{http_code}' "${HDR[@]}" "$url")
    nokey=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: 127.0.0.1:${PORT[$v]}" "$url")
    echo "$v: benchmark request $ok, without credentials $nokey ($(head -1 "$OUT/server-$v.log"))" >>"$OUT/sanity.txt"
    if [ "$ok" != 200 ]; then log "$v answered $ok to the benchmark request"; cat "$OUT/server-$v.log" >&2; exit 1; fi
    if [ "$v" != bare ] && [ "$nokey" = 200 ]; then log "$v let an unauthenticated request through"; exit 1; fi
  done
  cat "$OUT/sanity.txt" >&2

  # Script calls (EVALSHA, EVAL, FCALL): how both stores talk to Redis.
  # commandstats also counts the commands a script runs inside Redis, which
  # are not round trips, so those are left out here; the MONITOR check
  # below counts every top-level command exactly.
  redis_calls() {
    redis-cli -u "$REDIS_URL" info commandstats | tr -d '\r' |
      awk -F'[:=,]' '/^cmdstat_(evalsha|eval|evalsha_ro|eval_ro|fcall|fcall_ro):/ {s += $3} END {print s + 0}'
  }

  # Interleaved: round 1 bare jwt sigv4 redis, round 2 bare jwt sigv4 redis, ...
  echo "round|variant|rps|p50_us|p99_us|requests|non2xx|redis_calls|server_cpu_ns" >"$OUT/load.csv"
  for r in $(seq "$ROUNDS"); do
    for v in "${VARIANTS[@]}"; do
      headers "$v" -H   # a fresh signature / token for each run
      before=0; [ "$v" = redis ] && before=$(redis_calls)
      cpu0=$(server_cpu_ns "$v")
      "${WRK_PREFIX[@]}" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "${HDR[@]}" \
        "http://127.0.0.1:${PORT[$v]}$REQUEST_PATH" >"$OUT/wrk-$v-$r.txt" 2>&1
      cpu=$(( $(server_cpu_ns "$v") - cpu0 ))
      calls=0; [ "$v" = redis ] && calls=$(( $(redis_calls) - before ))
      awk -v r="$r" -v v="$v" -v calls="$calls" -v cpu="$cpu" '
        function us(x) { if (x ~ /us$/) return x + 0; if (x ~ /ms$/) return x * 1000; if (x ~ /s$/) return x * 1000000; return x }
        /Requests\/sec:/ { rps = $2 }
        /^ +50%/ { p50 = us($2) }
        /^ +99%/ { p99 = us($2) }
        / requests in / { n = $1 }
        /Non-2xx or 3xx responses:/ { bad = $5 }
        END { printf "%s|%s|%s|%.0f|%.0f|%s|%d|%d|%s\n", r, v, rps, p50, p99, n, bad, calls, cpu }' \
        "$OUT/wrk-$v-$r.txt" >>"$OUT/load.csv"
      log "round $r $v: $(tail -1 "$OUT/load.csv")"
    done
  done
  if [[ " ${VARIANTS[*]} " == *" redis "* ]]; then
    # Exact round trips: every top-level command the Redis variant sends for
    # 200 sequential requests, from MONITOR (script-internal commands are
    # marked "lua" there; other clients' keys lack our prefix).
    headers redis -H
    redis-cli -u "$REDIS_URL" monitor >"$OUT/redis-monitor.txt" 2>&1 &
    monitor=$!
    sleep 0.5
    for _ in $(seq 200); do curl -s -o /dev/null "${HDR[@]}" "http://127.0.0.1:${PORT[redis]}$REQUEST_PATH"; done
    sleep 0.5
    kill "$monitor" 2>/dev/null || true
    wait "$monitor" 2>/dev/null || true
    top=$(grep -v 'lua\]' "$OUT/redis-monitor.txt" | grep -c 'pcl-loadtest' || true)
    echo "$top" >"$OUT/redis-monitor-count.txt"
  fi
  echo "load average after the load test: $(load_average)" >"$OUT/load-loadavg.txt"
  cleanup; PIDS=()

  python3 - "$OUT/load.csv" "$DURATION" "$ROUNDS" "$CONNECTIONS" "$PIN" >"$OUT/load.md" <<'PY'
import sys, statistics
path, duration, rounds, conns, pin = sys.argv[1:]
rows = [l.strip().split("|") for l in open(path)][1:]
data = {}
for r, v, rps, p50, p99, n, bad, calls, cpu in rows:
    data.setdefault(v, {})[int(r)] = dict(rps=float(rps), p50=float(p50), p99=float(p99), n=int(n), bad=int(bad), calls=int(calls), cpu=int(cpu) / max(int(n), 1) / 1000)
goal = {"jwt": 0.85, "sigv4": 0.80, "redis": None}
name = {"bare": "bare axum hello-world", "jwt": "full stack, JWT (cache on), in memory",
        "sigv4": "full stack, SigV4 + IAM policy, in memory", "redis": "full stack, JWT, throttle + quota on Redis"}
pinning = "server pinned to core 0 with one worker thread, wrk to core 1 (taskset)" if pin == "1" else "server (tokio, a worker per core) and wrk share both cores, unpinned"
print(f"wrk -t1 -c{conns} -d{duration}s --latency, {rounds} rounds interleaved (bare, jwt, sigv4, redis, then again), {pinning}.")
print("Ratios are stacked / bare within the same round; the table gives their median and range.")
print("Server CPU per request is the CPU time all the server's threads ran during the run (/proc/<pid>/task/*/schedstat) over wrk's request count: the machine time the stack adds, less sensitive to other load than throughput. The budget for the whole stack is about 2.7 µs (what 0.85 of bare throughput allows).\n")
print("| variant | rps (median of rounds) | p50 | p99 | ratio to bare (median) | ratio range | goal | server CPU per request | added over bare | non-2xx |")
print("|---|---:|---:|---:|---:|---|---|---:|---:|---:|")
bare = data.get("bare", {})
for v in ["bare", "jwt", "sigv4", "redis"]:
    if v not in data: continue
    d = data[v]
    rps = statistics.median(x["rps"] for x in d.values())
    p50 = statistics.median(x["p50"] for x in d.values())
    p99 = statistics.median(x["p99"] for x in d.values())
    bad = sum(x["bad"] for x in d.values())
    cpu = statistics.median(x["cpu"] for x in d.values())
    bare_cpu = statistics.median(x["cpu"] for x in bare.values()) if bare else 0
    added = "" if v == "bare" else f"{cpu - bare_cpu:+.1f} µs"
    if v == "bare":
        ratio, rng, g = "1", "", ""
    else:
        ratios = [d[r]["rps"] / bare[r]["rps"] for r in d if r in bare]
        med = statistics.median(ratios)
        ratio = f"{med:.3f}"
        rng = f"{min(ratios):.3f} – {max(ratios):.3f}"
        g = "" if goal[v] is None else (f"≥ {goal[v]:.2f}: **met**" if med >= goal[v] else f"≥ {goal[v]:.2f}: **missed**")
    print(f"| {name[v]} | {rps:,.0f} | {p50:.0f} µs | {p99:.0f} µs | {ratio} | {rng} | {g} | {cpu:.1f} µs | {added} | {bad} |")
print()
print("Per round (rps):\n")
print("| round | " + " | ".join(v for v in ["bare", "jwt", "sigv4", "redis"] if v in data) + " |")
print("|---|" + "---:|" * len(data))
for r in sorted(bare):
    print(f"| {r} | " + " | ".join(f"{data[v][r]['rps']:,.0f}" for v in ["bare", "jwt", "sigv4", "redis"] if v in data and r in data[v]) + " |")
if "redis" in data:
    d = data["redis"]
    calls = sum(x["calls"] for x in d.values()); n = sum(x["n"] for x in d.values())
    print(f"\nRedis script calls per request during the wrk runs (EVALSHA/EVAL/FCALL from INFO commandstats, delta over wrk's request count, {len(d)} runs): **{calls / n:.3f}** ({calls:,} calls, {n:,} requests).")
    import os
    mon = os.path.join(os.path.dirname(path), "redis-monitor-count.txt")
    if os.path.exists(mon):
        top = int(open(mon).read().strip() or 0)
        print(f"\nRedis round trips per request, exact (MONITOR: every top-level command carrying the variant's key prefix, over 200 sequential requests): **{top / 200:.2f}** ({top} commands).")
PY
fi

# --- Memory and scaling. -----------------------------------------------------
log "memory: 1,000,000 keys through throttle, quota, both, and the facade's pair"
# One process per variant: resident memory is the process's.
for stores in throttle quota both facade; do
  "$BIN" mem --keys 1000000 --stores "$stores" >"$OUT/mem-$stores.txt"
done
echo "load average after: $(load_average)" >>"$OUT/mem-loadavg.txt"
log "scaling"
"$BIN" scale --seconds "$SCALE_SECONDS" >"$OUT/scale.txt"
echo "load average after: $(load_average)" >>"$OUT/scale-loadavg.txt"

# --- Per-layer criterion figures. -------------------------------------------
BENCHES=(
  portcullis-waf:waf
  portcullis-sigv4:verify
  portcullis-jwt:jwt
  portcullis-api-key:api_key
  portcullis-throttle:throttle
  portcullis-quota:quota
  portcullis-iam:evaluate
  portcullis-authorizer:cache_hit
  portcullis:stack
)
if [ "$CRITERION" = 1 ]; then
  log "building the criterion benches"
  build_args=()
  for b in "${BENCHES[@]}"; do build_args+=(-p "${b%%:*}" --bench "${b##*:}"); done
  cargo bench --no-run "${build_args[@]}" >"$OUT/bench-build.log" 2>&1 || log "some benches failed to build (see target/bench-run/bench-build.log)"
  : >"$OUT/criterion-failures.txt"
  for b in "${BENCHES[@]}"; do
    crate=${b%%:*} bench=${b##*:}
    log "criterion: $crate --bench $bench"
    CRITERION_HOME="$OUT/criterion/$crate" cargo bench -p "$crate" --bench "$bench" -- "${CRIT_ARGS[@]}" \
      >"$OUT/criterion-$crate.log" 2>&1 || echo "$crate --bench $bench failed (see criterion-$crate.log)" >>"$OUT/criterion-failures.txt"
  done
  log "criterion: portcullis-jwt peer-bench (jwt-authorizer)"
  (cd crates/portcullis-jwt/peer-bench &&
    CARGO_TARGET_DIR="$ROOT/target/peer-bench" CRITERION_HOME="$OUT/criterion/portcullis-jwt-peer-bench" \
      cargo bench --bench peer -- "${CRIT_ARGS[@]}") >"$OUT/criterion-portcullis-jwt-peer-bench.log" 2>&1 ||
    echo "portcullis-jwt peer-bench failed (see criterion-portcullis-jwt-peer-bench.log)" >>"$OUT/criterion-failures.txt"
  "$BIN" criterion-table --dir "$OUT/criterion" >"$OUT/criterion.md"
  echo "load average after the criterion benches: $(load_average)" >"$OUT/criterion-loadavg.txt"
fi
else
  # --report-only: the tables of what a previous run left.
  BIN="$ROOT/target/release/portcullis-loadtest"
  CRIT_ARGS=("(see the run's mode above)")
  if [ -d "$OUT/criterion" ]; then
    "$BIN" criterion-table --dir "$OUT/criterion" >"$OUT/criterion.md"
    [ -f "$OUT/criterion-loadavg.txt" ] || echo "load average when the tables were rebuilt (criterion run interrupted): $(load_average)" >"$OUT/criterion-loadavg.txt"
  fi
  touch "$OUT/criterion-failures.txt"
  STARTED=$(date -u +%s)
fi

# --- The tables. -------------------------------------------------------------
{
  echo "<!-- bench.sh:begin (generated by scripts/bench.sh; do not edit by hand) -->"
  echo
  echo "### This run"
  echo
  cat "$OUT/machine.md"
  if [ "$REPORT_ONLY" = 1 ]; then
    echo "- tables rebuilt with \`--report-only\` at $(date -u '+%H:%M UTC') from what the run left in target/bench-run/"
  else
    echo "- load average at the end: $(load_average); wall time $(( $(date -u +%s) - STARTED )) s"
  fi
  echo
  if [ -f "$OUT/load.md" ]; then
    echo "### Full-stack load test"
    echo
    cat "$OUT/load.md"
    echo
    echo "Sanity checks before the runs:"
    echo
    sed 's/^/- /' "$OUT/sanity.txt"
    echo "- $(cat "$OUT/load-loadavg.txt")"
    echo
  fi
  if [ -f "$OUT/mem-facade.txt" ]; then
  echo "### Memory: 1,000,000 distinct keys through throttle, quota, both"
  echo
  echo "One process per column (\`portcullis-loadtest mem --stores <column>\`); *facade* is the throttle and the control plane's \`QuotaEngine\`, as \`Gateway\` builds them in memory (counting in place on the store's counters: \`store_counters_*\`; \`quota_counters_*\` are the engine's entries). A blank cell: the figure does not apply."
  echo
  python3 - "$OUT" <<'PY'
import os, sys
out = sys.argv[1]
columns = ["throttle", "quota", "both", "facade"]
rows, values = [], {}
for column in columns:
    path = os.path.join(out, f"mem-{column}.txt")
    if not os.path.exists(path):
        continue
    for line in open(path):
        name, _, value = line.strip().partition("|")
        if name == "stores":
            continue
        if name not in rows:
            rows.append(name)
        values[(name, column)] = value
print("| figure | " + " | ".join(columns) + " |")
print("|---|" + "---:|" * len(columns))
for name in rows:
    print(f"| {name} | " + " | ".join(values.get((name, c), "") for c in columns) + " |")
PY
  echo
  echo "$(cat "$OUT/mem-loadavg.txt")"
  echo
  fi
  if [ -f "$OUT/scale.txt" ]; then
  echo "### Scaling: throttle + quota decisions per second"
  echo
  echo "| tasks | keys | decisions/s | refused |"
  echo "|---:|---|---:|---:|"
  tail -n +2 "$OUT/scale.txt" | sed 's/^\(.*\)$/| \1 |/'
  echo
  echo "$(cat "$OUT/scale-loadavg.txt"); $(nproc) tokio worker threads, ${SCALE_SECONDS:-?} s per row"
  echo
  fi
  if [ -f "$OUT/criterion.md" ]; then
    echo "### Per-layer criterion figures"
    echo
    echo "Each crate's benches, run one after the other with \`${CRIT_ARGS[*]}\`; each ratio compares two benchmarks of the same bench binary and run."
    echo
    cat "$OUT/criterion.md"
    if [ -s "$OUT/criterion-failures.txt" ]; then echo; echo "Failed in this run:"; sed 's/^/- /' "$OUT/criterion-failures.txt"; fi
    echo
    cat "$OUT/criterion-loadavg.txt"
    echo
  fi
  echo "<!-- bench.sh:end -->"
} >"$OUT/tables.md"

if [ "$WRITE" = 1 ]; then
  python3 - "$ROOT/BENCHMARKS.md" "$OUT/tables.md" <<'PY'
import sys, re
doc_path, tables_path = sys.argv[1:]
tables = open(tables_path).read().rstrip("\n")
try:
    doc = open(doc_path).read()
except FileNotFoundError:
    doc = "# Benchmarks\n\n<!-- bench.sh:begin -->\n<!-- bench.sh:end -->\n"
pattern = re.compile(r"<!-- bench.sh:begin.*?<!-- bench.sh:end -->", re.S)
doc = pattern.sub(lambda _: tables, doc) if pattern.search(doc) else doc.rstrip("\n") + "\n\n" + tables + "\n"
open(doc_path, "w").write(doc)
PY
  log "wrote BENCHMARKS.md (raw outputs in target/bench-run/)"
else
  log "tables in target/bench-run/tables.md"
fi
