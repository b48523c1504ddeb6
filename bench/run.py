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
         [--servers epoll,sockit,...] [--workloads once,tls,unix-line-16,idle,...]
         [--duration S] [--reps N] [--idle N1,N2] [--idle-tls N] [--rate N]
         [--json PATH] [--svg PATH]

Output: one markdown table on stdout (each figure also as a ratio to the
minimal epoll server), PASS/FAIL for each target (issues 6, 15, 16, 17, 20),
a JSON file (bench/results/latest.json) and an SVG chart
(bench/results/latest.svg).  What is measured, and with what, is in plan.py.
Python 3 standard library only (and tests/blackbox/tlscerts.py, which uses
the openssl CLI, for the TLS rows' certificate).
"""
import argparse
import datetime
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plan  # noqa: E402
from plan import BASE, IDLE, MSG_SIZE, ROOT, SERVERS, WL  # noqa: E402
from report import fmt_num, summarize, svg_chart, table, targets  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
SERVER_CPU, BENCH_CPU = 0, 1
PREFIX = b"Received: "


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


def tree_cpu(root):
    """(CPU ticks, pids) of root and all its live descendants (reaped
    children are in their parents' cutime/cstime, so nothing is counted
    twice)."""
    stats = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = read_stat(int(name))
            if st:
                stats[int(name)] = st
    kids = {}
    for pid, (ppid, _) in stats.items():
        kids.setdefault(ppid, []).append(pid)
    total, pending, pids = 0, [root], []
    while pending:
        pid = pending.pop()
        if pid in stats:
            total += stats[pid][1]
            pids.append(pid)
        pending.extend(kids.get(pid, []))
    return total, pids


def sleeps(pids):
    """{(pid, tid): voluntary context switches} of every thread of pids:
    each is one time a thread went to sleep (epoll_wait, io_uring_enter,
    a futex) -- counted by the scheduler, not sampled."""
    out = {}
    for pid in pids:
        try:
            tids = os.listdir("/proc/%d/task" % pid)
        except OSError:
            continue
        for tid in tids:
            try:
                with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches:"):
                            out[(pid, tid)] = int(line.split()[1])
            except OSError:
                pass
    return out


def sleeps_between(a, b):
    """Sleeps from snapshot a to b, over the threads alive at b (a thread
    born in between counts from 0)."""
    return sum(v - a.get(k, 0) for k, v in b.items())


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


def unix_listening(path):
    """True once a listening Unix stream socket is bound at path
    (/proc/net/unix: flag __SO_ACCEPTCON, 0x10000)."""
    with open("/proc/net/unix") as f:
        for line in f.readlines()[1:]:
            p = line.split()
            if len(p) >= 8 and p[7] == path and int(p[3], 16) & 0x10000:
                return True
    return False


# ---------------------------------------------------------------- servers

class Server:
    """One started server, in its own process group, pinned to CPU 0."""

    def __init__(self, name, argv, logdir, port_re, port_stream, udp, unix_path=None):
        self.name = name
        self.log_out = open(os.path.join(logdir, name + ".out"), "w+b")
        self.log_err = open(os.path.join(logdir, name + ".err"), "w+b")
        pin = ["taskset", "-c", str(SERVER_CPU)] if PIN else []
        self.p = subprocess.Popen(pin + argv, stdin=subprocess.DEVNULL, stdout=self.log_out,
                                  stderr=self.log_err, cwd=ROOT, start_new_session=True)
        self.pid = self.p.pid
        self.port = self.target = unix_path
        if unix_path is None:
            self.port = self.target = self._wait_port(port_re, port_stream)
        deadline = time.monotonic() + 15
        while not (unix_listening(unix_path) if unix_path else listening(self.port, udp)):
            if time.monotonic() > deadline or self.p.poll() is not None:
                self.stop()
                raise RuntimeError("%s: %s never listened: %s" % (
                    name, unix_path or "port %d" % self.port, self.output_tail()))
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


def start_server(name, wl, ctx, logdir):
    sockit = name in plan.SOCKIT
    w = WL.get(wl) or {}
    unix_path = None
    if w.get("unix"):
        unix_path = os.path.join(ctx["tmp"], name + ".sock")
    if name == "sockit-metrics":
        ctx["metrics_port"] = free_port()
    argv = plan.server_argv(name, wl, dict(ctx, unix_path=unix_path))
    return Server(name, argv, logdir,
                  r"listening on (?:tcp|udp|tls)\S* \S+:(\d+)" if sockit else r"\bport (\d+)",
                  "stderr" if sockit else "stdout", w.get("mode") == "udp", unix_path)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- measuring

def run_load(ctx, wl, target, duration):
    """Runs the load generator of wl pinned to CPU 1; returns (its JSON or
    None, exit code, stderr tail).  Its CPU time shows in RUSAGE_CHILDREN
    once reaped."""
    pin = ["taskset", "-c", str(BENCH_CPU)] if PIN else []
    argv = pin + plan.load_argv(wl, ctx, target, duration)
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


def find_key(d, pred):
    """The first value in nested dict d whose key satisfies pred."""
    if not isinstance(d, dict):
        return None
    for k, v in d.items():
        if pred(k):
            return v
    for v in d.values():
        got = find_key(v, pred)
        if got is not None:
            return got
    return None


def tls_figures(res):
    """Handshake p50/p99 (ms) and the resumed share from sockit bench's
    JSON, whatever the exact keys turn out to be: a missing one is None."""
    hs = find_key(res, lambda k: k.startswith("handshake") and "ms" in k
                  and "error" not in k)
    hs = hs if isinstance(hs, dict) else {}
    share = find_key(res, lambda k: "resum" in k and ("share" in k or "ratio" in k
                                                       or "pct" in k or "percent" in k))
    if isinstance(share, (int, float)) and share > 1:
        share = share / 100.0
    if not isinstance(share, (int, float)) or isinstance(share, bool):
        share = None
        count = find_key(res, lambda k: "resum" in k)
        if isinstance(count, dict):
            count = count.get("count", count.get("resumed"))
        if isinstance(count, (int, float)) and not isinstance(count, bool):
            total = find_key(res, lambda k: k.startswith("handshake") and
                             ("count" in k or "total" in k))
            total = total if isinstance(total, (int, float)) else res.get("requests")
            share = count / total if total else None
    return {"handshake_p50_ms": hs.get("p50"), "handshake_p99_ms": hs.get("p99"),
            "resumed_share": share}


class Scraper(threading.Thread):
    """GET /metrics every second while the measured run lasts (issue 16:
    being scraped must not move a figure)."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.ok, self.failed = port, 0, 0
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.wait(1.0):
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/metrics")
                r = c.getresponse()
                body = r.read()
                c.close()
                if r.status == 200 and body:
                    self.ok += 1
                else:
                    self.failed += 1
            except OSError:
                self.failed += 1


def measure_load(args, name, wl, ctx, logdir):
    """One measurement of server `name` under workload wl."""
    srv = start_server(name, wl, ctx, logdir)
    scraper = None
    try:
        # Unmeasured load first (JIT, caches); not for fork-per-connection
        # socat, whose leftover children would run into the window.
        if args.warmup > 0 and SERVERS[name].get("warmup", True):
            run_load(ctx, wl, srv.target, args.warmup)
        if name == "sockit-metrics":
            scraper = Scraper(ctx["metrics_port"])
            scraper.start()
        (c0, pids0), t0, w0 = tree_cpu(srv.pid), cpu_times(), time.monotonic()
        z0 = sleeps(pids0)
        b0 = children_cpu()
        res, rc, err = run_load(ctx, wl, srv.target, args.duration)
        b1 = children_cpu()
        (c1, pids1), t1, w1 = tree_cpu(srv.pid), cpu_times(), time.monotonic()
        z1 = sleeps(pids1)
        hwm = proc_status_kb(srv.pid, "VmHWM")
        alive = srv.alive()
    finally:
        if scraper:
            scraper.stop_ev.set()
        srv.stop()
    run = {"server": name, "workload": wl, "rc": rc}
    if res is None or "requests" not in res:
        run["failed"] = "the load generator gave no JSON (exit %s): %s" % (rc, err)
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
    errors = res.get("errors_total")
    if errors is None and isinstance(res.get("errors"), dict):
        errors = sum(res["errors"].values())
    run.update({
        "requests": req, "rps": res.get("rate_per_s"),
        "elapsed_s": dur / 1000.0 if dur is not None else None,
        "p50_us": us(lat.get("p50")), "p99_us": us(lat.get("p99")),
        "errors": errors, "errors_by_kind": res.get("errors"),
        "over_100ms": res.get("over_100ms"),
        "server_cpu_s": server_s, "bench_cpu_s": bench_s,
        "cpu_us_per_req": server_s * 1e6 / req if req else None,
        # The load generator's own cost (issues 5 and 20 report it).
        "bench_us_per_req": bench_s * 1e6 / req if req else None,
        "bench_user_us_per_req": bench_user * 1e6 / req if req else None,
        "bench_sys_us_per_req": bench_sys * 1e6 / req if req else None,
        # The server's threads going to sleep, per request (issue 20).
        "sleeps_per_req": sleeps_between(z0, z1) / req if req else None,
        "peak_rss_kb": hwm, "server_alive": alive,
        "window_s": wall, "other_cpu_s": other, "irq_cpu_s": irq, "steal_cpu_s": steal,
        # "Noisy": other processes (or the hypervisor) took over 5% of the CPUs.
        "noisy": (other + steal) > 0.05 * wall * ncpu,
        "bench": res,  # the load generator's whole JSON result
    })
    if WL[wl]["tls"]:
        run.update(tls_figures(res))
    if scraper:
        run.update({"scrapes": scraper.ok, "scrape_failures": scraper.failed})
    if not alive:
        run["failed"] = "server died during the run: " + srv.output_tail()
    return run


def open_idle(port, n, conns, deadline, tls_ctx=None):
    """Opens n more line-mode connections (TLS ones with tls_ctx), each
    checked by one round trip, then left idle.  Returns an error string or
    None."""
    for i in range(n):
        if time.monotonic() > deadline:
            return "opened only %d of %d connections in time" % (i, n)
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            if tls_ctx:
                s = tls_ctx.wrap_socket(s, server_hostname="localhost")
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


def measure_idle(args, name, wl, ctx, logdir):
    """RSS growth per idle connection at each count of args.idle (TLS:
    args.idle_tls)."""
    srv = start_server(name, wl, ctx, logdir)
    conns = []
    counts = args.idle if wl == "idle" else args.idle_tls
    tls_ctx = None
    if wl == "idle-tls":
        tls_ctx = ssl.create_default_context(cafile=ctx["ca"])
    run = {"server": name, "workload": wl, "counts": counts}
    try:
        time.sleep(0.2)
        rss0 = proc_status_kb(srv.pid, "VmRSS")
        run["rss_before_kb"] = rss0
        per = {}
        deadline = time.monotonic() + 120
        for count in counts:
            err = open_idle(srv.port, count - len(conns), conns, deadline, tls_ctx)
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

def pkg_flags(pkgs):
    try:
        return subprocess.run(["pkg-config", "--cflags", "--libs"] + pkgs, check=True,
                              capture_output=True, text=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return None


# The C programs run.py builds into --bindir: (binary, source, pkg-config
# packages, what is missing without them).
C_TOOLS = [
    ("epoll_server", "peers/epoll_server.c", [], None),
    ("libuv_server", "peers/libuv_server.c", ["libuv"],
     "libuv not found by pkg-config (apt-get install libuv1-dev)"),
    ("tls_epoll_server", "peers/tls_epoll_server.c", ["libssl", "libcrypto"],
     "OpenSSL 3 not found by pkg-config (apt-get install libssl-dev)"),
    ("lg2", "loadgen/lg2.c", [], None),
]


def build_c(bindir, only=None):
    """Compiles the C peers and lg2 into bindir (-Wall -Wextra -Werror);
    returns {binary: reason} for those that cannot be built."""
    os.makedirs(bindir, exist_ok=True)
    cc = os.environ.get("CC") or "cc"
    flags = ["-O2", "-std=gnu11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror"]
    missing = {}
    for name, rel, pkgs, why in C_TOOLS:
        if only is not None and name not in only:
            continue
        src = os.path.join(ROOT, "bench", rel)
        out = os.path.join(bindir, name)
        extra = pkg_flags(pkgs) if pkgs else []
        if extra is None:
            missing[name] = why
            continue
        if os.path.exists(out) and os.path.getmtime(out) >= os.path.getmtime(src):
            continue
        r = subprocess.run([cc] + flags + ["-o", out, src] + extra, capture_output=True,
                           text=True)
        if r.returncode:
            raise SystemExit("run.py: cannot build %s: %s" % (src, r.stderr))
    return missing


def unavailable(args):
    """{server (or "lg2"): reason} for what cannot run here."""
    need = set()
    if "epoll" in args.servers:
        need |= {"epoll_server", "tls_epoll_server"}
    if "libuv" in args.servers:
        need.add("libuv_server")
    if any(WL[w]["lg"] == "lg2" for w in args.workloads if w in WL):
        need.add("lg2")
    built = build_c(args.bindir, need) if need else {}
    out = {}
    if "libuv_server" in built:
        out["libuv"] = built["libuv_server"]
    if "lg2" in built:
        out["lg2"] = built["lg2"]
    if "tls_epoll_server" in built:
        out["tls_epoll"] = built["tls_epoll_server"]
    if not NODE:
        out["node"] = "node not installed"
    if not shutil.which("socat"):
        out["socat"] = "socat not installed"
    if not os.access(args.sockit, os.X_OK):
        for name in plan.SOCKIT:
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
                    help="a smoke run: 0.3 s, 1 repetition, no warm-up, one workload of "
                    "each kind (%s), idle 200" % ",".join(plan.QUICK))
    ap.add_argument("--servers", help="comma-separated, from: " + ",".join(SERVERS))
    ap.add_argument("--workloads",
                    help="comma-separated names or prefixes, e.g. once,line-16,tls,unix,"
                    "lg2,proxy,idle (once: once-1..once-1000 and the /lg2 rows)")
    ap.add_argument("--duration", type=float, help="seconds per measured run (default 2)")
    ap.add_argument("--warmup", type=float, help="seconds of unmeasured load first "
                    "(default 0.5)")
    ap.add_argument("--reps", type=int, help="repetitions, interleaved (default 5)")
    ap.add_argument("--idle", help="idle connection counts (default 5000,10000)")
    ap.add_argument("--idle-tls", help="idle TLS connection counts (default 2000)")
    ap.add_argument("--rate", type=int, default=20000,
                    help="requests/s of the -R row, about half of once-64's saturation "
                         "(default 20000)")
    ap.add_argument("--json", default=os.path.join(ROOT, "bench", "results", "latest.json"))
    ap.add_argument("--svg", default=os.path.join(ROOT, "bench", "results", "latest.svg"))
    ap.add_argument("--bindir", default=os.path.join(ROOT, "build", "bench"))
    a = ap.parse_args(argv)
    q = a.quick
    a.duration = a.duration if a.duration is not None else (0.3 if q else 2.0)
    a.warmup = a.warmup if a.warmup is not None else (0.0 if q else 0.5)
    a.reps = a.reps if a.reps is not None else (1 if q else 5)
    a.idle = [int(x) for x in (a.idle or ("200" if q else "5000,10000")).split(",")]
    a.idle_tls = [int(x) for x in (a.idle_tls or ("100" if q else "2000")).split(",")]
    a.sockit = os.path.abspath(a.sockit)
    a.servers = a.servers.split(",") if a.servers else list(SERVERS)
    for s in a.servers:
        if s not in SERVERS:
            ap.error("unknown server '%s' (known: %s)" % (s, ",".join(SERVERS)))
    try:
        a.workloads = plan.pick_workloads(a.workloads, q)
    except ValueError as e:
        ap.error("unknown workload '%s' (known: %s)" % (e, ",".join(plan.NAMES)))
    if a.duration <= 0 or a.reps < 1 or any(n < 1 for n in a.idle + a.idle_tls) or \
            a.rate < 1:
        ap.error("--duration, --reps, --idle, --idle-tls and --rate must be positive")
    return a


# ---------------------------------------------------------------- main

def na_cells(args, missing, feat):
    na = {}
    for name in args.servers:
        for wl in args.workloads:
            why = plan.na_reason(name, wl, feat, missing)
            tls = wl == "idle-tls" or (wl in WL and WL[wl]["tls"])
            if why is None and name == BASE and tls and "tls_epoll" in missing:
                why = missing["tls_epoll"]
            if why:
                na[(name, wl)] = why
    return na


def make_certs(tmp):
    """One ECDSA P-256 certificate for every TLS server of the run, signed
    by a throw-away CA (tests/blackbox/tlscerts.py, the openssl CLI)."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "blackbox"))
    import tlscerts
    ca = tlscerts.CA(os.path.join(tmp, "certs"))
    pair = ca.issue(os.path.join(tmp, "certs", "server"), "localhost",
                    sans=tlscerts.SERVER_SANS)
    return ca.cert, (pair.cert, pair.key)


def main(argv):
    global PIN
    args = parse_args(argv)
    ncpu = os.cpu_count() or 1
    PIN = ncpu >= 2 and shutil.which("taskset") is not None
    if PIN:
        os.sched_setaffinity(0, {BENCH_CPU})  # our own idle-client work stays off CPU 0
    else:
        log("warning: fewer than 2 CPUs or no taskset: servers and load are not pinned")
    need_fd = max(args.idle + args.idle_tls + [1000]) + 100
    if not raise_nofile(need_fd):
        log("warning: the fd limit is below %d; idle runs will fail" % need_fd)
    if not os.access(args.sockit, os.X_OK):
        raise SystemExit("run.py: %s is not an executable (it is also the load generator)"
                         % args.sockit)
    missing = unavailable(args)
    feat = plan.features(args.sockit)
    na = na_cells(args, missing, feat)
    logdir = os.path.join(args.bindir, "logs")
    os.makedirs(logdir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="sockit-bench-")
    try:
        return run_all(args, argv, na, feat, tmp, logdir, ncpu)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_all(args, argv, na, feat, tmp, logdir, ncpu):
    queue = []
    for rep in range(args.reps):
        for wl in args.workloads:
            for name in args.servers:
                if (name, wl) not in na:
                    queue.append((rep, wl, name))
    ctx = {"sockit": args.sockit, "bindir": args.bindir, "node": NODE, "tmp": tmp,
           "rate": args.rate, "ca": None, "certs": None, "metrics_port": 0}
    if any(wl == "idle-tls" or (wl in WL and WL[wl]["tls"]) for _, wl, _ in queue):
        ctx["ca"], ctx["certs"] = make_certs(tmp)
    load_runs = sum(1 for p in queue if p[1] in WL)
    log("%d measurements (%d load runs of %gs + %gs warm-up, %d idle), %d repetitions" %
        (len(queue), load_runs, args.duration, args.warmup, len(queue) - load_runs, args.reps))
    started = time.monotonic()
    runs = []
    for i, (rep, wl, name) in enumerate(queue):
        try:
            if wl in IDLE:
                run = measure_idle(args, name, wl, ctx, logdir)
            else:
                run = measure_load(args, name, wl, ctx, logdir)
        except (RuntimeError, OSError) as e:
            run = {"server": name, "workload": wl, "failed": str(e)}
        run["rep"] = rep
        runs.append(run)
        if "failed" in run:
            status = "FAILED: " + run["failed"]
        elif wl in IDLE:
            status = ", ".join("%s conns %.0f B/conn" % (c, v["bytes_per_conn"])
                               for c, v in run["per_count"].items())
        else:
            status = "%.0f req/s, %s µs CPU/req, %s sleeps/req, %d errors%s" % (
                run["rps"] or 0, fmt_num(run["cpu_us_per_req"]),
                fmt_num(run["sleeps_per_req"]), run["errors"] or 0,
                ", noisy" if run["noisy"] else "")
        log("[%d/%d] rep %d %s %s: %s" % (i + 1, len(queue), rep + 1, wl, name, status))

    summary = summarize(runs, args, na)
    tab, notes = table(summary, args)
    checks = targets(summary, args)
    elapsed = time.monotonic() - started
    print("## sockit serve vs. its peers (%s)\n" %
          datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    print("Server pinned to CPU %d, `sockit bench -t 1 -s %d` (or lg2, the /lg2 rows) on "
          "CPU %d; %gs per run, %d repetition(s) interleaved, medians (errors and >100 ms: "
          "sums). Ratios are to the minimal epoll server (in TLS rows its OpenSSL twin). "
          "sleeps/req: the server's voluntary context switches per request; LG µs/req: the "
          "load generator's own CPU. Idle: line-mode connections, one round trip each, then "
          "held. The -R row runs at %d requests/s."
          % (SERVER_CPU, MSG_SIZE, BENCH_CPU, args.duration, args.reps, args.rate))
    print()
    print(tab)
    if notes:
        print()
        for n in notes:
            print("- " + n)
    print("\nTargets (issues 6, 15, 16, 17, 20):")
    for title, verdict, detail in checks:
        print("%-4s %s -- %s" % (verdict, title, detail))

    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    doc = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "command": " ".join(["bench/run.py"] + argv),
        "machine": {"cpus": ncpu, "kernel": os.uname().release, "pinned": PIN},
        "params": {"duration_s": args.duration, "warmup_s": args.warmup, "reps": args.reps,
                   "size": MSG_SIZE, "idle_counts": args.idle,
                   "idle_tls_counts": args.idle_tls, "rate": args.rate,
                   "features": feat, "servers": args.servers,
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
