"""test_connect_proxy.py -- `sockit connect --proxy-header v1|v2` (issue 16): the
header comes first (before TLS too) and announces the connection's real
addresses, checked by a Python server that parses it per HAProxy's
proxy-protocol.txt independently of libsockit."""
import json
import socket
import ssl
import struct
import subprocess

import pytest

from conftest import SOCKIT
from connect_helpers import TcpServer, connect, has_ipv6, read_to_eof
from tlscerts import tls_certs  # noqa: F401  (the session fixture)

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def read_header(conn):
    """Reads exactly one PROXY header from conn; returns (version, src, dst)
    with src/dst as (ip, port), or paths for Unix."""
    first = conn.recv(12, socket.MSG_WAITALL)
    if first == V2_SIG:
        ver_cmd, fam, length = struct.unpack("!BBH", conn.recv(4, socket.MSG_WAITALL))
        assert ver_cmd == 0x21, hex(ver_cmd)  # version 2, PROXY
        body = conn.recv(length, socket.MSG_WAITALL)
        if fam == 0x11:  # TCP over IPv4
            s, d, sp, dp = struct.unpack("!4s4sHH", body[:12])
            return 2, (socket.inet_ntop(socket.AF_INET, s), sp), \
                (socket.inet_ntop(socket.AF_INET, d), dp)
        if fam == 0x21:  # TCP over IPv6
            s, d, sp, dp = struct.unpack("!16s16sHH", body[:36])
            return 2, (socket.inet_ntop(socket.AF_INET6, s), sp), \
                (socket.inet_ntop(socket.AF_INET6, d), dp)
        assert fam == 0x31, hex(fam)  # Unix stream
        return 2, body[:108].rstrip(b"\0"), body[108:216].rstrip(b"\0")
    line = first
    while not line.endswith(b"\r\n"):
        line += conn.recv(1)
        assert len(line) <= 107, line
    words = line[:-2].decode().split(" ")
    assert words[0] == "PROXY" and words[1] in ("TCP4", "TCP6"), words
    return 1, (words[2], int(words[4])), (words[3], int(words[5]))


class HeaderServer:
    """Reads the header, then (optionally over TLS) the payload to EOF;
    replies "ok" and records (header, client's real address, payload)."""

    def __init__(self, family=socket.AF_INET, tls_ctx=None):
        self.seen = []
        self.tls_ctx = tls_ctx
        self.tcp = TcpServer(self._serve, family=family)
        self.port = self.tcp.port

    def _serve(self, conn):
        hdr = read_header(conn)
        peer = conn.getpeername()[:2]
        sock = conn
        if self.tls_ctx is not None:
            sock = self.tls_ctx.wrap_socket(conn, server_side=True)
        data = read_to_eof(sock)
        sock.sendall(b"ok\n")
        if self.tls_ctx is not None:
            sock.unwrap()
        self.seen.append((hdr, peer, data))

    def stop(self):
        self.tcp.stop()
        assert not self.tcp.errors, self.tcp.errors


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_header_announces_the_real_addresses(version):
    s = HeaderServer()
    try:
        r, _ = connect(["--proxy-header", version, "--json", "127.0.0.1", s.port, "payload"])
    finally:
        s.stop()
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"ok\n"
    (ver, src, dst), peer, data = s.seen[0]
    assert ver == int(version[1])
    assert src == peer  # the client's real address and port
    assert dst == ("127.0.0.1", s.port)
    assert data == b"payload\n"  # nothing between header and payload
    assert json.loads(r.stderr)["bytes_sent"] == 8  # the header is not payload


@pytest.mark.skipif(not has_ipv6(), reason="no IPv6 loopback")
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_header_over_ipv6(version):
    s = HeaderServer(family=socket.AF_INET6)
    try:
        r, _ = connect(["--proxy-header", version, "::1", s.port, "x"])
    finally:
        s.stop()
    assert r.returncode == 0, r.stderr
    (ver, src, dst), peer, _ = s.seen[0]
    assert src == peer and dst == ("::1", s.port)


def test_header_comes_before_the_tls_handshake(tls_certs):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls_certs.server.cert, tls_certs.server.key)
    s = HeaderServer(tls_ctx=ctx)
    try:
        r, _ = connect(["--proxy-header", "v2", "--tls", "--tls-ca", tls_certs.ca, "127.0.0.1",
                        s.port, "secret"])
    finally:
        s.stop()
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"ok\n"
    (ver, src, _), peer, data = s.seen[0]
    assert ver == 2 and src == peer and data == b"secret\n"


def test_v2_over_a_unix_socket(tmp_path):
    path = str(tmp_path / "p.sock")
    lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lst.bind(path)
    lst.listen(1)
    lst.settimeout(20)
    p = subprocess.Popen([SOCKIT, "connect", "--proxy-header", "v2", "-U", path, "hi"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        conn, _ = lst.accept()
        conn.settimeout(10)
        hdr = read_header(conn)
        data = read_to_eof(conn)
        conn.sendall(b"ok\n")
        conn.close()
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
        lst.close()
    assert p.returncode == 0, err
    assert hdr == (2, b"", path.encode()), hdr  # the client's stream socket has no name
    assert data == b"hi\n" and out == b"ok\n"


@pytest.mark.parametrize("words,want", [
    (["--proxy-header", "v3", "h", "1"], "invalid version 'v3' for --proxy-header: expected v1 "
                                         "or v2"),
    (["--proxy-header", "2", "h", "1"], "invalid version '2' for --proxy-header"),
    (["--proxy-header", "v2", "-u", "h", "1"], "cannot be used with -u"),
])
def test_proxy_usage_errors(words, want):
    r, _ = connect(words)
    assert r.returncode == 2, r.stderr
    assert want in r.stderr.decode(), r.stderr
