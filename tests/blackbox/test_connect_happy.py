"""test_connect_happy.py -- `sockit connect` races a host's addresses (Happy
Eyeballs, RFC 8305, issue 17): --attempt-delay, -w as one deadline for all,
the -v summary of the attempts.

A name with two addresses (::1 first, then 127.0.0.1) is made without
touching the machine: sockit runs in a private mount namespace (unshare -m)
where a temporary hosts file is bind-mounted over /etc/hosts.  That needs
root or user namespaces; the tests skip where neither works.  A black hole
is a listener whose full backlog drops SYNs (as in test_connect.py).
"""
import functools
import json
import shutil
import socket
import subprocess
import time

import pytest

from conftest import SOCKIT
from connect_helpers import TcpServer, connect, has_ipv6, read_to_eof

NAME = "dual.sockit.test"


@functools.lru_cache(maxsize=None)
def _namespace_works(hosts):
    if shutil.which("unshare") is None or not has_ipv6():
        return False
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                        'mount --bind "$0" /etc/hosts && exec getent ahosts "$1"', hosts, NAME],
                       capture_output=True, text=True, timeout=30)
    return r.returncode == 0 and "::1" in r.stdout and "127.0.0.1" in r.stdout


@pytest.fixture(scope="module")
def dual_name(tmp_path_factory):
    """A runner of `sockit connect ARGS` where NAME resolves to ::1 and
    127.0.0.1; returns (CompletedProcess, elapsed seconds)."""
    hosts = tmp_path_factory.mktemp("hosts") / "hosts"
    hosts.write_text(f"::1 {NAME}\n127.0.0.1 {NAME}\n")
    if not _namespace_works(str(hosts)):
        pytest.skip("no private mount namespace here (needs root or user namespaces)")

    def run(args, timeout=60):
        t0 = time.monotonic()
        r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            'mount --bind "$0" /etc/hosts && shift && exec "$@"', str(hosts),
                            "--", SOCKIT, "connect"] + [str(a) for a in args],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        return r, time.monotonic() - t0

    return run


def black_hole(ip, port=0):
    """A listener on ip:port whose accept queue is full: SYNs are dropped.
    Returns (sockets to close, port), or None if this kernel answers."""
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    lst = socket.socket(fam, socket.SOCK_STREAM)
    lst.bind((ip, port))
    lst.listen(0)
    port = lst.getsockname()[1]
    socks = [lst]
    for _ in range(3):
        c = socket.socket(fam, socket.SOCK_STREAM)
        c.setblocking(False)
        try:
            c.connect((ip, port))
        except BlockingIOError:
            pass
        socks.append(c)
    time.sleep(0.1)
    probe = socket.socket(fam, socket.SOCK_STREAM)
    probe.settimeout(0.3)
    try:
        probe.connect((ip, port))
        holed = False
    except socket.timeout:
        holed = True
    except OSError:
        holed = False
    probe.close()
    if not holed:
        for s in socks:
            s.close()
        return None
    return socks, port


def close_all(socks):
    for s in socks:
        s.close()


def answer(reply):
    """A handler that reads to the client's EOF, then replies (no RST)."""
    def handler(conn):
        read_to_eof(conn)
        conn.sendall(reply)
    return handler


def live_on(port):
    """An IPv4 server on 127.0.0.1:port (that port may be taken: None)."""
    try:
        return TcpServer(answer(b"live\n"), port=port)
    except OSError:
        return None


def hole_then_live():
    """A black hole on [::1]:P and a live server on 127.0.0.1:P."""
    for _ in range(20):
        hole = black_hole("::1")
        if hole is None:
            pytest.skip("a full backlog does not drop SYNs on this kernel")
        live = live_on(hole[1])
        if live is not None:
            return hole, live
        close_all(hole[0])
    pytest.skip("no port free on both loopbacks")


def test_black_hole_first_costs_one_delay_not_the_timeout(dual_name):
    (socks, port), live = hole_then_live()
    try:
        r, took = dual_name(["-v", "-w", "30s", "--attempt-delay", "200ms", NAME, port, "x"])
    finally:
        live.stop()
        close_all(socks)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"live\n"
    assert f"connected to 127.0.0.1:{port} (tcp, {NAME})".encode() in r.stderr, r.stderr
    assert took < 20, took  # far below -w: the black hole cost one delay


def test_attempt_delay_0_waits_for_each_address(dual_name):
    """One address after another: the black hole takes all of -w, and the
    deadline holds (the next address is not tried after it)."""
    (socks, port), live = hole_then_live()
    try:
        r, took = dual_name(["--json", "-w", "1s", "--attempt-delay", "0", NAME, port, "x"])
    finally:
        live.stop()
        close_all(socks)
    assert r.returncode == 1, r.stderr
    j = json.loads(r.stderr)
    assert j["end"] == "connect-failed", j
    assert j["attempts"] == [{"address": f"[::1]:{port}",
                              "error": "connection timed out after 1s"}], j
    assert took >= 0.9, took


def test_timeout_is_one_deadline_for_every_address(dual_name):
    hole6 = black_hole("::1")
    if hole6 is None:
        pytest.skip("a full backlog does not drop SYNs on this kernel")
    socks6, port = hole6
    try:
        hole4 = black_hole("127.0.0.1", port)
    except OSError:
        close_all(socks6)
        pytest.skip("the port is taken on 127.0.0.1")
    if hole4 is None:
        close_all(socks6)
        pytest.skip("a full backlog does not drop SYNs on this kernel")
    try:
        r, took = dual_name(["-w", "3s", NAME, port, "x"])
    finally:
        close_all(socks6)
        close_all(hole4[0])
    assert r.returncode == 1
    err = r.stderr.decode()
    assert f"cannot connect to {NAME} port {port}:" in err, err
    assert f"  [::1]:{port}: connection timed out after 3s" in err, err
    assert f"  127.0.0.1:{port}: connection timed out after 3s" in err, err
    # both within the one 3s deadline (each its own would take 6s)
    assert took < 5.5, took


def test_verbose_lists_the_failed_attempt(dual_name):
    live = TcpServer(answer(b"v4\n"))  # nothing on [::1]:port: refused
    try:
        r, _ = dual_name(["-v", NAME, live.port, "x"])
    finally:
        live.stop()
    assert r.returncode == 0, r.stderr
    lines = r.stderr.decode().splitlines()
    assert lines[0] == f"sockit connect: tried [::1]:{live.port}: connection refused", lines
    assert lines[1] == f"sockit connect: connected to 127.0.0.1:{live.port} (tcp, {NAME})"


def test_connect_ms_in_json():
    live = TcpServer(answer(b"x"))
    try:
        r, _ = connect(["--json", "--attempt-delay", "100ms", "127.0.0.1", live.port, "x"])
    finally:
        live.stop()
    j = json.loads(r.stderr)
    assert r.returncode == 0 and isinstance(j["connect_ms"], int), j


@pytest.mark.parametrize("words,want", [
    (["--attempt-delay", "x", "h", "1"], "invalid duration 'x' for --attempt-delay"),
    (["--attempt-delay=-1", "h", "1"], "invalid duration '-1' for --attempt-delay"),
    (["--attempt-delay", "1s", "-u", "h", "1"], "cannot be used with -u"),
])
def test_attempt_delay_usage_errors(words, want):
    r, _ = connect(words)
    assert r.returncode == 2, r.stderr
    assert want in r.stderr.decode(), r.stderr
