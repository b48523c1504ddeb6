"""test_bench_harness.py -- `make bench`'s harness (bench/run.py) works.

A smoke run on tiny durations: it checks the harness measures, tabulates
and writes its JSON and chart, never how fast anything is.
"""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, SOCKIT

RUN = os.path.join(ROOT, "bench", "run.py")
needs_cc = pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")),
                              reason="no C compiler: the epoll peer cannot be built")


def harness(args, tmp_path, timeout=120):
    argv = [sys.executable, RUN, "--sockit", SOCKIT, "--json", str(tmp_path / "r.json"),
            "--svg", str(tmp_path / "r.svg")] + args
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def rows(stdout):
    """{(workload, server label): [cells]} of the markdown table."""
    out = {}
    for line in stdout.splitlines():
        if line.startswith("| ") and not line.startswith("| workload"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            out[(cells[0], cells[1])] = cells[2:]
    return out


@needs_cc
def test_quick_run_measures_epoll_and_sockit(tmp_path):
    r = harness(["--quick", "--servers", "epoll,sockit"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "| workload | server | CPU µs/req |" in r.stdout, r.stdout
    assert "| sleeps/req | LG µs/req |" in r.stdout, r.stdout
    table = rows(r.stdout)
    for wl in ("once-16", "line-16", "udp-16", "once-16/lg2"):
        for label in ("minimal epoll", "sockit serve -w1"):
            cells = table[(wl, label)]
            # CPU µs/req, req/s: a number with its ratio to the epoll server
            # (none when a busy machine gave the epoll server 0 ticks).
            assert re.fullmatch(r"[0-9.]+( \([0-9.]+x\))?( ⚠)?", cells[0]), cells
            assert re.fullmatch(r"[0-9.]+ \([0-9.]+x\)", cells[1]), cells
            # sleeps/req and the load generator's CPU/req: plain numbers
            assert re.fullmatch(r"[0-9.]+", cells[6]) and re.fullmatch(r"[0-9.]+", cells[7])
        assert re.fullmatch(r"[0-9.]+( \(1.00x\))?( ⚠)?", table[(wl, "minimal epoll")][0])
    # One Unix, one TLS and one PROXY row, measured for sockit (the epoll
    # yardstick speaks no PROXY: n/a with the reason).
    for wl in ("unix-once-16", "tls-once-16", "proxy-once-16"):
        for label in ("minimal epoll", "sockit serve -w1"):
            cell = table[(wl, label)][0]
            if (wl, label) == ("proxy-once-16", "minimal epoll"):
                continue
            assert re.fullmatch(r"[0-9.]+( \([0-9.]+x\))?( ⚠)?", cell), (wl, label, cell)
    assert table[("proxy-once-16", "minimal epoll")][0] == "n/a"
    assert "n/a: minimal epoll, proxy-once-16: does not speak the PROXY protocol" in r.stdout
    for label in ("minimal epoll", "sockit serve -w1"):
        assert re.search(r"200: -?[0-9.]+", table[("idle", label)][-1]), table[("idle", label)]
    verdicts = re.findall(r"^(PASS|FAIL|SKIP) ", r.stdout, re.M)
    assert len(verdicts) == 20, r.stdout

    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["params"]["servers"] == ["epoll", "sockit"]
    for name in ("epoll", "sockit"):
        f = doc["summary"][name]["once-16"]
        assert f["cpu_us_per_req"] > 0 and f["rps"] > 0 and f["reps"] == 1, f
        assert f["sleeps_per_req"] >= 0 and f["bench_us_per_req"] > 0, f
        assert "200" in doc["summary"][name]["idle"]["bytes_per_conn"]
    load = [x for x in doc["runs"] if x["workload"] != "idle"]
    assert len(load) >= 8 and all(x["requests"] > 0 for x in load), load
    lg2 = [x for x in load if x["workload"] == "once-16/lg2"]
    assert len(lg2) == 2 and all(x["bench"]["tool"] == "lg2" for x in lg2), lg2
    assert len(doc["targets"]) == 20
    assert (tmp_path / "r.svg").read_text().startswith("<svg")


@needs_cc
def test_a_peer_without_the_mode_shows_na(tmp_path):
    r = harness(["--quick", "--servers", "tutorial,epoll", "--workloads", "line-16"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    table = rows(r.stdout)
    assert table[("line-16", "tutorial (Python)")][0] == "n/a"
    assert table[("line-16", "minimal epoll")][0] != "n/a"
    assert "n/a: tutorial (Python), line-16: " in r.stdout
    doc = json.loads((tmp_path / "r.json").read_text())
    assert "na" in doc["summary"]["tutorial"]["line-16"]


def test_unknown_server_is_a_usage_error(tmp_path):
    r = harness(["--servers", "epoll,nosuch"], tmp_path, timeout=30)
    assert r.returncode == 2
    assert "unknown server 'nosuch'" in r.stderr


def load_run_py():
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_run", RUN)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_targets_judge_ratios_the_right_way_round():
    run = load_run_py()
    args = run.parse_args(["--servers", "epoll,sockit,sockit2,libuv,sockit-nc,node",
                           "--workloads", "once-1,once-64,line-16,udp-16,tls-once-16,"
                           "proxy-once-16,once-16,rate,idle", "--idle", "100,1000",
                           "--idle-tls", "50"])

    def load(cpu, p99=100.0, errors=0, over=0, p50=50.0, lg=10.0):
        return {"cpu_us_per_req": cpu, "rps": 1.0, "p50_us": p50, "p99_us": p99,
                "errors": errors, "over_100ms": over, "peak_rss_kb": 1000, "reps": 3,
                "noisy_reps": 0, "failed_reps": 0, "bench_us_per_req": lg,
                "sleeps_per_req": 0.5}

    def idle(b):
        return {"bytes_per_conn": {"100": b, "1000": b}, "peak_rss_kb": 1000, "reps": 3}

    na = {"na": "not here"}
    summary = {
        "epoll": {"once-1": load(20.0), "once-16": load(10.0), "once-64": load(10.0),
                  "line-16": load(10.0), "udp-16": load(10.0), "tls-once-16": load(100.0),
                  "proxy-once-16": na, "rate-once-64": load(10.0), "idle": idle(50.0)},
        # once 0.60x (pass), line 1.05x (fail), udp 0.50x (pass), idle 300 B
        # (fail), tls-once 1.1x (fail), proxy 1.04x its own once-16 (pass)
        "sockit": {"once-1": load(15.0, p99=104.0, p50=60.0), "once-16": load(5.0),
                   "once-64": load(6.0, lg=11.0), "line-16": load(10.5, over=1),
                   "udp-16": load(5.0), "tls-once-16": load(110.0),
                   "proxy-once-16": load(5.2), "rate-once-64": load(6.0, p99=230.0),
                   "idle": idle(300.0)},
        # 2 workers: once 1.4x of 1 worker (fail); the others within 1.1x
        "sockit2": {"once-1": load(15.0), "once-16": load(5.0), "once-64": load(8.4),
                    "line-16": load(10.5), "udp-16": load(5.2), "tls-once-16": load(110.0),
                    "proxy-once-16": na, "rate-once-64": na,
                    "idle": {"na": "1 worker only"}},
        "libuv": {"once-1": load(20.0), "once-16": load(12.0), "once-64": load(12.0),
                  "line-16": load(10.0), "udp-16": load(6.0), "tls-once-16": na,
                  "proxy-once-16": na, "rate-once-64": load(10.0), "idle": idle(250.0)},
        # without coalescing: c=1 p50 60 (1.0x), p99 100 (1.04x); at -R p99
        # 100 (+130 us, over the 100 us delay: fail); the load generator paid
        # 10 (1.1x at once-64: fail)
        "sockit-nc": {"once-1": load(15.0, p50=60.0), "once-16": load(8.0), "once-64": load(8.0),
                      "line-16": na, "udp-16": na, "tls-once-16": na, "proxy-once-16": na,
                      "rate-once-64": load(8.0, p99=100.0), "idle": na},
        "node": {"once-1": load(50.0), "once-16": load(50.0), "once-64": load(50.0),
                 "line-16": load(50.0), "udp-16": load(50.0), "tls-once-16": load(200.0),
                 "proxy-once-16": na, "rate-once-64": na, "idle": idle(4000.0)},
    }
    for figures in summary.values():  # "idle" picks idle-tls too
        figures["idle-tls"] = na
    got = {title.split(":")[0]: (verdict, detail) for title, verdict, detail in
           run.targets(summary, args)}
    assert got["once"][0] == "PASS" and "once-64 0.60x" in got["once"][1], got
    assert got["line"][0] == "FAIL", got
    assert got["udp"][0] == "PASS", got
    assert got["tls-once"][0] == "FAIL" and "tls-once-16 1.10x" in got["tls-once"][1], got
    assert got["proxy"] == ("PASS", "proxy-once-16 1.04x"), got
    assert got["idle"] == ("FAIL", "300 B/conn (limit 256)"), got
    assert got["idle-tls"][0] == "SKIP", got   # not measured
    assert got["stalls"][0] == "FAIL" and "line-16" in got["stalls"][1], got
    assert got["latency"] == ("PASS", "once-1 1.04x"), got
    assert got["coalescing latency"] == ("PASS", "once-1 p50 1.00x, once-1 p99 1.04x"), got
    assert got["coalescing at -R 20000/s"] == ("FAIL", "rate-once-64 +130 us"), got
    assert got["client cost"][0] == "FAIL" and "once-64 1.10x" in got["client cost"][1], got
    assert got["workers"][0] == "FAIL" and "once-64 1.40x" in got["workers"][1], got
    beats = got["beats every peer (CPU/req, idle B/conn)"]
    assert beats[0] == "FAIL" and "libuv line-16" in beats[1] and "libuv idle" in beats[1]
    assert "libuv once-64" not in beats[1] and "node" not in beats[1]

    table, _ = run.table(summary, args)
    assert "| once-64 | sockit serve -w1 | 6.00 (0.60x) |" in table
    assert "| TLS workload | server | handshake p50 ms |" in table

    # With each repetition's figures, the ratio within each one is shown
    # too (the verdict stays on the medians).
    def reps(*cpu):
        return {str(i): {"cpu_us_per_req": c, "p99_us": 100.0} for i, c in enumerate(cpu)}
    summary["epoll"]["once-64"]["by_rep"] = reps(10.0, 20.0, 10.0)
    summary["sockit"]["once-64"]["by_rep"] = reps(6.0, 12.0, 5.0)
    got = {title.split(":")[0]: (verdict, detail) for title, verdict, detail in
           run.targets(summary, args)}
    assert got["once"][1].startswith("once-16 0.50x, once-64 0.60x (by rep 0.60/0.60/0.50)")
    assert "| idle | sockit serve -w2 | n/a |" in table

    # idle TLS: at most half of node's per connection
    args = run.parse_args(["--servers", "sockit,node", "--workloads", "idle-tls",
                           "--idle-tls", "50"])
    summary = {"sockit": {"idle-tls": {"bytes_per_conn": {"50": 900.0}}},
               "node": {"idle-tls": {"bytes_per_conn": {"50": 2000.0}}}}
    got = {t.split(":")[0]: (v, d) for t, v, d in run.targets(summary, args)}
    assert got["idle-tls"] == ("PASS", "900 B/conn (limit 1000)"), got


def load_plan():
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_plan",
                                                  os.path.join(ROOT, "bench", "plan.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_plan_command_lines_and_na_reasons():
    plan = load_plan()
    ctx = {"sockit": "/s", "bindir": "/b", "node": "node", "ca": "/ca.pem",
           "certs": ("/c.pem", "/c.key"), "unix_path": "/t/x.sock", "metrics_port": 9,
           "rate": 1000}
    argv = plan.load_argv("tls-once-resumed-16", ctx, 1234, 0.5)
    assert argv[:2] == ["/s", "bench"] and argv[-2:] == ["127.0.0.1", "1234"]
    assert "--tls" in argv and "--tls-resume" in argv and "/ca.pem" in argv
    assert plan.load_argv("unix-line-16", ctx, "/t/x.sock", 0.5)[-2:] == ["-U", "/t/x.sock"]
    assert plan.load_argv("proxy-once-16", ctx, 1, 0.5)[-4:-2] == ["--proxy-header", "v2"]
    assert plan.load_argv("rate-once-64", ctx, 1, 0.5)[-4:-2] == ["-R", "1000"]
    lg2 = plan.load_argv("once-1000/lg2", ctx, 77, 0.5)
    assert lg2[0] == "/b/lg2" and lg2[lg2.index("-c") + 1] == "1000"
    srv = plan.server_argv("sockit", "tls-line-16", ctx)
    assert srv[srv.index("--tls-cert") + 1] == "/c.pem" and srv[-2:] == ["-m", "line"]
    assert plan.server_argv("epoll", "tls-once-16", ctx)[0] == "/b/tls_epoll_server"
    assert plan.server_argv("libuv", "unix-once-16", ctx)[1:] == ["once", "-U", "/t/x.sock"]
    assert "--coalesce" in plan.server_argv("sockit-nc", "once-1", ctx)
    assert "127.0.0.1:9" in plan.server_argv("sockit-metrics", "once-64", ctx)
    assert "--proxy-protocol" in plan.server_argv("sockit", "proxy-once-16", ctx)

    none = dict.fromkeys(plan.features("/nonexistent"), False)
    assert plan.na_reason("sockit", "tls-once-16", none, {}).startswith("sockit bench has no")
    assert plan.na_reason("epoll", "unix-once-16", none, {}).startswith("sockit bench has no")
    assert plan.na_reason("libuv", "tls-line-16", dict.fromkeys(none, True), {}) == "no TLS"
    assert plan.na_reason("sockit", "tls-line-16", dict.fromkeys(none, True), {}) is None
    assert plan.na_reason("sockit-nc", "line-16", none, {}) is not None
    assert plan.na_reason("socat", "once-16/lg2", none, {}) is not None

    assert plan.pick_workloads("tls", False) == ["tls-once-16", "tls-once-resumed-16",
                                                 "tls-line-16", "tls-line-64"]
    assert plan.pick_workloads("lg2,idle", False) == [
        "once-16/lg2", "once-64/lg2", "once-256/lg2", "once-1000/lg2", "idle", "idle-tls"]
    with pytest.raises(ValueError):
        plan.pick_workloads("tls-twice", False)


def test_tls_figures_tolerate_missing_keys():
    run = load_run_py()
    assert run.tls_figures({"requests": 10}) == {
        "handshake_p50_ms": None, "handshake_p99_ms": None, "resumed_share": None}
    got = run.tls_figures({"requests": 10, "handshake_ms": {"p50": 1.5, "p99": 3.0},
                           "tls_handshakes": 10, "tls_resumed": 9})
    assert got["handshake_p50_ms"] == 1.5 and abs(got["resumed_share"] - 0.9) < 1e-9, got
    got = run.tls_figures({"tls": {"handshake_ms": {"p50": 2}, "resumed_pct": 50}})
    assert got["handshake_p50_ms"] == 2 and got["resumed_share"] == 0.5, got


@needs_cc
def test_lg2_and_the_tls_yardstick_serve_and_verify(tmp_path):
    """The C tools the harness builds: lg2 loads the epoll peer over a Unix
    socket and checks every reply; tls_epoll_server answers a TLS client."""
    import socket
    import ssl
    import time
    run = load_run_py()
    missing = run.build_c(str(tmp_path), {"epoll_server", "lg2", "tls_epoll_server"})
    path = str(tmp_path / "e.sock")
    srv = subprocess.Popen([str(tmp_path / "epoll_server"), "once", "-U", path],
                           stdout=subprocess.PIPE)
    try:
        assert srv.stdout.readline().decode().strip() == "unix " + path
        r = subprocess.run([str(tmp_path / "lg2"), "-c", "4", "-d", "0.2", "-U", path],
                           capture_output=True, text=True, timeout=30)
        res = json.loads(r.stdout)
        assert r.returncode == 0 and res["requests"] > 0 and res["errors_total"] == 0, res
    finally:
        srv.terminate()
        srv.wait()
    if "tls_epoll_server" in missing:
        pytest.skip(missing["tls_epoll_server"])
    from tlscerts import CA, SERVER_SANS
    ca = CA(str(tmp_path / "certs"))
    pair = ca.issue(str(tmp_path / "certs" / "srv"), "localhost", sans=SERVER_SANS)
    srv = subprocess.Popen([str(tmp_path / "tls_epoll_server"), "once", "0", pair.cert,
                            pair.key], stdout=subprocess.PIPE)
    try:
        port = int(srv.stdout.readline().split()[1])
        ctx = ssl.create_default_context(cafile=ca.cert)
        deadline = time.monotonic() + 10
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                             server_hostname="localhost") as s:
            s.sendall(b"hello")
            got = b""
            while time.monotonic() < deadline:
                d = s.recv(100)
                if not d:
                    break
                got += d
        assert got == b"Received: hello"
    finally:
        srv.terminate()
        srv.wait()


def test_reading_a_server_log_leaves_the_servers_offset_alone(tmp_path):
    """The server writes through a descriptor that shares the log file's
    offset with the harness: reading must not move it, or the server's
    next write lands over its port line (make bench once stopped so)."""
    run = load_run_py()
    with open(tmp_path / "srv.out", "w+b") as f:
        f.write(b"po")
        f.flush()
        assert run.Server._read(f) == b"po"
        f.write(b"rt 4321\n")
        f.flush()
        assert f.tell() == 10
        assert run.Server._read(f) == b"port 4321\n"
