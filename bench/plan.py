"""plan.py -- what `make bench` measures: the workloads, the servers, which
server can do which workload (and why not, when it cannot), and the command
lines that start each server and drive it.  Used by run.py; no I/O here but
reading `sockit serve --help` / `sockit bench --help` once.
"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.join(ROOT, "bench", "peers")
MSG_SIZE = 16


def _wl(name, mode, conns, **kw):
    d = {"name": name, "mode": mode, "conns": conns, "lg": "bench", "tls": None,
         "unix": False, "proxy": False, "rate": False}
    d.update(kw)
    return d


# Load workloads in table order.  mode: the protocol; conns: concurrency;
# lg: the load generator ("bench" = sockit bench, "lg2" = bench/loadgen/lg2);
# tls: None, "full" (a full handshake per connection) or "resume" (bench
# --tls-resume); unix: over a Unix socket (-U); proxy: a PROXY v2 header
# first; rate: open loop at --rate requests/s.  "idle" and "idle-tls" are
# measured apart (connections held open, RSS growth).
WORKLOADS = (
    [_wl("once-%d" % c, "once", c) for c in (1, 16, 64, 256, 1000)] +
    [_wl("line-%d" % c, "line", c) for c in (1, 16, 64)] +
    [_wl("udp-%d" % c, "udp", c) for c in (1, 16, 64)] +
    [_wl("once-%d/lg2" % c, "once", c, lg="lg2") for c in (16, 64, 256, 1000)] +
    [_wl("rate-once-64", "once", 64, rate=True)] +
    [_wl("unix-%s-%d" % (m, c), m, c, unix=True) for m in ("once", "line") for c in (16, 64)] +
    [_wl("tls-once-16", "once", 16, tls="full"),
     _wl("tls-once-resumed-16", "once", 16, tls="resume")] +
    [_wl("tls-line-%d" % c, "line", c, tls="full") for c in (16, 64)] +
    [_wl("proxy-once-16", "once", 16, proxy=True)])
WL = {w["name"]: w for w in WORKLOADS}
IDLE = ("idle", "idle-tls")
NAMES = [w["name"] for w in WORKLOADS] + list(IDLE)
QUICK = ["once-16", "line-16", "udp-16", "once-16/lg2", "unix-once-16", "tls-once-16",
         "proxy-once-16", "idle"]

# Servers in table order.  modes: the protocol modes it speaks; unix / tls:
# whether it serves Unix sockets / TLS; only: the workloads it is in (when
# not all); why: the n/a reasons.
ALL = {"once", "line", "udp"}
SERVERS = {
    "tutorial": {"label": "tutorial (Python)", "modes": {"once"}, "lg2": False,
                 "na": "serves one connection at a time, once mode only"},
    "asyncio": {"label": "Python asyncio", "modes": ALL, "unix": True, "tls": True},
    "node": {"label": "Node.js net/dgram/tls", "modes": ALL, "unix": True, "tls": True},
    "socat": {"label": "socat (fork)", "modes": ALL, "warmup": False, "tls": True, "lg2": False,
              "idle_na": "2 processes per connection: 10,000 connections "
                         "exceed pid_max on a small machine"},
    "libuv": {"label": "libuv", "modes": ALL, "unix": True, "rate": True},
    "epoll": {"label": "minimal epoll", "modes": ALL, "unix": True, "tls": True, "rate": True},
    "sockit": {"label": "sockit serve -w1", "modes": ALL, "unix": True, "tls": True,
               "proxy": True, "rate": True},
    "sockit-epoll": {"label": "sockit -w1 --backend epoll", "modes": ALL, "unix": True,
                     "tls": True, "proxy": True},
    "sockit2": {"label": "sockit serve -w2", "modes": ALL, "unix": True, "tls": True,
                "idle_na": "the idle figure is taken with 1 worker"},
    "sockit-nc": {"label": "sockit -w1 --coalesce 0", "modes": {"once"}, "rate": True,
                  "only": lambda w: w.startswith("once-") or w.startswith("rate-"),
                  "only_na": "coalescing is on in once mode only: the same as sockit "
                             "elsewhere"},
    "sockit-metrics": {"label": "sockit -w1 --metrics (scraped 1/s)", "modes": ALL,
                       "only": lambda w: w in ("once-64", "line-64"),
                       "only_na": "measured in once-64 and line-64 only"},
}
BASE = "epoll"
SOCKIT = [n for n in SERVERS if n.startswith("sockit")]


# ---------------------------------------------------------------- features

def features(sockit):
    """{flag: bool} for the flags the new workloads need, read from the
    binary's own --help (a flag some branch has not landed yet shows as
    n/a, not as a failed run)."""
    def helptext(cmd):
        try:
            r = subprocess.run([sockit, cmd, "--help"], capture_output=True, text=True,
                               timeout=10)
            return r.stdout + r.stderr
        except OSError:
            return ""
    serve, bench = helptext("serve"), helptext("bench")
    return {
        "serve_tls": "--tls-cert" in serve, "serve_unix": "--unix" in serve,
        "serve_proxy": "--proxy-protocol" in serve, "serve_metrics": "--metrics" in serve,
        "serve_coalesce": "--coalesce" in serve,
        "bench_tls": "--tls" in bench, "bench_resume": "--tls-resume" in bench,
        "bench_unix": "--unix" in bench, "bench_proxy": "--proxy-header" in bench,
        "bench_rate": "--rate" in bench,
    }


def na_reason(name, wl, feat, missing):
    """Why server `name` cannot run workload wl, or None if it can."""
    s = SERVERS[name]
    if name in missing:
        return missing[name]
    if s.get("only") and not s["only"](wl):
        return s["only_na"]
    sockit = name in SOCKIT
    if wl in IDLE:
        if "line" not in s["modes"]:
            return s.get("na", "no line mode")
        if s.get("idle_na"):
            return s["idle_na"]
        if wl == "idle-tls":
            if not s.get("tls") or name == "socat":
                return "no TLS" if not s.get("tls") else s["idle_na"]
            if sockit and not feat["serve_tls"]:
                return "sockit serve has no --tls-cert (yet)"
        return None
    w = WL[wl]
    if w["mode"] not in s["modes"]:
        return s.get("na", "no %s mode" % w["mode"])
    if w["lg"] == "lg2":
        if s.get("lg2") is False:
            return "measured with sockit bench only (a new process or a blocking loop " \
                   "per connection)"
        if "lg2" in missing:
            return missing["lg2"]
    if w["rate"]:
        if not s.get("rate"):
            return "the -R row compares sockit with and without coalescing (and epoll, libuv)"
        if not feat["bench_rate"]:
            return "sockit bench has no -R"
    if w["unix"]:
        if not s.get("unix"):
            return "no Unix sockets here"
        if not feat["bench_unix"]:
            return "sockit bench has no -U (yet)"
        if sockit and not feat["serve_unix"]:
            return "sockit serve has no -U (yet)"
    if w["tls"]:
        if not s.get("tls"):
            return "no TLS"
        if not feat["bench_tls"]:
            return "sockit bench has no --tls (yet)"
        if w["tls"] == "resume" and not feat["bench_resume"]:
            return "sockit bench has no --tls-resume (yet)"
        if sockit and not feat["serve_tls"]:
            return "sockit serve has no --tls-cert (yet)"
    if w["proxy"]:
        if not s.get("proxy"):
            return "measured with one worker only" if sockit else \
                "does not speak the PROXY protocol"
        if not (feat["serve_proxy"] and feat["bench_proxy"]):
            return "sockit serve --proxy-protocol or bench --proxy-header missing (yet)"
    if name == "sockit-nc" and not feat["serve_coalesce"]:
        return "sockit serve has no --coalesce"
    if name == "sockit-metrics" and not feat["serve_metrics"]:
        return "sockit serve has no --metrics (yet)"
    return None


# ---------------------------------------------------------------- command lines

def server_argv(name, wl, ctx):
    """Command line of server `name` for workload wl (port 0 or a Unix
    path).  ctx: sockit, bindir, node, certs (cert, key), unix_path,
    metrics_port."""
    py = sys.executable
    w = WL.get(wl) or {"mode": "line", "unix": False, "proxy": False,
                       "tls": "full" if wl == "idle-tls" else None}
    mode = w["mode"]
    where = ["-U", ctx["unix_path"]] if w["unix"] else ["0"]
    tls = list(ctx["certs"]) if w["tls"] else []
    if name == "tutorial":
        return [py, os.path.join(PEERS, "tutorial_server.py"), "0"]
    if name in ("asyncio", "node"):
        run = [py] if name == "asyncio" else [ctx["node"]]
        return run + [os.path.join(PEERS, name + "_server.py" if name == "asyncio"
                                   else "node_server.js"), mode] + where + \
            (["--tls"] + tls if tls else [])
    if name == "socat":
        return [py, os.path.join(PEERS, "socat_server.py"), mode, "0"] + \
            (["--tls"] + tls if tls else [])
    if name == "epoll" and tls:
        return [os.path.join(ctx["bindir"], "tls_epoll_server"), mode, "0"] + tls
    if name in ("libuv", "epoll"):
        return [os.path.join(ctx["bindir"], name + "_server"), mode] + where
    workers = "2" if name == "sockit2" else "1"
    argv = [ctx["sockit"], "serve", "--workers", workers, "--idle-timeout", "3600"]
    argv += ["-U", ctx["unix_path"]] if w["unix"] else ["-p", "0"]
    if name == "sockit-epoll":
        argv += ["--backend", "epoll"]
    if name == "sockit-nc":
        argv += ["--coalesce", "0"]
    if name == "sockit-metrics":
        argv += ["--metrics", "127.0.0.1:%d" % ctx["metrics_port"]]
    if tls:
        argv += ["--tls-cert", tls[0], "--tls-key", tls[1]]
    if w["proxy"]:
        argv += ["--proxy-protocol"]
    if mode == "udp":
        return argv + ["--udp-only", "-m", "once"]
    return argv + ["-m", mode]


def load_argv(wl, ctx, target, duration):
    """The load generator's command line for workload wl against target
    (a port number or a Unix path).  ctx: sockit, bindir, ca, rate."""
    w = WL[wl]
    secs = "%dms" % round(duration * 1000)
    if w["lg"] == "lg2":
        argv = [os.path.join(ctx["bindir"], "lg2"), "-c", str(w["conns"]),
                "-d", "%.3f" % duration, "-s", str(MSG_SIZE)]
        return argv + (["-U", target] if w["unix"] else ["127.0.0.1", str(target)])
    argv = [ctx["sockit"], "bench", "--json", "-m", w["mode"], "-c", str(w["conns"]),
            "-t", "1", "-s", str(MSG_SIZE), "-d", secs]
    if w["tls"]:
        argv += ["--tls", "--tls-ca", ctx["ca"]]
        if w["tls"] == "resume":
            argv += ["--tls-resume"]
    if w["proxy"]:
        argv += ["--proxy-header", "v2"]
    if w["rate"]:
        argv += ["-R", str(ctx["rate"])]
    return argv + (["-U", target] if w["unix"] else ["127.0.0.1", str(target)])


def pick_workloads(spec, quick):
    """The workloads named by spec (comma-separated names or prefixes:
    "once" is once-1 .. once-1000 and the once-N/lg2 rows, "lg2" every lg2
    row, "tls" every TLS row, "idle" idle and idle-tls), in table order, or
    a ValueError naming the unknown one."""
    if not spec:
        return list(QUICK) if quick else list(NAMES)
    pick = spec.split(",")

    def match(n, p):
        return n == p or n.startswith(p + "-") or n.endswith("/" + p)
    for p in pick:
        if not any(match(n, p) for n in NAMES):
            raise ValueError(p)
    return [n for n in NAMES if any(match(n, p) for p in pick)]
