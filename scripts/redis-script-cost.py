#!/usr/bin/env python3
"""Redis server-side cost of every Lua script the throttle and quota paths of
portcullis-redis call, against an empty script in the same run.

    python3 scripts/redis-script-cost.py [--port 6411] [--calls 100000] [--callgrind]

Starts a private redis-server on --port in a temporary folder, loads the
scripts as the crate assembles them (from crates/portcullis-redis/src/lua,
so it measures the working tree), sends each case --calls times (pipelined,
16 at a time, on one connection), and prints per case the EVALSHA
usec_per_call of `INFO commandstats` (reset before each case) and its ratio
to the empty script without arguments. With --callgrind the server runs under
`valgrind --tool=callgrind` and the table gives instructions per call
(the whole server's, network included; load-independent: use about 10000
calls). No Python packages needed: it speaks RESP itself.
"""
import argparse, os, shutil, socket, struct, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LUA = os.path.join(ROOT, "crates", "portcullis-redis", "src", "lua")


def src(*parts):
    return open(os.path.join(LUA, *parts)).read()


def resp(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")

    def read(self):
        line = self.f.readline()
        kind, rest = line[:1], line[1:-2]
        if kind in (b"+", b":"):
            return rest
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            return data[:-2]
        if kind == b"*":
            return [self.read() for _ in range(int(rest))]
        raise RuntimeError("bad reply %r" % line)

    def call(self, *args):
        self.s.sendall(resp(args))
        return self.read()

    def many(self, args, calls, depth=16):
        payload = resp(args) * depth
        done = 0
        while done < calls:
            k = min(depth, calls - done)
            self.s.sendall(payload if k == depth else resp(args) * k)
            for _ in range(k):
                self.read()
            done += k


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=6411)
    ap.add_argument("--calls", type=int, default=100000)
    ap.add_argument("--callgrind", action="store_true")
    opts = ap.parse_args()
    tmp = tempfile.mkdtemp()
    server = ["redis-server", "--port", str(opts.port), "--save", "", "--appendonly", "no", "--dir", tmp]
    if opts.callgrind:
        server = ["valgrind", "--tool=callgrind", "--callgrind-out-file=%s/cg.out" % tmp] + server
    proc = subprocess.Popen(server, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                c = Conn(opts.port)
                c.call("PING")
                break
            except OSError:
                time.sleep(0.2)
        run(c, opts, proc, tmp)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def run(c, opts, proc, tmp):
    common = src("throttle_common.lua")
    acquire = common + "\n" + src("throttle_acquire.lua")
    # The lease and refund scripts take the bucket-as-a-table helpers from
    # throttle_state.lua where it exists (they were in throttle_common.lua).
    state = src("throttle_state.lua") if os.path.exists(os.path.join(LUA, "throttle_state.lua")) else ""
    refund = common + "\n" + state + "\n" + src("throttle_refund.lua")
    lease = common + "\n" + state + "\n" + src("throttle_lease.lua")
    quota = src("quota.lua")
    combined = "local function throttle(KEYS, ARGV)\n%s\nend\nlocal function quota(KEYS, ARGV)\n%s\nend\n%s" % (
        acquire, quota, src("usage_plan.lua"))
    counter = src("control_plane", "counter.lua")
    sha = {name: c.call("SCRIPT", "LOAD", text) for name, text in [
        ("empty", "return 1"), ("acquire", acquire), ("refund", refund), ("lease", lease),
        ("quota", quota), ("combined", combined), ("counter", counter)]}
    # Whether the throttle scripts take their bucket parameters packed
    # (struct '<ddd', one argument) or as three numbers in text.
    packed = "struct.unpack('<ddd', ARGV[3 + i])" in src("throttle_acquire.lua")

    def bucket(t, tau, cap):
        return [struct.pack("<ddd", t, tau, cap)] if packed else [t, tau, cap]

    now = int(time.time())
    day = now // 86400 + 2440588
    ws = now - now % 86400
    we, exp = ws + 86400, ws + 92 * 86400
    hot = bucket(1000, 999999000, 1000000000)  # 1,000,000/s, burst 1,000,000: admitted
    cold = bucket(3600 * 10**9, 0, 3600 * 10**9)  # 1 token an hour: refused
    big = 10**15
    qargs = ["consume", ws, we, day, big, 0, 0, "", 90, exp, 0]
    p = "rperf:cost"
    cases = [
        ("empty script (`return 1`), no arguments", ["EVALSHA", sha["empty"], 0]),
        ("empty script, the acquire's key and arguments", ["EVALSHA", sha["empty"], 1, p + ":e", "r", 0, 0] + hot),
        ("throttle acquire, 1 bucket, admitted (Redis TIME)", ["EVALSHA", sha["acquire"], 1, p + ":t:{a}:b", "r", 0, 0] + hot),
        ("throttle acquire, 1 bucket, admitted (caller's time)", ["EVALSHA", sha["acquire"], 1, p + ":t:{c}:b", "c", now, 0] + hot),
        ("throttle acquire, 1 bucket, refused", ["EVALSHA", sha["acquire"], 1, p + ":t:{r}:b", "r", 0, 0] + cold),
        ("throttle acquire, 2 buckets, admitted", ["EVALSHA", sha["acquire"], 2, p + ":t:{2}:b", p + ":t:{2}:m", "r", 0, 0] + hot + hot),
        ("throttle refund, 1 bucket", ["EVALSHA", sha["refund"], 1, p + ":t:{a}:b", "r", 0, 0] + hot),
        ("throttle lease renewal (report 16, take 16)", ["EVALSHA", sha["lease"], 1, p + ":t:{l}:b", "r", 0, 0, 250, 1000, 1000000000, "l:1:1", 16, 0, 0, 16]),
        ("quota consume, admitted", ["EVALSHA", sha["quota"], 2, p + ":q:{q}:s", p + ":q:{q}:u"] + qargs),
        ("quota consume, refused (limit 0)", ["EVALSHA", sha["quota"], 2, p + ":q:{z}:s", p + ":q:{z}:u"] + qargs[:4] + [0] + qargs[5:]),
        ("usage plan, 1 bucket + quota, admitted", ["EVALSHA", sha["combined"], 3, p + ":t:{u}:b", p + ":q:{u}:s", p + ":q:{u}:u", 1, 1, "r", 0, 0] + hot + qargs),
        ("quota block reserve (report 16, take 16)", ["EVALSHA", sha["counter"], 3, p + ":cp:{k}:s", p + ":cp:{k}:u", p + ":cp:{k}:k", "reserve", "key1", ws, 0, big, day, big, big, 0, 90, 16, 0, 16, 0]),
    ]
    results = []
    for name, args in cases:
        c.call(*args)  # raises on a script error
        c.many(args, 2000)
        c.call("CONFIG", "RESETSTAT")
        if opts.callgrind:
            subprocess.run(["callgrind_control", "--zero", str(proc.pid)], check=True, stdout=subprocess.DEVNULL)
        c.many(args, opts.calls)
        stats = c.call("INFO", "commandstats").decode()
        line = [l for l in stats.splitlines() if l.startswith("cmdstat_evalsha:")][0]
        fields = dict(kv.split("=") for kv in line.split(":", 1)[1].split(","))
        calls = int(fields["calls"])
        if opts.callgrind:
            before = set(os.listdir(tmp))
            subprocess.run(["callgrind_control", "--dump", str(proc.pid)], check=True, stdout=subprocess.DEVNULL)
            for _ in range(50):
                new = [f for f in os.listdir(tmp) if f.startswith("cg.out") and f not in before]
                if new:
                    break
                time.sleep(0.2)
            time.sleep(0.3)
            path = os.path.join(tmp, new[0])
            ir = next(int(l.split()[1]) for l in open(path) if l.startswith("summary:"))
            os.remove(path)
            cost = ir / calls
        else:
            cost = float(fields["usec_per_call"])
        results.append((name, cost))
    unit = "instructions per call" if opts.callgrind else "µs per call (usec_per_call)"
    print("| script call | %s | × empty script |" % unit)
    print("|---|---|---|")
    base = results[0][1]
    for name, cost in results:
        shown = "%.0f" % cost if opts.callgrind else "%.2f" % cost
        print("| %s | %s | %.1f |" % (name, shown, cost / base))


if __name__ == "__main__":
    sys.exit(main())
