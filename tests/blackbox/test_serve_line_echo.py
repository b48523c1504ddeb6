"""test_serve_line_echo.py -- `sockit serve --mode line` (persistent, one
reply per line) and `--mode echo` (RFC 862)."""
import os
import socket
import threading
import time

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
def test_burst_answered_without_eof(serve, mode):
    """A burst of input larger than one receive, with the connection left
    open: every reply arrives, and the connection goes on.  (On io_uring the
    output of a chunk may wait for the next chunk's; the last one must not
    wait for input that never comes.)"""
    srv = serve(["--mode", mode])
    lines = [b"%06d %s\n" % (i, b"b" * 200) for i in range(1500)]  # ~310 KB
    data = b"".join(lines)
    want = data if mode == "echo" else b"".join(PREFIX + ln for ln in lines)
    with connect(srv.addr) as s:
        t = threading.Thread(target=s.sendall, args=(data,), daemon=True)
        t.start()
        assert recv_exact(s, len(want), timeout=30) == want
        t.join(10)
        s.sendall(b"after\n")
        more = b"after\n" if mode == "echo" else PREFIX + b"after\n"
        assert recv_exact(s, len(more)) == more


@pytest.mark.parametrize("mode", ["echo", "line"])
def test_concurrent_bursts_each_get_their_own_replies(serve, mode):
    """Several connections on one worker send bursts at once: each gets
    exactly its own replies.  (On io_uring one connection's output may wait
    in the worker's batch for its next chunk; another connection's chunk
    must send it first, never append to it.)"""
    srv = serve(["--mode", mode, "--workers", "1"])
    n = 6
    socks = [connect(srv.addr) for _ in range(n)]
    datas, wants, got, errs = [], [], [None] * n, []
    for i in range(n):
        lines = [b"%d:%06d %s\n" % (i, k, bytes([97 + i]) * 150) for k in range(2000)]
        datas.append(b"".join(lines))
        wants.append(datas[i] if mode == "echo" else b"".join(PREFIX + ln for ln in lines))

    def client(i):
        try:
            t = threading.Thread(target=socks[i].sendall, args=(datas[i],), daemon=True)
            t.start()
            got[i] = recv_exact(socks[i], len(wants[i]), timeout=60)
            t.join(10)
        except OSError as e:
            errs.append(e)

    try:
        ts = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(90)
        assert not errs, errs
        for i in range(n):
            assert got[i] == wants[i], f"connection {i}: {len(got[i] or b'')} of {len(wants[i])} bytes, or wrong ones"
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


def test_line_max_line_boundary(serve):
    """--max-line N counts a line's content without its '\\n' ('\\r' is
    content): N bytes pass, N+1 get the error."""
    srv = serve(["--mode", "line", "--max-line", "10"])
    assert exchange(srv.addr, b"0123456789\n", shut_wr=True) == PREFIX + b"0123456789\n"
    assert exchange(srv.addr, b"012345678\r\n", shut_wr=True) == PREFIX + b"012345678\r\n"
    with connect(srv.addr) as s:
        s.sendall(b"0123456789A\n")
        assert recv_to_eof(s) == TOO_LONG
    with connect(srv.addr) as s:
        s.sendall(b"0123456789\r\n")
        assert recv_to_eof(s) == TOO_LONG
    # split across many small writes: the limit is on the line, not a read
    with connect(srv.addr) as s:
        for ch in b"abcdefghij":
            s.sendall(bytes([ch]))
        s.sendall(b"\n")
        assert recv_exact(s, len(PREFIX) + 11) == PREFIX + b"abcdefghij\n"
        for ch in b"abcdefghijk":
            s.sendall(bytes([ch]))
        assert recv_to_eof(s) == TOO_LONG


def test_line_too_long_after_pipelined_lines_slow_reader(serve):
    """Replies still in flight to a slow reader when a too-long line ends
    the connection, and the client keeps sending: the close must linger,
    not reset, or the undelivered replies are destroyed."""
    srv = serve(["--mode", "line", "--max-line", "100"])
    lines = [b"%03d %s\n" % (i, b"y" * 80) for i in range(100)]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)  # before connect
        s.settimeout(10)
        s.connect(srv.addr)
        s.sendall(b"".join(lines) + b"x" * 200 + b"\n")
        time.sleep(0.2)  # the server has answered what it could and hit the limit
        try:
            s.sendall(b"more\n" * 100)
        except (BrokenPipeError, ConnectionResetError):
            pass  # reported below as the missing replies
        time.sleep(0.1)  # an RST provoked by them would be here by now
        reply, was_reset = recv_until_close(s, timeout=15)
    want = b"".join(PREFIX + ln for ln in lines) + TOO_LONG
    assert not was_reset and len(reply) == len(want), (len(reply), len(want), was_reset)
    assert reply == want


@pytest.mark.parametrize("mode", ["echo", "line"])
def test_small_replies_to_a_reader_that_stalls(serve, mode):
    """One small request per wake, so each reply is small (on io_uring a
    send queued in the ring), while the client reads nothing until the
    socket is full: what a send could not place waits, in order, and every
    byte arrives exactly once and is counted once."""
    srv = serve(["--mode", mode])
    lines = [b"%05d %s\n" % (i, b"s" * 400) for i in range(600)]  # 250 kB of replies
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # Before connect: a small window, and segments so small that the
        # server's send buffer stays small too (the kernel sizes it from
        # the segment size) and fills within a few hundred replies.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
        s.settimeout(30)
        s.connect(srv.addr)
        err = []

        def paced():
            try:
                for ln in lines:
                    s.sendall(ln)
                    time.sleep(0.0002)
                s.shutdown(socket.SHUT_WR)
            except OSError as e:
                err.append(e)

        t = threading.Thread(target=paced, daemon=True)
        t.start()
        t.join(5)  # reading nothing meanwhile: the server's sends fill up
        reply = recv_to_eof(s, timeout=30)
        t.join(10)
        assert not err, err
    want = b"".join(lines) if mode == "echo" else b"".join(PREFIX + ln for ln in lines)
    assert len(reply) == len(want)
    assert reply == want
    c = srv.wait_counter("closed_eof", 1)
    assert c["bytes_out"] == len(want), c
    assert c["bytes_in"] == len(b"".join(lines)), c


def test_echo_idle_timeout(serve):
    srv = serve(["--mode", "echo", "--idle-timeout", "700ms"])
    with connect(srv.addr) as s:
        s.sendall(b"once")
        assert recv_exact(s, 4) == b"once"
        data, _ = recv_until_close(s, timeout=15)
        assert data == b""
    c = srv.wait_counter("closed_timeout", 1)
    assert c["closed_timeout"] == 1, c


@pytest.mark.parametrize("mode", ["echo", "line"])
def test_backlog_of_a_client_that_reads_nothing_stays_within_max_pending(serve, mode):
    """A client that sends as fast as it can and reads nothing: the output
    the server holds unsent stays within --max-pending plus the replies to
    one 64 KiB read (README).  Then the client reads, and every reply is
    there, in order."""
    srv = serve(["--mode", mode, "--workers", "1", "--max-pending", "4k"])
    lines = b"".join(b"%06x\n" % i for i in range(1 << 20))  # 7 MiB of 7-byte lines
    # a line's reply is 17 bytes: unsent output = replies made - bytes sent;
    # one read is 64 KiB, or on io_uring up to 64 KiB of 8 KiB chunks + one
    grow = (len(PREFIX) + 7) / 7 if mode == "line" else 1
    bound = 4096 + grow * (65536 + 8192)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the replies pile up at the server
    s.settimeout(10)
    s.connect(srv.addr)
    try:
        s.setblocking(False)
        sent, blocked_since = 0, None
        deadline = time.monotonic() + 20
        while sent < len(lines) and time.monotonic() < deadline:
            try:
                sent += s.send(lines[sent:sent + 65536])
                blocked_since = None
            except BlockingIOError:
                now = time.monotonic()
                blocked_since = blocked_since or now
                if now - blocked_since > 1.0:
                    break  # the server stopped reading: backpressure
                time.sleep(0.01)
        c = srv.counters()
        made = (c["bytes_in"] // 7) * (len(PREFIX) + 7) if mode == "line" else c["bytes_in"]
        unsent = made - c["bytes_out"]
        assert unsent <= bound, (f"{unsent} bytes held unsent (bound {bound:.0f}) after "
                                 f"{sent} sent: {c}")
        s.setblocking(True)
        s.shutdown(socket.SHUT_WR)
        reply = recv_to_eof(s, timeout=60)
    finally:
        s.close()
    done = lines[:sent]
    if mode == "echo":
        want = done
    else:
        full, part = done[:len(done) - len(done) % 7], done[len(done) - len(done) % 7:]
        want = b"".join(PREFIX + full[i:i + 7] for i in range(0, len(full), 7))
        want += PREFIX + part if part else b""
    assert len(reply) == len(want)
    assert reply == want


def test_eof_after_input_held_back_by_max_pending(serve):
    """Lines, an unterminated last line and EOF, all sent at once to a
    server whose output backs up after the first few (--max-pending 4k, a
    client that reads only later, and 1 KB replies: more than the kernel
    buffers): the last line is answered last, after every line before it."""
    prefix = b"P" * 1000
    srv = serve(["--mode", "line", "--workers", "1", "--max-pending", "4k",
                 "--prefix", prefix.decode()])
    lines = [b"%06x\n" % i for i in range(8000)]  # 56 KB: in the socket at once
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(srv.addr)
    try:
        s.sendall(b"".join(lines) + b"tail")
        s.shutdown(socket.SHUT_WR)
        time.sleep(0.3)  # the server answers what it can, then holds the rest back
        reply = recv_to_eof(s, timeout=30)
    finally:
        s.close()
    want = b"".join(prefix + ln for ln in lines) + prefix + b"tail"
    assert len(reply) == len(want)
    assert reply == want


@pytest.mark.parametrize("mode", ["echo", "line"])
@pytest.mark.parametrize("cap", ["1", "4k"])
def test_tiny_max_pending_still_makes_progress(serve, mode, cap):
    """A pending-output cap smaller than one read must slow a connection
    down, never wedge it."""
    srv = serve(["--mode", mode, "--max-pending", cap])
    lines = [b"%06d %s\n" % (i, b"q" * 500) for i in range(1000)]  # ~0.5 MB
    data = b"".join(lines)
    with connect(srv.addr) as s:
        t = send_all_then_shut(s, data)
        reply = recv_to_eof(s, timeout=30)
        t.join(10)
        assert not t.err, t.err
    want = data if mode == "echo" else b"".join(PREFIX + ln for ln in lines)
    assert len(reply) == len(want)
    assert reply == want
