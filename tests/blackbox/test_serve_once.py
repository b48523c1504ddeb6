"""test_serve_once.py -- `sockit serve` in its default `once` mode: the
tutorial's server byte for byte, without its reset, plus --prefix and
--max-bytes.

The reference is the tutorial's own Python server (fixture tutorial_server):
one recv(1024), send(b"Received: " + data), close().  For requests over 1024
bytes that server closes with unread input, so the kernel resets the
connection after its reply: we keep what was read before the reset.
"""
import select
import socket
import threading
import time

import pytest

from conftest import closed_without_reply, connect, exchange, recv_to_eof

PREFIX = b"Received: "


def payload(n):
    """n deterministic bytes, NULs and high bytes included."""
    return bytes((i * 7 + 3) % 256 for i in range(n))


def tutorial_reply(addr, data):
    """What the tutorial's client reads from the reference server; a reset
    after the reply (unread request bytes) is expected there and ignored."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(addr)
        if data:
            s.sendall(data)
        else:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
        except ConnectionResetError:
            pass
        return b"".join(chunks)


def sockit_reply(addr, data):
    """Same client against sockit: no reset is tolerated."""
    return exchange(addr, data, shut_wr=not data)


CASES = [pytest.param(payload(n), id=f"{n}B") for n in (0, 1, 1023, 1024, 1025, 2000, 65536)]
CASES.append(pytest.param(b"\x00" * 10 + b"a\x00b\r\n\x00\xff\xfe" * 50, id="nuls"))
CASES.append(pytest.param(b"\x00", id="one-nul"))


@pytest.mark.parametrize("data", CASES)
def test_once_byte_exact_vs_tutorial(serve, tutorial_server, data):
    srv = serve()
    ours = sockit_reply(srv.addr, data)  # raises on a reset: must not happen
    ref = tutorial_reply(tutorial_server, data)
    # The tutorial's semantics, checked on both servers: the prefix and a
    # prefix of the request of at most 1024 bytes (whatever one read gave).
    for name, reply in (("sockit", ours), ("tutorial", ref)):
        assert reply.startswith(PREFIX), (name, reply[:40])
        got = reply[len(PREFIX):]
        assert len(got) <= 1024, (name, len(got))
        assert data.startswith(got), (name, len(got))
        if data:
            assert got, f"{name} replied without any request bytes"
    # One sendall on loopback: both servers' single read sees the same bytes.
    assert ours == ref, (len(ours), len(ref))
    assert ours == PREFIX + data[:1024]


@pytest.mark.parametrize("n", [2000, 65536])
def test_once_large_request_no_reset_before_reply(serve, tutorial_server, n):
    """The reply is read to a clean EOF even though the server read only
    part of the request; the tutorial's server resets here (proving the
    scenario exercises the unread-input case)."""
    data = payload(n)
    with pytest.raises((ConnectionResetError, BrokenPipeError)):
        exchange(tutorial_server, data)
    srv = serve()
    for _ in range(5):
        with connect(srv.addr) as s:
            s.sendall(data)
            # Let a resetting server's RST arrive before we read.
            select.select([s], [], [], 10)
            time.sleep(0.05)
            assert recv_to_eof(s) == PREFIX + data[:1024]


def test_once_client_sends_more_after_first_bytes(serve):
    """First bytes, then more while the reply is on its way: the reply must
    still be read to a clean EOF (lingering close, not close + RST)."""
    srv = serve()
    with connect(srv.addr) as s:
        s.sendall(b"first")
        r, _, _ = select.select([s], [], [], 10)
        assert r, "no reply within 10 s"
        s.sendall(b"more" * 1000)  # arrives after the server's read
        time.sleep(0.1)  # an RST provoked by it would be here by now
        reply = recv_to_eof(s)
    assert reply.startswith(PREFIX + b"first")
    assert (PREFIX + b"first" + b"more" * 1000).startswith(reply)
    # and the server is fine afterwards
    assert exchange(srv.addr, b"next") == PREFIX + b"next"


def test_once_client_closes_without_sending(serve):
    """Clients that connect and close (full close, half close) do not hurt
    the server; a half-closed one gets the bare prefix."""
    srv = serve()
    for _ in range(10):
        connect(srv.addr).close()
    assert exchange(srv.addr, b"", shut_wr=True) == PREFIX
    assert exchange(srv.addr, b"after") == PREFIX + b"after"


def test_once_sequential_many(serve):
    srv = serve()
    for i in range(50):
        msg = f"hello {i}".encode()
        assert exchange(srv.addr, msg) == PREFIX + msg


def test_prefix_changes_reply(serve):
    srv = serve(["--prefix", "ACK> "])
    assert exchange(srv.addr, b"hi there") == b"ACK> hi there"
    srv2 = serve(["--prefix", ""])
    assert exchange(srv2.addr, b"bare") == b"bare"


def test_max_bytes_limits_the_read(serve):
    srv = serve(["--max-bytes", "10"])
    data = b"0123456789abcdefghij"
    assert exchange(srv.addr, data) == PREFIX + data[:10]
    big = serve(["--max-bytes", "4096"])
    data = payload(3000)
    assert exchange(big.addr, data) == PREFIX + data


def test_max_bytes_accepts_size_units(serve):
    srv = serve(["--max-bytes", "2k"])
    data = payload(3000)
    assert exchange(srv.addr, data) == PREFIX + data[:2048]


def test_once_idle_timeout_closes_silent_client(serve):
    srv = serve(["--idle-timeout", "300ms"])
    with connect(srv.addr) as s:
        t0 = time.monotonic()
        assert closed_without_reply(s, timeout=15)
        # not closed before the timeout either (generous lower bound)
        assert time.monotonic() - t0 >= 0.2
    c = srv.wait_counter("closed_timeout", 1)
    assert c["closed_timeout"] >= 1, c
    assert exchange(srv.addr, b"still here") == PREFIX + b"still here"


@pytest.mark.parametrize("n", [5000, 8000])
def test_once_slow_reader_that_sends_more_gets_whole_reply(serve, n):
    """A client with a small receive window (the reply cannot all be
    delivered at once) that sends more bytes after its request: the server
    must still be holding the connection open (lingering), so those bytes
    are discarded instead of resetting it and destroying the undelivered
    rest of the reply."""
    srv = serve(["--max-bytes", "64k"])
    data = payload(n)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)  # before connect
        s.settimeout(10)
        s.connect(srv.addr)
        s.sendall(data)
        r, _, _ = select.select([s], [], [], 10)
        assert r, "no reply within 10 s"
        time.sleep(0.2)  # the server has sent what the window takes
        s.sendall(b"extra" * 100)
        time.sleep(0.1)  # an RST provoked by them would be here by now
        reply = recv_to_eof(s)
    assert len(reply) == len(PREFIX) + n
    assert reply == PREFIX + data


def test_once_big_read_slow_reader_no_reset(serve):
    """--max-bytes 1m and a 200 kB request the first read takes only part
    of: the rest of the request arrives after the reply; a client that
    reads slowly (small window) must still get the whole reply and a clean
    EOF, not a reset that destroys what was not yet delivered."""
    srv = serve(["--max-bytes", "1m"])
    data = payload(200000)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect
        s.settimeout(10)
        s.connect(srv.addr)
        s.sendall(data)
        time.sleep(0.2)
        reply = recv_to_eof(s, timeout=20)
    assert reply.startswith(PREFIX)
    got = reply[len(PREFIX):]
    assert len(got) > 16384, len(got)  # more than the window: it was in flight
    assert data.startswith(got)


def test_once_flood_past_linger_bound_does_not_destroy_the_reply(serve):
    """A client with a small window that sends 1.3 MB at once (more than the
    1 MiB the server discards while lingering), then reads: the reply is
    still in flight when the byte bound is reached, so the server lingers
    on (up to 2 s) instead of closing into an RST that would destroy it."""
    srv = serve(["--max-bytes", "64k", "--workers", "1"])
    data = payload(1300000)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect
        s.settimeout(10)
        s.connect(srv.addr)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        # reading only once the server has taken (and discarded) it all
        c = srv.wait_counter("bytes_in", len(data), timeout=5)
        reply = recv_to_eof(s, timeout=20)
    assert c["bytes_in"] == len(data), c
    # the whole reply to the one read: all the server sent, more than the
    # client's window (so it was in flight while the server discarded)
    assert reply.startswith(PREFIX) and data.startswith(reply[len(PREFIX):])
    assert len(reply) == srv.counters()["bytes_out"] > 8192


def test_long_prefix_all_modes(serve):
    """A 4000-byte prefix (the CLI allows up to 4 KiB) in front of full-size
    reads: no buffer is sized for the default prefix only."""
    pre = bytes(65 + i % 26 for i in range(4000))
    once = serve(["--prefix", pre.decode(), "--udp"], udp=True)
    data = payload(1024)
    assert exchange(once.addr, data) == pre + data
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(5)
        big = payload(65507)
        u.sendto(big, once.udp_addr)
        reply, _ = u.recvfrom(1 << 17)
        assert reply == (pre + big)[:65507]
    line = serve(["--prefix", pre.decode(), "--mode", "line"])
    lines = b"".join(b"%d %s\n" % (i, b"z" * 3000) for i in range(50))
    want = b"".join(pre + b"%d %s\n" % (i, b"z" * 3000) for i in range(50))
    with connect(line.addr) as s:
        # send from a thread: 350 kB of replies may exceed what the kernel
        # buffers while we are still sending
        t = threading.Thread(target=lambda: (s.sendall(lines), s.shutdown(socket.SHUT_WR)),
                             daemon=True)
        t.start()
        assert recv_to_eof(s) == want
        t.join(10)


def test_prefix_too_long_is_usage_error(run_sockit):
    r = run_sockit(["serve", "-p", "0", "--prefix", "P" * 100000], timeout=10)
    assert r.returncode == 2
    assert b"--prefix" in r.stderr
