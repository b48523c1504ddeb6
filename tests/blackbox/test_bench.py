"""test_bench.py -- `sockit bench` against correct servers: counts, rates, -n, -R,
JSON keys, progress, Ctrl-C.  Wrong servers are in test_bench_errors.py."""
import json
import os
import pty
import re
import select
import signal
import subprocess
import time

import pytest

from bench_servers import BenchServer
from conftest import SOCKIT


@pytest.fixture
def bench_server():
    """Factory: bench_server(mode, behaviour='ok') -> BenchServer, stopped at teardown."""
    started = []

    def start(mode, behaviour="ok", **kw):
        s = BenchServer(mode, behaviour, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def bench(run_sockit, args, timeout=30):
    """Runs `sockit bench --json ARGS`; returns (exit code, parsed JSON, stderr)."""
    r = run_sockit(["bench", "--json"] + [str(a) for a in args], timeout=timeout)
    out = r.stdout.decode()
    assert out.count("\n") == 1 and out.endswith("}\n"), f"not one JSON line: {out!r} {r.stderr!r}"
    return r.returncode, json.loads(out), r.stderr.decode()


DOCUMENTED_KEYS = {
    "mode": str, "udp": bool, "echo": bool, "host": str, "port": int, "address": str,
    "conns": int, "threads": int, "depth": int, "size": int, "prefix": str,
    "duration_target_ms": (int, type(None)), "requests_target": (int, type(None)),
    "rate_target_per_s": (float, type(None)), "warmup_ms": int, "timeout_ms": int,
    "requests": int, "errors": dict, "errors_total": int, "unfinished": int, "late": int,
    "duration_ms": float, "rate_per_s": float, "bytes_sent": int, "bytes_received": int,
    "bytes_sent_per_s": float, "bytes_received_per_s": float, "latency_ms": dict,
    "connect_ms": (dict, type(None)), "over_100ms": int, "rate_sustained": (bool, type(None)),
    "requests_behind": (int, type(None)), "send_lag_ms": (dict, type(None)),
    "first_mismatch": (dict, type(None)), "interrupted": bool, "exit": int,
    "error": (str, type(None)),
    # -U, --proxy-header, --attempt-delay, --tls (null or false without them)
    "unix": (str, type(None)), "proxy_header": (str, type(None)), "attempt_delay_ms": int,
    "tls": bool, "tls_resume": bool, "tls_insecure": bool, "tls_servername": (str, type(None)),
    "handshake_ms": (dict, type(None)), "handshake_full_ms": (dict, type(None)),
    "handshake_resumed_ms": (dict, type(None)), "tls_handshakes": (int, type(None)),
    "tls_resumed": (int, type(None)), "tls_resumed_share": (float, type(None)),
    "tls_error": (str, type(None)),
}
ERROR_KINDS = {"mismatch", "truncated", "reset", "refused", "timeout", "connect", "other",
               "tls_verify", "tls_handshake", "tls_truncated", "tls_alert"}
LATENCY_KEYS = {"min", "mean", "p50", "p90", "p99", "p999", "max"}


def check_consistent(d, server):
    """Replies = requests, rate = requests / time, and the server saw them."""
    assert d["errors_total"] == 0, d["errors"]
    assert d["requests"] > 0
    assert d["rate_per_s"] == pytest.approx(d["requests"] / (d["duration_ms"] / 1000), rel=0.05)
    # every verified request reached the server; at most one window more did
    # (in flight when time was up)
    window = d["conns"] * d["depth"]
    assert d["requests"] <= server.requests <= d["requests"] + window, \
        (d["requests"], server.requests)
    lat = d["latency_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"] <= lat["max"]
    assert lat["min"] <= lat["mean"] <= lat["max"]
    assert d["bytes_sent_per_s"] == pytest.approx(
        d["requests"] * d["size"] / (d["duration_ms"] / 1000), rel=0.05)
    assert d["exit"] == 0 and d["error"] is None


@pytest.mark.parametrize("mode,extra", [
    ("once", ["-c", "4"]),
    ("line", ["-c", "4", "-P", "4"]),
    ("echo", ["-c", "3", "-P", "2", "-s", "100"]),
    ("udp", ["-c", "4"]),
])
def test_mode_against_correct_server(run_sockit, bench_server, mode, extra):
    srv = bench_server(mode)
    rc, d, err = bench(run_sockit, ["-m", mode, "-d", "1s"] + extra + ["127.0.0.1", srv.port])
    assert rc == 0, (d, err)
    assert d["mode"] == mode and d["duration_target_ms"] == 1000
    assert d["duration_ms"] == pytest.approx(1000, abs=50)
    check_consistent(d, srv)
    if mode == "once":
        c = d["connect_ms"]
        assert set(c) == LATENCY_KEYS and 0 < c["min"] <= c["p50"] <= c["max"]
    else:
        assert d["connect_ms"] is None


def test_tutorial_server_once(run_sockit, tutorial_server):
    host, port = tutorial_server
    rc, d, err = bench(run_sockit, ["-n", "300", "-c", "2", host, port])
    assert rc == 0, (d, err)
    assert d["requests"] == 300 and d["errors_total"] == 0


def test_json_has_documented_keys(run_sockit, bench_server):
    srv = bench_server("line")
    rc, d, _ = bench(run_sockit, ["-m", "line", "-n", "50", "127.0.0.1", srv.port])
    assert rc == 0
    for key, typ in DOCUMENTED_KEYS.items():
        assert key in d, key
        assert isinstance(d[key], typ), (key, d[key])
    assert set(d["errors"]) == ERROR_KINDS
    assert all(isinstance(v, int) for v in d["errors"].values())
    assert set(d["latency_ms"]) == LATENCY_KEYS
    assert all(isinstance(v, float) for v in d["latency_ms"].values())
    assert d["requests_target"] == 50 and d["duration_target_ms"] is None
    assert d["rate_target_per_s"] is None and d["rate_sustained"] is None
    assert d["send_lag_ms"] is None and d["requests_behind"] is None
    assert d["bytes_sent"] == 50 * d["size"] and d["bytes_received"] == 50 * (d["size"] + 10)
    assert d["exit"] == 0 and d["error"] is None and d["first_mismatch"] is None
    assert d["address"] == "127.0.0.1:%d" % srv.port
    assert d["host"] == "127.0.0.1" and d["port"] == srv.port


@pytest.mark.parametrize("mode,extra", [
    ("once", ["-c", "5"]),
    ("line", ["-c", "3", "-P", "7"]),
    ("echo", ["-c", "2"]),
    ("udp", ["-c", "6"]),
    ("line", ["-c", "4", "-t", "2", "-P", "3"]),
])
def test_n_is_exact(run_sockit, bench_server, mode, extra):
    srv = bench_server(mode)
    rc, d, err = bench(run_sockit, ["-m", mode, "-n", "401"] + extra + ["127.0.0.1", srv.port])
    assert rc == 0, (d, err)
    assert d["requests"] == 401
    assert d["requests_target"] == 401
    time.sleep(0.1)  # the server's threads count what they read
    assert srv.requests == 401


def test_warmup_is_left_out(run_sockit, bench_server):
    srv = bench_server("line")
    rc, d, err = bench(run_sockit, ["-m", "line", "-n", "100", "--warmup", "300ms", "-c", "2",
                                    "127.0.0.1", srv.port])
    assert rc == 0, err
    assert d["requests"] == 100 and d["warmup_ms"] == 300
    time.sleep(0.1)
    assert srv.requests > 110  # the warm-up's requests reached the server, uncounted


@pytest.mark.parametrize("mode", ["line", "udp", "once"])
def test_rate_is_held(run_sockit, bench_server, mode):
    srv = bench_server(mode)
    # 16 connections: a reply may take 80 ms on a busy machine without
    # holding the schedule up
    rc, d, err = bench(run_sockit, ["-m", mode, "-R", "200", "-d", "2s", "-c", "16",
                                    "127.0.0.1", srv.port])
    assert rc == 0, err
    assert d["rate_target_per_s"] == 200.0
    assert d["requests"] == pytest.approx(400, rel=0.10)
    assert d["rate_per_s"] == pytest.approx(200, rel=0.10)
    assert d["rate_sustained"] is True and d["requests_behind"] <= 4
    assert srv.requests == pytest.approx(400, rel=0.10)
    lag = d["send_lag_ms"]  # how late requests left: the tool's own slack, shown
    assert set(lag) == LATENCY_KEYS and 0 <= lag["min"] <= lag["p50"] <= lag["max"]


def test_rate_not_sustained_is_reported(run_sockit, bench_server):
    # one connection to a server that takes 150 ms a reply cannot do 100/s
    srv = bench_server("line", "slow")
    rc, d, err = bench(run_sockit, ["-m", "line", "-R", "100", "-d", "1s", "-c", "1",
                                    "--timeout", "3s", "127.0.0.1", srv.port])
    assert d["rate_sustained"] is False
    assert d["requests_behind"] > 50  # ~100 due, ~7 sent
    assert d["rate_per_s"] < 20
    # latency counts from when each request was due: the queue shows
    assert d["latency_ms"]["max"] > 500
    assert rc == 0, err  # slow is not wrong


def test_rate_sustained_by_a_slow_server_with_enough_connections(run_sockit, bench_server):
    # 150 ms a reply, but 32 connections carry 100/s: slow, yet keeping up
    srv = bench_server("line", "slow")
    rc, d, err = bench(run_sockit, ["-m", "line", "-R", "100", "-d", "1500ms", "-c", "32",
                                    "127.0.0.1", srv.port])
    assert rc == 0, err
    assert d["rate_sustained"] is True, d
    assert d["latency_ms"]["p50"] >= 140


def test_over_100ms_counted(run_sockit, bench_server):
    srv = bench_server("once", "slow")
    rc, d, err = bench(run_sockit, ["-n", "6", "-c", "3", "127.0.0.1", srv.port])
    assert rc == 0, err
    assert d["over_100ms"] == 6
    assert d["latency_ms"]["min"] >= 140


def test_text_report(run_sockit, bench_server):
    srv = bench_server("once")
    r = run_sockit(["bench", "-n", "200", "-c", "2", "127.0.0.1", str(srv.port)])
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert re.search(r"requests\s+200 verified in [\d.]+ (s|ms|µs) = [\d.]+ req/s", out), out
    for label in ("p50", "p90", "p99", "p99.9", "max", "latency", "connect"):
        assert label in out, out
    assert re.search(r"\d (µs|ms)", out), out
    assert re.search(r"errors\s+0\n", out), out
    assert r.stderr == b""  # no progress line when stderr is not a terminal


def test_progress_only_on_a_terminal(bench_server):
    srv = bench_server("line")
    master, slave = pty.openpty()
    p = subprocess.Popen([SOCKIT, "bench", "-m", "line", "-d", "2.5s", "127.0.0.1",
                          str(srv.port)], stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 0.5)
        if r:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        if p.poll() is not None and not r:
            break
    out, _ = p.communicate(timeout=10)
    os.close(master)
    assert p.returncode == 0
    assert re.search(rb"\rsockit bench: [\d.]+ s, \d+ requests, \d+ req/s, 0 errors", seen), seen
    assert b"verified" in out  # the report itself goes to stdout


def test_ctrl_c_prints_partial_result(bench_server):
    """Ctrl-C prints the result so far, then bench dies of SIGINT (the shell's
    130) -- issue 19, item 9."""
    srv = bench_server("line")
    p = subprocess.Popen([SOCKIT, "bench", "--json", "-m", "line", "-d", "60s", "127.0.0.1",
                          str(srv.port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while srv.requests < 100 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    d = json.loads(out)
    assert d["interrupted"] is True
    assert d["requests"] > 0 and d["errors_total"] == 0
    assert d["duration_ms"] < 30000
    assert d["exit"] == 130
    assert p.returncode == -signal.SIGINT, err


def test_threads_split_the_work(run_sockit, bench_server):
    srv = bench_server("udp")
    rc, d, err = bench(run_sockit, ["-m", "udp", "-t", "2", "-c", "5", "-n", "301",
                                    "127.0.0.1", srv.port])
    assert rc == 0, err
    assert d["threads"] == 2 and d["requests"] == 301
