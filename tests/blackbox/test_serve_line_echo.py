"""test_serve_line_echo.py -- `sockit serve --mode line` (persistent, one
reply per line) and `--mode echo` (RFC 862)."""
import os
import socket
import threading

import pytest

from conftest import connect, exchange, recv_exact, recv_to_eof, recv_until_close, reset_close

PREFIX = b"Received: "
TOO_LONG = b"error: line too long\n"


def send_all_then_shut(sock, data):
    """Sends data and half-closes from a thread, so the caller can read
    concurrently (no deadlock on large transfers); returns the thread."""
    err = []

    def run():
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError as e:  # reported by the caller's assertions
            err.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.err = err
    return t


# ---------------------------------------------------------------- line mode

def test_line_pipelined_in_order(serve):
    srv = serve(["--mode", "line"])
    lines = [f"line {i} {'x' * (i % 37)}\n".encode() for i in range(2000)]
    with connect(srv.addr) as s:
        t = send_all_then_shut(s, b"".join(lines))
        reply = recv_to_eof(s, timeout=30)
        t.join(10)
        assert not t.err, t.err
    assert reply == b"".join(PREFIX + ln for ln in lines)


def test_line_request_reply_persistent(serve):
    """One connection, many round trips: the connection stays open."""
    srv = serve(["--mode", "line"])
    with connect(srv.addr) as s:
        for i in range(100):
            msg = f"ping {i}\n".encode()
            s.sendall(msg)
            assert recv_exact(s, len(PREFIX) + len(msg)) == PREFIX + msg


def test_line_crlf_and_empty_lines_kept(serve):
    srv = serve(["--mode", "line"])
    data = b"a\r\nb\n\n\r\n\x00nul\x00\n"
    assert exchange(srv.addr, data, shut_wr=True) == (
        PREFIX + b"a\r\n" + PREFIX + b"b\n" + PREFIX + b"\n" + PREFIX + b"\r\n" +
        PREFIX + b"\x00nul\x00\n")


def test_line_final_unterminated_line_answered_at_eof(serve):
    srv = serve(["--mode", "line"])
    assert exchange(srv.addr, b"one\ntwo", shut_wr=True) == PREFIX + b"one\n" + PREFIX + b"two"
    assert exchange(srv.addr, b"only", shut_wr=True) == PREFIX + b"only"
    # EOF with nothing pending: no reply at all, just the close
    assert exchange(srv.addr, b"x\n", shut_wr=True) == PREFIX + b"x\n"
    assert exchange(srv.addr, b"", shut_wr=True) == b""


def test_line_too_long_gets_error_then_close(serve):
    srv = serve(["--mode", "line", "--max-line", "100"])
    # lines before it are answered, then the error, then the close
    data = b"ok\n" + b"y" * 50 + b"\n" + b"x" * 300 + b"\nnever\n"
    with connect(srv.addr) as s:
        s.sendall(data)  # no half-close: the server must close by itself
        reply = recv_to_eof(s, timeout=15)
    assert reply == PREFIX + b"ok\n" + PREFIX + b"y" * 50 + b"\n" + TOO_LONG
    c = srv.wait_counter("closed_limit", 1)
    assert c["closed_limit"] >= 1, c


def test_line_too_long_without_newline(serve):
    """A line that never ends is cut off once it exceeds --max-line, not
    buffered while waiting for its newline."""
    srv = serve(["--mode", "line", "--max-line", "1k"])
    with connect(srv.addr) as s:
        s.sendall(b"z" * 5000)
        assert recv_to_eof(s, timeout=15) == TOO_LONG


def test_line_default_max_line_allows_60k(serve):
    srv = serve(["--mode", "line"])
    line = b"L" * 60000 + b"\n"
    with connect(srv.addr) as s:
        t = send_all_then_shut(s, line)
        reply = recv_to_eof(s, timeout=15)
        t.join(10)
    assert reply == PREFIX + line
    # and the default 64 KiB cap exists: 200 KiB without a newline is refused
    # (the rest of the input may be cut off by a reset after the error line)
    with connect(srv.addr) as s:
        t = send_all_then_shut(s, b"M" * 200000)
        try:
            reply, _ = recv_until_close(s, timeout=15)
        finally:
            t.join(10)
    assert reply == TOO_LONG


def test_line_prefix(serve):
    srv = serve(["--mode", "line", "--prefix", "> "])
    assert exchange(srv.addr, b"a\nb\n", shut_wr=True) == b"> a\n> b\n"


# ---------------------------------------------------------------- echo mode

def test_echo_verbatim_small(serve):
    srv = serve(["--mode", "echo"])
    with connect(srv.addr) as s:
        for msg in (b"hello", b"\x00\x01\x02\xff", b"no newline", b"\r\n\r\n"):
            s.sendall(msg)
            assert recv_exact(s, len(msg)) == msg
        s.shutdown(socket.SHUT_WR)
        assert recv_to_eof(s) == b""


def test_echo_one_mebibyte_binary(serve):
    srv = serve(["--mode", "echo"])
    data = os.urandom(1 << 20) + b"\x00" * 1000
    with connect(srv.addr) as s:
        t = send_all_then_shut(s, data)
        reply = recv_to_eof(s, timeout=30)
        t.join(10)
        assert not t.err, t.err
    assert len(reply) == len(data)
    assert reply == data


def test_echo_concurrent_clients(serve):
    srv = serve(["--mode", "echo"])
    socks = [connect(srv.addr) for _ in range(20)]
    try:
        for i, s in enumerate(socks):
            s.sendall(f"client {i}".encode())
        for i, s in enumerate(socks):
            msg = f"client {i}".encode()
            assert recv_exact(s, len(msg)) == msg
    finally:
        for s in socks:
            s.close()


@pytest.mark.parametrize("mode", ["echo", "line"])
def test_client_reset_while_server_writes(serve, mode):
    """A client that sends a lot and resets without reading: the server's
    writes fail (EPIPE/ECONNRESET, never a fatal SIGPIPE) and it goes on."""
    srv = serve(["--mode", mode])
    for _ in range(5):
        s = connect(srv.addr)
        try:
            s.sendall((b"r" * 1023 + b"\n") * 256)
        except OSError:
            pass
        reset_close(s)
    want = b"fine\n" if mode == "echo" else PREFIX + b"fine\n"
    assert exchange(srv.addr, b"fine\n", shut_wr=True) == want
    assert srv.p.poll() is None
