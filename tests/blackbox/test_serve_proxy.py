"""test_serve_proxy.py -- `sockit serve --proxy-protocol` and `--proxy-from` (issue 16):
PROXY headers v1 and v2 built here by hand (HAProxy's doc/proxy-protocol.txt), the
header's address as the client for logs, --deny and --max-conns-per-ip, LOCAL
health checks, headers in pieces or with the payload, every bad kind closed
with its own reason and nothing sent, and TLS behind the header."""
import signal
import socket
import ssl
import struct
import subprocess
import time

import pytest

from conftest import SOCKIT, connect, recv_exact, recv_to_eof, wait_until
from tlscerts import tls_certs  # noqa: F401  (the session fixture)

PREFIX = b"Received: "
BACKENDS = ["io_uring", "epoll"]
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src, dst="127.0.0.1", sport=5555, dport=1234):
    fam = "TCP6" if ":" in src else "TCP4"
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode()


def v2(src=None, dst="127.0.0.1", sport=5555, dport=1234, tlvs=b""):
    """A v2 header: PROXY from src (IPv4 or IPv6), or LOCAL when src is None."""
    if src is None:
        return V2_SIG + bytes([0x20, 0x00]) + struct.pack("!H", len(tlvs)) + tlvs
    if ":" in src:
        fam, addrs = 0x21, socket.inet_pton(socket.AF_INET6, src) + \
            socket.inet_pton(socket.AF_INET6, dst if ":" in dst else "::1")
    else:
        fam, addrs = 0x11, socket.inet_aton(src) + socket.inet_aton(dst)
    body = addrs + struct.pack("!HH", sport, dport) + tlvs
    return V2_SIG + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body


def read_all(s, timeout=10.0):
    try:
        return recv_to_eof(s, timeout=timeout)
    except ConnectionResetError:
        return b"<reset>"


def send_once(addr, *parts, pause=0.0):
    with connect(addr) as s:
        for p in parts:
            s.sendall(p)
            if pause:
                time.sleep(pause)
        return read_all(s)


# ---- The header's address is the client ----------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("hdr,client", [
    (v1("10.1.2.3", sport=4001), "10.1.2.3:4001"),
    (v1("2001:db8::7", dst="::1", sport=4002), "[2001:db8::7]:4002"),
    (v2("10.9.9.9", sport=4003), "10.9.9.9:4003"),
    (v2("2001:db8::9", sport=4004), "[2001:db8::9]:4004"),
    (v2("10.8.8.8", sport=4005, tlvs=b"\x01\x00\x02h2" + b"\x04\x00\x00"), "10.8.8.8:4005"),
], ids=["v1-tcp4", "v1-tcp6", "v2-tcp4", "v2-tcp6", "v2-tlvs"])
def test_header_and_payload_in_one_write(serve, backend, hdr, client):
    srv = serve(["--proxy-protocol", "-v", "--backend", backend])
    assert send_once(srv.addr, hdr + b"hello") == PREFIX + b"hello"
    srv.wait_stderr(r"accepted fd \d+ from %s via 127\.0\.0\.1:\d+" % client.replace(
        "[", r"\[").replace("]", r"\]").replace(".", r"\."))
    srv.wait_stderr(r"closed fd \d+ from %s \(done\)" % client.replace(
        "[", r"\[").replace("]", r"\]").replace(".", r"\."))
    c = srv.counters()
    assert c["accepted"] == 1 and c["closed_done"] == 1 and c["bytes_in"] == 5, c


@pytest.mark.parametrize("mode", ["once", "line", "echo"])
def test_header_split_across_writes(serve, mode):
    srv = serve(["--proxy-protocol", "-m", mode, "-v"])
    hdr = v2("10.3.3.3", sport=4010)
    with connect(srv.addr) as s:
        for i in range(0, len(hdr), 5):
            s.sendall(hdr[i:i + 5])
            time.sleep(0.02)
        time.sleep(0.1)
        s.sendall(b"after\n")
        want = (b"" if mode == "echo" else PREFIX) + b"after\n"
        assert recv_exact(s, len(want)) == want
        if mode != "once":
            s.sendall(b"more\n")
            want = (b"" if mode == "echo" else PREFIX) + b"more\n"
            assert recv_exact(s, len(want)) == want
    srv.wait_stderr(r"accepted fd \d+ from 10\.3\.3\.3:4010 via")


def test_v1_split_then_payload_in_the_last_piece(serve):
    srv = serve(["--proxy-protocol", "-m", "line"])
    with connect(srv.addr) as s:
        s.sendall(b"PROXY TCP4 10.0.0.1 ")
        time.sleep(0.1)
        s.sendall(b"127.0.0.1 1 2\r\nline one\nline ")
        time.sleep(0.1)
        s.sendall(b"two\n")
        want = PREFIX + b"line one\n" + PREFIX + b"line two\n"
        assert recv_exact(s, len(want)) == want


def test_header_alone_then_request(serve):
    """once: the request is the first read after the header, however it comes."""
    srv = serve(["--proxy-protocol"])
    assert send_once(srv.addr, v2("10.4.4.4"), b"later", pause=0.2) == PREFIX + b"later"


def test_local_health_check_served_not_counted_as_client(serve):
    srv = serve(["--proxy-protocol", "-v", "--max-conns-per-ip", "1", "--deny", "127.0.0.0/8",
                 "-m", "line"])
    # LOCAL: the socket's own addresses; neither --deny nor the per-IP slot apply
    with connect(srv.addr) as a, connect(srv.addr) as b:
        a.sendall(v2(None) + b"ping\n")
        b.sendall(v2(None, tlvs=b"\x04\x00\x01x") + b"ping\n")
        assert recv_exact(a, len(PREFIX) + 5) == PREFIX + b"ping\n"
        assert recv_exact(b, len(PREFIX) + 5) == PREFIX + b"ping\n"
    srv.wait_stderr(r"accepted fd \d+ from 127\.0\.0\.1:\d+ \(PROXY LOCAL: a health check\)")
    c = srv.counters()
    assert c["proxy_local"] == 2 and c["refused_denied"] == 0 and c["refused_perip"] == 0, c


# ---- --deny and --max-conns-per-ip decide on the header's address -------------

def test_deny_uses_the_header_address(serve):
    srv = serve(["--proxy-protocol", "--deny", "10.0.0.0/8"])
    assert send_once(srv.addr, v1("10.1.1.1") + b"no") in (b"", b"<reset>")
    assert send_once(srv.addr, v1("192.0.2.1") + b"yes") == PREFIX + b"yes"
    srv.wait_stderr(r"refused 10\.1\.1\.1:5555: denied by --allow/--deny")
    c = srv.counters()
    # refused, not accepted: accepted = active + closed_*
    assert c["refused_denied"] == 1 and c["accepted"] == 1 and c["closed_done"] == 1, c


def test_max_conns_per_ip_counts_the_header_address(serve):
    srv = serve(["--proxy-protocol", "--max-conns-per-ip", "1", "-m", "line"])
    held = connect(srv.addr)
    held.sendall(v2("10.5.5.5") + b"a\n")
    assert recv_exact(held, len(PREFIX) + 2) == PREFIX + b"a\n"
    # the same client through the same balancer address: refused
    assert send_once(srv.addr, v2("10.5.5.5") + b"b\n") in (b"", b"<reset>")
    # another client through it: served (the balancer's own address is no one's slot)
    with connect(srv.addr) as s:
        s.sendall(v2("10.6.6.6") + b"c\n")
        assert recv_exact(s, len(PREFIX) + 2) == PREFIX + b"c\n"
    c = srv.counters()
    assert c["refused_perip"] == 1, c
    held.close()
    # the slot is free again once the first connection closed
    assert wait_until(lambda: srv.counters()["active"] == 0, timeout=10)
    with connect(srv.addr) as s:
        s.sendall(v2("10.5.5.5") + b"d\n")
        assert recv_exact(s, len(PREFIX) + 2) == PREFIX + b"d\n"


# ---- Bad headers: closed with their own reason, nothing sent ------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("data,key", [
    (b"GET / HTTP/1.0\r\n\r\n", "closed_proxy_missing"),
    (b"hello\n", "closed_proxy_missing"),
    (b"PROXY TCP4 bad\r\nhello", "closed_proxy_malformed"),
    (b"PROXY TCP4 10.0.0.1 127.0.0.1 99999 80\r\n", "closed_proxy_malformed"),
    (V2_SIG + b"\x22\x11\x00\x0c" + b"\x00" * 12, "closed_proxy_malformed"),  # version 2, cmd 2
    (V2_SIG + b"\x21\x11\x00\x04" + b"\x00" * 4, "closed_proxy_malformed"),  # short addresses
    (V2_SIG + b"\x21\x11\x07\xd0" + b"\x00" * 100, "closed_proxy_oversized"),  # 2000 bytes
    (b"PROXY TCP4 " + b"1" * 120, "closed_proxy_oversized"),
], ids=["http", "text", "v1-fields", "v1-port", "v2-command", "v2-short", "v2-long",
        "v1-long"])
def test_bad_header_closed_with_its_reason(serve, backend, data, key):
    srv = serve(["--proxy-protocol", "--backend", backend, "-m", "line"])
    assert send_once(srv.addr, data) in (b"", b"<reset>")
    c = srv.wait_counter(key, 1)
    assert c[key] == 1 and c["bytes_out"] == 0 and c["bytes_in"] == 0, c
    assert c["accepted"] == c["active"] + sum(v for k, v in c.items()
                                              if k.startswith("closed_")), c
    srv.wait_stderr(r"warn: connection from 127\.0\.0\.1:\d+: (no|malformed|oversized) PROXY")


def test_truncated_header(serve):
    srv = serve(["--proxy-protocol"])
    with connect(srv.addr) as s:
        s.sendall(v2("10.0.0.1")[:20])
        time.sleep(0.1)
        s.shutdown(socket.SHUT_WR)
        assert read_all(s) in (b"", b"<reset>")
    with connect(srv.addr) as s:
        s.shutdown(socket.SHUT_WR)  # nothing at all
        assert read_all(s) in (b"", b"<reset>")
    c = srv.wait_counter("closed_proxy_truncated", 2)
    assert c["closed_proxy_truncated"] == 2 and c["bytes_out"] == 0, c


@pytest.mark.parametrize("backend", BACKENDS)
def test_slow_header_times_out(serve, backend):
    """The header timeout is min(-i, 5s); a header byte a second does not extend it."""
    srv = serve(["--proxy-protocol", "-i", "1500ms", "--backend", backend, "-m", "line"])
    hdr = v1("10.0.0.9")
    with connect(srv.addr) as s:
        start = time.monotonic()
        try:
            for i in range(len(hdr) - 1):
                s.sendall(hdr[i:i + 1])
                time.sleep(0.3)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert read_all(s, timeout=15) in (b"", b"<reset>")
        assert time.monotonic() - start < 8
    c = srv.wait_counter("closed_proxy_timeout", 1)
    assert c["closed_proxy_timeout"] == 1 and c["closed_timeout"] == 0, c


# ---- --proxy-from -----------------------------------------------------------------

def test_proxy_from_refuses_others(serve):
    srv = serve(["--proxy-protocol", "--proxy-from", "192.0.2.0/24",
                 "--proxy-from", "10.0.0.0/8"])
    assert send_once(srv.addr, v1("10.1.1.1") + b"x") in (b"", b"<reset>")
    c = srv.counters()
    assert c["refused_proxy_from"] == 1 and c["accepted"] == 0, c
    srv.wait_stderr(r"refused 127\.0\.0\.1:\d+: not in --proxy-from")
    ok = serve(["--proxy-protocol", "--proxy-from", "127.0.0.0/8"])
    assert send_once(ok.addr, v1("10.1.1.1") + b"x") == PREFIX + b"x"


def test_usage_errors(run_sockit):
    out = run_sockit(["serve", "--proxy-from", "10.0.0.0/8"])
    assert out.returncode == 2 and b"--proxy-from needs --proxy-protocol" in out.stderr
    out = run_sockit(["serve", "--proxy-protocol", "--proxy-from", "nope"])
    assert out.returncode == 2 and b"invalid CIDR 'nope' for --proxy-from" in out.stderr


# ---- TLS behind the header ----------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("together", [False, True], ids=["apart", "one-segment"])
def test_tls_behind_proxy_header(serve, tls_certs, backend, together):
    srv = serve(["--proxy-protocol", "--tls-cert", tls_certs.server.cert, "--tls-key",
                 tls_certs.server.key, "-v", "--backend", backend])
    ctx = ssl.create_default_context(cafile=tls_certs.ca)
    raw = connect(srv.addr)
    if together:
        # held back by the cork, the header and the ClientHello leave together
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
    raw.sendall(v2("10.7.7.7", sport=4444))
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"secret")
        data = b""
        while True:
            try:
                b = s.recv(100)
            except ssl.SSLZeroReturnError:
                break
            if not b:
                break
            data += b
    assert data == PREFIX + b"secret"
    srv.wait_stderr(r"accepted fd \d+ from 10\.7\.7\.7:4444 via")
    srv.wait_stderr(r"TLS fd \d+ from 10\.7\.7\.7:4444: TLSv1\.3")


def test_tls_failure_behind_proxy_names_the_client(serve, tls_certs):
    srv = serve(["--proxy-protocol", "--tls-cert", tls_certs.server.cert, "--tls-key",
                 tls_certs.server.key])
    assert send_once(srv.addr, v1("10.2.2.2", sport=4321) + b"plaintext\n") in (b"", b"<reset>")
    srv.wait_stderr(r"TLS handshake with 10\.2\.2\.2:4321 failed: not a TLS handshake")
    c = srv.wait_counter("closed_tls_plaintext", 1)
    assert c["closed_tls_plaintext"] == 1, c


def test_help_names_the_options():
    out = subprocess.run([SOCKIT, "serve", "--help"], capture_output=True, timeout=30)
    for opt in (b"--proxy-protocol", b"--proxy-from CIDR", b"--tls-cert FILE",
                b"--tls-key FILE", b"--tls-client-ca FILE"):
        assert opt in out.stdout, opt


# ---- Draining behind a balancer --------------------------------------------------

def test_sigterm_refuses_health_checks_before_closing(serve):
    """--proxy-protocol: SIGTERM keeps the listener open (clients still served)
    while a health check is refused unanswered, then closes it and exits."""
    srv = serve(["--proxy-protocol", "-m", "line", "--workers", "1"])
    srv.signal(signal.SIGTERM)
    time.sleep(0.5)  # without --proxy-protocol the listener would be closed by now
    with connect(srv.addr) as s:
        s.sendall(v2("10.1.1.1") + b"late\n")
        assert recv_exact(s, len(PREFIX) + 5) == PREFIX + b"late\n"
    # health checks: answered until the worker has taken the drain, then refused
    start, refused = time.monotonic(), False
    while not refused and time.monotonic() - start < 5:
        with connect(srv.addr) as s:
            s.sendall(v2(None) + b"health\n")
            data = read_all(s)
        refused = data in (b"", b"<reset>")
        assert refused or data == PREFIX + b"health\n", data
    assert refused
    srv.wait_stderr(r"draining: refusing the balancer's health checks; closing the listeners")
    assert srv.wait(timeout=10) == 0, srv.stderr_text()
    assert time.monotonic() - start < 5


def test_sigterm_without_checks_closes_within_two_seconds(serve):
    srv = serve(["--proxy-protocol"])
    start = time.monotonic()
    srv.signal(signal.SIGTERM)
    assert srv.wait(timeout=10) == 0, srv.stderr_text()
    assert 1.5 < time.monotonic() - start < 6
    assert "draining behind a load balancer" in srv.stderr_text()
