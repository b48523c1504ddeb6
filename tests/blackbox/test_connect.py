"""test_connect.py -- `sockit connect` over TCP: one-shot, relay, the EOF
table, addresses and timeouts, -z and --wait-for.

The peers are small Python servers (connect_helpers.py) so that closing,
resetting and stalling are under the test's control; the one-shot tests
also run against `sockit serve` in every mode.
"""
import json
import os
import pty
import select
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import SOCKIT
from connect_helpers import (TcpServer, closed_port, connect, connect_lost_stdout,
                             echo_handler, has_ipv6, read_to_eof)


@pytest.fixture
def tcp_server():
    started = []

    def start(handler, **kw):
        s = TcpServer(handler, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()
    for s in started:
        assert not s.errors, f"server handler failed: {s.errors!r}"


def serve_available():
    r = subprocess.run([SOCKIT, "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=10)
    return b"  serve " in r.stdout


@pytest.fixture
def sockit_serve(serve):
    """The conftest `serve` factory, skipping while this build has no serve."""
    if not serve_available():
        pytest.skip("`sockit serve` is not in this build yet")
    return serve


# ---- One-shot -------------------------------------------------------------

def test_oneshot_tutorial_server_appends_newline(tutorial_server):
    host, port = tutorial_server
    r, _ = connect([host, port, "hello"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"Received: hello\n"
    assert r.stderr == b""


def test_oneshot_joins_arguments_with_single_spaces(tcp_server):
    got = []

    def handler(conn):
        data = read_to_eof(conn)
        got.append(data)
        conn.sendall(b"ok " + data)

    s = tcp_server(handler)
    r, _ = connect(["127.0.0.1", s.port, "a", "b  c", "", "d"])
    assert r.returncode == 0, r.stderr
    assert got == [b"a b  c  d\n"]
    assert r.stdout == b"ok a b  c  d\n"


def test_oneshot_no_newline_is_byte_exact(tutorial_server):
    host, port = tutorial_server
    for flag in ("-n", "--no-newline"):
        r, _ = connect([flag, host, port, "hello"])
        assert r.returncode == 0, r.stderr
        assert r.stdout == b"Received: hello", flag


def test_oneshot_adds_newline_only_on_a_terminal(tutorial_server):
    host, port = tutorial_server
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen([SOCKIT, "connect", "-n", host, str(port), "hi"], stdout=slave,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        os.close(slave)
        slave = -1
        out = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    b = os.read(master, 4096)
                except OSError:  # EIO: the slave side is closed
                    break
                if not b:
                    break
                out += b
            elif p.poll() is not None:
                break
        assert p.wait(timeout=10) == 0
        p.stderr.close()
        assert out == b"Received: hi\r\n"  # the tty turns "\n" into "\r\n"
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)


@pytest.mark.parametrize("mode,data,expect", [
    ("once", ["hello"], b"Received: hello\n"),
    ("line", ["hello"], b"Received: hello\n"),
    ("echo", ["hello", "world"], b"hello world\n"),
])
def test_oneshot_against_serve(sockit_serve, mode, data, expect):
    s = sockit_serve(["--mode", mode])
    r, _ = connect(["127.0.0.1", s.port] + data, timeout=20)
    assert r.returncode == 0, r.stderr
    assert r.stdout == expect


def test_oneshot_against_serve_once_no_newline(sockit_serve):
    s = sockit_serve([])
    r, _ = connect(["-n", "127.0.0.1", s.port, "hello"], timeout=20)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"Received: hello"


# ---- Relay and the EOF table ----------------------------------------------

def test_relay_stdin_eof_half_closes_and_reply_still_arrives(tcp_server):
    def handler(conn):
        data = read_to_eof(conn)  # only returns if the client shut down writing
        time.sleep(0.3)
        conn.sendall(b"got %d bytes: " % len(data) + data)

    s = tcp_server(handler)
    r, _ = connect(["127.0.0.1", s.port], input=b"abc\x00def")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"got 7 bytes: abc\x00def"


def test_relay_one_mib_random_binary_byte_exact(tcp_server):
    s = tcp_server(echo_handler)
    data = os.urandom(1 << 20)
    r, _ = connect(["127.0.0.1", s.port], input=data, timeout=60)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) == len(data)
    assert r.stdout == data


def test_relay_one_mib_through_serve_echo(sockit_serve):
    s = sockit_serve(["--mode", "echo"])
    data = os.urandom(1 << 20)
    r, _ = connect(["127.0.0.1", s.port], input=data, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == data


def test_server_closes_first_exit_0(tcp_server):
    def handler(conn):
        conn.sendall(b"bye\n")
        conn.shutdown(socket.SHUT_WR)
        time.sleep(0.2)

    s = tcp_server(handler)
    # stdin stays open: only the server's FIN may end the run.
    p = subprocess.Popen([SOCKIT, "connect", "127.0.0.1", str(s.port)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
        p.stdin.close()
    assert p.returncode == 0, err
    assert out == b"bye\n"


def test_server_reset_exit_1_with_message(tcp_server):
    def handler(conn):
        conn.recv(100)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()

    s = tcp_server(handler)
    p = subprocess.Popen([SOCKIT, "connect", "127.0.0.1", str(s.port)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        p.stdin.write(b"hello\n")
        p.stdin.flush()
        out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
    assert p.returncode == 1, (out, err)
    assert b"connection reset by 127.0.0.1:%d" % s.port in err


def test_quit_after_stdin_eof(tcp_server):
    got = []

    def handler(conn):
        got.append(read_to_eof(conn))
        s.release.wait(10)  # never closes by itself within the test

    s = tcp_server(handler)
    r, took = connect(["-q", "300ms", "-v", "127.0.0.1", s.port], input=b"data\n", timeout=8)
    assert r.returncode == 0, r.stderr
    assert b"end=quit exit=0" in r.stderr
    assert took < 5
    assert got == [b"data\n"]  # everything was sent before quitting


def test_idle_timeout_exit_1(tcp_server):
    s = tcp_server(lambda conn: s.release.wait(10))
    r, took = connect(["-i", "300ms", "127.0.0.1", s.port, "hello"], timeout=8)
    assert r.returncode == 1
    assert b"idle timeout" in r.stderr
    assert took < 5


def test_stdout_closed_exit_1(tcp_server):
    def handler(conn):
        chunk = b"x" * 65536
        try:
            for _ in range(200):
                conn.sendall(chunk)
        except OSError:
            pass

    s = tcp_server(handler)
    p = subprocess.Popen([SOCKIT, "connect", "127.0.0.1", str(s.port), "go"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()  # nobody reads: the first write gets EPIPE
    try:
        err = p.stderr.read()
        rc = p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
        p.stderr.close()
    assert rc == 1
    assert b"stdout closed" in err


# ---- Addresses and connect timeouts ----------------------------------------

def test_refused_names_the_address():
    port = closed_port()
    r, _ = connect(["127.0.0.1", port, "x"])
    assert r.returncode == 1
    assert r.stdout == b""
    # issue 19, item 11: the address once, and the next step
    assert r.stderr == (b"sockit connect: cannot connect to 127.0.0.1:%d: connection refused "
                        b"(is the server running?)\n" % port)


def test_unresolvable_host_exit_1():
    r, _ = connect(["no-such-host.invalid", 80, "x"])
    assert r.returncode == 1
    assert b"cannot resolve 'no-such-host.invalid' port 80" in r.stderr


def test_every_address_tried_and_named():
    # Needs a name with an IPv6 and an IPv4 loopback address (often
    # "localhost"); both ports are closed, so both must be named.
    try:
        infos = socket.getaddrinfo("localhost", 1, 0, socket.SOCK_STREAM)
    except socket.gaierror:
        infos = []
    fams = {i[0] for i in infos}
    if not (socket.AF_INET in fams and socket.AF_INET6 in fams and has_ipv6()):
        pytest.skip("'localhost' does not resolve to both ::1 and 127.0.0.1 here")
    port = closed_port()
    r, _ = connect(["localhost", port])
    assert r.returncode == 1
    # issue 19, item 11: a header naming the host, then one line per address
    lines = r.stderr.decode().splitlines()
    assert lines[0] == f"sockit connect: cannot connect to localhost port {port}:", lines
    assert f"  [::1]:{port}: connection refused" in lines, lines
    assert any(x.startswith(f"  127.0.0.1:{port}: connection refused") for x in lines), lines
    assert r.stderr.count(b":%d" % port) == 2, r.stderr


@pytest.fixture
def black_hole():
    """A loopback port that drops SYNs: backlog 0, its queue filled by a
    connection nobody accepts."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    port = lst.getsockname()[1]
    fillers = []
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(c)
    time.sleep(0.1)
    # Check that it really black-holes on this kernel.
    probe = socket.socket()
    probe.settimeout(0.3)
    try:
        probe.connect(("127.0.0.1", port))
        holed = False
    except socket.timeout:
        holed = True
    except OSError:
        holed = False
    probe.close()
    try:
        if not holed:
            pytest.skip("a full backlog does not drop SYNs on this kernel")
        yield port
    finally:
        for c in fillers:
            c.close()
        lst.close()


def test_connect_timeout_black_hole(black_hole):
    r, took = connect(["-w", "500ms", "127.0.0.1", black_hole, "x"], timeout=15)
    assert r.returncode == 1
    # issue 19, item 11: the timeout's length is said
    assert (b"cannot connect to 127.0.0.1:%d: connection timed out after 500ms\n" % black_hole
            in r.stderr), r.stderr
    assert 0.4 < took < 8


def test_connect_timeout_zero_means_no_limit(black_hole):
    p = subprocess.Popen([SOCKIT, "connect", "-w", "0", "127.0.0.1", str(black_hole)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            p.wait(timeout=1.5)  # still waiting for the handshake
    finally:
        p.kill()
        p.wait(timeout=10)
        p.stdout.close()
        p.stderr.close()


def test_named_host_names_the_address_once():
    """issue 19, item 11: a name and the one address it resolved to."""
    port = closed_port()
    r, _ = connect(["-4", "localhost", port])
    if b"cannot resolve" in r.stderr:
        pytest.skip("'localhost' does not resolve to 127.0.0.1 here")
    assert r.returncode == 1
    assert r.stderr == (b"sockit connect: cannot connect to localhost (127.0.0.1:%d): "
                        b"connection refused (is the server running?)\n" % port)


def test_data_after_double_dash(tcp_server):
    got = []

    def handler(conn):
        got.append(read_to_eof(conn))

    s = tcp_server(handler)
    r, _ = connect(["127.0.0.1", s.port, "-v", "--", "-x", "--json"])
    assert r.returncode == 0, r.stderr
    assert b"end=fin" in r.stderr  # -v before -- is an option
    assert got == [b"-x --json\n"]


def test_ipv6_only_and_ipv4_only():
    if not has_ipv6():
        pytest.skip("no IPv6 loopback")
    s6 = TcpServer(lambda c: c.sendall(b"six " + read_to_eof(c)), family=socket.AF_INET6)
    try:
        r, _ = connect(["-6", "::1", s6.port, "hi"])
        assert r.returncode == 0, r.stderr
        assert r.stdout == b"six hi\n"
        r, _ = connect(["-6", "[::1]", s6.port, "hi"])
        assert r.returncode == 0, r.stderr
        # -4 rules the IPv6 literal out before any attempt.
        r, _ = connect(["-4", "::1", s6.port, "hi"])
        assert r.returncode == 1
        assert b"cannot resolve '::1'" in r.stderr
        assert s6.conns == 2
    finally:
        s6.stop()
    r, _ = connect(["-6", "127.0.0.1", 9, "hi"])
    assert r.returncode == 1
    assert b"cannot resolve '127.0.0.1'" in r.stderr


# ---- -z and --wait-for -----------------------------------------------------

def test_z_open_port(tcp_server):
    got = []
    s = tcp_server(lambda conn: got.append(read_to_eof(conn)))
    r, _ = connect(["-z", "127.0.0.1", s.port])
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"" and r.stderr == b""
    assert wait_for(lambda: got) == [b""]  # connected, sent nothing


def test_z_closed_port():
    port = closed_port()
    r, _ = connect(["-z", "127.0.0.1", port])
    assert r.returncode == 1
    assert b"127.0.0.1:%d: connection refused" % port in r.stderr


def wait_for(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    return pred()


def test_wait_for_server_that_starts_late():
    port = closed_port()
    ready = threading.Event()
    holder = {}

    def start_late():
        time.sleep(0.5)
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(4)
        holder["s"] = s
        ready.set()

    t = threading.Thread(target=start_late, daemon=True)
    t.start()
    try:
        r, took = connect(["-z", "--wait-for", "10s", "--json", "127.0.0.1", port], timeout=20)
        t.join(timeout=5)
        assert ready.is_set()
        assert r.returncode == 0, r.stderr
        assert took >= 0.4
        j = json.loads(r.stderr)
        assert j["end"] == "open" and j["rounds"] >= 2, j
    finally:
        t.join(timeout=5)
        if "s" in holder:
            holder["s"].close()


def test_wait_for_gives_up():
    port = closed_port()
    r, took = connect(["-z", "--wait-for", "400ms", "127.0.0.1", port], timeout=15)
    assert r.returncode == 1
    assert b"still closed after" in r.stderr
    assert b"127.0.0.1:%d: connection refused" % port in r.stderr
    assert r.stderr.count(b"\n") == 1, r.stderr
    assert 0.3 < took < 8


def test_wait_for_then_one_shot(tcp_server):
    port = closed_port()
    holder = {}

    def start_late():
        time.sleep(0.5)
        holder["s"] = TcpServer(lambda c: c.sendall(b"late " + read_to_eof(c)), port=port)

    t = threading.Thread(target=start_late, daemon=True)
    t.start()
    try:
        r, _ = connect(["--wait-for", "10s", "127.0.0.1", port, "hi"], timeout=20)
        assert r.returncode == 0, r.stderr
        assert r.stdout == b"late hi\n"
    finally:
        t.join(timeout=5)
        if "s" in holder:
            holder["s"].stop()


def test_slow_stdout_bounds_what_is_read(tcp_server):
    """While nobody reads stdout, the client stops reading the socket (bounded
    buffers): the server cannot push its 64 MiB; once stdout is read, every
    byte arrives."""
    total = 64 << 20
    sent = [0]

    def handler(conn):
        chunk = b"z" * 65536
        conn.settimeout(20)
        while sent[0] < total:
            conn.sendall(chunk)
            sent[0] += len(chunk)

    s = tcp_server(handler)
    p = subprocess.Popen([SOCKIT, "connect", "127.0.0.1", str(s.port)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)
        stalled_at = sent[0]
        assert stalled_at < 24 << 20, f"client read {stalled_at} bytes nobody consumed"
        got = 0
        deadline = time.monotonic() + 30
        while got < total and time.monotonic() < deadline:
            b = p.stdout.read1(1 << 20)
            if not b:
                break
            got += len(b)
        assert got == total
    finally:
        p.kill()
        p.wait(timeout=10)
        p.stdin.close()
        p.stdout.close()
        p.stderr.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_prints_summary_then_dies_of_it(tcp_server, sig):
    got = []

    def handler(conn):
        got.append(conn.recv(100))
        s.release.wait(10)

    s = tcp_server(handler)
    p = subprocess.Popen([SOCKIT, "connect", "--json", "127.0.0.1", str(s.port)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        p.stdin.write(b"ping")
        p.stdin.flush()
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.02)
        assert got == [b"ping"]  # the relay is running: the handler is in place
        p.send_signal(sig)
        out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
    assert p.returncode == -sig, err
    j = json.loads(err)
    assert (j["end"], j["exit"], j["bytes_sent"]) == ("signal", 128 + sig, 4), j


# ---- Lost stdout (issue 19, items 1 and 9) ---------------------------------

@pytest.mark.parametrize("data", [["hi"], []], ids=["data", "stdin"])
def test_stdout_write_error_ends_the_run(tcp_server, data):
    """issue 19, item 1: a write error on stdout other than EPIPE (here
    ENOSPC from /dev/full) used to spin at 100% CPU forever; it must end the
    run with a message naming the error, exit 1."""
    s = tcp_server(echo_handler)
    r, took = connect_lost_stdout(["127.0.0.1", s.port] + data, "full",
                                  input=None if data else b"hi\n", timeout=30)
    assert r.returncode == 1, r.stderr
    assert b"no space left on device" in r.stderr, r.stderr
    assert r.stderr.count(b"\n") == 1, r.stderr
    assert took < 10


def test_stdout_write_error_with_summary(tcp_server):
    """issue 19, item 1: the run ends as an error, and the summary says so."""
    s = tcp_server(echo_handler)
    r, _ = connect_lost_stdout(["--json", "127.0.0.1", s.port, "hi"], "full")
    assert r.returncode == 1, r.stderr
    j = json.loads(r.stderr)
    assert (j["end"], j["exit"]) == ("error", 1), j
    assert "no space left on device" in j["error"], j


@pytest.mark.parametrize("args", [["{port}", "hi"], ["-z", "{port}"], ["{port}"]],
                         ids=["reply", "zero-io", "nothing-written"])
def test_closed_stdout_is_a_failure(tcp_server, args):
    """issue 19, item 9: `sockit connect ... >&-` exits 1 with one message,
    whether or not a reply was due."""
    s = tcp_server(echo_handler)
    args = ["127.0.0.1"] + [a.format(port=s.port) for a in args]
    r, took = connect_lost_stdout(args, "closed", input=b"", timeout=30)
    assert r.returncode == 1, r.stderr
    assert b"standard output" in r.stderr, r.stderr
    assert r.stderr.count(b"\n") == 1, r.stderr
    assert took < 10


def test_bracketed_ipv4_and_malformed_brackets(tutorial_server):
    """issue 19, item 7: HOST goes through cli_host: "[::1]" and a bracketed
    IPv4 literal work; malformed brackets are a usage error."""
    host, port = tutorial_server
    r, _ = connect(["[127.0.0.1]", port, "hi"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"Received: hi\n"
    for bad in ("[::1", "[]", "[::1]x"):
        r, _ = connect([bad, port, "hi"])
        assert r.returncode == 2, (bad, r.stderr)
        assert f"invalid host '{bad}' for HOST".encode() in r.stderr, r.stderr


def test_bracketed_ipv6_without_family_flag():
    """issue 19, item 7: "[::1]" with neither -4 nor -6."""
    if not has_ipv6():
        pytest.skip("no IPv6 loopback")
    s6 = TcpServer(lambda c: c.sendall(b"six " + read_to_eof(c)), family=socket.AF_INET6)
    try:
        r, _ = connect(["--json", "[::1]", s6.port, "hi"])
        assert r.returncode == 0, r.stderr
        assert r.stdout == b"six hi\n"
        j = json.loads(r.stderr)
        assert (j["host"], j["address"]) == ("[::1]", f"[::1]:{s6.port}"), j
    finally:
        s6.stop()


def test_port_as_a_service_name():
    """issue 19, item 12: PORT may be a service name ("http" is port 80)."""
    try:
        if socket.getservbyname("http", "tcp") != 80:
            pytest.skip("'http' is not port 80 in this /etc/services")
    except OSError:
        pytest.skip("no 'http' in /etc/services")
    r, _ = connect(["-z", "-w", "2s", "--json", "127.0.0.1", "http"], timeout=20)
    j = json.loads(r.stderr)
    assert j["port"] == 80, j
    assert j["attempts"][0]["address"] == "127.0.0.1:80", j
