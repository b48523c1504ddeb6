"""test_bench_cli.py -- `sockit bench`'s command line as the other commands have it
(issue 19, items 7-12): host forms, the shared flags, exit codes, lost output,
JSON on an early failure, one wording per kind of bad value, the text report's
numbers."""
import re
import signal
import socket
import subprocess

import pytest

from conftest import SOCKIT
from test_bench import bench, bench_server  # noqa: F401 (fixture)


def test_bracketed_ipv6_host(run_sockit, serve):
    """issue 19, item 7: HOST may be [::1], as the header prints it."""
    srv = serve(["-H", "::1", "-m", "line", "--workers", "1"])
    rc, d, err = bench(run_sockit, ["-m", "line", "-n", "50", "-c", "2", "[::1]", srv.port])
    assert rc == 0, err
    assert d["host"] == "::1" and d["address"] == "[::1]:%d" % srv.port


def test_malformed_brackets_are_a_usage_error(run_sockit):
    r = run_sockit(["bench", "[::1", "80"])
    assert r.returncode == 2
    assert b"invalid host '[::1' for HOST" in r.stderr


def test_u_is_mode_udp(run_sockit, bench_server):
    """issue 19, item 8: -u / --udp = -m udp."""
    srv = bench_server("udp")
    for flag in ("-u", "--udp"):
        rc, d, err = bench(run_sockit, [flag, "-n", "100", "-c", "2", "127.0.0.1", srv.port])
        assert rc == 0, err
        assert d["mode"] == "udp" and d["udp"] is True and d["requests"] == 100


def test_udp_echo(run_sockit, serve):
    """issue 19, item 8: -u -m echo expects each datagram back verbatim."""
    srv = serve(["--udp-only", "-m", "echo", "--workers", "1"], udp=True, tcp=False)
    rc, d, err = bench(run_sockit, ["-u", "-m", "echo", "-n", "300", "-c", "4", "127.0.0.1",
                                    srv.udp_port])
    assert rc == 0, err
    assert d["udp"] is True and d["echo"] is True and d["prefix"] == ""
    assert d["requests"] == 300
    r = run_sockit(["bench", "-u", "-m", "echo", "-n", "10", "127.0.0.1", str(srv.udp_port)])
    assert r.returncode == 0
    assert r.stdout.startswith(b"sockit bench: udp echo 127.0.0.1:")


@pytest.mark.parametrize("flag", ["-w", "--timeout"])
def test_timeout_spellings(run_sockit, bench_server, flag):
    """issue 19, item 8: -w is --timeout."""
    srv = bench_server("line", "stall")
    rc, d, _ = bench(run_sockit, ["-m", "line", "-n", "2", "-c", "1", flag, "200ms",
                                  "127.0.0.1", srv.port], timeout=20)
    assert rc == 1 and d["timeout_ms"] == 200 and d["errors"]["timeout"] >= 2


def test_ipv4_and_ipv6_flags(run_sockit, serve):
    """issue 19, item 8: -4/--ipv4 and -6/--ipv6 restrict the resolver."""
    srv = serve(["-m", "line", "--workers", "1"])
    for flag in ("-4", "--ipv4"):
        rc, d, err = bench(run_sockit, [flag, "-m", "line", "-n", "20", "localhost", srv.port])
        assert rc == 0, err
        assert d["address"] == "127.0.0.1:%d" % srv.port
    for flag in ("-6", "--ipv6"):
        rc, d, err = bench(run_sockit, [flag, "-m", "line", "-n", "20", "127.0.0.1", srv.port])
        assert rc == 1
        assert "cannot resolve '127.0.0.1'" in err and d["error"].startswith("cannot resolve")


def test_json_on_a_resolve_failure(run_sockit):
    """issue 19, item 9: --json prints one object with "error" and "exit"
    even when the run cannot start."""
    rc, d, err = bench(run_sockit, ["nosuch.invalid", "80"])
    assert rc == 1
    assert d["exit"] == 1 and "nosuch.invalid" in d["error"]
    assert d["host"] == "nosuch.invalid" and d["port"] == 80 and d["address"] is None
    assert err.count("\n") == 1 and "cannot resolve 'nosuch.invalid'" in err


def _run_to(target, args):
    """Runs sockit with stdout on /dev/full ("full") or closed ("closed")."""
    if target == "full":
        with open("/dev/full", "wb") as f:
            return subprocess.run([SOCKIT] + args, stdout=f, stderr=subprocess.PIPE,
                                  timeout=30)
    return subprocess.run(["sh", "-c", 'exec "$@" >&-', "sh", SOCKIT] + args,
                          stderr=subprocess.PIPE, timeout=30)


@pytest.mark.parametrize("target", ["full", "closed"])
def test_lost_output_is_a_failure(bench_server, target):
    """issue 19, item 9: a --json result (or --help, --version) that cannot
    be written is exit 1, with a message."""
    srv = bench_server("line")
    for args in (["bench", "--json", "-m", "line", "-n", "20", "127.0.0.1", str(srv.port)],
                 ["bench", "--help"], ["bench", "--version"]):
        r = _run_to(target, args)
        assert r.returncode == 1, (args, r.stderr)
        assert b"sockit bench: cannot write to standard output" in r.stderr, r.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_stop_signals_print_then_die(bench_server, sig):
    """issue 19, item 9: SIGTERM/SIGHUP as Ctrl-C: the result, then the signal."""
    srv = bench_server("line")
    p = subprocess.Popen([SOCKIT, "bench", "-m", "line", "-d", "60s", "127.0.0.1",
                          str(srv.port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        import time
        deadline = time.monotonic() + 10
        while srv.requests < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        p.send_signal(sig)
        out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == -sig, err
    assert b"(interrupted)" in out and b"verified" in out


@pytest.mark.parametrize("args,message", [
    (["-c", "x"], "invalid number 'x' for -c: expected 1..1000000"),
    (["--threads", "0"], "invalid number '0' for --threads: expected 1..256"),
    (["-d", "soon"], "invalid duration 'soon' for -d:"),
    (["-d", "0"], "invalid duration '0' for -d: expected more than 0"),
    (["-w", "5parsecs"], "invalid duration '5parsecs' for -w: unknown unit"),
    (["-s", "1kb"], "invalid size '1kb' for -s: unknown unit"),
    (["-s", "4"], "invalid size '4' for -s: at least 8 bytes in once mode"),
    (["-R", "fast"], "invalid rate 'fast' for -R: expected requests per second"),
    (["-m", "tcp"], "invalid mode 'tcp' for -m: expected once, line, echo or udp"),
])
def test_one_wording_per_kind_of_value(run_sockit, args, message):
    """issue 19, item 11: the cli_opt_* wording, naming the option as written."""
    r = run_sockit(["bench"] + args + ["127.0.0.1", "9"])
    assert r.returncode == 2
    assert message.encode() in r.stderr, r.stderr


def test_port_wording(run_sockit):
    r = run_sockit(["bench", "127.0.0.1", "x"])
    assert r.returncode == 2
    assert b"invalid port 'x' for PORT" in r.stderr


def test_text_numbers_read_well(run_sockit, bench_server):
    """issue 19, item 12: -R 2000000 is printed as such (not 2e+06), a short
    run's time in sensible units (not "0.00 s"), and "1 request"."""
    srv = bench_server("line")
    r = run_sockit(["bench", "-m", "line", "-n", "1", "-c", "1", "-R", "2000000",
                    "127.0.0.1", str(srv.port)])
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert ", 1 request at 2000000/s" in out, out
    assert "e+" not in out, out
    assert re.search(r"requests\s+1 verified in [\d.]+ (ms|µs) = ", out), out
    r = run_sockit(["bench", "-m", "line", "-d", "1500ms", "-c", "1", "127.0.0.1",
                    str(srv.port)])
    assert r.returncode == 0
    assert b"1 connection x 1 in flight" in r.stdout and b", 1.5s" in r.stdout, r.stdout


# ---- Happy Eyeballs (issue 17): a name is resolved and raced once ---------------------

@pytest.mark.parametrize("delay,ms", [(None, 250), ("100ms", 100), ("0", 0)])
def test_attempt_delay_and_the_chosen_address(run_sockit, bench_server, delay, ms):
    """A name's addresses are raced by one first connection (here localhost:
    the server listens on 127.0.0.1 only); the run uses the winner and says
    which in "address"."""
    srv = bench_server("once")
    args = ["--attempt-delay", delay] if delay else []
    rc, d, err = bench(run_sockit, args + ["-c", "2", "-n", "20", "localhost", srv.port])
    assert rc == 0 and d["errors_total"] == 0, (d, err)
    assert d["host"] == "localhost" and d["address"] == f"127.0.0.1:{srv.port}"
    assert d["attempt_delay_ms"] == ms


def test_a_name_with_nothing_listening(run_sockit):
    """The probe fails: the run still goes to the first address and says
    what it met there."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    rc, d, err = bench(run_sockit, ["-c", "1", "-n", "200", "localhost", port])
    assert rc == 1 and d["address"] == f"127.0.0.1:{port}"
    assert f"nothing listens on 127.0.0.1:{port}" in err


@pytest.mark.parametrize("args,message", [
    (["--attempt-delay", "soon", "localhost", "9"],
     "invalid duration 'soon' for --attempt-delay"),
    (["--attempt-delay", "2m", "localhost", "9"], "invalid duration '2m' for --attempt-delay"),
    (["--attempt-delay", "1s", "-u", "localhost", "9"], "--attempt-delay applies to TCP"),
])
def test_attempt_delay_usage_errors(run_sockit, args, message):
    r = run_sockit(["bench"] + args)
    assert r.returncode == 2, r.stderr
    assert message.encode() in r.stderr, r.stderr
