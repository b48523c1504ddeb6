"""test_connect_tls.py -- `sockit connect --tls` (issue 15): verification by
default and every way it fails, client certificates, --tls-insecure, the EOF
table through TLS (close_notify = FIN, a bare FIN = truncation), 1 MiB
byte-exact, IPv6, the -v/--json fields, bad files.

The peers are Python's ssl module (a thread per connection, so closing with
or without close_notify is under the test's control) and `openssl s_server`.
Certificates come from tlscerts.py.
"""
import json
import os
import socket
import ssl
import subprocess
import time

import pytest

from conftest import SOCKIT, Proc, free_port
from connect_helpers import TcpServer, connect, has_ipv6, read_to_eof
from tlscerts import tls_certs  # noqa: F401  (the session fixture)


class TlsPeer:
    """A TcpServer whose handler gets an ssl-wrapped connection.  .got holds
    the plaintext each connection received before its handler ended, and
    .subjects the client certificate subjects seen."""

    def __init__(self, certs, handler, pair=None, client_ca=None, family=socket.AF_INET):
        pair = pair or certs.server
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(pair.cert, pair.key)
        if client_ca:
            self.ctx.verify_mode = ssl.CERT_REQUIRED
            self.ctx.load_verify_locations(client_ca)
        self.handler = handler
        self.got = []
        self.subjects = []
        self.tcp = TcpServer(self._serve, family=family)
        self.port = self.tcp.port

    def _serve(self, conn):
        try:
            tls = self.ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            self.got.append(None)  # the handshake failed: nothing was read
            return
        cert = tls.getpeercert()
        if cert:
            self.subjects.append(dict(x[0] for x in cert["subject"]))
        self.handler(tls, self.got)

    def stop(self):
        self.tcp.stop()


@pytest.fixture
def tls_peer(tls_certs):
    started = []

    def start(handler, **kw):
        p = TlsPeer(tls_certs, handler, **kw)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


def echo_until_close_notify(tls, got):
    """Echoes until the client's close_notify, then sends its own."""
    data = bytearray()
    while True:
        b = tls.recv(65536)
        if not b:
            break
        data += b
        tls.sendall(b)
    got.append(bytes(data))
    tls.unwrap()


def reply_after_eof(tls, got):
    """Reads to the client's close_notify, then answers: the half-close."""
    data = read_to_eof(tls)
    got.append(data)
    tls.sendall(b"got %d bytes\n" % len(data))
    tls.unwrap()


def truncate(tls, got):
    """Reads to the client's close_notify (so that close() sends a FIN, not
    a RST), sends a line, then closes TCP without close_notify."""
    got.append(read_to_eof(tls))
    tls.sendall(b"partial\n")
    tls.close()  # Python's close() sends no close_notify


def args(certs, *rest):
    return ["--tls", "--tls-ca", certs.ca] + list(rest)


# ---- Verification ----------------------------------------------------------

def test_verified_exchange_and_summary(tls_peer, tls_certs):
    p = tls_peer(reply_after_eof)
    r, _ = connect(args(tls_certs, "-v", "127.0.0.1", p.port, "hello"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"got 6 bytes\n"
    assert p.got == [b"hello\n"]
    err = r.stderr.decode()
    assert "sockit connect: TLS TLSv1.3 TLS_" in err, err
    assert "peer CN=localhost, verified" in err, err
    assert "end=fin exit=0" in err, err


def test_json_has_the_tls_fields(tls_peer, tls_certs):
    p = tls_peer(reply_after_eof)
    r, _ = connect(args(tls_certs, "--json", "localhost", p.port, "hi"))
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stderr)
    assert j["tls_version"] in ("TLSv1.3", "TLSv1.2"), j
    assert j["tls_cipher"], j
    assert j["tls_peer_subject"] == "CN=localhost", j
    assert j["tls_resumed"] is False
    assert j["tls_verified"] is True
    assert j["end"] == "fin" and j["exit"] == 0 and j["error"] is None, j


def test_plain_json_has_no_tls_fields(tls_peer, tls_certs):
    s = TcpServer(lambda c: c.sendall(b"x"))
    try:
        r, _ = connect(["--json", "127.0.0.1", s.port, "hi"])
    finally:
        s.stop()
    assert "tls_version" not in json.loads(r.stderr)


@pytest.mark.parametrize("pair,host,extra,reason", [
    ("wrongname", "127.0.0.1", [], "certificate verify failed: hostname mismatch"),
    ("server", "127.0.0.1", ["--tls-servername", "wrong.example"],
     "certificate verify failed: hostname mismatch"),
    ("expired", "localhost", [], "certificate verify failed: certificate has expired"),
    ("untrusted", "localhost", [], "certificate verify failed: unknown CA"),
])
def test_verification_failure_exit_1_before_any_data(tls_peer, tls_certs, pair, host, extra,
                                                     reason):
    p = tls_peer(echo_until_close_notify, pair=getattr(tls_certs, pair))
    r, _ = connect(args(tls_certs, "--json", *extra, host, p.port, "secret"))
    assert r.returncode == 1, r.stderr
    j = json.loads(r.stderr)
    assert j["end"] == "tls-failed", j
    assert reason in j["error"], j
    assert f"TLS handshake with 127.0.0.1:{p.port} failed" in j["error"], j
    assert j["bytes_sent"] == 0 and j["tls_version"] is None, j
    assert r.stdout == b""
    deadline = time.monotonic() + 10
    while not p.got and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b"secret" not in b"".join(g or b"" for g in p.got)


def test_unknown_ca_with_the_system_store_suggests_tls_ca(tls_peer):
    p = tls_peer(echo_until_close_notify)
    r, _ = connect(["--tls", "localhost", p.port, "x"])
    assert r.returncode == 1
    msg = r.stderr.decode()
    assert "unknown CA" in msg and "--tls-ca FILE" in msg, msg


def test_servername_overrides_host(tls_peer, tls_certs):
    p = tls_peer(reply_after_eof)
    r, _ = connect(args(tls_certs, "--tls-servername", "localhost", "127.0.0.1", p.port, "x"))
    assert r.returncode == 0, r.stderr


def test_insecure_connects_and_says_so(tls_peer, tls_certs):
    p = tls_peer(reply_after_eof, pair=tls_certs.untrusted)
    r, _ = connect(["--tls", "--tls-insecure", "-v", "127.0.0.1", p.port, "x"])
    assert r.returncode == 0, r.stderr
    err = r.stderr.decode()
    assert err.startswith("sockit connect: warning: --tls-insecure: the server's certificate "
                          "is not verified\n"), err
    assert "NOT verified" in err
    r, _ = connect(["--tls", "--tls-insecure", "--json", "127.0.0.1", p.port, "x"])
    j = json.loads(r.stderr)
    assert j["tls_verified"] is False and j["exit"] == 0, j


def test_plaintext_server_fails_the_handshake():
    s = TcpServer(lambda c: (c.recv(4096), c.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")))
    try:
        r, _ = connect(["--tls", "--tls-insecure", "127.0.0.1", s.port, "x"])
    finally:
        s.stop()
    assert r.returncode == 1
    assert b"TLS handshake with 127.0.0.1:%d failed: " % s.port in r.stderr, r.stderr


# ---- Client certificates -----------------------------------------------------

def test_client_certificate_presented(tls_peer, tls_certs):
    p = tls_peer(reply_after_eof, client_ca=tls_certs.ca)
    r, _ = connect(args(tls_certs, "--tls-cert", tls_certs.client.cert, "--tls-key",
                        tls_certs.client.key, "127.0.0.1", p.port, "me"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"got 3 bytes\n"
    assert p.subjects == [{"commonName": "sockit test client"}]


def test_client_certificate_missing_exit_1(tls_peer, tls_certs):
    p = tls_peer(reply_after_eof, client_ca=tls_certs.ca)
    r, _ = connect(args(tls_certs, "--json", "127.0.0.1", p.port, "me"))
    assert r.returncode == 1, r.stderr
    j = json.loads(r.stderr)
    assert j["exit"] == 1, j
    assert "peer requires a client certificate (present one with --tls-cert FILE)" in \
        j["error"], j
    assert r.stdout == b""


# ---- The EOF table through TLS -------------------------------------------------

def test_close_notify_is_fin_exit_0(tls_peer, tls_certs):
    def greet(tls, got):
        tls.sendall(b"hello\n")
        got.append(b"")
        tls.unwrap()

    p = tls_peer(greet)
    # stdin stays open: the server's close_notify alone ends the run
    rfd, wfd = os.pipe()  # stdin: open until the end, never written
    try:
        proc = subprocess.Popen([SOCKIT, "connect", "--json", "--tls", "--tls-ca", tls_certs.ca,
                                 "127.0.0.1", str(p.port)], stdin=rfd, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    finally:
        os.close(rfd)
        os.close(wfd)
    assert proc.returncode == 0, err
    assert out == b"hello\n"
    assert json.loads(err)["end"] == "fin"


def test_fin_without_close_notify_is_truncation_exit_1(tls_peer, tls_certs):
    p = tls_peer(truncate)
    r, _ = connect(args(tls_certs, "--json", "127.0.0.1", p.port, "x"))
    assert r.returncode == 1, r.stderr
    assert r.stdout == b"partial\n"  # what came before is written out
    j = json.loads(r.stderr)
    assert j["end"] == "truncated", j
    assert "without close_notify" in j["error"], j
    r, _ = connect(args(tls_certs, "127.0.0.1", p.port, "x"))
    assert r.returncode == 1
    assert r.stderr.startswith(b"sockit connect: 127.0.0.1:%d closed the connection without "
                               b"close_notify: TLS connection truncated" % p.port), r.stderr


def test_stdin_eof_sends_close_notify_and_keeps_reading(tls_peer, tls_certs):
    p = tls_peer(reply_after_eof)
    r, _ = connect(args(tls_certs, "127.0.0.1", p.port), input=b"line 1\nline 2\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"got 14 bytes\n"


def test_one_mib_byte_exact_through_tls(tls_peer, tls_certs):
    p = tls_peer(echo_until_close_notify)
    data = os.urandom(1 << 20)
    r, _ = connect(args(tls_certs, "-v", "127.0.0.1", p.port), input=data, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == data
    assert p.got == [data]
    assert b"sent 1048576 bytes, received 1048576 bytes" in r.stderr


@pytest.mark.skipif(not has_ipv6(), reason="no IPv6 loopback")
def test_ipv6_verified(tls_peer, tls_certs):
    p = tls_peer(reply_after_eof, family=socket.AF_INET6)
    r, _ = connect(args(tls_certs, "--json", "::1", p.port, "v6"))
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stderr)
    assert j["address"] == f"[::1]:{p.port}" and j["tls_verified"] is True, j


def test_zero_io_checks_the_handshake(tls_peer, tls_certs):
    ok = tls_peer(lambda tls, got: got.append(read_to_eof(tls)))
    r, _ = connect(args(tls_certs, "-z", "127.0.0.1", ok.port))
    assert r.returncode == 0, r.stderr
    bad = tls_peer(lambda tls, got: None, pair=tls_certs.wrongname)
    r, _ = connect(args(tls_certs, "-z", "127.0.0.1", bad.port))
    assert r.returncode == 1
    assert b"hostname mismatch" in r.stderr


# ---- openssl s_server ----------------------------------------------------------

def test_against_openssl_s_server(tls_certs):
    port = free_port()
    srv = Proc(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert",
                tls_certs.server.cert, "-key", tls_certs.server.key, "-naccept", "1", "-rev"])
    try:
        # --wait-for: refused until s_server listens; its first connection is the one used
        r, _ = connect(args(tls_certs, "--json", "--wait-for", "20s", "localhost", port,
                            "hello"))
        assert r.returncode == 0, r.stderr
        assert r.stdout == b"olleh\n"
        assert json.loads(r.stderr)["tls_peer_subject"] == "CN=localhost"
    finally:
        srv.stop()


# ---- Usage --------------------------------------------------------------------

def test_bad_files_are_usage_errors_naming_them(tls_certs, tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    missing = str(tmp_path / "missing.pem")
    cases = [
        (["--tls-ca", missing], f"invalid file '{missing}' for --tls-ca: "),
        (["--tls-ca", str(junk)], f"invalid file '{junk}' for --tls-ca: "),
        (["--tls-cert", str(junk), "--tls-key", tls_certs.client.key],
         f"invalid file '{junk}' for --tls-cert: "),
        (["--tls-cert", tls_certs.client.cert, "--tls-key", missing],
         f"invalid file '{missing}' for --tls-key: "),
        (["--tls-cert", tls_certs.client.cert, "--tls-key", tls_certs.server.key],
         f"for --tls-cert: private key does not match"),
    ]
    for extra, want in cases:
        r, _ = connect(["--tls"] + extra + ["127.0.0.1", "1", "x"])
        assert r.returncode == 2, (extra, r.stderr)
        assert r.stderr.decode().startswith("sockit connect: ") and want in r.stderr.decode(), \
            (extra, r.stderr)


@pytest.mark.parametrize("words,want", [
    (["--tls-ca", "x", "h", "1"], "apply to --tls only; add --tls"),
    (["--tls", "-u", "h", "1"], "cannot be used with -u"),
    (["--tls", "--tls-key", "k", "h", "1"], "--tls-key needs --tls-cert"),
    (["--tls", "--tls-insecure", "--tls-ca", "x", "h", "1"], "--tls-ca would not be used"),
    (["--tls", "-U", "/tmp/x.sock"], "needs --tls-servername NAME"),
    (["--tls", "--tls-servername", "", "h", "1"], "invalid value '' for --tls-servername"),
])
def test_tls_usage_errors(words, want):
    r, _ = connect(words)
    assert r.returncode == 2, r.stderr
    assert want in r.stderr.decode(), r.stderr
