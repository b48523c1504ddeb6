"""test_serve_cli.py -- `sockit serve` command line: every usage error
(exit 2, option named), port in use (exit 1, address named), --help,
--version, log levels and the JSON log format."""
import json
import os
import re
import signal
import socket

import pytest

from conftest import SOCKIT, Proc, exchange, wait_until

PREFIX = b"Received: "

# (arguments, what the message must contain: the option or the bad value;
# with a '|', a regex)
USAGE_ERRORS = [
    (["--frobnicate"], "--frobnicate"),
    (["-Z"], r"-Z|'Z'"),
    (["--workers"], "--workers"),
    (["--workers", "0"], "--workers"),
    (["--workers", "x"], "--workers"),
    (["--workers", "-1"], "--workers"),
    (["--workers", "2x"], "--workers"),
    (["--workers", " 2"], "--workers"),
    (["--workers", "99999999999999999999"], "--workers"),
    (["--max-bytes", "-1"], "--max-bytes"),
    (["--max-bytes", "0"], "--max-bytes"),
    (["--max-bytes", "lots"], "--max-bytes"),
    (["--max-line", "0"], "--max-line"),
    (["--max-line", "1q"], "--max-line"),
    (["--max-pending", "x"], "--max-pending"),
    (["--max-conns", "x"], "--max-conns"),
    (["--max-conns-per-ip", "-3"], "--max-conns-per-ip"),
    (["--udp-rate", "fast"], "--udp-rate"),
    (["--port", "70000"], "--port"),
    (["-p", "70000"], "70000"),
    (["-p", "no-such-service"], "no-such-service"),  # names work since cli_opt_port
    (["-p", "-1"], "-1"),
    (["-p"], r"-p\b|'p'"),
    (["--idle-timeout", "5x"], "--idle-timeout"),
    (["--idle-timeout", "-1s"], "--idle-timeout"),
    (["--idle-timeout", "soon"], "--idle-timeout"),
    (["--drain-timeout", "1y"], "--drain-timeout"),
    (["--drain-timeout", ""], "--drain-timeout"),
    (["--backend", "kqueue"], "--backend"),
    (["--backend", ""], "--backend"),
    (["--allow", "10.0.0.0/33"], "10.0.0.0/33"),
    (["--allow", "not-an-ip"], "not-an-ip"),
    (["--deny", "1.2.3.4/x"], "1.2.3.4/x"),
    (["--deny", "::1/129"], "::1/129"),
    (["--deny", "300.1.1.1/8"], "300.1.1.1/8"),
    (["--deny"], "--deny"),
    (["--mode", "bogus"], "bogus"),
    (["--mode"], "--mode"),
    (["--log-level", "loud"], "loud"),
    (["--log-format", "xml"], "xml"),
    (["--prefix"], "--prefix"),
    (["--udp", "--udp-only"], "--udp"),
    (["stray-argument"], "stray-argument"),
    (["--dualstack"], "--dualstack"),  # only meaningful with -H ::
]


@pytest.mark.parametrize("args,named", USAGE_ERRORS,
                         ids=[" ".join(a) or "empty" for a, _ in USAGE_ERRORS])
def test_usage_error_exit_2_names_option(run_sockit, args, named):
    r = run_sockit(["serve", "-p", "0"] + args, timeout=10)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 2, (r.returncode, err)
    assert "sockit serve" in err, err
    if "|" in named:  # a regex: short options as getopt names them
        assert re.search(named, err), f"message does not name {named!r}: {err!r}"
    else:
        assert named in err, f"message does not name {named!r}: {err!r}"
    assert "listening" not in err, err


def test_port_in_use_exit_1_names_address(run_sockit):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = run_sockit(["serve", "-H", "127.0.0.1", "-p", str(port)], timeout=10)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 1, (r.returncode, err)
    assert f"127.0.0.1:{port}" in err, err
    assert "in use" in err.lower(), err


def test_port_in_use_ipv6_exit_1_names_address(run_sockit):
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as busy:
        busy.bind(("::1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = run_sockit(["serve", "-H", "::1", "-p", str(port)], timeout=10)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 1, (r.returncode, err)
    assert f"[::1]:{port}" in err, err


def test_udp_port_in_use_exit_1(run_sockit):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        r = run_sockit(["serve", "--udp-only", "-p", str(port)], timeout=10)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 1, (r.returncode, err)
    assert f"127.0.0.1:{port}" in err, err


def test_help_lists_options(run_sockit):
    r = run_sockit(["serve", "--help"], timeout=10)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    for opt in ("-H", "-p", "--mode", "--udp", "--udp-only", "--workers", "--max-conns",
                "--max-conns-per-ip", "--idle-timeout", "--max-bytes", "--max-line",
                "--max-pending", "--allow", "--deny", "--prefix", "--udp-rate",
                "--dualstack", "--drain-timeout", "--backend", "--log-level", "--log-format",
                "--help", "--version"):
        assert re.search(r"(^|[\s,\[])" + re.escape(opt) + r"([\s,=\]]|$)", out, re.M), \
            f"--help does not mention {opt}:\n{out}"
    for word in ("once", "line", "echo"):
        assert word in out


def test_version(run_sockit):
    top = run_sockit(["--version"], timeout=10)
    r = run_sockit(["serve", "--version"], timeout=10)
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(rb"sockit \d+\.\d+\.\d+\n", r.stdout), r.stdout
    assert r.stdout == top.stdout


def test_durations_with_units_accepted(serve):
    """Each unit form the CLI documents starts a working server."""
    for dur in ("500ms", "2s", "1m", "3", "1.5s"):
        srv = serve(["--idle-timeout", dur, "--drain-timeout", dur])
        assert exchange(srv.addr, b"d") == PREFIX + b"d"
        srv.stop()


def test_default_log_has_no_per_connection_lines(serve):
    srv = serve()
    before = srv.stderr_text()
    for i in range(5):
        assert exchange(srv.addr, b"quiet") == PREFIX + b"quiet"
    srv.counters()  # a SIGUSR1 round trip flushes anything pending
    after = srv.stderr_text()[len(before):]
    lines = [ln for ln in after.splitlines() if "counters" not in ln]
    assert lines == [], lines


def test_debug_log_level_has_per_connection_lines(serve):
    srv = serve(["--log-level", "debug"])
    before = srv.stderr_text()
    assert exchange(srv.addr, b"loud") == PREFIX + b"loud"
    srv.counters()
    after = srv.stderr_text()[len(before):]
    lines = [ln for ln in after.splitlines() if "counters" not in ln]
    assert len(lines) >= 1, after
    assert "127.0.0.1" in "".join(lines), lines


def _start_json(args):
    p = Proc([SOCKIT, "serve", "-p", "0", "--log-format", "json"] + args)
    try:
        p.wait_stderr(r'"msg"\s*:\s*"listening"')
    except BaseException:
        p.stop()
        raise
    return p


def _json_lines(p):
    out = []
    for ln in p.stderr_text().splitlines():
        if not ln.strip():
            continue
        try:
            out.append(json.loads(ln))
        except ValueError:
            pytest.fail(f"stderr line is not JSON: {ln!r}")
    return out


def test_json_log_format():
    p = _start_json(["--udp", "--log-level", "debug"])
    try:
        p.wait_stderr(r'"proto"\s*:\s*"udp"')
        objs = _json_lines(p)
        listening = [o for o in objs if o.get("msg") == "listening"]
        assert {o["proto"] for o in listening} == {"tcp", "udp"}, listening
        for o in listening:
            assert o["mode"] == "once", o
            assert o["level"] == "info", o
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", o["time"]), o
            m = re.fullmatch(r"127\.0\.0\.1:(\d+)", o["addr"])
            assert m, o
        port = int(re.fullmatch(r"127\.0\.0\.1:(\d+)", listening[0]["addr"]).group(1))
        # a connection (debug lines), a hostile string in it, counters, exit
        assert exchange(("127.0.0.1", port), b'"\\\n\x00\xff') == PREFIX + b'"\\\n\x00\xff'
        p.signal(signal.SIGUSR1)
        p.wait_stderr(r'"msg"\s*:\s*"counters"')
        p.signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 0
        objs = _json_lines(p)
        counters = [o for o in objs if o.get("msg") == "counters"]
        assert len(counters) >= 2, objs  # SIGUSR1 and exit
        from conftest import COUNTER_KEYS
        for k in COUNTER_KEYS:
            assert isinstance(counters[-1][k], int), (k, counters[-1])
        assert counters[-1]["accepted"] == 1, counters[-1]
        assert all("level" in o and "time" in o and "msg" in o for o in objs), objs
        assert not any("sockit: listening" in ln for ln in p.stderr_text().splitlines())
    finally:
        p.stop()


def test_json_log_usage_error_still_exit_2(run_sockit):
    r = run_sockit(["serve", "--log-format", "json", "--workers", "0"], timeout=10)
    assert r.returncode == 2
    assert b"--workers" in r.stderr


def test_repeated_warnings_are_rate_limited(serve):
    """40 refused clients in a burst do not make 40 log lines."""
    srv = serve(["--deny", "127.0.0.0/8"])
    before = len(srv.stderr_text().splitlines())
    for _ in range(40):
        with socket.create_connection(srv.addr, timeout=5) as s:
            s.settimeout(5)
            try:
                s.sendall(b"x")  # once mode defers accepting silent clients
                s.recv(10)
            except (ConnectionResetError, BrokenPipeError):
                pass
    c = srv.counters()
    assert c["refused_denied"] == 40, c
    lines = srv.stderr_text().splitlines()[before:]
    lines = [ln for ln in lines if "counters" not in ln]
    assert len(lines) <= 10, lines


@pytest.mark.parametrize("level,shown", [("error", False), ("warn", True)])
def test_log_level_filters_warnings(serve, level, shown):
    """A refused client is a warning: shown at warn, not at error (the
    listening line is printed at every level)."""
    srv = serve(["--deny", "127.0.0.0/8", "--log-level", level])
    before = srv.stderr_text()
    with socket.create_connection(srv.addr, timeout=5) as s:
        s.settimeout(5)
        try:
            s.sendall(b"x")
            s.recv(10)
        except (ConnectionResetError, BrokenPipeError):
            pass
    srv.counters()
    new = [ln for ln in srv.stderr_text()[len(before):].splitlines() if "counters" not in ln]
    assert bool(new) == shown, new


def test_json_log_runtime_failure_is_json(run_sockit):
    """With --log-format json every stderr line is JSON, the fatal
    'cannot listen' error included (usage errors are exempt: they come
    before the options are understood)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = run_sockit(["serve", "--log-format", "json", "-p", str(port)], timeout=10)
    assert r.returncode == 1, r.stderr
    lines = [ln for ln in r.stderr.decode().splitlines() if ln.strip()]
    assert lines, r.stderr
    objs = []
    for ln in lines:
        try:
            objs.append(json.loads(ln))
        except ValueError:
            pytest.fail(f"stderr line is not JSON: {ln!r}")
    assert any(o.get("level") == "error" and f"127.0.0.1:{port}" in json.dumps(o)
               for o in objs), objs


# ---- issue 19: one vocabulary (item 8), standard wording and hints (item 11),
# ---- structured logs (item 12) ---------------------------------------------------

def test_short_V_is_version(run_sockit):
    """Issue 19, item 8: -V is --version (it was an unknown option)."""
    r = run_sockit(["serve", "-V"], timeout=10)
    assert r.returncode == 0, r.stderr
    assert r.stdout == run_sockit(["serve", "--version"], timeout=10).stdout


def test_help_lists_the_short_names(run_sockit):
    """Issue 19, item 8: the vocabulary's short names are documented."""
    out = run_sockit(["serve", "--help"], timeout=10).stdout.decode()
    for opt in ("-u, --udp", "-i, --idle-timeout", "-v, --verbose", "-4, --ipv4",
                "-6, --ipv6", "-h, --help", "-V, --version"):
        assert opt in out, f"--help does not show {opt!r}:\n{out}"
    assert "(default 30s" in out and "(default 64KiB)" in out, out


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["-V"]])
def test_help_and_version_lost_output_exit_1(args):
    """Issue 19: lost output is a failure, also for --help and --version."""
    import subprocess
    with open("/dev/full", "wb") as full:
        r = subprocess.run([SOCKIT, "serve"] + args, stdout=full, stderr=subprocess.PIPE,
                           timeout=10)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert b"sockit serve: cannot write to standard output" in r.stderr, r.stderr


def test_short_u_is_udp(serve):
    """Issue 19, item 8: -u is --udp."""
    srv = serve(["-u"], udp=True)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(10)
        s.sendto(b"dg", srv.udp_addr)
        assert s.recvfrom(100)[0] == PREFIX + b"dg"


def test_short_i_is_idle_timeout(serve):
    """Issue 19, item 8: -i is --idle-timeout."""
    from conftest import connect, closed_without_reply
    srv = serve(["-m", "line", "-i", "300ms"])
    s = connect(srv.addr)
    try:
        assert closed_without_reply(s, timeout=10)
    finally:
        s.close()
    assert srv.wait_counter("closed_timeout", 1)["closed_timeout"] == 1


def test_short_v_is_debug(serve):
    """Issue 19, item 8: -v / --verbose is --log-level debug."""
    for flag in ("-v", "--verbose"):
        srv = serve([flag])
        assert exchange(srv.addr, b"v") == PREFIX + b"v"
        srv.wait_stderr(r"accepted fd \d+ from 127\.0\.0\.1:\d+")
        srv.stop()


def test_size_with_a_wrong_unit_says_so(run_sockit):
    """Issue 19, item 11: '--max-bytes 1kb' names the unit as the problem."""
    r = run_sockit(["serve", "--max-bytes", "1kb"], timeout=10)
    err = r.stderr.decode()
    assert r.returncode == 2, err
    assert "invalid size '1kb' for --max-bytes: unknown unit" in err, err


def test_port_in_use_suggests_the_next_step(run_sockit):
    """Issue 19, item 11: port in use says what to do."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = run_sockit(["serve", "-p", str(port)], timeout=10)
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert (f"sockit serve: cannot listen on 127.0.0.1:{port}: address already in use: "
            "is another server running? pick another port with -p") in err, err


def test_low_port_without_privilege_says_why():
    """Issue 19, item 11: EACCES on a port below 1024 names root and
    CAP_NET_BIND_SERVICE (run as nobody; skipped where that cannot be)."""
    import subprocess
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to nobody")
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        if int(f.read()) <= 80:
            pytest.skip("unprivileged ports start at or below 80 here")

    def drop():
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    try:
        r = subprocess.run([SOCKIT, "serve", "-p", "80"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=10, preexec_fn=drop)
    except (PermissionError, subprocess.SubprocessError) as e:
        pytest.skip(f"cannot run the binary as nobody: {e}")
    err = r.stderr.decode()
    if r.returncode == 126 or "ermission denied" in err and "cannot listen" not in err:
        pytest.skip(f"the binary is not executable as nobody: {err}")
    assert r.returncode == 1, err
    assert ("cannot listen on 127.0.0.1:80: permission denied: ports below 1024 need root "
            "or CAP_NET_BIND_SERVICE") in err, err


def test_drain_line_prints_the_duration_in_units(serve):
    """Issue 19, item 11: durations in logs as the parser takes them."""
    srv = serve(["--drain-timeout", "1500ms"])
    srv.signal(signal.SIGTERM)
    assert srv.wait(timeout=10) == 0
    assert re.search(r"draining \d+ connection\(s\), up to 1\.5s", srv.stderr_text()), \
        srv.stderr_text()


def test_json_debug_lines_have_fields():
    """Issue 19, item 12: accepted/closed lines carry event, fd, peer and
    reason as JSON fields, not only in "msg"."""
    p = _start_json(["-v", "--mode", "line"])
    try:
        port = int(re.search(r'"addr":"127\.0\.0\.1:(\d+)"', p.stderr_text()).group(1))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            local = "127.0.0.1:%d" % s.getsockname()[1]
            s.sendall(b"j\n")
            s.shutdown(socket.SHUT_WR)
            while s.recv(100):
                pass
        p.wait_stderr(r'"event":"closed"')
        objs = _json_lines(p)
        acc = [o for o in objs if o.get("event") == "accepted"]
        clo = [o for o in objs if o.get("event") == "closed"]
        assert len(acc) == 1 and len(clo) == 1, objs
        assert acc[0]["peer"] == local and isinstance(acc[0]["fd"], int), acc
        assert clo[0]["peer"] == local and clo[0]["fd"] == acc[0]["fd"], clo
        assert clo[0]["reason"] == "eof", clo
    finally:
        p.stop()


def test_closed_limit_line_names_the_peer(serve):
    """Issue 19, item 12: 'closed ... (limit)' says which client."""
    from conftest import connect, recv_until_close
    srv = serve(["-v", "--mode", "line", "--max-line", "8"])
    s = connect(srv.addr)
    try:
        local = "127.0.0.1:%d" % s.getsockname()[1]
        s.sendall(b"x" * 20 + b"\n")
        recv_until_close(s)
    finally:
        s.close()
    srv.wait_stderr(r"closed fd \d+ from " + re.escape(local) + r" \(limit\)")


def _refused_burst(srv, n):
    for _ in range(n):
        with socket.create_connection(srv.addr, timeout=5) as s:
            s.settimeout(5)
            try:
                s.sendall(b"x")
                s.recv(10)
            except (ConnectionResetError, BrokenPipeError):
                pass


def _refused_total(text):
    shown = len(re.findall(r"warn: refused 127\.0\.0\.1:\d+", text))
    hidden = sum(int(n) for n in re.findall(r"warn: (\d+) more refused clients not shown", text))
    return shown, hidden


def test_suppressed_count_printed_when_the_episode_ends(serve):
    """Issue 19, item 12: the lines a rate limit hid are counted when its
    second is over, without waiting for another message."""
    srv = serve(["--deny", "127.0.0.0/8", "--workers", "1"])
    _refused_burst(srv, 40)
    srv.wait_stderr(r"more refused clients not shown", timeout=10)
    assert wait_until(lambda: sum(_refused_total(srv.stderr_text())) == 40, timeout=10), \
        srv.stderr_text()


def test_suppressed_count_printed_at_exit(serve):
    """Issue 19, item 12: ... and at exit, if the server stops first."""
    srv = serve(["--deny", "127.0.0.0/8", "--workers", "1", "--drain-timeout", "0"])
    _refused_burst(srv, 20)
    srv.signal(signal.SIGTERM)
    assert srv.wait(timeout=10) == 0
    shown, hidden = _refused_total(srv.stderr_text())
    assert shown + hidden == 20, srv.stderr_text()
