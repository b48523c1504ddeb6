"""test_bench_errors.py -- `sockit bench` must fail (exit 1), naming the error kind,
against wrong, dead or stalled servers; and reject bad arguments (exit 2)."""
import re
import socket
import time

import pytest

from conftest import free_port
from test_bench import bench, bench_server  # noqa: F401 (fixture)


@pytest.mark.parametrize("mode,behaviour,kind", [
    ("once", "wrong_prefix", "mismatch"),
    ("once", "truncate", "truncated"),
    ("once", "reset", "reset"),
    ("once", "stall", "timeout"),
    ("once", "extra", "mismatch"),
    ("line", "wrong_prefix", "mismatch"),
    ("line", "truncate", "truncated"),
    ("line", "reset", "reset"),
    ("line", "stall", "timeout"),
    ("echo", "wrong_prefix", "mismatch"),
    ("udp", "wrong_prefix", "mismatch"),
    ("udp", "truncate", "truncated"),
    ("udp", "stall", "timeout"),
])
def test_wrong_server_fails_the_run(run_sockit, bench_server, mode, behaviour, kind):
    srv = bench_server(mode, behaviour)
    t0 = time.monotonic()
    # 32-byte requests: a reply cut short still carries its whole id
    rc, d, err = bench(run_sockit, ["-m", mode, "-d", "700ms", "-c", "2", "-s", "32",
                                    "--timeout", "200ms", "127.0.0.1", srv.port])
    assert rc == 1, d
    assert d["errors"][kind] > 0, d["errors"]
    assert d["errors_total"] == sum(d["errors"].values())
    others = {k: v for k, v in d["errors"].items() if k not in (kind, "timeout")}
    assert not any(others.values()), d["errors"]
    assert time.monotonic() - t0 < 10


def test_wrong_prefix_option_is_what_is_checked(run_sockit, bench_server):
    # the server's prefix is "OK " : right with --prefix "OK ", wrong without
    srv = bench_server("line", prefix=b"OK ")
    rc, d, _ = bench(run_sockit, ["-m", "line", "-n", "20", "--prefix", "OK ",
                                  "127.0.0.1", srv.port])
    assert rc == 0 and d["requests"] == 20
    rc, d, _ = bench(run_sockit, ["-m", "line", "-n", "20", "127.0.0.1", srv.port])
    assert rc == 1 and d["errors"]["mismatch"] > 0


def test_prefix_with_quotes_round_trips_in_json(run_sockit, bench_server):
    prefix = 'say "ok"\\ '
    srv = bench_server("udp", prefix=prefix.encode())
    rc, d, _ = bench(run_sockit, ["-m", "udp", "-n", "20", "--prefix", prefix,
                                  "127.0.0.1", srv.port])
    assert rc == 0 and d["requests"] == 20
    assert d["prefix"] == prefix


def test_refused_connection(run_sockit):
    """A dead port is diagnosed at once, not hammered for the whole run --
    issue 19, item 12."""
    port = free_port()
    t0 = time.monotonic()
    rc, d, err = bench(run_sockit, ["-d", "60s", "127.0.0.1", port], timeout=30)
    assert rc == 1
    assert d["errors"]["refused"] > 0 and d["requests"] == 0
    assert "nothing listens on 127.0.0.1:%d" % port in err, err
    assert d["exit"] == 1 and "nothing listens" in d["error"]
    assert time.monotonic() - t0 < 10


def test_udp_dead_port_stops_early(run_sockit):
    """issue 19, item 12: the same for datagrams (ICMP port unreachable)."""
    port = free_port(type=socket.SOCK_DGRAM)
    t0 = time.monotonic()
    rc, d, err = bench(run_sockit, ["-u", "-d", "60s", "127.0.0.1", port], timeout=30)
    assert rc == 1
    assert "nothing listens" in err, err
    assert time.monotonic() - t0 < 10


def test_refused_with_n_does_not_hang(run_sockit):
    port = free_port()
    rc, d, _ = bench(run_sockit, ["-m", "line", "-n", "10", "-c", "2", "127.0.0.1", port],
                     timeout=20)
    assert rc == 1
    assert d["errors"]["refused"] >= 10 and d["requests"] == 0


def test_udp_dead_port_is_refused_or_timeout(run_sockit):
    port = free_port(type=socket.SOCK_DGRAM)
    rc, d, _ = bench(run_sockit, ["-m", "udp", "-d", "300ms", "--timeout", "100ms",
                                  "127.0.0.1", port], timeout=20)
    assert rc == 1
    assert d["errors"]["refused"] + d["errors"]["timeout"] > 0


def test_late_udp_reply_is_never_taken_for_a_newer_one(run_sockit, bench_server):
    # every 5th reply comes 300 ms late, after the 100 ms timeout; by then
    # its slot carries a newer request: the late reply must be counted as
    # late, not accepted, and not be a mismatch
    srv = bench_server("udp", "late")
    rc, d, _ = bench(run_sockit, ["-m", "udp", "-d", "1s", "-c", "4", "--timeout", "100ms",
                                  "127.0.0.1", srv.port])
    assert rc == 1
    assert d["errors"]["timeout"] > 0
    assert d["late"] > 0
    assert d["errors"]["mismatch"] == 0
    assert d["requests"] > 0


def test_stalled_server_with_n_ends(run_sockit, bench_server):
    srv = bench_server("line", "stall")
    rc, d, _ = bench(run_sockit, ["-m", "line", "-n", "5", "-c", "1", "-P", "2",
                                  "--timeout", "200ms", "127.0.0.1", srv.port], timeout=20)
    assert rc == 1
    assert d["errors"]["timeout"] >= 5 and d["requests"] == 0


@pytest.mark.parametrize("args,name", [
    (["-m", "tcp"], "-m"),
    (["--mode", "tcp"], "--mode"),
    (["-w", "0"], "-w"),
    (["--conns", "x"], "--conns"),
    (["-c", "0"], "-c"),
    (["-c", "x"], "-c"),
    (["-t", "0"], "-t"),
    (["-t", "4", "-c", "2"], "-t"),
    (["-d", "soon"], "-d"),
    (["-d", "0"], "-d"),
    (["-n", "-5"], "-n"),
    (["-d", "1s", "-n", "10"], "-n"),
    (["-s", "4"], "-s"),
    (["-m", "udp", "-s", "70000"], "-s"),
    (["-P", "0"], "-P"),
    (["-P", "4"], "-P"),  # once mode has no pipeline
    (["-R", "fast"], "-R"),
    (["-R", "0"], "-R"),
    (["--warmup", "x"], "--warmup"),
    (["--timeout", "0"], "--timeout"),
    (["-m", "echo", "--prefix", "X"], "--prefix"),
    (["--frobnicate"], "--frobnicate"),
    (["-c"], "-c"),
])
def test_bad_arguments_name_the_option(run_sockit, args, name):
    r = run_sockit(["bench"] + args + ["127.0.0.1", "9"])
    assert r.returncode == 2, r
    assert name.encode() in r.stderr, r.stderr
    assert r.stdout == b""


@pytest.mark.parametrize("args", [[], ["127.0.0.1"], ["127.0.0.1", "0"],
                                  ["127.0.0.1", "70000"], ["a", "1", "b"]])
def test_bad_positionals(run_sockit, args):
    r = run_sockit(["bench"] + args)
    assert r.returncode == 2
    assert b"sockit bench:" in r.stderr


def test_help_and_version(run_sockit):
    r = run_sockit(["bench", "--help"])
    assert r.returncode == 0
    for opt in (b"--udp", b"--ipv4", b"--ipv6", b"-w, --timeout", b"--mode", b"--conns", b"--threads", b"--duration", b"--requests", b"--size",
                b"--depth", b"--rate", b"--warmup", b"--timeout", b"--prefix", b"--json"):
        assert opt in r.stdout, opt
    r = run_sockit(["bench", "--version"])
    assert r.returncode == 0 and r.stdout.startswith(b"sockit ")


def test_udp_mismatch_is_one_outcome_per_request(run_sockit, serve):
    """issue 19, item 4: against a UDP echo server, -m udp --prefix XX gets
    mismatches only -- one per datagram sent, none also counted as a
    timeout -- and a slot whose reply mismatched sends again at once
    (it used to wait --timeout: a handful of datagrams in the whole run)."""
    srv = serve(["--udp-only", "-m", "echo", "--workers", "1"], udp=True, tcp=False)
    rc, d, err = bench(run_sockit, ["-m", "udp", "--prefix", "XX", "-c", "4", "-d", "1500ms",
                                    "--timeout", "1s", "127.0.0.1", srv.udp_port])
    assert rc == 1
    sent = d["bytes_sent"] // d["size"]
    assert d["errors"]["timeout"] == 0, d["errors"]
    assert d["errors_total"] == d["errors"]["mismatch"]
    assert d["errors_total"] <= sent <= d["errors_total"] + d["unfinished"], (sent, d)
    assert d["errors_total"] > 100, d  # no stall of --timeout after each mismatch
    m = d["first_mismatch"]
    assert m["offset"] == 0 and m["expected"].startswith("XX") and m["received"][:2] != "XX"


def test_failed_run_ends_with_one_line_saying_why(run_sockit, serve):
    """issue 19, item 5: line mode against a once-mode server: the run ends
    with "FAILED: E of T requests failed (truncated E): is the server in line
    mode?" on stderr, exit 1, and the JSON's error says the same."""
    srv = serve(["-m", "once", "--workers", "1"])
    r = run_sockit(["bench", "-m", "line", "-c", "4", "-d", "500ms", "127.0.0.1",
                    str(srv.port)])
    assert r.returncode == 1
    last = r.stderr.decode().strip().splitlines()[-1]
    m = re.fullmatch(r"sockit bench: FAILED: (\d+) of (\d+) requests failed "
                     r"\(truncated (\d+)\): is the server in line mode\?", last)
    assert m, last
    assert m.group(1) == m.group(3)
    rc, d, err = bench(run_sockit, ["-m", "line", "-c", "4", "-d", "500ms", "127.0.0.1",
                                    srv.port])
    assert rc == 1 and d["exit"] == 1
    assert d["error"].startswith("%d of " % d["errors_total"]), d["error"]
    assert "FAILED: " + d["error"] in err


def test_wrong_protocol_reports_unfinished_requests(run_sockit, serve):
    """issue 19, item 12: once mode against a line server (no newline, so no
    reply): the requests left waiting are reported, with the next step."""
    srv = serve(["-m", "line", "--workers", "1"])
    r = run_sockit(["bench", "-m", "once", "-c", "3", "-d", "500ms", "127.0.0.1",
                    str(srv.port)])
    assert r.returncode == 1
    out, err = r.stdout.decode(), r.stderr.decode()
    assert re.search(r"unfinished 3 \(waiting for a reply at the end", out), out
    assert "no request completed: 3 still waited" in err, err
    assert err.strip().endswith("is the server in once mode?"), err
    rc, d, _ = bench(run_sockit, ["-m", "once", "-c", "3", "-d", "500ms", "127.0.0.1",
                                  srv.port])
    assert rc == 1 and d["unfinished"] == 3 and d["requests"] == 0


def test_first_mismatch_is_shown(run_sockit, bench_server):
    """issue 19, item 12: one example of expected vs received bytes, escaped."""
    srv = bench_server("line", "wrong_prefix")
    r = run_sockit(["bench", "-m", "line", "-n", "20", "-c", "1", "-s", "20", "127.0.0.1",
                    str(srv.port)])
    assert r.returncode == 1
    out = r.stdout.decode()
    assert re.search(r'mismatch   first at reply byte 0: expected "Received: [0-9a-f]{16}'
                     r'abc\\n"', out), out
    assert re.search(r'received "Recieved: [0-9a-f]{16}abc\\n"', out), out
