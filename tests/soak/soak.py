#!/usr/bin/env python3
"""soak.py -- `make soak DURATION=...`: sockit serve under mixed, hostile load.

Three servers run side by side for the whole duration, each with the
features one server cannot combine (a server has one mode, and TLS and
PROXY apply to all its TCP connections):

  once        -m once -u --udp-rate 100 --max-bytes 16k   (plaintext TCP and UDP)
  line-tls    -m line --tls-cert ... --max-line 4k
  echo-proxy  -m echo --proxy-protocol --max-conns 64

each with --metrics, -i 5s and --backend BACKEND.  Against each, for the
whole load: well-behaved `sockit bench` runs (once, UDP, line over TLS,
echo with PROXY v1 and v2 headers; bounded rates, every reply checked by
bench), and hostile clients, one thread per kind, each looping: garbage and
binary requests, slow readers, never-readers, silent and half-closed
connections, resets (SO_LINGER 0) mid-reply and mid-handshake, lines past
--max-line, plaintext and partial handshakes to the TLS port, missing,
malformed, oversized, truncated and slow PROXY headers, connection floods
past --max-conns and UDP floods past --udp-rate (from 127.0.0.2, so that
the rate limit, which is per source IP, spares the well-behaved UDP).

Every few seconds each server's RSS (/proc/PID/status), descriptors
(/proc/PID/fd), CPU (/proc/PID/stat) and counters (/metrics) are sampled.
After the load: every server back to its starting descriptors with no
connection open, every counter adding up, the exit counters line equal to
the last scrape, exit 0 on SIGTERM.  The verdicts are tests/soak/checks.py's
(pure functions, unit-tested by tests/soak/test_checks.py).

Output: a table per server and a summary per phase on stdout, one line per
failed check, the last line PASS or FAIL; in --out (build/soak): soak.svg
(RSS, descriptors, verified requests/s over time), samples.json, each
server's log and each bench's JSON.  Exit 0 pass, 1 fail, 2 usage.

Usage: python3 tests/soak/soak.py [--sockit build/sockit] [--duration 60s]
         [--backend auto|io_uring|epoll] [--out build/soak]
         [--interval SEC] [--seed N]

Python's standard library, and tests/blackbox's conftest.py (its Server
class starts serve on port 0 and reads the port back; without pytest
installed a stand-in for its fixture decorator is enough) and tlscerts.py
(the openssl CLI).
"""
import argparse
import collections
import json
import os
import pty
import random
import re
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "blackbox"))
import checks  # noqa: E402
from checks import Failure  # noqa: E402

try:
    import pytest  # noqa: F401  (conftest's fixtures need it; its helpers, used here, do not)
except ImportError:  # e.g. a python3 other than Debian's: a stand-in for the decorator
    import types
    sys.modules["pytest"] = types.SimpleNamespace(fixture=lambda f=None, **kw: f or (lambda g: g))
import conftest  # noqa: E402
import tlscerts  # noqa: E402

PREFIX = b"Received: "
IDLE_S = 5          # serve -i: never-readers and silent clients are closed after this
MAX_LINE = 4096     # line-tls --max-line
ECHO_MAX_CONNS = 64  # echo-proxy --max-conns, which the flood goes past
UDP_RATE = 100      # once --udp-rate, per source IP (and worker)
FLOOD_SRC = "127.0.0.2"    # the UDP flood's source address
GARBAGE_SRC = "127.0.0.3"  # the UDP garbage's
FLOOD_PAUSE = (5.0, 10.0)  # between connection floods (random: no client keeps step)


def log(msg):
    print("soak: " + msg, file=sys.stderr, flush=True)


def parse_duration(s):
    """'30s', '3m', '1h', '500ms', '90' -> seconds; ValueError if not."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", s.strip())
    if not m:
        raise ValueError(s)
    return float(m.group(1)) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[m.group(2)]


# ---- Sockets --------------------------------------------------------------------------

class Cut(Exception):
    """The load's end came in the middle of an iteration."""


def left(deadline, cap):
    """Seconds for the next wait: at most cap, and never past deadline."""
    t = min(cap, deadline - time.monotonic())
    if t <= 0:
        raise Cut()
    return t


CONNECTS = threading.local()  # when this thread's connections were made (see Floods)


def tcp(addr, timeout=5.0, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(timeout)
        s.connect(addr)
    except BaseException:
        s.close()
        raise
    if hasattr(CONNECTS, "times"):
        CONNECTS.times.append(time.monotonic())
    return s


def rst(s):
    """Close with SO_LINGER 0: an RST instead of a FIN."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


def read_to_close(s, deadline, cap=10.0, limit=1 << 24, chunk=65536, pause=0.0):
    """Reads until EOF or a reset; returns (data, 'eof'|'reset'); a silence
    longer than cap raises socket.timeout; the load's end raises Cut."""
    out = []
    n = 0
    while n < limit:
        s.settimeout(left(deadline, cap))
        try:
            b = s.recv(chunk)
        except (ConnectionResetError, ssl.SSLEOFError):
            return b"".join(out), "reset"
        if not b:
            return b"".join(out), "eof"
        out.append(b)
        n += len(b)
        if pause:
            time.sleep(pause)
    return b"".join(out), "limit"


def read_exact(s, n, deadline, cap=10.0, chunk=65536, pause=0.0):
    out, got = [], 0
    while got < n:
        s.settimeout(left(deadline, cap))
        b = s.recv(min(chunk, n - got))
        if not b:
            break
        out.append(b)
        got += len(b)
        if pause:
            time.sleep(pause)
    return b"".join(out)


def wait_closed(s, deadline, cap):
    """Waits, without reading, for the peer to close or reset; True if it
    did within cap seconds."""
    p = select.poll()
    p.register(s.fileno(), select.POLLRDHUP | select.POLLHUP | select.POLLERR)
    end = time.monotonic() + cap
    while True:
        rest = end - time.monotonic()
        if rest <= 0:
            return False
        if p.poll(1000 * left(deadline, min(0.5, rest))):
            return True


def once_reply_ok(reply, data):
    """once mode: PREFIX + what the one read returned (a prefix of data)."""
    body = reply[len(PREFIX):]
    return reply.startswith(PREFIX) and 0 < len(body) and data.startswith(body)


def short(b):
    return repr(b[:60]) + ("... (%d bytes)" % len(b) if len(b) > 60 else "")


def proxy_v1(port):
    return b"PROXY TCP4 10.9.8.7 127.0.0.1 40000 %d\r\n" % port


def proxy_v2(port, length=None, body=None):
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    if body is None:
        body = socket.inet_aton("10.9.8.7") + socket.inet_aton("127.0.0.1") + \
            struct.pack("!HH", 40001, port)
    return sig + bytes([0x21, 0x11]) + struct.pack("!H", length or len(body)) + body


def client_hello(ctx):
    """The bytes of a TLS ClientHello, made by Python's ssl with no socket."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


# ---- The hostile clients -----------------------------------------------------------------
# Each kind is one iteration: fn(c, rng, deadline) -> (outcome, detail).
# "ok" means the client did its hostile thing and the server answered as
# documented; any other outcome not in the kind's `allow` is a failure.

def a_garbage(c, rng, dl):
    data = rng.randbytes(rng.randint(1, 1024))
    with tcp(c.addr) as s:
        s.sendall(data)
        reply, _ = read_to_close(s, dl)
    return ("ok", "") if once_reply_ok(reply, data) else ("mismatch", short(reply))


def a_slow_reader(c, rng, dl):
    data = rng.randbytes(8192)
    with tcp(c.addr, rcvbuf=2048) as s:
        s.sendall(data)
        reply, _ = read_to_close(s, dl, chunk=256, pause=0.01)
    return ("ok", "") if once_reply_ok(reply, data) else ("mismatch", short(reply))


def a_never_reader(c, rng, dl):
    s = tcp(c.addr, rcvbuf=2048)
    try:
        s.sendall(rng.randbytes(16384))
        time.sleep(left(dl, 3.0))
    finally:
        rst(s)
    return "ok", ""


def a_silent(c, rng, dl):
    """Connects and says nothing: serve must close it (TCP_DEFER_ACCEPT's
    second, then the idle timeout)."""
    with tcp(c.addr) as s:
        if not wait_closed(s, dl, IDLE_S + 8):
            return "still_open", "silent client not closed within %ds" % (IDLE_S + 8)
        data, _ = read_to_close(s, dl)
    return ("ok", "") if not data else ("mismatch", short(data))


def a_half_close(c, rng, dl):
    data = rng.randbytes(rng.randint(1, 512))
    with tcp(c.addr) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        reply, _ = read_to_close(s, dl)
    return ("ok", "") if once_reply_ok(reply, data) else ("mismatch", short(reply))


def a_reset_mid_reply(c, rng, dl):
    s = tcp(c.addr, rcvbuf=2048)
    try:
        s.sendall(rng.randbytes(8192))
        s.settimeout(left(dl, 10))
        first = s.recv(100)
    finally:
        rst(s)
    return ("ok", "") if PREFIX.startswith(first[:10]) and first else ("mismatch", short(first))


def a_udp_flood(c, rng, dl):
    """1 s at 1000 datagrams/s from FLOOD_SRC, ten times --udp-rate."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((FLOOD_SRC, 0))
    s.setblocking(False)
    sent = got = 0
    try:
        t_end = time.monotonic() + 1.0
        while time.monotonic() < min(t_end, dl):
            for _ in range(10):
                s.sendto(rng.randbytes(rng.randint(1, 200)), c.udp_addr)
                sent += 1
            time.sleep(0.01)
            while True:
                try:
                    s.recv(65536)
                    got += 1
                except BlockingIOError:
                    break
        time.sleep(0.3)  # the last replies
        while True:
            try:
                s.recv(65536)
                got += 1
            except BlockingIOError:
                break
    finally:
        s.close()
    c.tally["flood_sent"] += sent
    c.tally["flood_replies"] += got
    c.tally["flood_bursts"] += 1
    return "ok", ""


def a_udp_garbage(c, rng, dl):
    """One binary datagram (sometimes empty, sometimes the largest) from
    GARBAGE_SRC, well under the rate: the reply is PREFIX + data, cut at
    65507 bytes."""
    r = rng.random()
    n = 0 if r < 0.05 else 65507 if r < 0.1 else rng.randint(1, 1400)
    data = rng.randbytes(n)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((GARBAGE_SRC, 0))
        s.sendto(data, c.udp_addr)
        s.settimeout(left(dl, 3.0))
        try:
            reply = s.recv(65536)
        except socket.timeout:
            return "lost", "no reply to a %d-byte datagram within 3s" % n
    want = (PREFIX + data)[:65507]
    return ("ok", "") if reply == want else ("mismatch", short(reply))


def tls_connect(c, timeout=10.0):
    s = tcp(c.addr, timeout)
    try:
        t = c.tls.wrap_socket(s, server_hostname="localhost")
    except BaseException:
        s.close()
        raise
    return t


def b_oversized(c, rng, dl):
    with tls_connect(c) as s:
        s.sendall(b"ok\n" + b"x" * (MAX_LINE + 1000))
        reply, _ = read_to_close(s, dl)
    want = PREFIX + b"ok\nerror: line too long\n"
    return ("ok", "") if reply == want else ("mismatch", short(reply))


def lines(rng, count, size=100):
    return [b"%05d " % i + bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz0123456789")
                                 for _ in range(size - 7)) + b"\n" for i in range(count)]


def b_slow_reader(c, rng, dl):
    ls = lines(rng, 300)
    want = b"".join(PREFIX + x for x in ls)
    with tls_connect(c) as s:
        s.sendall(b"".join(ls))
        got = read_exact(s, len(want), dl, chunk=1024, pause=0.02)
    return ("ok", "") if got == want else ("mismatch", short(got))


def never_read(s, dl, chunk):
    """Sends chunk() until the server stops reading (400 chunks at most), never
    reads, and expects the idle timeout to close s; closes s."""
    try:
        s.settimeout(2.0)
        try:
            for _ in range(400):
                s.sendall(chunk())
        except (socket.timeout, ssl.SSLWantWriteError):
            pass
        if not wait_closed(s, dl, IDLE_S + 10):
            return "still_open", "never-reader not closed within %ds" % (IDLE_S + 10)
    finally:
        s.close()
    return "ok", ""


def b_never_reader(c, rng, dl):
    blob = b"".join(lines(rng, 100))  # 4 MB at most: serve stops reading long before
    return never_read(tls_connect(c), dl, lambda: blob)


def b_plaintext(c, rng, dl):
    with tcp(c.addr) as s:
        s.sendall(b"hello, plaintext\n")
        data, _ = read_to_close(s, dl)
    return ("ok", "") if b"Received" not in data else ("mismatch", short(data))


def b_garbage(c, rng, dl):
    """A whole TLS handshake record of random bytes."""
    body = rng.randbytes(rng.randint(1, 400))
    with tcp(c.addr) as s:
        s.sendall(b"\x16\x03\x01" + struct.pack("!H", len(body)) + body)
        data, _ = read_to_close(s, dl)
    return ("ok", "") if b"Received" not in data else ("mismatch", short(data))


def b_partial_handshake(c, rng, dl):
    hello = client_hello(c.tls)
    with tcp(c.addr) as s:
        s.sendall(hello[:len(hello) // 2])
        if not wait_closed(s, dl, IDLE_S + 8):
            return "still_open", "half a ClientHello not closed within %ds" % (IDLE_S + 8)
    return "ok", ""


def b_reset_handshake(c, rng, dl):
    s = tcp(c.addr)
    s.sendall(client_hello(c.tls))
    time.sleep(rng.random() * 0.005)
    rst(s)
    return "ok", ""


def b_reset_mid_reply(c, rng, dl):
    s = tls_connect(c)
    try:
        s.sendall(b"".join(lines(rng, 200)))
        s.settimeout(left(dl, 10))
        first = s.recv(10)
    finally:
        rst(s)
    return ("ok", "") if PREFIX.startswith(first) and first else ("mismatch", short(first))


def c_refused(c, rng, dl, payload, shut=False):
    """Sends a bad PROXY header: serve must close without a byte."""
    with tcp(c.addr) as s:
        s.sendall(payload)
        if shut:
            s.shutdown(socket.SHUT_WR)
        data, _ = read_to_close(s, dl, cap=IDLE_S + 8)
    return ("ok", "") if not data else ("mismatch", short(data))


def c_missing(c, rng, dl):
    return c_refused(c, rng, dl, b"hello, no header\r\n")


def c_malformed(c, rng, dl):
    return c_refused(c, rng, dl, b"PROXY TCP4 999.1.2.3 127.0.0.1 1 2\r\n")


def c_oversized(c, rng, dl):
    return c_refused(c, rng, dl, proxy_v2(c.port, body=rng.randbytes(2000)))


def c_truncated(c, rng, dl):
    return c_refused(c, rng, dl, b"PROXY TCP4 10.1.2", shut=True)


def c_slow_header(c, rng, dl):
    return c_refused(c, rng, dl, b"PROXY ")


def c_echo_binary(c, rng, dl):
    data = rng.randbytes(32768)
    with tcp(c.addr) as s:
        s.sendall(proxy_v2(c.port) + data)
        s.shutdown(socket.SHUT_WR)
        got, _ = read_to_close(s, dl)
    if not got:
        return "closed", "closed without a byte"
    return ("ok", "") if got == data else ("mismatch", short(got))


def c_slow_reader(c, rng, dl):
    """Sends 128 KiB while reading 512 bytes every 10 ms: the echo must
    come back whole (serve pauses reading instead of buffering)."""
    data = rng.randbytes(131072)
    got = bytearray()
    with tcp(c.addr) as s:
        s.sendall(proxy_v1(c.port))
        s.setblocking(False)
        off = 0
        while len(got) < len(data):
            left(dl, 1)
            r, w, _ = select.select([s], [s] if off < len(data) else [], [], 10)
            if not r and not w:
                return "stalled", "no progress for 10s (%d of %d back)" % (len(got), len(data))
            if w:
                off += s.send(data[off:off + 16384])
            if r:
                b = s.recv(512)
                if not b:
                    break
                got += b
                time.sleep(0.01)
    if not got:
        return "closed", "closed without a byte"
    return ("ok", "") if bytes(got) == data else ("mismatch", short(bytes(got)))


def c_never_reader(c, rng, dl):
    s = tcp(c.addr)
    try:
        s.sendall(proxy_v2(c.port))
    except OSError:
        s.close()
        raise
    return never_read(s, dl, lambda: rng.randbytes(16384))


def c_reset_mid_reply(c, rng, dl):
    s = tcp(c.addr)
    try:
        s.sendall(proxy_v1(c.port) + rng.randbytes(102400))
        s.settimeout(left(dl, 10))
        first = s.recv(1)
    finally:
        rst(s)
    return ("ok", "") if first else ("closed", "closed without a byte")


def c_flood(c, rng, dl):
    """--max-conns + 32 connections at once, each with a good header, held
    1 s: those past the limit are closed at accept (refused_maxconns)."""
    socks = []
    start = time.monotonic()
    c.floods.begin(start)
    try:
        for _ in range(ECHO_MAX_CONNS + 32):
            try:
                s = tcp(c.addr, timeout=3.0)
            except (socket.timeout, OSError):
                continue
            socks.append(s)
            try:
                s.sendall(proxy_v1(c.port))
            except OSError:
                pass
        time.sleep(left(dl, 1.0))
        refused = 0
        for s in socks:
            s.setblocking(False)
            try:
                if s.recv(1) == b"":
                    refused += 1
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                refused += 1
        c.tally["flood_refused"] += refused
        c.tally["flood_conns"] += len(socks)
    finally:
        for i, s in enumerate(socks):
            if i % 2:
                rst(s)
            else:
                s.close()
        c.floods.end(time.monotonic())
    time.sleep(min(rng.uniform(*FLOOD_PAUSE), max(0.0, dl - time.monotonic())))
    return "ok", ""


# name -> (function, outcomes allowed besides ok, pause between iterations,
#          the server counters its "ok" outcomes must show up in, joined by +)
KINDS = {
    "once": {
        "garbage": (a_garbage, (), 0.05, None),
        "slow-reader": (a_slow_reader, (), 0.1, None),
        "never-reader": (a_never_reader, (), 0.2, None),
        "silent": (a_silent, (), 0.2, "closed_timeout"),
        "half-close": (a_half_close, (), 0.05, None),
        "reset-mid-reply": (a_reset_mid_reply, (), 0.05, None),
        "udp-flood": (a_udp_flood, (), 1.0, None),
        "udp-garbage": (a_udp_garbage, (), 0.2, None),
    },
    "line-tls": {
        "oversized-line": (b_oversized, (), 0.1, "closed_limit"),
        "slow-reader": (b_slow_reader, (), 0.1, None),
        "never-reader": (b_never_reader, (), 0.2, "closed_timeout"),
        "plaintext": (b_plaintext, (), 0.1, "closed_tls_plaintext+closed_tls_handshake"),
        # a record of random bytes may announce a message longer than it: a timeout
        "garbage": (b_garbage, (), 0.1,
                    "closed_tls_plaintext+closed_tls_handshake+closed_tls_timeout"),
        "partial-handshake": (b_partial_handshake, (), 0.2, "closed_tls_timeout"),
        "reset-handshake": (b_reset_handshake, (), 0.1, None),
        "reset-mid-reply": (b_reset_mid_reply, (), 0.1, None),
    },
    "echo-proxy": {
        "flood": (c_flood, (), 0.0, None),
        "no-header": (c_missing, (), 0.1, "closed_proxy_missing"),
        "malformed-header": (c_malformed, (), 0.1, "closed_proxy_malformed"),
        "oversized-header": (c_oversized, (), 0.1, "closed_proxy_oversized"),
        "truncated-header": (c_truncated, (), 0.1, "closed_proxy_truncated"),
        "slow-header": (c_slow_header, (), 0.2, "closed_proxy_timeout"),
        "binary": (c_echo_binary, (), 0.1, None),
        "slow-reader": (c_slow_reader, (), 0.1, None),
        "never-reader": (c_never_reader, (), 0.2, "closed_timeout"),
        "reset-mid-reply": (c_reset_mid_reply, (), 0.1, None),
    },
}


class Floods:
    """When the connection flood held the echo server at --max-conns: a
    hostile client of that server that connected meanwhile may have been
    refused instead, so its outcome proves nothing (but a wrong byte still
    does).  Once accepted, a connection is not disturbed by a flood."""
    BEFORE, AFTER = 0.2, 0.5  # for serve's accept queue, and to see the flood's closes

    def __init__(self):
        self.lock = threading.Lock()
        self.windows = []

    def begin(self, t):
        with self.lock:
            self.windows.append([t - self.BEFORE, None])

    def end(self, t):
        with self.lock:
            self.windows[-1][1] = t + self.AFTER

    def hit(self, times):
        """True if any of these connect times fell in a flood."""
        with self.lock:
            return any(a <= t and (b is None or t <= b) for t in times for a, b in self.windows)


def run_kind(c, kind, fn, allow, pause, load_end, seed):
    rng = random.Random(seed ^ zlib.crc32(("%s/%s" % (c.name, kind)).encode()))
    st = c.hostile[kind]
    # kinds start apart, so that none keeps step with the flood's period
    time.sleep(max(0.0, min(rng.uniform(0, 3), load_end - time.monotonic())))
    while time.monotonic() < load_end - 0.1:
        CONNECTS.times = []
        try:
            outcome, detail = fn(c, rng, load_end)
        except Cut:
            outcome, detail = "cut", ""
        except (ConnectionResetError, BrokenPipeError) as e:
            outcome, detail = "reset", str(e)
        except ConnectionRefusedError as e:
            outcome, detail = "refused", str(e)
        except socket.timeout as e:
            outcome, detail = "timeout", str(e) or "socket timeout"
        except ssl.SSLError as e:
            outcome, detail = "tls-error", str(e)
        except OSError as e:
            outcome, detail = "oserror", str(e)
        if outcome not in ("ok", "mismatch", "cut") and time.monotonic() >= load_end - 0.1:
            outcome = "cut"  # a wait the load's end cut short
        if kind != "flood" and outcome != "mismatch" and c.floods.hit(CONNECTS.times):
            outcome = "overlap"
        with c.lock:
            st["attempts"] += 1
            st["outcomes"][outcome] += 1
            if outcome not in ("ok", "cut", "overlap") + tuple(allow):
                st["unexpected"].setdefault(outcome, detail)
        if pause:
            time.sleep(max(0.0, min(pause, load_end - time.monotonic())))


# ---- The warm-up's bursts ----------------------------------------------------------------
# Some of serve's memory follows the largest burst seen, by design: io_uring's
# receive-buffer ring doubles (up to 256 x 8 KiB per worker) when a burst
# empties it (lib/loop/uring.h), and malloc's arenas keep their high-water
# mark.  Left to the hostile load's chance coincidences, that growth lands
# anywhere in the run and reads as a leak (and so do arrays that grow with
# the highest descriptor number, and the pool of connection structs, which
# follow the largest number of connections).  So the warm-up primes each
# server before the hostile load starts: a burst of connections each sending
# a lot at once, then the hostile clients at several times their
# concurrency (one flood), then a burst again.  The RSS reference is taken
# after that; what grows later is not a peak.

BURST = {"once": (64, 16384), "line-tls": (32, 131072), "echo-proxy": (40, 262144)}
PRIME_COPIES = 4    # each hostile kind (a flood: once) this many times at once
PRIME_SECS = 5.0


def burst_one(c, n_bytes, barrier, rng, out):
    try:
        s = tls_connect(c) if c.name == "line-tls" else tcp(c.addr)
    except OSError as e:
        out.append("burst connect: %s" % e)
        barrier.abort()
        return
    try:
        if c.name == "echo-proxy":
            s.sendall(proxy_v1(c.port))
        if c.name == "line-tls":
            blob = b"".join(lines(rng, n_bytes // 100))
        else:
            blob = rng.randbytes(n_bytes)
        barrier.wait(10)
        s.settimeout(5.0)
        try:
            s.sendall(blob)
        except socket.timeout:
            pass  # serve stopped reading (--max-pending): the burst is in its buffers
        if c.name == "once":
            reply, _ = read_to_close(s, time.monotonic() + 10)
            if not once_reply_ok(reply, blob):
                out.append("burst: once reply %s" % short(reply))
        else:
            time.sleep(0.5)
    except (OSError, threading.BrokenBarrierError) as e:
        out.append("burst: %s: %s" % (type(e).__name__, e))
    finally:
        rst(s)


def burst(c, seed, out):
    n, size = BURST[c.name]
    barrier = threading.Barrier(n)
    ths = [threading.Thread(target=burst_one, daemon=True,
                            args=(c, size, barrier, random.Random(seed + i), out))
           for i in range(n)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(30)


def prime_kind(c, fn, rng, deadline, out):
    while time.monotonic() < deadline - 0.1:
        try:
            outcome, detail = fn(c, rng, deadline)
        except (Cut, OSError):
            continue  # a hostile client's failures are its business
        if outcome == "mismatch":  # but a wrong byte never is
            out.append("%s: %s" % (fn.__name__, detail))


def prime(c, seed):
    """Primes c (see above); returns the problems met: none expected, every
    connection being within --max-conns."""
    out = []
    burst(c, seed, out)
    deadline = time.monotonic() + PRIME_SECS
    ths = [threading.Thread(target=prime_kind, daemon=True,
                            args=(c, fn, random.Random(seed + 100 + i), deadline, out))
           for kind, (fn, _, _, _) in KINDS[c.name].items()
           for i in range(1 if "flood" in kind else PRIME_COPIES)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(PRIME_SECS + 30)
    burst(c, seed + 200, out)
    return out


# ---- Well-behaved load: sockit bench, its progress read from a pty ---------------------------

PROGRESS_RE = re.compile(rb"sockit bench: [\d.]+ s, (\d+) requests, [\d.]+ req/s, (\d+) errors")


class Bench:
    """`sockit bench ... --json` for the whole load.  Its stderr is a pty,
    so that it prints its once-a-second progress (verified requests and
    errors so far), which the samples read; stdout is the JSON result."""

    def __init__(self, label, args):
        self.label, self.args = label, args
        self.requests = self.errors = 0
        self.text = bytearray()
        master, slave = pty.openpty()
        self.p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=slave)
        os.close(slave)
        self.master = master
        self.out = []
        self.t_out = threading.Thread(target=lambda: self.out.append(self.p.stdout.read()),
                                      daemon=True)
        self.t_err = threading.Thread(target=self._read_pty, daemon=True)
        self.t_out.start()
        self.t_err.start()

    def _read_pty(self):
        tail = b""
        while True:
            try:
                b = os.read(self.master, 4096)
            except OSError:  # EIO: the slave side is closed (bench exited)
                break
            if not b:
                break
            tail = (tail + b)[-512:]
            m = None
            for m in PROGRESS_RE.finditer(tail):
                pass
            if m:
                self.requests, self.errors = int(m.group(1)), int(m.group(2))
            self.text += b
        os.close(self.master)

    def finish(self, timeout):
        """Waits for the end (killing it, by its PID, if it overruns);
        returns {"json", "exit", "stderr"}."""
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.p.pid, signal.SIGKILL)
            rc = self.p.wait(timeout=10)
        self.t_out.join(10)
        self.t_err.join(10)
        self.p.stdout.close()
        raw = self.out[0] if self.out else b""
        try:
            js = json.loads(raw)
        except ValueError:
            js = None
        err = re.sub(r"\r[^\n\r]*(?=\r|$)", "", self.text.decode("utf-8", "replace"))
        return {"json": js, "exit": rc, "stderr": err}


# ---- The servers -------------------------------------------------------------------------

class Target:
    """One `sockit serve` and what is done to it."""

    def __init__(self, name, args, udp=False):
        self.name, self.args, self.udp = name, args, udp
        self.lock = threading.Lock()
        self.hostile = {k: {"attempts": 0, "outcomes": collections.Counter(), "unexpected": {}}
                        for k in KINDS[name]}
        self.tally = collections.Counter()
        self.floods = Floods()
        self.benches = []
        self.samples = []
        self.running_failures = {}
        self.prime_problems = []

    def start(self, backend):
        self.srv = conftest.Server(self.args + ["--metrics", "0", "-i", "%ds" % IDLE_S,
                                                "--backend", backend], udp=self.udp)
        self.pid = self.srv.pid
        self.addr = self.srv.addr
        self.port = self.srv.port
        if self.udp:
            self.udp_addr = self.srv.udp_addr
        m = self.srv.wait_stderr(r"metrics on http://([\d.]+):(\d+)/metrics")
        self.metrics_addr = (m.group(1), int(m.group(2)))
        self.backend = self.srv.wait_stderr(r"event loop: (\S+?),?\s").group(1)

    def scrape(self):
        with socket.create_connection(self.metrics_addr, timeout=10) as s:
            s.sendall(b"GET /metrics HTTP/1.0\r\nHost: soak\r\n\r\n")
            raw = conftest.recv_to_eof(s, timeout=10)
        head, _, body = raw.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.") or b" 200 " not in head.split(b"\r\n")[0]:
            raise RuntimeError("metrics: %r" % head[:80])
        return checks.parse_prometheus(body.decode())

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def sample(self, t, phase):
        if self.srv.p.poll() is not None:
            raise RuntimeError("%s (pid %d) exited with status %s in the %s phase: see %s.log"
                               % (self.name, self.pid, self.srv.p.returncode, phase, self.name))
        s = {"t": round(t, 2), "phase": phase,
             "rss_kb": conftest.proc_status(self.pid, "VmRSS"),
             "fds": self.fds(), "cpu_s": conftest.proc_cpu_seconds(self.pid),
             "metrics": self.scrape(),
             "bench_req": sum(b.requests for b in self.benches),
             "bench_err": sum(b.errors for b in self.benches)}
        self.samples.append(s)
        if phase in ("warm", "load"):
            for f in checks.check_identities(s["metrics"], self.name, quiescent=False):
                self.running_failures.setdefault(f.detail, (t, f))
        return s


def make_targets(certs):
    return [
        Target("once", ["-m", "once", "-u", "--udp-rate", str(UDP_RATE), "--max-bytes", "16k",
                        "--max-conns", "256"], udp=True),
        Target("line-tls", ["-m", "line", "--max-line", str(MAX_LINE), "--max-conns", "256",
                            "--tls-cert", certs.server.cert, "--tls-key", certs.server.key]),
        Target("echo-proxy", ["-m", "echo", "--proxy-protocol", "--max-conns",
                              str(ECHO_MAX_CONNS)]),
    ]


def bench_runs(sockit, t, certs, secs):
    """The well-behaved clients of a target: (label, argv)."""
    base = [sockit, "bench", "--json", "-d", "%gs" % secs, "-w", "10s"]
    h, p = "127.0.0.1", str(t.port)
    if t.name == "once":
        return [("once", base + ["-m", "once", "-c", "4", "-R", "100", h, p]),
                ("udp", base + ["-u", "-c", "4", "-R", "50", h, str(t.udp_addr[1])])]
    if t.name == "line-tls":
        return [("line+tls", base + ["-m", "line", "-c", "4", "-P", "2", "-R", "100", "--tls",
                                     "--tls-ca", certs.ca, h, p])]
    return [("echo+proxy-v2", base + ["-m", "echo", "-c", "4", "-P", "2", "-R", "100",
                                      "--proxy-header", "v2", h, p]),
            ("echo+proxy-v1", base + ["-m", "echo", "-c", "2", "-R", "20",
                                      "--proxy-header", "v1", h, p])]


# ---- The verdicts ------------------------------------------------------------------------

def effect_checks(t, m):
    """The hostile load reached the server: what the clients saw is counted."""
    f = []
    closed = checks.reasons(m, "sockit_connections_closed_total")
    sets = {k: frozenset(v[3].split("+")) for k, v in KINDS[t.name].items() if v[3]}
    for want in sorted(set(sets.values()), key=sorted):
        # the kinds counted only under these counters: they need as many
        need = sum(t.hostile[k]["outcomes"]["ok"] for k, s in sets.items() if s <= want)
        have = sum(closed.get(k[len("closed_"):], 0) for k in want)
        f += checks.check_at_least(have, need, "effect " + t.name, "+".join(sorted(want)))
    if t.name == "once":
        dropped = checks.metric(m, "sockit_datagrams_dropped_total", reason="rate")
        if t.tally["flood_sent"] and not dropped:
            f.append(Failure("effect once", "a UDP flood of %d datagrams past --udp-rate %d, "
                             "none dropped" % (t.tally["flood_sent"], UDP_RATE)))
        # a bucket per worker, refilled between bursts: 2 x rate per burst at most
        workers = checks.metric(m, "sockit_workers") or 1
        cap = t.tally["flood_bursts"] * 2 * UDP_RATE * workers
        if t.tally["flood_replies"] > cap:
            f.append(Failure("effect once", "the UDP flood got %d replies in %d bursts: more "
                             "than --udp-rate allows (%d)" % (t.tally["flood_replies"],
                                                             t.tally["flood_bursts"], cap)))
    if t.name == "echo-proxy":
        refused = checks.metric(m, "sockit_connections_refused_total", reason="maxconns")
        if t.tally["flood_conns"] and not t.tally["flood_refused"]:
            f.append(Failure("effect echo-proxy", "floods of %d connections past --max-conns "
                             "%d: none refused" % (t.tally["flood_conns"], ECHO_MAX_CONNS)))
        f += checks.check_at_least(refused, t.tally["flood_refused"], "effect echo-proxy",
                                   "refused_maxconns")
    return f


def wait_quiet(targets, t0, deadline):
    """After the load: samples every second until every server has no
    connection open and its starting descriptors, or the deadline."""
    while True:
        quiet = True
        for t in targets:
            s = t.sample(time.monotonic() - t0, "cool")
            if checks.metric(s["metrics"], "sockit_connections_open") or s["fds"] != t.base_fds:
                quiet = False
        if quiet or time.monotonic() > deadline:
            return quiet
        time.sleep(1.0)


def main(argv=None):
    ap = argparse.ArgumentParser(description="make soak: sockit serve under mixed, hostile load")
    ap.add_argument("--sockit", default=os.path.join(ROOT, "build", "sockit"))
    ap.add_argument("--duration", default="60s", help="load time (30s, 3m, 1h); default 60s")
    ap.add_argument("--backend", default="auto", choices=("auto", "io_uring", "epoll"))
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "soak"))
    ap.add_argument("--interval", type=float, help="seconds between samples (default: "
                    "duration/15, between 2 and 5)")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    try:
        dur = parse_duration(a.duration)
    except ValueError:
        ap.error("--duration %s: expected a duration such as 30s, 3m or 1h" % a.duration)
    if dur < 20:
        ap.error("--duration %s: at least 20s (a warm-up and a loaded phase)" % a.duration)
    if not os.access(a.sockit, os.X_OK):
        ap.error("--sockit %s: not an executable (run make first)" % a.sockit)
    interval = a.interval or min(5.0, max(2.0, dur / 15))
    warm = min(max(10.0, dur / 4), 120.0)

    conftest.SOCKIT = os.path.abspath(a.sockit)
    conftest.raise_nofile(4096)
    os.makedirs(a.out, exist_ok=True)
    shutil.rmtree(os.path.join(a.out, "certs"), ignore_errors=True)
    certs = tlscerts.make_certs(os.path.join(a.out, "certs"))

    targets = make_targets(certs)
    failures = []
    t0 = time.monotonic()
    try:
        for t in targets:
            t.start(a.backend)
            t.tls = ssl.create_default_context(cafile=certs.ca)
        backend = ",".join(sorted({t.backend for t in targets}))
        log("%s backend, %g s of load (warm-up %g s), a sample every %g s; servers: %s"
            % (backend, dur, warm, interval,
               ", ".join("%s pid %d port %d" % (t.name, t.pid, t.port) for t in targets)))
        for t in targets:
            t.sample(time.monotonic() - t0, "base")
            t.base_fds = t.samples[-1]["fds"]

        load_start = time.monotonic()
        load_end = load_start + dur
        for t in targets:
            t.benches = [Bench(lbl, args) for lbl, args in bench_runs(a.sockit, t, certs, dur)]
        time.sleep(1.0)  # bench's persistent connections before the bursts and floods
        primed = {}
        threads = []

        def prime_then_load():
            """The priming, then the hostile clients until the load's end."""
            ths = [threading.Thread(target=lambda t=t: t.prime_problems.extend(
                prime(t, a.seed)), daemon=True) for t in targets]
            for th in ths:
                th.start()
            for th in ths:
                th.join(PRIME_SECS + 120)
            primed["t"] = time.monotonic()
            for t in targets:
                for kind, (fn, allow, pause, _) in KINDS[t.name].items():
                    th = threading.Thread(target=run_kind, daemon=True,
                                          args=(t, kind, fn, allow, pause, load_end, a.seed))
                    th.start()
                    threads.append(th)
        starter = threading.Thread(target=prime_then_load, daemon=True)
        starter.start()

        nxt = load_start
        while True:
            nxt += interval
            now = time.monotonic()
            if nxt > load_end:
                break
            time.sleep(max(0.0, nxt - now))
            now = time.monotonic()
            # the warm-up lasts `warm`, and two samples past the priming
            warm_end = max(load_start + warm, primed.get("t", load_end) + 2 * interval)
            phase = "warm" if now < warm_end else "load"
            for t in targets:
                t.sample(time.monotonic() - t0, phase)
        bench_results = {}
        for t in targets:
            for b in t.benches:
                bench_results[(t.name, b.label)] = b.finish(load_end - time.monotonic() + 30)
        starter.join(max(0.1, load_end + 20 - time.monotonic()))
        stuck = starter.is_alive()
        for th in list(threads):
            th.join(max(0.1, load_end + 20 - time.monotonic()))
            stuck += th.is_alive()
        if stuck:
            failures.append(Failure("driver", "%d hostile client threads did not stop" % stuck))
        for t in targets:  # the loaded state's last sample
            t.sample(time.monotonic() - t0, "load")
        load_stop = time.monotonic() - t0

        wait_quiet(targets, t0, time.monotonic() + IDLE_S + 15)
        # A sample counts the descriptors before it scrapes: right after
        # the last scrape the server may still be closing that connection.
        time.sleep(1.0)
        for t in targets:
            s = t.sample(time.monotonic() - t0, "end")
            t.final = s
        # SIGTERM: each drains and exits 0, printing its counters
        for t in targets:
            t.srv.signal(signal.SIGTERM)
        for t in targets:
            try:
                t.exit = t.srv.wait(timeout=30)
            except subprocess.TimeoutExpired:
                t.exit = None
    finally:
        for t in targets:
            if hasattr(t, "srv"):
                t.srv.stop()
                with open(os.path.join(a.out, t.name + ".log"), "w") as f:
                    f.write(t.srv.stderr_text())
    end_t = time.monotonic() - t0

    # ---- verdicts
    warm_end = max(load_start + warm, primed.get("t", load_end) + 2 * interval) - t0
    ref_from = primed.get("t", load_end) - t0
    if "t" not in primed:
        failures.append(Failure("warm-up", "the priming did not end within the load"))
    load_end_t = load_end - t0
    for (name, label), r in sorted(bench_results.items()):
        failures += checks.check_bench(r, "%s %s" % (name, label))
        with open(os.path.join(a.out, "bench-%s.json" % label.replace("+", "-")), "w") as f:
            json.dump(r["json"], f, indent=1)
    for t in targets:
        m = t.final["metrics"]
        failures += checks.check_rss(t.samples, ref_from, load_end_t, t.name)
        failures += checks.check_fds(t.base_fds, t.final["fds"], t.name)
        failures += checks.check_open_fds_gauge(m, t.final["fds"], t.name)
        if checks.metric(m, "sockit_connections_open"):
            failures.append(Failure("fds " + t.name, "%d connections still open after the load"
                                    % checks.metric(m, "sockit_connections_open")))
        failures += checks.check_identities(m, t.name)
        failures += [f for _, f in sorted(t.running_failures.values())]
        failures += checks.check_monotonic(t.samples, t.name)
        for kind in KINDS[t.name]:
            failures += checks.check_hostile(t.hostile[kind], "%s %s" % (t.name, kind))
        failures += effect_checks(t, m)
        if t.prime_problems:
            failures.append(Failure("warm-up " + t.name, "%d priming clients failed (first: %s)"
                                    % (len(t.prime_problems), t.prime_problems[0])))
        text = t.srv.stderr_text()
        if t.exit != 0:
            failures.append(Failure("exit " + t.name, "exit status %s on SIGTERM (want 0)"
                                    % t.exit))
        found = conftest.COUNTERS_RE.findall(text)
        if not found:
            failures.append(Failure("exit " + t.name, "no counters line at exit"))
        else:
            failures += checks.check_exit_counters(m, conftest.parse_counters(found[-1]),
                                                   t.name)
        for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            if marker in text:
                failures.append(Failure("exit " + t.name, "sanitizer report (%s.log)" % t.name))

    # ---- output
    phases = [("base", 0, load_start - t0), ("warm", load_start - t0, warm_end),
              ("load", warm_end, load_stop), ("cool", load_stop, end_t)]
    title = "sockit soak: %g s, %s backend, 3 servers" % (dur, backend)
    with open(os.path.join(a.out, "soak.svg"), "w") as f:
        f.write(checks.svg_plot({t.name: t.samples for t in targets}, phases, title))
    with open(os.path.join(a.out, "samples.json"), "w") as f:
        json.dump({t.name: [dict(s, metrics={"%s%s" % (k[0], dict(k[1]) or ""): v
                                             for k, v in s["metrics"].items()})
                            for s in t.samples] for t in targets}, f)
    print(title)
    for t in targets:
        print()
        print(checks.table("%s (pid %d, %s)" % (t.name, t.pid, " ".join(t.args[:2])), t.samples))
    print()
    print("per phase:")
    for t in targets:
        print("\n".join(checks.phase_summary(t.name, t.samples)))
    print()
    print("well-behaved (sockit bench, every reply checked):")
    for (name, label), r in sorted(bench_results.items()):
        js = r["json"] or {}
        print("  %-11s %-14s %8s requests %8s req/s  p99 %7s ms  errors %s" % (
            name, label, js.get("requests", "-"), "%.0f" % js.get("rate_per_s", 0),
            "%.2f" % (js.get("latency_ms") or {}).get("p99", 0), js.get("errors_total", "-")))
    print("hostile (iterations: outcomes):")
    for t in targets:
        print("  %s: %s" % (t.name, "; ".join(
            "%s %s" % (k, ",".join("%s=%d" % kv for kv in sorted(v["outcomes"].items())))
            for k, v in t.hostile.items())))
    for t in targets:
        if t.tally:
            print("  %s: %s" % (t.name, " ".join("%s=%d" % kv for kv in sorted(t.tally.items()))))
    print("checks (%s): RSS growth after warm-up %s; fds base/end %s; SIGTERM exit %s" % (
        a.out, ", ".join("%s %+.1f%%" % (t.name, 100 * (checks.rss_growth(
            t.samples, ref_from, load_end_t)[2] or 0)) for t in targets),
        ", ".join("%s %d/%d" % (t.name, t.base_fds, t.final["fds"]) for t in targets),
        ", ".join("%s %s" % (t.name, t.exit) for t in targets)))
    for f in failures:
        print("FAIL %s: %s" % (f.check, f.detail))
    if failures:
        print("soak: FAIL (%d checks): %s" % (len(failures), ", ".join(
            sorted({f.check for f in failures}))))
        return 1
    print("soak: PASS: %g s on %s, 3 servers, %d samples each; plot in %s"
          % (dur, backend, len(targets[0].samples), os.path.join(a.out, "soak.svg")))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # the driver itself broke (a server died, ...): still one last line
        import traceback
        traceback.print_exc()
        print("soak: FAIL: driver: %s: %s" % (type(e).__name__, e))
        sys.exit(1)
