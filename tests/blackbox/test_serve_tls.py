"""test_serve_tls.py -- `sockit serve --tls-cert/--tls-key/--tls-client-ca` (issue 15)
against real TLS peers: Python's ssl module and `openssl s_client`.  Certificates
come from tlscerts.py.  Every mode, both backends, IPv4 and IPv6, client
certificates, each kind of failed handshake closed and counted by reason, 1 MiB
echoed byte-exact, SIGHUP reloading the certificate under load, bad files at
startup, and session resumption."""
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest

from conftest import (SOCKIT, connect, recv_exact, recv_to_eof, reset_close, wait_until)
from tlscerts import tls_certs  # noqa: F401  (the session fixture)

PREFIX = b"Received: "
BACKENDS = ["io_uring", "epoll"]
HAVE_OPENSSL = shutil.which("openssl") is not None
HAVE_STRACE = shutil.which("strace") is not None


def tls_args(certs, client_ca=False):
    args = ["--tls-cert", certs.server.cert, "--tls-key", certs.server.key]
    if client_ca:
        args += ["--tls-client-ca", certs.ca]
    return args


def client_ctx(certs, cert=None):
    ctx = ssl.create_default_context(cafile=certs.ca)
    if cert is not None:
        ctx.load_cert_chain(cert.cert, cert.key)
    return ctx


def tls_connect(addr, certs, cert=None, session=None, ctx=None, timeout=10.0):
    """A TLS connection to serve, verified against the test CA (name localhost)."""
    ctx = ctx or client_ctx(certs, cert)
    raw = connect(addr, timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname="localhost", session=session)
    except BaseException:
        raw.close()
        raise


def tls_recv_to_eof(s, timeout=10.0):
    """Reads until close_notify (or the FIN)."""
    deadline = time.monotonic() + timeout
    chunks = []
    while True:
        s.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            b = s.recv(65536)
        except ssl.SSLZeroReturnError:
            break
        if not b:
            break
        chunks.append(b)
    return b"".join(chunks)


def tls_once(addr, certs, data, **kw):
    with tls_connect(addr, certs, **kw) as s:
        s.sendall(data)
        return tls_recv_to_eof(s)


def client_hello(certs):
    """The bytes of a real ClientHello (Python's, for localhost)."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_ctx(certs).wrap_bio(inc, out, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


# ---- The modes, the peers, the backends, the families --------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_once_over_tls(serve, tls_certs, backend):
    """once: `Received: ` + the first read of plaintext, then close_notify."""
    srv = serve(tls_args(tls_certs) + ["--backend", backend])
    for i in range(5):
        assert tls_once(srv.addr, tls_certs, b"hello %d" % i) == PREFIX + b"hello %d" % i
    c = srv.counters()
    assert c["accepted"] == 5 and c["closed_done"] == 5, c
    assert c["bytes_in"] == 5 * 7 and c["bytes_out"] == 5 * (len(PREFIX) + 7), c


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["line", "echo"])
def test_line_and_echo_over_tls(serve, tls_certs, backend, mode):
    srv = serve(tls_args(tls_certs) + ["--backend", backend, "-m", mode])
    with tls_connect(srv.addr, tls_certs) as s:
        for i in range(20):
            line = b"line %d\n" % i
            s.sendall(line)
            want = (PREFIX if mode == "line" else b"") + line
            assert recv_exact(s, len(want)) == want
        # pipelined
        s.sendall(b"a\nb\nc\n")
        want = b"".join((PREFIX if mode == "line" else b"") + x for x in (b"a\n", b"b\n", b"c\n"))
        assert recv_exact(s, len(want)) == want
        s.unwrap()  # our close_notify; the server answers with its own and closes
    c = srv.wait_counter("closed_eof", 1)
    assert c["closed_eof"] == 1 and c["active"] == 0, c


def test_ipv6(serve, tls_certs):
    srv = serve(tls_args(tls_certs) + ["-6"])
    assert srv.addr[0] == "::1"
    assert tls_once(srv.addr, tls_certs, b"six") == PREFIX + b"six"


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_mib_echo_byte_exact(serve, tls_certs, backend):
    srv = serve(tls_args(tls_certs) + ["--backend", backend, "-m", "echo"])
    data = os.urandom(1 << 20)
    got = []
    # one thread: an SSL object is not for concurrent reads and writes
    with tls_connect(srv.addr, tls_certs, timeout=30) as s:
        for off in range(0, len(data), 32768):
            chunk = data[off:off + 32768]
            s.sendall(chunk)
            got.append(recv_exact(s, len(chunk), timeout=30))
    assert b"".join(got) == data


@pytest.mark.skipif(not HAVE_OPENSSL, reason="openssl not installed")
def test_openssl_s_client(serve, tls_certs):
    """A peer nobody here wrote: verification on, SNI, error on a bad chain."""
    srv = serve(tls_args(tls_certs) + ["-v"])
    out = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{srv.port}", "-servername", "localhost",
         "-CAfile", tls_certs.ca, "-verify_return_error", "-quiet"],
        input=b"from s_client\n", capture_output=True, timeout=30)
    assert out.stdout == PREFIX + b"from s_client\n", out
    # the debug lines show version and cipher
    srv.wait_stderr(r"TLS fd \d+ from 127\.0\.0\.1:\d+: TLSv1\.3 TLS_\w+")


# ---- Client certificates --------------------------------------------------------

def test_client_certificate_required(serve, tls_certs):
    srv = serve(tls_args(tls_certs, client_ca=True) + ["-v"])
    # with one: served, and its subject logged
    assert tls_once(srv.addr, tls_certs, b"cert", cert=tls_certs.client) == PREFIX + b"cert"
    srv.wait_stderr(r"client CN=sockit test client")
    # without: the TLS 1.3 client finishes its side, then reads the refusal
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        with tls_connect(srv.addr, tls_certs) as s:
            s.sendall(b"no cert")
            data = tls_recv_to_eof(s)
            assert data == b"", data
            raise ssl.SSLError("closed without a reply")
    c = srv.wait_counter("closed_tls_cert", 1)
    assert c["closed_tls_cert"] == 1 and c["closed_done"] == 1, c
    srv.wait_stderr(r"TLS handshake with 127\.0\.0\.1:\d+ failed: peer did not send a certificate")


# ---- Failed handshakes: each closed and counted under its own reason -----------

def test_plaintext_client_closed_and_counted(serve, tls_certs):
    srv = serve(tls_args(tls_certs))
    with connect(srv.addr) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        try:
            data = recv_to_eof(s)
        except ConnectionResetError:
            data = b""
        assert PREFIX not in data, data
    c = srv.wait_counter("closed_tls_plaintext", 1)
    assert c["closed_tls_plaintext"] == 1 and c["closed_done"] == 0, c
    srv.wait_stderr(r"TLS handshake with 127\.0\.0\.1:\d+ failed: not a TLS handshake")
    # and everyone else is served meanwhile
    assert tls_once(srv.addr, tls_certs, b"ok") == PREFIX + b"ok"


def test_garbage_handshake_closed_and_counted(serve, tls_certs):
    srv = serve(tls_args(tls_certs))
    with connect(srv.addr) as s:
        # a TLS handshake record whose content is garbage
        body = os.urandom(200)
        s.sendall(b"\x16\x03\x01" + len(body).to_bytes(2, "big") + body)
        try:
            data = recv_to_eof(s)
        except ConnectionResetError:
            data = b""
        assert PREFIX not in data
    c = srv.wait_counter("closed_tls_handshake", 1)
    assert c["closed_tls_handshake"] == 1, c
    assert tls_once(srv.addr, tls_certs, b"ok") == PREFIX + b"ok"


@pytest.mark.parametrize("backend", BACKENDS)
def test_stopped_mid_handshake_closed_by_idle_timeout(serve, tls_certs, backend):
    srv = serve(tls_args(tls_certs) + ["--backend", backend, "-i", "1s", "-m", "line"])
    hello = client_hello(tls_certs)
    with connect(srv.addr) as s:
        s.sendall(hello[:len(hello) // 2])
        start = time.monotonic()
        try:
            data = recv_to_eof(s, timeout=15)
        except ConnectionResetError:
            data = b""
        assert data == b""
        assert time.monotonic() - start < 10
    c = srv.wait_counter("closed_tls_timeout", 1)
    assert c["closed_tls_timeout"] == 1 and c["closed_timeout"] == 0, c


def test_reset_and_eof_mid_handshake_counted(serve, tls_certs):
    srv = serve(tls_args(tls_certs) + ["-m", "line"])
    hello = client_hello(tls_certs)
    s = connect(srv.addr)
    s.sendall(hello[:40])
    time.sleep(0.2)
    reset_close(s)
    with connect(srv.addr) as s2:
        s2.sendall(hello[:40])
        time.sleep(0.2)
        s2.shutdown(socket.SHUT_WR)
        try:
            recv_to_eof(s2)
        except ConnectionResetError:
            pass
    c = srv.wait_counter("closed_tls_reset", 2)
    assert c["closed_tls_reset"] == 2 and c["active"] == 0, c


# ---- SIGHUP: a new certificate for new connections, under load ----------------

def peer_cn(s):
    cert = s.getpeercert()
    return dict(x[0] for x in cert["subject"])["commonName"]


def test_sighup_reload_under_load(serve, tls_certs, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    shutil.copy(tls_certs.server.cert, cert)
    shutil.copy(tls_certs.server.key, key)
    srv = serve(["--tls-cert", str(cert), "--tls-key", str(key), "-m", "line"])
    # a connection open across the reload keeps working
    held = tls_connect(srv.addr, tls_certs)
    assert peer_cn(held) == "localhost"
    stop, errors, done = threading.Event(), [], [0]

    def load():
        while not stop.is_set():
            try:
                with tls_connect(srv.addr, tls_certs) as s:
                    s.sendall(b"x\n")
                    assert recv_exact(s, len(PREFIX) + 2) == PREFIX + b"x\n"
                done[0] += 1
            except Exception as e:  # noqa: BLE001 -- every failure is reported
                errors.append(repr(e))
    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        shutil.copy(tls_certs.server2.cert, cert)
        shutil.copy(tls_certs.server2.key, key)
        srv.signal(signal.SIGHUP)
        srv.wait_stderr(r"SIGHUP: reloaded the certificate")
        assert wait_until(lambda: peer_cn_of_new(srv, tls_certs) == "localhost-2", timeout=10)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert errors == [], errors[:5]
    assert done[0] > 10, done
    held.sendall(b"still\n")
    assert recv_exact(held, len(PREFIX) + 6) == PREFIX + b"still\n"
    assert peer_cn(held) == "localhost"
    held.close()
    # a reload that fails keeps the pair in use and says why
    shutil.copy(tls_certs.server.key, key)  # key of the other certificate
    srv.signal(signal.SIGHUP)
    srv.wait_stderr(r"SIGHUP: cannot reload \(--tls-key \S+key\.pem: [^)]*\); keeping")
    assert peer_cn_of_new(srv, tls_certs) == "localhost-2"
    with open(cert, "w") as f:
        f.write("not a certificate\n")
    srv.signal(signal.SIGHUP)
    srv.wait_stderr(r"SIGHUP: cannot reload \(--tls-cert \S+cert\.pem: ")
    assert peer_cn_of_new(srv, tls_certs) == "localhost-2"


def peer_cn_of_new(srv, certs):
    with tls_connect(srv.addr, certs) as s:
        cn = peer_cn(s)
        s.sendall(b"q\n")
        recv_exact(s, len(PREFIX) + 2)
        return cn


# ---- Startup: bad files are usage errors naming the file ----------------------

@pytest.mark.parametrize("case", ["missing-cert", "garbage-cert", "mismatch", "missing-ca",
                                  "key-only"])
def test_bad_files_at_startup(tls_certs, tmp_path, case):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    s = tls_certs.server
    args, want = {
        "missing-cert": (["--tls-cert", str(tmp_path / "nope.pem"), "--tls-key", s.key],
                         r"--tls-cert \S+nope\.pem: no such file"),
        "garbage-cert": (["--tls-cert", str(garbage), "--tls-key", s.key],
                         r"--tls-cert \S+garbage\.pem: no certificate in the file"),
        "mismatch": (["--tls-cert", s.cert, "--tls-key", tls_certs.server2.key],
                     r"--tls-key \S+server2\.key: private key does not match"),
        "missing-ca": (tls_args(tls_certs) + ["--tls-client-ca", str(tmp_path / "ca.pem")],
                       r"--tls-client-ca \S+ca\.pem: no such file"),
        "key-only": (["--tls-key", s.key], r"--tls-key needs --tls-cert"),
    }[case]
    out = subprocess.run([SOCKIT, "serve", "-p", "0"] + args, capture_output=True, timeout=30)
    err = out.stderr.decode()
    assert out.returncode == 2, err
    assert re.search(want, err), err
    assert "listening" not in err


def test_udp_says_it_stays_plaintext(serve, tls_certs):
    srv = serve(tls_args(tls_certs) + ["--udp"], udp=True)
    srv.wait_stderr(r"warn: TLS is for TCP only: UDP is served in plaintext")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(10)
        u.sendto(b"dgram", srv.udp_addr)
        assert u.recv(100) == PREFIX + b"dgram"


# ---- Resumption ---------------------------------------------------------------

def test_session_resumption(serve, tls_certs):
    srv = serve(tls_args(tls_certs) + ["-v"])
    ctx = client_ctx(tls_certs)
    with tls_connect(srv.addr, tls_certs, ctx=ctx) as s:
        s.sendall(b"first")
        assert tls_recv_to_eof(s) == PREFIX + b"first"  # the ticket came before
        session = s.session
        assert not s.session_reused
    assert session is not None
    with tls_connect(srv.addr, tls_certs, ctx=ctx, session=session) as s:
        s.sendall(b"again")
        assert tls_recv_to_eof(s) == PREFIX + b"again"
        assert s.session_reused
    srv.wait_stderr(r"TLS fd \d+ from \S+: TLSv1\.3 \S+, resumed")



@pytest.mark.parametrize("backend", BACKENDS)
def test_once_closes_after_close_notify_without_waiting(serve, tls_certs, backend):
    """once over TLS: after the reply and its close_notify the server closes
    (FIN) though the client never answers the close_notify, and counts it as
    done, not reset; it does not wait for the idle timeout (60 s here)."""
    srv = serve(tls_args(tls_certs) + ["--backend", backend, "-i", "60s"])
    with tls_connect(srv.addr, tls_certs) as s:
        s.sendall(b"quick")
        assert tls_recv_to_eof(s) == PREFIX + b"quick"
        # Below TLS, the FIN comes next; we send nothing more.
        with socket.socket(fileno=os.dup(s.fileno())) as raw:
            assert recv_to_eof(raw, timeout=10) == b""
    c = srv.wait_counter("closed_done", 1)
    assert c["active"] == 0 and c["closed_reset"] == 0, c


@pytest.mark.skipif(not HAVE_OPENSSL, reason="no openssl CLI")
def test_one_session_ticket_per_handshake(serve, tls_certs):
    """One TLS 1.3 ticket per handshake (OpenSSL's default is two): a client
    that reconnects resumes with it and gets the next one then."""
    srv = serve(tls_args(tls_certs))
    r = subprocess.run(["openssl", "s_client", "-connect", "%s:%d" % srv.addr,
                        "-CAfile", tls_certs.ca, "-servername", "localhost", "-tls1_3",
                        "-ign_eof"], input=b"ticket\n", capture_output=True, timeout=30)
    out = r.stdout.decode(errors="replace")
    assert "Received: ticket" in out, out
    assert out.count("Post-Handshake New Session Ticket arrived") == 1, out


def data_segments_in(s):
    """How many segments with data this TCP socket received (tcp_info's
    tcpi_data_segs_in, Linux 4.6+)."""
    info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return struct.unpack_from("I", info, 152)[0]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("version,full,resumed", [("1.3", 2, 2), ("1.2", 3, 2)])
def test_once_tls_reply_rides_in_one_segment(serve, tls_certs, backend, version, full, resumed):
    """once over TLS: what the server writes after its first flight -- the
    session ticket (TLS 1.3), the reply's record, the close_notify -- and its
    FIN leave in one segment, not one each, even when the request comes
    after the client's Finished (Python sends them apart).  TLS 1.2's full
    handshake has a second flight, which must go first: the client waits
    for it before it sends the request.  The tickets work."""
    srv = serve(tls_args(tls_certs) + ["--backend", backend])
    ctx = client_ctx(tls_certs)
    ctx.minimum_version = ctx.maximum_version = (
        ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2)
    session = None
    for i in range(4):
        with tls_connect(srv.addr, tls_certs, ctx=ctx, session=session) as s:
            s.sendall(b"seg %d" % i)
            assert tls_recv_to_eof(s) == PREFIX + b"seg %d" % i
            assert s.session_reused == (i > 0)
            session = s.session
            with socket.socket(fileno=os.dup(s.fileno())) as raw:
                assert recv_to_eof(raw, timeout=10) == b""  # the FIN came with it
                want = resumed if i > 0 else full
                assert data_segments_in(raw) == want, (i, data_segments_in(raw))
    c = srv.wait_counter("closed_done", 4)
    assert c["closed_done"] == 4 and c["closed_reset"] == 0, c


def handshake_bio(sock, ctx):
    """A TLS 1.3 client over memory BIOs: the handshake done on sock, the
    client's Finished not sent yet.  Returns (obj, incoming, outgoing)."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    while True:
        try:
            obj.do_handshake()
            return obj, inc, out
        except ssl.SSLWantReadError:
            sock.sendall(out.read())
            data = sock.recv(65536)
            assert data, "the server closed mid-handshake"
            inc.write(data)


@pytest.mark.parametrize("backend", BACKENDS)
def test_once_tls_request_with_the_finished(serve, tls_certs, backend):
    """The client's Finished and its request in one segment: the server
    reads them together (read-ahead) and answers the request it already
    holds, without waiting for more input."""
    srv = serve(tls_args(tls_certs) + ["--backend", backend, "-i", "60s"])
    ctx = client_ctx(tls_certs)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    with connect(srv.addr, timeout=10) as sock:
        obj, inc, out = handshake_bio(sock, ctx)
        obj.write(b"together")
        sock.sendall(out.read())  # Finished + the request's record
        got = b""
        while True:
            try:
                chunk = obj.read(65536)
                if not chunk:
                    break  # the close_notify
                got += chunk
            except ssl.SSLWantReadError:
                data = sock.recv(65536)
                assert data, "the server closed before its close_notify"
                inc.write(data)
            except ssl.SSLZeroReturnError:
                break
        assert got == PREFIX + b"together"
    c = srv.wait_counter("closed_done", 1)
    assert c["closed_done"] == 1, c


@pytest.mark.skipif(not HAVE_STRACE, reason="no strace")
def test_once_tls_system_calls(serve, tls_certs):
    """once over TLS, TLS 1.3, a Python client: per connection the server
    receives 5 times at most (the ClientHello, the Finished, the request,
    and two -EAGAIN; OpenSSL alone reads each record's header and body
    apart: 11) and sends twice (the flight; then ticket, reply and
    close_notify together)."""
    srv = serve(tls_args(tls_certs) + ["--workers", "1"])
    st = subprocess.Popen(["strace", "-f", "-qq", "-c", "-e", "trace=recvfrom,sendto",
                           "-p", str(srv.pid)], stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)  # attached to every thread
        if st.poll() is not None:
            pytest.skip("strace cannot attach here: " + st.stderr.read())
        n = 8
        for i in range(n):
            assert tls_once(srv.addr, tls_certs, b"sys %d" % i) == PREFIX + b"sys %d" % i
        srv.wait_counter("closed_done", n)
    finally:
        st.send_signal(signal.SIGINT)
        report = st.communicate(timeout=30)[1]
    calls = {m.group(2): int(m.group(1)) for m in
             re.finditer(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$", report, re.M)}
    assert calls.get("recvfrom", 0) <= 5 * n and calls.get("sendto", 0) == 2 * n, report


@pytest.mark.parametrize("mode", ["once", "line"])
def test_refusal_alert_reaches_the_client(serve, tls_certs, mode):
    """A client without the required certificate reads the alert that says
    why (TLS 1.3: after its side of the handshake), in every mode: once
    mode keeps what the handshake writes until it goes on, and a failure
    must still send it."""
    srv = serve(tls_args(tls_certs, client_ca=True) + ["-m", mode])
    with pytest.raises(ssl.SSLError) as e:
        with tls_connect(srv.addr, tls_certs) as s:
            s.sendall(b"no cert\n")
            tls_recv_to_eof(s)
    assert "CERTIFICATE_REQUIRED" in str(e.value), e.value
    srv.wait_counter("closed_tls_cert", 1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_once_tls_large_reply_to_a_slow_reader(serve, tls_certs, backend):
    """once over TLS with a reply larger than what is kept together (the
    first read is one record, up to 16 KiB, and the prefix makes the reply
    two records) and a client whose small window takes it slowly: the
    reply arrives whole, byte-exact, then the close_notify."""
    srv = serve(tls_args(tls_certs) + ["--backend", backend, "--max-bytes", "64k"])
    request = bytes((i * 7 + i // 251) % 251 for i in range(48 * 1024))
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window
    raw.settimeout(10)
    raw.connect(srv.addr)
    with client_ctx(tls_certs).wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(request)
        time.sleep(1.0)  # the server's reply fills the window and waits
        got = tls_recv_to_eof(s, timeout=30)
    assert got.startswith(PREFIX) and len(got) > len(PREFIX) + 8 * 1024, len(got)
    assert got[len(PREFIX):] == request[:len(got) - len(PREFIX)]
    c = srv.wait_counter("closed_done", 1)
    assert c["bytes_out"] == len(got), c
