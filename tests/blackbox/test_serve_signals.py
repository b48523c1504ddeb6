"""test_serve_signals.py -- SIGTERM/SIGINT drain, a second signal, SIGUSR1
counters, and the final counters line."""
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import (COUNTER_KEYS, COUNTERS_RE, closed_without_reply, connect, exchange,
                      parse_counters, recv_exact, recv_to_eof, recv_until_close, reset_close,
                      wait_until)

PREFIX = b"Received: "


def signal_consumed(pid, sig):
    """True once sig is no longer pending for the process (delivered to a
    handler or read from a signalfd)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("ShdPnd:"):
                return not (int(line.split()[1], 16) >> (sig - 1)) & 1
    return True


CLOSED = ("closed_done", "closed_eof", "closed_reset", "closed_timeout", "closed_limit")


def final_counters(srv):
    found = COUNTERS_RE.findall(srv.stderr_text())
    assert found, f"no counters line at exit; stderr:\n{srv.stderr_text()}"
    c = parse_counters(found[-1])
    # every admitted connection is active or closed for exactly one reason
    assert c["accepted"] == c["active"] + sum(c[k] for k in CLOSED), c
    return c


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_drains_in_flight_connection(serve, sig):
    """Connected (and accepted), then the signal, then the request: the
    reply is still delivered; then exit 0 with the counters line."""
    srv = serve(["--mode", "line", "--drain-timeout", "20s"])
    with connect(srv.addr) as s:
        s.sendall(b"first\n")
        assert recv_exact(s, len(PREFIX) + 6) == PREFIX + b"first\n"
        srv.signal(sig)
        assert wait_until(lambda: signal_consumed(srv.pid, sig), timeout=5, interval=0.01)
        time.sleep(0.2)  # the server is now draining
        assert srv.p.poll() is None, "exited with a connection still in flight"
        s.sendall(b"during drain\n")
        assert recv_exact(s, len(PREFIX) + 13) == PREFIX + b"during drain\n"
        s.shutdown(socket.SHUT_WR)
        assert recv_to_eof(s) == b""
    # the last connection is done: exit now, not at the end of the drain timeout
    assert srv.wait(timeout=10) == 0, srv.stderr_text()
    c = final_counters(srv)
    for k in COUNTER_KEYS:
        assert k in c, (k, c)
    assert c["accepted"] == 1 and c["active"] == 0, c
    assert c["bytes_in"] == 6 + 13, c
    assert c["bytes_out"] == 2 * len(PREFIX) + 6 + 13, c


def test_sigterm_drains_connection_that_has_not_sent_yet(serve):
    """line mode: connected and accepted but silent when SIGTERM comes; it
    then sends its line and still gets the reply."""
    srv = serve(["--mode", "line", "--drain-timeout", "20s"])
    with connect(srv.addr) as s:
        c = srv.wait_counter("active", 1)  # accepted by the server
        assert c["active"] == 1, c
        srv.signal(signal.SIGTERM)
        assert wait_until(lambda: signal_consumed(srv.pid, signal.SIGTERM), timeout=5,
                          interval=0.01)
        time.sleep(0.2)
        s.sendall(b"late but in flight\n")
        assert recv_exact(s, len(PREFIX) + 19) == PREFIX + b"late but in flight\n"
    assert srv.wait(timeout=10) == 0, srv.stderr_text()
    c = final_counters(srv)
    assert c["accepted"] == 1 and c["closed_eof"] == 1, c


def test_sigterm_once_mode_exit_counters_exact(serve):
    srv = serve()
    sizes = [1, 100, 1000]
    for n in sizes:
        assert exchange(srv.addr, b"q" * n) == PREFIX + b"q" * n
    srv.signal(signal.SIGTERM)
    assert srv.wait(timeout=10) == 0, srv.stderr_text()
    c = final_counters(srv)
    assert c["accepted"] == 3, c
    assert c["closed_done"] == 3, c
    assert c["active"] == 0, c
    assert c["bytes_in"] == sum(sizes), c
    assert c["bytes_out"] == sum(sizes) + 3 * len(PREFIX), c
    assert c["refused_maxconns"] == c["refused_perip"] == c["refused_denied"] == 0, c
    assert c["dgrams_in"] == c["dgrams_out"] == 0, c


def test_drain_timeout_closes_stragglers(serve):
    """A silent client during drain is closed after --drain-timeout and the
    server still exits 0."""
    srv = serve(["--mode", "line", "--drain-timeout", "500ms", "--idle-timeout", "60s"])
    with connect(srv.addr) as s:
        s.sendall(b"x\n")
        assert recv_exact(s, len(PREFIX) + 2) == PREFIX + b"x\n"
        srv.signal(signal.SIGTERM)
        data, _ = recv_until_close(s, timeout=15)
        assert data == b""
        assert srv.wait(timeout=15) == 0, srv.stderr_text()
    c = final_counters(srv)
    assert c["closed_timeout"] == 1 and c["active"] == 0, c


def test_second_sigterm_exits_at_once(serve):
    srv = serve(["--mode", "line", "--drain-timeout", "60s", "--idle-timeout", "60s"])
    with connect(srv.addr) as s:
        s.sendall(b"x\n")
        assert recv_exact(s, len(PREFIX) + 2) == PREFIX + b"x\n"
        srv.signal(signal.SIGTERM)
        assert wait_until(lambda: signal_consumed(srv.pid, signal.SIGTERM), timeout=5,
                          interval=0.01)
        time.sleep(0.2)
        assert srv.p.poll() is None, "did not wait for the in-flight connection"
        srv.signal(signal.SIGTERM)
        try:
            srv.wait(timeout=10)  # far below the 60 s drain timeout
        except subprocess.TimeoutExpired:
            pytest.fail("a second SIGTERM did not stop the server")


def test_sigterm_stops_accepting(serve):
    """While draining, new connections are not served."""
    srv = serve(["--mode", "line", "--drain-timeout", "60s", "--idle-timeout", "60s"])
    with connect(srv.addr) as s:
        s.sendall(b"x\n")
        assert recv_exact(s, len(PREFIX) + 2) == PREFIX + b"x\n"
        srv.signal(signal.SIGTERM)
        assert wait_until(lambda: signal_consumed(srv.pid, signal.SIGTERM), timeout=5,
                          interval=0.01)
        time.sleep(0.2)
        try:
            with connect(srv.addr, timeout=2) as n:
                n.sendall(b"new\n")
                n.settimeout(1.0)
                try:
                    got = n.recv(100)
                except (socket.timeout, ConnectionResetError):
                    got = b""
                assert got == b"", "a new connection was served while draining"
        except (ConnectionRefusedError, socket.timeout):
            pass  # listener closed: the expected way
        s.sendall(b"y\n")
        assert recv_exact(s, len(PREFIX) + 2) == PREFIX + b"y\n"


def test_sigusr1_prints_counters_and_keeps_serving(serve):
    srv = serve()
    assert exchange(srv.addr, b"one") == PREFIX + b"one"
    c1 = srv.counters()
    assert set(COUNTER_KEYS) <= set(c1), c1
    line = COUNTERS_RE.search(srv.stderr_text()).group(0)
    # the documented order, one line
    assert [t.split("=")[0] for t in line.split()[2:]] == list(COUNTER_KEYS), line
    assert c1["accepted"] >= 1 and c1["bytes_in"] >= 3, c1
    assert srv.p.poll() is None
    assert exchange(srv.addr, b"two") == PREFIX + b"two"
    c2 = srv.counters()
    assert c2["accepted"] == c1["accepted"] + 1, (c1, c2)
    assert c2["bytes_out"] == c1["bytes_out"] + len(PREFIX) + 3, (c1, c2)


def test_sigpipe_does_not_kill(serve):
    """Writing to a peer that is gone must not raise a fatal SIGPIPE."""
    srv = serve(["--mode", "echo"])
    for _ in range(3):
        s = connect(srv.addr)
        s.sendall(b"e" * 200000)
        s.close()  # unread echo data: our kernel resets, the server's writes fail
    assert wait_until(lambda: exchange(srv.addr, b"ok", shut_wr=True) == b"ok", timeout=10)
    assert srv.p.poll() is None


def test_sigterm_drains_pending_output(serve):
    """line mode: a client with a small window has megabytes of replies still
    to read (and lines still to send) when SIGTERM comes: all of it is
    delivered during the drain, then exit 0."""
    srv = serve(["--mode", "line", "--drain-timeout", "20s"])
    # 8 MB of replies: more than the kernel buffers (4 MB send buffer at
    # most, our small receive window), so some stays in the server
    lines = [f"{i:05d} {'x' * 20000}\n".encode() for i in range(400)]
    total_out = sum(len(PREFIX) + len(ln) for ln in lines)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect
        s.settimeout(10)
        s.connect(srv.addr)
        s.sendall(lines[0])
        assert recv_exact(s, len(PREFIX) + len(lines[0])) == PREFIX + lines[0]
        err = []

        def send_rest():
            try:
                s.sendall(b"".join(lines[1:]))
                s.shutdown(socket.SHUT_WR)
            except OSError as e:
                err.append(e)
        t = threading.Thread(target=send_rest, daemon=True)
        t.start()
        time.sleep(0.3)  # replies pile up: the server is blocked on our window
        before = srv.counters()
        assert before["bytes_out"] < total_out, before  # really in flight
        srv.signal(signal.SIGTERM)
        assert wait_until(lambda: signal_consumed(srv.pid, signal.SIGTERM), timeout=5,
                          interval=0.01)
        time.sleep(0.2)
        assert srv.p.poll() is None, "exited with output still pending:\n" + srv.stderr_text()
        reply = recv_to_eof(s, timeout=30)
        t.join(10)
        assert not err, err
    want = b"".join(PREFIX + ln for ln in lines[1:])
    assert len(reply) == len(want)
    assert reply == want
    assert srv.wait(timeout=10) == 0, srv.stderr_text()
    c = final_counters(srv)
    assert c["closed_eof"] == 1 and c["active"] == 0, c


def test_sigterm_with_udp_exits_0(serve):
    srv = serve(["--udp"], udp=True)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(5)
        u.sendto(b"d", srv.udp_addr)
        assert u.recvfrom(100)[0] == PREFIX + b"d"
    srv.signal(signal.SIGTERM)
    assert srv.wait(timeout=10) == 0, srv.stderr_text()
    c = final_counters(srv)
    assert c["dgrams_in"] == 1 and c["dgrams_out"] == 1, c


def test_sigusr1_burst_is_harmless(serve):
    srv = serve(["--mode", "line"])
    with connect(srv.addr) as s:
        for i in range(50):
            srv.signal(signal.SIGUSR1)
            s.sendall(b"%d\n" % i)
            want = PREFIX + b"%d\n" % i
            assert recv_exact(s, len(want)) == want
    assert wait_until(lambda: len(COUNTERS_RE.findall(srv.stderr_text())) >= 1, timeout=5)
    assert srv.p.poll() is None
    assert exchange(srv.addr, b"after\n", shut_wr=True) == PREFIX + b"after\n"


def test_counters_exact_after_mixed_traffic(serve):
    """Two workers, a known mix of endings: the exit counters say exactly
    what happened and add up."""
    srv = serve(["--mode", "line", "--workers", "2", "--max-line", "100",
                 "--idle-timeout", "1s", "--max-conns-per-ip", "3"])
    for i in range(10):  # 10 x EOF, 10 bytes in, 20 out each
        assert exchange(srv.addr, b"%09d\n" % i, shut_wr=True) == PREFIX + b"%09d\n" % i
    for _ in range(4):  # 4 x reset after one round trip (2 bytes in, 12 out)
        s = connect(srv.addr)
        s.sendall(b"r\n")
        assert recv_exact(s, len(PREFIX) + 2) == PREFIX + b"r\n"
        reset_close(s)
    for _ in range(3):  # 3 x too long (the 200 bytes read are counted in)
        with connect(srv.addr) as s:
            s.sendall(b"L" * 200 + b"\n")
            assert recv_to_eof(s) == b"error: line too long\n"
    idle = [connect(srv.addr) for _ in range(2)]  # 2 x idle timeout
    for s in idle:
        assert closed_without_reply(s, timeout=15)
        s.close()
    srv.wait_counter("closed_timeout", 2)
    srv.signal(signal.SIGTERM)
    assert srv.wait(timeout=15) == 0, srv.stderr_text()
    c = final_counters(srv)
    assert c["accepted"] == 19, c
    assert c["closed_eof"] == 10, c
    assert c["closed_reset"] == 4, c
    assert c["closed_limit"] == 3, c
    assert c["closed_timeout"] == 2, c
    assert c["closed_done"] == 0 and c["active"] == 0, c
    assert c["bytes_out"] == 10 * 20 + 4 * 12 + 3 * 21, c
    assert c["bytes_in"] >= 10 * 10 + 4 * 2 + 3 * 101, c
    assert c["refused_perip"] == 0, c


def test_drain_timeout_zero_closes_at_once(serve):
    srv = serve(["--mode", "line", "--drain-timeout", "0", "--idle-timeout", "60s"])
    with connect(srv.addr) as s:
        s.sendall(b"x\n")
        assert recv_exact(s, len(PREFIX) + 2) == PREFIX + b"x\n"
        srv.signal(signal.SIGTERM)
        data, _ = recv_until_close(s, timeout=10)
        assert data == b""
    assert srv.wait(timeout=10) == 0, srv.stderr_text()
    c = final_counters(srv)
    assert c["active"] == 0 and c["accepted"] == 1, c
