#!/usr/bin/env python3
"""run.py -- `make bench`: sockit serve side by side with its peers.

Every server (bench/peers/ and `sockit serve`) is started fresh for each
measurement, pinned to CPU 0; `sockit bench --json` drives it from CPU 1
with the same parameters for all.  The key figure is the server's CPU time
per request: utime+stime of the server process and its children (from
/proc/PID/stat, fields 14-17) over the measured window, divided by the
requests the load generator completed and verified.  Each measurement is
repeated, the servers interleaved round-robin, and medians are reported.

Usage: python3 bench/run.py --sockit build/sockit [--quick]
         [--servers epoll,sockit,...] [--workloads once,line-16,idle,...]
         [--duration S] [--reps N] [--idle N1,N2] [--json PATH] [--svg PATH]

Output: one markdown table on stdout (each figure also as a ratio to the
minimal epoll server), PASS/FAIL for each target of issue 6, a JSON file
(bench/results/latest.json) and an SVG chart (bench/results/latest.svg).
Python 3 standard library only.
"""
import argparse
import datetime
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.join(ROOT, "bench", "peers")
TICK = os.sysconf("SC_CLK_TCK")
SERVER_CPU, BENCH_CPU = 0, 1
MSG_SIZE = 16
PREFIX = b"Received: "

# Workloads: (name, bench mode, concurrency).  "idle" is handled apart.
LOAD = [("once-%d" % c, "once", c) for c in (1, 16, 64, 256)] + \
       [("line-%d" % c, "line", c) for c in (1, 16, 64)] + \
       [("udp-%d" % c, "udp", c) for c in (1, 16, 64)]
QUICK_LOAD = ["once-16", "line-16", "udp-16"]

# Servers in table order.  "modes": the protocol modes the peer speaks;
# "na": why a workload it cannot do is n/a.
SERVERS = {
    "tutorial": {"label": "tutorial (Python)", "modes": {"once"},
                 "na": "serves one connection at a time, once mode only"},
    "asyncio": {"label": "Python asyncio", "modes": {"once", "line", "udp"}},
    "node": {"label": "Node.js net/dgram", "modes": {"once", "line", "udp"}},
    "socat": {"label": "socat (fork)", "modes": {"once", "line", "udp"}, "warmup": False,
              "idle_na": "2 processes per connection: 10,000 connections "
                         "exceed pid_max on a small machine"},
    "libuv": {"label": "libuv", "modes": {"once", "line", "udp"}},
    "epoll": {"label": "minimal epoll", "modes": {"once", "line", "udp"}},
    "sockit": {"label": "sockit serve -w1", "modes": {"once", "line", "udp"}},
    "sockit-epoll": {"label": "sockit -w1 --backend epoll", "modes": {"once", "line", "udp"}},
    "sockit2": {"label": "sockit serve -w2", "modes": {"once", "line", "udp"},
                "idle_na": "the idle figure is taken with 1 worker"},
}
BASE = "epoll"


def log(msg):
    print("run.py: " + msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- /proc

def read_stat(pid):
    """(ppid, utime+stime+cutime+cstime in ticks) of pid, or None if gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rindex(")") + 2:].split()
    # rest[0] is field 3 (state): ppid is field 4, utime..cstime 14..17.
    return int(rest[1]), sum(int(x) for x in rest[11:15])


def tree_cpu_ticks(root):
    """CPU ticks of root and all its live descendants (reaped children are
    in their parents' cutime/cstime, so nothing is counted twice)."""
    stats = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = read_stat(int(name))
            if st:
                stats[int(name)] = st
    kids = {}
    for pid, (ppid, _) in stats.items():
        kids.setdefault(ppid, []).append(pid)
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        if pid in stats:
            total += stats[pid][1]
        pending.extend(kids.get(pid, []))
    return total


def proc_status_kb(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def cpu_times():
    """{cpu index: (busy user+nice+system, irq+softirq, steal, total)} in ticks."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+) (.*)", line)
            if m:
                v = [int(x) for x in m.group(2).split()]
                out[int(m.group(1))] = (v[0] + v[1] + v[2], v[5] + v[6], v[7], sum(v[:8]))
    return out


def listening(port, udp):
    """True once something listens on 127.0.0.1:port (read from /proc/net)."""
    path, state = ("/proc/net/udp", "07") if udp else ("/proc/net/tcp", "0A")
    want = ":%04X" % port
    with open(path) as f:
        for line in f.readlines()[1:]:
            p = line.split()
            if p[1].endswith(want) and p[3] == state:
                return True
    return False


# ---------------------------------------------------------------- servers

class Server:
    """One started server, in its own process group, pinned to CPU 0."""

    def __init__(self, name, argv, logdir, port_re, port_stream, udp):
        self.name = name
        self.log_out = open(os.path.join(logdir, name + ".out"), "w+b")
        self.log_err = open(os.path.join(logdir, name + ".err"), "w+b")
        pin = ["taskset", "-c", str(SERVER_CPU)] if PIN else []
        self.p = subprocess.Popen(pin + argv, stdin=subprocess.DEVNULL, stdout=self.log_out,
                                  stderr=self.log_err, cwd=ROOT, start_new_session=True)
        self.pid = self.p.pid
        self.port = self._wait_port(port_re, port_stream)
        deadline = time.monotonic() + 10
        while not listening(self.port, udp):
            if time.monotonic() > deadline or self.p.poll() is not None:
                raise RuntimeError("%s: port %d never listened" % (name, self.port))
            time.sleep(0.01)

    @staticmethod
    def _read(f):
        """What the server wrote to f so far.  Read through a file of our
        own: the server's descriptor shares f's offset, and a seek on f
        would make its next write land over what it wrote before."""
        with open(f.name, "rb") as r:
            return r.read()

    def _wait_port(self, port_re, stream):
        f = self.log_out if stream == "stdout" else self.log_err
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            m = re.search(port_re, self._read(f).decode("utf-8", "replace"))
            if m:
                return int(m.group(1))
            if self.p.poll() is not None:
                break
            time.sleep(0.01)
        self.stop()
        raise RuntimeError("%s did not announce its port (exit %s): %s" %
                           (self.name, self.p.poll(), self.output_tail()))

    def output_tail(self):
        text = b"".join(self._read(f) for f in (self.log_out, self.log_err))
        return text.decode("utf-8", "replace")[-400:].strip()

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        """SIGTERM to the group, SIGKILL after 5 s; only our own group."""
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.p.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # fork-per-connection children may outlive their parent
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log_out.close()
        self.log_err.close()


def server_argv(name, mode, sockit, bindir):
    """Command line of server `name` in protocol mode `mode`, port 0."""
    py = sys.executable
    if name == "tutorial":
        return [py, os.path.join(PEERS, "tutorial_server.py"), "0"]
    if name == "asyncio":
        return [py, os.path.join(PEERS, "asyncio_server.py"), mode, "0"]
    if name == "node":
        return [NODE, os.path.join(PEERS, "node_server.js"), mode, "0"]
    if name == "socat":
        return [py, os.path.join(PEERS, "socat_server.py"), mode, "0"]
    if name in ("libuv", "epoll"):
        return [os.path.join(bindir, name + "_server"), mode, "0"]
    workers = "2" if name == "sockit2" else "1"
    argv = [sockit, "serve", "-p", "0", "--workers", workers, "--idle-timeout", "3600"]
    if name == "sockit-epoll":
        argv += ["--backend", "epoll"]
    if mode == "udp":
        return argv + ["--udp-only", "-m", "once"]
    return argv + ["-m", mode]


def start_server(name, mode, args, logdir):
    sockit = name.startswith("sockit")
    return Server(name, server_argv(name, mode, args.sockit, args.bindir), logdir,
                  r"listening on (?:tcp|udp) \S+:(\d+)" if sockit else r"\bport (\d+)",
                  "stderr" if sockit else "stdout", mode == "udp")


# ---------------------------------------------------------------- measuring

def run_bench(args, mode, conns, port, duration):
    """Runs sockit bench pinned to CPU 1; returns (its JSON or None, exit
    code, stderr tail).  Its CPU time shows in RUSAGE_CHILDREN once reaped."""
    pin = ["taskset", "-c", str(BENCH_CPU)] if PIN else []
    argv = pin + [args.sockit, "bench", "--json", "-m", mode, "-c", str(conns), "-t", "1",
                  "-s", str(MSG_SIZE), "-d", "%dms" % round(duration * 1000),
                  "127.0.0.1", str(port)]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=ROOT)
    try:
        out, err = p.communicate(timeout=duration + 60)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    res = None
    try:
        res = json.loads(out.decode())
    except ValueError:
        pass
    return res, p.returncode, err.decode("utf-8", "replace")[-300:].strip()


def children_cpu():
    """(user, system) seconds of our reaped children."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime, r.ru_stime


def measure_load(args, name, wl, mode, conns, logdir):
    """One measurement of server `name` under workload wl."""
    srv = start_server(name, mode, args, logdir)
    try:
        # Unmeasured load first (JIT, caches); not for fork-per-connection
        # socat, whose leftover children would run into the window.
        if args.warmup > 0 and SERVERS[name].get("warmup", True):
            run_bench(args, mode, conns, srv.port, args.warmup)
        c0, t0, w0 = tree_cpu_ticks(srv.pid), cpu_times(), time.monotonic()
        b0 = children_cpu()
        res, rc, err = run_bench(args, mode, conns, srv.port, args.duration)
        b1 = children_cpu()
        c1, t1, w1 = tree_cpu_ticks(srv.pid), cpu_times(), time.monotonic()
        hwm = proc_status_kb(srv.pid, "VmHWM")
        alive = srv.alive()
    finally:
        srv.stop()
    run = {"server": name, "workload": wl, "rc": rc}
    if res is None or "requests" not in res:
        run["failed"] = "sockit bench gave no JSON (exit %s): %s" % (rc, err)
        return run
    wall = w1 - w0
    server_s = (c1 - c0) / TICK
    bench_user, bench_sys = b1[0] - b0[0], b1[1] - b0[1]
    bench_s = bench_user + bench_sys
    busy = sum(t1[c][0] - t0[c][0] for c in t1 if c in t0) / TICK
    irq = sum(t1[c][1] - t0[c][1] for c in t1 if c in t0) / TICK
    steal = sum(t1[c][2] - t0[c][2] for c in t1 if c in t0) / TICK
    other = max(0.0, busy - server_s - bench_s)
    ncpu = len(t1)
    req = res["requests"]
    lat = res.get("latency_ms") or {}

    def us(ms):
        return ms * 1000.0 if ms is not None else None
    dur = res.get("duration_ms")
    run.update({
        "requests": req, "rps": res.get("rate_per_s"),
        "elapsed_s": dur / 1000.0 if dur is not None else None,
        "p50_us": us(lat.get("p50")), "p99_us": us(lat.get("p99")),
        "errors": res.get("errors_total"), "errors_by_kind": res.get("errors"),
        "over_100ms": res.get("over_100ms"),
        "server_cpu_s": server_s, "bench_cpu_s": bench_s,
        "cpu_us_per_req": server_s * 1e6 / req if req else None,
        # The load generator's own cost (issue 5 reports it), user/system.
        "bench_user_us_per_req": bench_user * 1e6 / req if req else None,
        "bench_sys_us_per_req": bench_sys * 1e6 / req if req else None,
        "peak_rss_kb": hwm, "server_alive": alive,
        "window_s": wall, "other_cpu_s": other, "irq_cpu_s": irq, "steal_cpu_s": steal,
        # "Noisy": other processes (or the hypervisor) took over 5% of the CPUs.
        "noisy": (other + steal) > 0.05 * wall * ncpu,
        "bench": res,  # sockit bench's whole JSON result
    })
    if not alive:
        run["failed"] = "server died during the run: " + srv.output_tail()
    return run


def open_idle(port, n, conns, deadline):
    """Opens n more line-mode connections, each checked by one round trip,
    then left idle.  Returns an error string or None."""
    for i in range(n):
        if time.monotonic() > deadline:
            return "opened only %d of %d connections in time" % (i, n)
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"idle\n")
            want, got = PREFIX + b"idle\n", b""
            while len(got) < len(want):
                d = s.recv(len(want) - len(got))
                if not d:
                    break
                got += d
        except OSError as e:
            return "connection %d: %s" % (len(conns) + 1, e)
        conns.append(s)
        if got != want:
            return "connection %d: wrong reply %r" % (len(conns), got[:40])
    return None


def measure_idle(args, name, logdir):
    """RSS growth per idle connection at each count of args.idle."""
    srv = start_server(name, "line", args, logdir)
    conns = []
    run = {"server": name, "workload": "idle", "counts": args.idle}
    try:
        time.sleep(0.2)
        rss0 = proc_status_kb(srv.pid, "VmRSS")
        run["rss_before_kb"] = rss0
        per = {}
        deadline = time.monotonic() + 120
        for count in args.idle:
            err = open_idle(srv.port, count - len(conns), conns, deadline)
            if err:
                run["failed"] = err
                break
            time.sleep(0.3)
            rss = proc_status_kb(srv.pid, "VmRSS")
            per[str(count)] = {"rss_kb": rss, "bytes_per_conn": (rss - rss0) * 1024 / count}
        run["per_count"] = per
        run["peak_rss_kb"] = proc_status_kb(srv.pid, "VmHWM")
        if not srv.alive():
            run["failed"] = "server died: " + srv.output_tail()
    finally:
        for s in conns:
            s.close()
        srv.stop()
    return run


# ---------------------------------------------------------------- setup

def build_peers(bindir):
    """Compiles the C peers into bindir; returns {name: reason} for those
    that cannot be built (libuv without its headers)."""
    os.makedirs(bindir, exist_ok=True)
    cc = os.environ.get("CC") or "cc"
    flags = ["-O2", "-std=gnu11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror"]
    missing = {}
    for name, extra in (("epoll", []), ("libuv", None)):
        src = os.path.join(PEERS, name + "_server.c")
        out = os.path.join(bindir, name + "_server")
        if extra is None:
            try:
                extra = subprocess.run(["pkg-config", "--cflags", "--libs", "libuv"],
                                       check=True, capture_output=True,
                                       text=True).stdout.split()
            except (OSError, subprocess.CalledProcessError):
                missing[name] = "libuv not found by pkg-config (apt-get install libuv1-dev)"
                continue
        if os.path.exists(out) and os.path.getmtime(out) >= os.path.getmtime(src):
            continue
        r = subprocess.run([cc] + flags + ["-o", out, src] + extra, capture_output=True,
                           text=True)
        if r.returncode:
            raise SystemExit("run.py: cannot build %s: %s" % (src, r.stderr))
    return missing


def unavailable(args):
    """{server: reason} for servers whose runtime is missing."""
    out = build_peers(args.bindir) if ("epoll" in args.servers or "libuv" in args.servers) \
        else {}
    if not NODE:
        out["node"] = "node not installed"
    if not shutil.which("socat"):
        out["socat"] = "socat not installed"
    if not os.access(args.sockit, os.X_OK):
        for name in ("sockit", "sockit2", "sockit-epoll"):
            out[name] = "%s not found (make)" % args.sockit
    return out


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard >= need


def parse_args(argv):
    ap = argparse.ArgumentParser(description="sockit serve against its peers")
    ap.add_argument("--sockit", default=os.path.join(ROOT, "build", "sockit"))
    ap.add_argument("--quick", action="store_true",
                    help="a tiny smoke run: 0.3 s, 1 repetition, 3 workloads, idle 200")
    ap.add_argument("--servers", help="comma-separated, from: " + ",".join(SERVERS))
    ap.add_argument("--workloads",
                    help="comma-separated names or mode prefixes, e.g. once,line-16,idle")
    ap.add_argument("--duration", type=float, help="seconds per measured run (default 2)")
    ap.add_argument("--warmup", type=float, help="seconds of unmeasured load first "
                    "(default 0.5)")
    ap.add_argument("--reps", type=int, help="repetitions, interleaved (default 5)")
    ap.add_argument("--idle", help="idle connection counts (default 5000,10000)")
    ap.add_argument("--json", default=os.path.join(ROOT, "bench", "results", "latest.json"))
    ap.add_argument("--svg", default=os.path.join(ROOT, "bench", "results", "latest.svg"))
    ap.add_argument("--bindir", default=os.path.join(ROOT, "build", "bench"))
    a = ap.parse_args(argv)
    q = a.quick
    a.duration = a.duration if a.duration is not None else (0.3 if q else 2.0)
    a.warmup = a.warmup if a.warmup is not None else (0.0 if q else 0.5)
    a.reps = a.reps if a.reps is not None else (1 if q else 5)
    a.idle = [int(x) for x in (a.idle or ("200" if q else "5000,10000")).split(",")]
    a.sockit = os.path.abspath(a.sockit)
    a.servers = a.servers.split(",") if a.servers else list(SERVERS)
    for s in a.servers:
        if s not in SERVERS:
            ap.error("unknown server '%s' (known: %s)" % (s, ",".join(SERVERS)))
    names = [w[0] for w in LOAD] + ["idle"]
    if a.workloads:
        pick = a.workloads.split(",")
        for p in pick:
            if not any(n == p or n.startswith(p + "-") for n in names):
                ap.error("unknown workload '%s' (known: %s)" % (p, ",".join(names)))
        a.workloads = [n for n in names if any(n == p or n.startswith(p + "-") for p in pick)]
    else:
        a.workloads = (QUICK_LOAD + ["idle"]) if q else names
    if a.duration <= 0 or a.reps < 1 or any(n < 1 for n in a.idle):
        ap.error("--duration, --reps and --idle must be positive")
    return a


# ---------------------------------------------------------------- summary

def med(runs, key):
    v = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(v) if v else None


def summarize(runs, args, na):
    """{server: {workload: figures}} with medians over repetitions."""
    out = {}
    for name in args.servers:
        out[name] = {}
        for wl in args.workloads:
            mine = [r for r in runs if r["server"] == name and r["workload"] == wl]
            good = [r for r in mine if "failed" not in r]
            reason = na.get((name, wl))
            if reason:
                out[name][wl] = {"na": reason}
            elif not good:
                out[name][wl] = {"na": "failed: " + (mine[0]["failed"] if mine else "not run")}
            elif wl == "idle":
                per = {}
                for c in args.idle:
                    v = [r["per_count"][str(c)]["bytes_per_conn"] for r in good
                         if str(c) in r.get("per_count", {})]
                    per[str(c)] = statistics.median(v) if v else None
                out[name][wl] = {"bytes_per_conn": per, "peak_rss_kb": med(good, "peak_rss_kb"),
                                 "reps": len(good)}
            else:
                out[name][wl] = {
                    "cpu_us_per_req": med(good, "cpu_us_per_req"), "rps": med(good, "rps"),
                    "p50_us": med(good, "p50_us"), "p99_us": med(good, "p99_us"),
                    "errors": sum(r["errors"] or 0 for r in good),
                    "over_100ms": sum(r["over_100ms"] or 0 for r in good),
                    "peak_rss_kb": med(good, "peak_rss_kb"), "reps": len(good),
                    "bench_user_us_per_req": med(good, "bench_user_us_per_req"),
                    "bench_sys_us_per_req": med(good, "bench_sys_us_per_req"),
                    "noisy_reps": sum(1 for r in good if r["noisy"]),
                    # per repetition, for ratios between runs made side by side
                    "by_rep": {str(r["rep"]): {"cpu_us_per_req": r["cpu_us_per_req"],
                                               "p99_us": r["p99_us"]} for r in good},
                    "failed_reps": len(mine) - len(good),
                }
    return out


def fmt_num(v):
    if v is None:
        return "n/a"
    if v >= 100:
        return "%.0f" % v
    if v >= 10:
        return "%.1f" % v
    return "%.2f" % v


def cell(v, base):
    if v is None:
        return "n/a"
    if base:
        return "%s (%.2fx)" % (fmt_num(v), v / base)
    return fmt_num(v)


def table(summary, args):
    lines = ["| workload | server | CPU µs/req | req/s | p50 µs | p99 µs | errors | >100 ms "
             "| peak RSS MiB | idle B/conn |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    na_by, noisy, failed = {}, [], []
    for wl in args.workloads:
        base = summary.get(BASE, {}).get(wl, {})
        for name in args.servers:
            f = summary[name][wl]
            label = SERVERS[name]["label"]
            if "na" in f:
                lines.append("| %s | %s | n/a | n/a | n/a | n/a | | | | |" % (wl, label))
                na_by.setdefault((label, f["na"]), []).append(wl)
                continue
            rss = f.get("peak_rss_kb")
            rss_c = cell(rss / 1024 if rss else None,
                         base.get("peak_rss_kb") / 1024 if base.get("peak_rss_kb") else None)
            if wl == "idle":
                per = " / ".join("%s: %s" % (c, cell(f["bytes_per_conn"].get(str(c)),
                                                     (base.get("bytes_per_conn") or {})
                                                     .get(str(c))))
                                 for c in args.idle)
                lines.append("| idle | %s | | | | | | | %s | %s |" % (label, rss_c, per))
                continue
            flag = " ⚠" if f["noisy_reps"] else ""
            lines.append("| %s | %s | %s%s | %s | %s | %s | %d | %d | %s | |" % (
                wl, label, cell(f["cpu_us_per_req"], base.get("cpu_us_per_req")), flag,
                cell(f["rps"], base.get("rps")), cell(f["p50_us"], base.get("p50_us")),
                cell(f["p99_us"], base.get("p99_us")), f["errors"], f["over_100ms"], rss_c))
            if f["noisy_reps"]:
                noisy.append("%s %s (%d/%d)" % (label, wl, f["noisy_reps"], f["reps"]))
            if f["failed_reps"]:
                failed.append("%s %s (%d/%d)" % (label, wl, f["failed_reps"],
                                                 f["reps"] + f["failed_reps"]))
    notes = ["n/a: %s, %s: %s" % (label, ", ".join(wls), why)
             for (label, why), wls in na_by.items()]
    if len(noisy) > 8:
        notes.append("⚠ other processes took over 5%% of the CPUs during some repetitions "
                     "of %d of the %d figures: ratios hold better than rates then" %
                     (len(noisy), len(lines) - 2))
    elif noisy:
        notes.append("⚠ other processes took over 5%% of the CPUs during: %s" %
                     ", ".join(noisy))
    if failed:
        notes.append("failed repetitions (left out of the medians): " + ", ".join(failed))
    return "\n".join(lines), notes


# ---------------------------------------------------------------- targets

def targets(summary, args):
    """[(target, PASS|FAIL|SKIP, detail)] for the targets of issue 6."""
    S = summary.get("sockit", {})
    B = summary.get(BASE, {})
    out = []

    def fig(d, wl, key):
        f = d.get(wl) or {}
        return None if "na" in f else f.get(key)

    def paired(wl, key, num, den):
        """The ratio within each repetition (the two runs were made minutes
        apart at most), so a reader sees how far the machine drifted."""
        a = (num.get(wl) or {}).get("by_rep") or {}
        b = (den.get(wl) or {}).get("by_rep") or {}
        v = ["%.2f" % (a[k][key] / b[k][key]) for k in sorted(a, key=int)
             if k in b and a[k].get(key) and b[k].get(key)]
        return " (by rep %s)" % "/".join(v) if len(v) > 1 else ""

    def ratio_target(title, wls, limit, key="cpu_us_per_req", num=S, den=B):
        got, bad = [], False
        for wl in wls:
            a, b = fig(num, wl, key), fig(den, wl, key)
            if a is None or b is None or not b:
                continue
            r = a / b
            got.append("%s %.2fx%s" % (wl, r, paired(wl, key, num, den)))
            bad |= r > limit
        if not got:
            out.append((title, "SKIP", "not measured"))
        else:
            out.append((title, "FAIL" if bad else "PASS", ", ".join(got)))

    wls = args.workloads
    ratio_target("once: CPU/conn <= 0.75x epoll at c=16..256",
                 [w for w in wls if w in ("once-16", "once-64", "once-256")], 0.75)
    ratio_target("line: CPU/req <= 1.0x epoll", [w for w in wls if w.startswith("line")], 1.0)
    ratio_target("udp: CPU/dgram <= 0.6x epoll", [w for w in wls if w.startswith("udp")], 0.6)
    idle = (S.get("idle") or {}).get("bytes_per_conn") if "idle" in wls else None
    big = str(max(args.idle))
    if idle and idle.get(big) is not None:
        v = idle[big]
        out.append(("idle: RSS growth <= 256 B/conn at %s conns" % big,
                    "PASS" if v <= 256 else "FAIL", "%.0f B/conn" % v))
    else:
        out.append(("idle: RSS growth <= 256 B/conn", "SKIP", "not measured"))
    load = [w for w in wls if w != "idle"]
    got = [(w, S[w]) for w in load if w in S and "na" not in S[w]]
    if got:
        bad = ["%s: %d errors, %d over 100 ms" % (w, f["errors"], f["over_100ms"])
               for w, f in got if f["errors"] or f["over_100ms"]]
        out.append(("stalls: no errors, nothing over 100 ms", "FAIL" if bad else "PASS",
                    "; ".join(bad) or "%d workloads clean" % len(got)))
    else:
        out.append(("stalls: no errors, nothing over 100 ms", "SKIP", "not measured"))
    ratio_target("latency: p99 at c=1 <= 1.2x epoll", [w for w in wls if w.endswith("-1")],
                 1.2, key="p99_us")
    ratio_target("workers: CPU/req with 2 workers <= 1.1x 1 worker", load, 1.1,
                 num=summary.get("sockit2", {}), den=S)
    # Beat every peer: lower CPU per request than each (the epoll yardstick
    # has its own targets above), and less memory per idle connection.
    beaten, lost = 0, []
    for wl in wls:
        for peer in args.servers:
            if peer.startswith("sockit") or peer == BASE:
                continue
            if wl == "idle":
                a = ((S.get("idle") or {}).get("bytes_per_conn") or {}).get(big)
                b = ((summary[peer].get("idle") or {}).get("bytes_per_conn") or {}).get(big)
            else:
                a, b = fig(S, wl, "cpu_us_per_req"), fig(summary[peer], wl, "cpu_us_per_req")
            if a is None or b is None:
                continue
            if a < b:
                beaten += 1
            else:
                lost.append("%s %s" % (peer, wl))
    if beaten or lost:
        out.append(("beats every peer (CPU/req, idle B/conn)", "FAIL" if lost else "PASS",
                    ("lost to: " + ", ".join(lost)) if lost else "%d comparisons" % beaten))
    else:
        out.append(("beats every peer (CPU/req, idle B/conn)", "SKIP", "no peer measured"))
    return out


# ---------------------------------------------------------------- chart

def svg_chart(summary, args):
    """A grouped bar chart of CPU µs/request (log scale), hand-written SVG."""
    wls = [w for w in args.workloads if w != "idle"]
    names = args.servers
    colors = ["#8c564b", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#7f7f7f", "#d62728",
              "#e377c2"]
    vals = [summary[n][w].get("cpu_us_per_req") for w in wls for n in names
            if "na" not in summary[n][w]]
    vals = [v for v in vals if v]
    if not wls or not vals:
        return None
    import math
    lo = 10 ** math.floor(math.log10(min(vals)))
    hi = 10 ** math.ceil(math.log10(max(vals)))
    if hi <= lo:
        hi = lo * 10
    bar, gap, left, top, h = 9, 14, 70, 40, 300
    group = bar * len(names) + gap
    width = left + group * len(wls) + 180
    height = top + h + 60

    def y(v):
        return top + h - h * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

    e = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
         'font-family="sans-serif" font-size="11">' % (width, height),
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="%d" y="20" font-size="14">Server CPU time per request (µs, log scale; '
         'lower is better)</text>' % left]
    d = lo
    while d <= hi * 1.0001:
        e.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>' %
                 (left, left + group * len(wls), y(d), y(d)))
        e.append('<text x="%d" y="%.1f" text-anchor="end">%g</text>' % (left - 4, y(d) + 4, d))
        d *= 10
    for i, wl in enumerate(wls):
        x0 = left + i * group + gap / 2
        for j, n in enumerate(names):
            f = summary[n][wl]
            v = None if "na" in f else f.get("cpu_us_per_req")
            x = x0 + j * bar
            if v:
                e.append('<rect x="%.1f" y="%.1f" width="%d" height="%.1f" fill="%s">'
                         '<title>%s %s: %.2f µs</title></rect>' %
                         (x, y(v), bar - 1, top + h - y(v), colors[j % len(colors)],
                          SERVERS[n]["label"], wl, v))
            else:
                e.append('<text x="%.1f" y="%d" font-size="8" fill="#999" transform="rotate(-90 '
                         '%.1f %d)">n/a</text>' % (x + 7, top + h - 2, x + 7, top + h - 2))
        e.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>' %
                 (x0 + bar * len(names) / 2, top + h + 16, wl))
    lx = left + group * len(wls) + 15
    for j, n in enumerate(names):
        e.append('<rect x="%d" y="%d" width="10" height="10" fill="%s"/>' %
                 (lx, top + j * 16, colors[j % len(colors)]))
        e.append('<text x="%d" y="%d">%s</text>' % (lx + 14, top + j * 16 + 9,
                                                      SERVERS[n]["label"]))
    e.append("</svg>")
    return "\n".join(e) + "\n"


# ---------------------------------------------------------------- main

def na_cells(args, missing):
    na = {}
    for name in args.servers:
        for wl in args.workloads:
            mode = "line" if wl == "idle" else wl.split("-")[0]
            if name in missing:
                na[(name, wl)] = missing[name]
            elif mode not in SERVERS[name]["modes"]:
                na[(name, wl)] = SERVERS[name].get("na", "no %s mode" % mode)
            elif wl == "idle" and SERVERS[name].get("idle_na"):
                na[(name, wl)] = SERVERS[name]["idle_na"]
    return na


def main(argv):
    global PIN
    args = parse_args(argv)
    ncpu = os.cpu_count() or 1
    PIN = ncpu >= 2 and shutil.which("taskset") is not None
    if PIN:
        os.sched_setaffinity(0, {BENCH_CPU})  # our own idle-client work stays off CPU 0
    else:
        log("warning: fewer than 2 CPUs or no taskset: servers and load are not pinned")
    if "idle" in args.workloads and not raise_nofile(max(args.idle) + 100):
        log("warning: the fd limit is below %d; idle runs will fail" % max(args.idle))
    else:
        raise_nofile(0)
    missing = unavailable(args)
    na = na_cells(args, missing)
    logdir = os.path.join(args.bindir, "logs")
    os.makedirs(logdir, exist_ok=True)
    if not os.access(args.sockit, os.X_OK):
        raise SystemExit("run.py: %s is not an executable (it is also the load generator)"
                         % args.sockit)

    plan = []
    for rep in range(args.reps):
        for wl in args.workloads:
            for name in args.servers:
                if (name, wl) not in na:
                    plan.append((rep, wl, name))
    load_runs = sum(1 for p in plan if p[1] != "idle")
    log("%d measurements (%d load runs of %gs + %gs warm-up, %d idle), %d repetitions" %
        (len(plan), load_runs, args.duration, args.warmup, len(plan) - load_runs, args.reps))
    started = time.monotonic()
    runs = []
    for i, (rep, wl, name) in enumerate(plan):
        try:
            if wl == "idle":
                run = measure_idle(args, name, logdir)
            else:
                mode, conns = next((m, c) for n, m, c in LOAD if n == wl)
                run = measure_load(args, name, wl, mode, conns, logdir)
        except (RuntimeError, OSError) as e:
            run = {"server": name, "workload": wl, "failed": str(e)}
        run["rep"] = rep
        runs.append(run)
        if "failed" in run:
            status = "FAILED: " + run["failed"]
        elif wl == "idle":
            status = ", ".join("%s conns %.0f B/conn" % (c, v["bytes_per_conn"])
                               for c, v in run["per_count"].items())
        else:
            status = "%.0f req/s, %s µs CPU/req, %d errors%s" % (
                run["rps"] or 0, fmt_num(run["cpu_us_per_req"]), run["errors"] or 0,
                ", noisy" if run["noisy"] else "")
        log("[%d/%d] rep %d %s %s: %s" % (i + 1, len(plan), rep + 1, wl, name, status))

    summary = summarize(runs, args, na)
    tab, notes = table(summary, args)
    checks = targets(summary, args)
    elapsed = time.monotonic() - started
    print("## sockit serve vs. its peers (%s)\n" %
          datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    print("Server pinned to CPU %d, `sockit bench -t 1 -s %d` on CPU %d; %gs per run, "
          "%d repetition(s) interleaved, medians (errors and >100 ms: sums). Ratios are to the "
          "minimal epoll server. Idle: line-mode connections, one round trip each, then held."
          % (SERVER_CPU, MSG_SIZE, BENCH_CPU, args.duration, args.reps))
    print()
    print(tab)
    if notes:
        print()
        for n in notes:
            print("- " + n)
    print("\nTargets (issue 6):")
    for title, verdict, detail in checks:
        print("%-4s %s -- %s" % (verdict, title, detail))

    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    doc = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "command": " ".join(["bench/run.py"] + argv),
        "machine": {"cpus": ncpu, "kernel": os.uname().release, "pinned": PIN},
        "params": {"duration_s": args.duration, "warmup_s": args.warmup, "reps": args.reps,
                   "size": MSG_SIZE, "idle_counts": args.idle, "servers": args.servers,
                   "workloads": args.workloads, "sockit": args.sockit},
        "elapsed_s": elapsed, "summary": summary, "table_md": tab, "notes": notes,
        "targets": [{"target": t, "verdict": v, "detail": d} for t, v, d in checks],
        "runs": runs,
    }
    with open(args.json, "w") as f:
        json.dump(doc, f, indent=1)
    chart = svg_chart(summary, args)
    if chart:
        with open(args.svg, "w") as f:
            f.write(chart)
    print("\nWrote %s%s (%.0f s)." % (os.path.relpath(args.json),
                                      (" and " + os.path.relpath(args.svg)) if chart else "",
                                      elapsed))
    failed = [r for r in runs if "failed" in r]
    if failed:
        log("%d of %d measurements failed (see the notes above and %s)" %
            (len(failed), len(runs), os.path.relpath(logdir)))
        return 1
    return 0


NODE = shutil.which("node") or shutil.which("nodejs")
PIN = False

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
