"""test_tls_lib.py -- libsockit_tls from outside: its exports, an installed copy found
through pkg-config, and examples/tls_client.c + tls_server.c built from that copy,
run against each other, against `openssl s_server` / `s_client`, and against
Python's ssl module.  Certificates come from tlscerts.py (issue 15)."""
import glob
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading

import pytest

from conftest import ROOT, SOCKIT, Proc
from test_library import exported_functions
from tlscerts import tls_certs  # noqa: F401  (the session fixture)

BUILD = os.path.dirname(SOCKIT)
TLS_DECL_RE = re.compile(r"^SOCKIT_TLS_API\b[^(]*?\b(sockit_tls_\w+)\(", re.M)
HAVE_PKG_CONFIG = shutil.which("pkg-config") is not None


def readelf_needed(so):
    out = subprocess.run(["readelf", "-d", so], check=True, capture_output=True, text=True,
                         timeout=60).stdout
    return set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out))


def test_so_exports_only_the_tls_api():
    so = os.path.join(BUILD, "libsockit_tls.so")
    assert os.path.exists(so), so
    with open(os.path.join(ROOT, "include", "sockit_tls.h")) as h:
        public = set(TLS_DECL_RE.findall(h.read()))
    assert len(public) > 20, sorted(public)
    exported = exported_functions(so)
    assert exported - public == set(), f"exported but not public: {sorted(exported - public)}"
    assert public - exported == set(), f"public but not exported: {sorted(public - exported)}"


def test_libsockit_stays_libc_only():
    """OpenSSL is libsockit_tls's alone: libsockit neither links nor includes it."""
    assert not any("ssl" in n or "crypto" in n
                   for n in readelf_needed(os.path.join(BUILD, "libsockit.so")))
    needed = readelf_needed(os.path.join(BUILD, "libsockit_tls.so"))
    assert {"libsockit.so.0", "libssl.so.3", "libcrypto.so.3"} <= needed, needed
    for src in glob.glob(os.path.join(ROOT, "lib", "*.[ch]")) + \
            glob.glob(os.path.join(ROOT, "lib", "loop", "*.[ch]")):
        with open(src) as f:
            assert "openssl/" not in f.read(), src


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """`make install` into a temporary root; the TLS examples built from copies
    of their sources with `pkg-config --cflags --libs sockit-tls` alone."""
    if not HAVE_PKG_CONFIG:
        pytest.skip("pkg-config not installed")
    tmp = tmp_path_factory.mktemp("tls-install")
    dest = tmp / "root"
    subprocess.run(["make", "-s", "install", "PREFIX=/usr", f"DESTDIR={dest}"], cwd=ROOT,
                   check=True, timeout=600, stdout=subprocess.DEVNULL)
    usr = dest / "usr"
    for f in ["include/sockit_tls.h", "include/sockit.h", "lib/libsockit_tls.a",
              "lib/libsockit_tls.so", "lib/libsockit_tls.so.0", "lib/pkgconfig/sockit-tls.pc"]:
        assert (usr / f).exists(), f
    pcdir = str(usr / "lib" / "pkgconfig")
    # PKG_CONFIG_PATH, not _LIBDIR: sockit-tls requires the system's libssl.pc.
    env = dict(os.environ, PKG_CONFIG_SYSROOT_DIR=str(dest), PKG_CONFIG_PATH=pcdir)
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "sockit-tls"], env=env,
                           check=True, capture_output=True, text=True).stdout.split()
    for want in [f"-I{usr}/include", f"-L{usr}/lib", "-lsockit_tls", "-lsockit", "-lssl",
                 "-lcrypto"]:
        assert want in flags, (want, flags)
    exes = {}
    for name in ["tls_client", "tls_server"]:
        src = tmp / f"{name}.c"
        shutil.copy(os.path.join(ROOT, "examples", f"{name}.c"), src)
        exes[name] = str(tmp / name)
        subprocess.run(["cc", "-Wall", "-Werror", "-o", exes[name], str(src)] + flags,
                       check=True, timeout=120)
    exes["env"] = dict(os.environ, LD_LIBRARY_PATH=str(usr / "lib"))
    exes["libdir"] = str(usr / "lib")
    return exes


class TlsServer(Proc):
    """examples/tls_server on [host]:0; .port read from its first stdout line."""

    def __init__(self, installed, certs, pair=None, client_ca=None, host=None):
        pair = pair or certs.server
        listen = f"{host}:0" if host else "0"
        args = [installed["tls_server"], listen, pair.cert, pair.key]
        if client_ca:
            args.append(client_ca)
        super().__init__(args, env=installed["env"])
        line = self.p.stdout.readline().decode()
        m = re.fullmatch(r"port (\d+)\n", line)
        if not m:
            self.stop()
            raise AssertionError(f"tls_server said {line!r}: {self.stderr_text()}")
        self.port = int(m.group(1))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def tls_client(installed, host, port, data, *files):
    return subprocess.run([installed["tls_client"], host, str(port), data, *files],
                          capture_output=True, timeout=60, env=installed["env"])


def test_installed_client_and_server(installed, tls_certs):
    with TlsServer(installed, tls_certs) as srv:
        with open(f"/proc/{srv.pid}/maps") as maps:
            assert os.path.join(installed["libdir"], "libsockit_tls.so") in maps.read()
        for name in ["localhost", "127.0.0.1"]:
            r = tls_client(installed, name, srv.port, "hello", tls_certs.ca)
            assert r.returncode == 0, r.stderr
            assert r.stdout == b"Received: hello"
            assert b"TLSv1.3" in r.stderr and b"server certificate: CN=localhost" in r.stderr
        srv.wait_stderr(r"tls_server: TLSv1\.3 \S+, client certificate: none")


def test_ipv6(installed, tls_certs):
    with TlsServer(installed, tls_certs, host="[::1]") as srv:
        r = tls_client(installed, "::1", srv.port, "six", tls_certs.ca)
        assert r.returncode == 0, r.stderr
        assert r.stdout == b"Received: six"


@pytest.mark.parametrize("pair,message", [
    ("wrongname", "certificate verify failed: hostname mismatch"),
    ("expired", "certificate verify failed: certificate has expired"),
    ("untrusted", "certificate verify failed: unknown CA"),
])
def test_client_refuses_bad_certificates(installed, tls_certs, pair, message):
    with TlsServer(installed, tls_certs, pair=getattr(tls_certs, pair)) as srv:
        r = tls_client(installed, "localhost", srv.port, "x", tls_certs.ca)
        assert r.returncode == 1
        assert r.stderr.decode().endswith(f"tls_client: localhost: {message}\n"), r.stderr
        assert r.stdout == b""


def test_system_trust_store_does_not_know_the_test_ca(installed, tls_certs):
    with TlsServer(installed, tls_certs) as srv:
        r = tls_client(installed, "localhost", srv.port, "x")
        assert r.returncode == 1
        assert b"certificate verify failed: unknown CA" in r.stderr


def test_client_certificates(installed, tls_certs):
    with TlsServer(installed, tls_certs, client_ca=tls_certs.ca) as srv:
        r = tls_client(installed, "localhost", srv.port, "anon", tls_certs.ca)
        assert r.returncode == 1
        srv.wait_stderr(r"handshake: peer did not send a certificate")
        # The alert says why: the server's close lingered until the client's
        # FIN, so no RST destroyed it (the client sent its request at once).
        assert r.stderr.endswith(b"tls_client: localhost: peer requires a client certificate\n"), \
            r.stderr
        r = tls_client(installed, "localhost", srv.port, "me", tls_certs.ca,
                       tls_certs.client.cert, tls_certs.client.key)
        assert r.returncode == 0, r.stderr
        assert r.stdout == b"Received: me"
        srv.wait_stderr(r"client certificate: CN=sockit test client")


def test_plaintext_client_on_tls_port(installed, tls_certs):
    with TlsServer(installed, tls_certs) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            srv.wait_stderr(r"tls_server: handshake: not a TLS handshake\n", timeout=30)
        # It goes on serving.
        r = tls_client(installed, "localhost", srv.port, "after", tls_certs.ca)
        assert r.stdout == b"Received: after", r.stderr


class PyServer:
    """One connection on 127.0.0.1:0 served by Python in a thread: reads a
    request, replies "Received: " + it, then ends as `end` says: "unwrap"
    (close_notify), "fin" (no close_notify), or "plain" (no TLS at all)."""

    def __init__(self, certs, end="unwrap"):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(certs.server.cert, certs.server.key)
        self.end = end
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.lsock.settimeout(30)
        self.port = self.lsock.getsockname()[1]
        self.error = None
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        try:
            conn, _ = self.lsock.accept()
            conn.settimeout(30)
            if self.end == "plain":
                conn.sendall(b"Received: not tls\n")
                conn.close()
                return
            tls = self.ctx.wrap_socket(conn, server_side=True)
            tls.sendall(b"Received: " + tls.recv(1024))
            if self.end == "unwrap":
                tls.unwrap().close()
            else:
                tls.shutdown(socket.SHUT_WR)
                tls.recv(1024)  # until the client goes
                tls.close()
        except Exception as e:  # reported by join()
            self.error = e

    def join(self):
        self.t.join(timeout=60)
        self.lsock.close()
        if self.error is not None and self.end == "unwrap":
            raise self.error


def test_client_against_python_ssl_server(installed, tls_certs):
    py = PyServer(tls_certs)
    r = tls_client(installed, "localhost", py.port, "py", tls_certs.ca)
    py.join()
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"Received: py"


def test_client_reports_truncation(installed, tls_certs):
    py = PyServer(tls_certs, end="fin")
    r = tls_client(installed, "localhost", py.port, "cut", tls_certs.ca)
    py.join()
    assert r.stdout == b"Received: cut"
    assert r.returncode == 1
    assert b"TLS connection truncated (no close_notify)" in r.stderr


def test_client_against_plaintext_server(installed, tls_certs):
    py = PyServer(tls_certs, end="plain")
    r = tls_client(installed, "localhost", py.port, "x", tls_certs.ca)
    py.join()
    assert r.returncode == 1
    assert b"not a TLS handshake" in r.stderr, r.stderr


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_python_ssl_client_against_server(installed, tls_certs, version):
    with TlsServer(installed, tls_certs) as srv:
        ctx = ssl.create_default_context(cafile=tls_certs.ca)
        ctx.maximum_version = getattr(ssl.TLSVersion, version)
        with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                assert s.version() == version.replace("_", ".")
                s.sendall(b"from python")
                got = b""
                while True:
                    b = s.recv(2048)  # b"" only on close_notify (suppress_ragged_eofs aside)
                    if not b:
                        break
                    got += b
        assert got == b"Received: from python"
        srv.wait_stderr(version.replace("_", ".") + r" \S+, client certificate: none")


def openssl_cli():
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")


def test_client_against_openssl_s_server(installed, tls_certs):
    openssl_cli()
    s = Proc(["openssl", "s_server", "-accept", "127.0.0.1:0", "-cert", tls_certs.server.cert,
              "-key", tls_certs.server.key, "-www", "-naccept", "1"])
    try:
        port = None
        for line in iter(s.p.stdout.readline, b""):
            m = re.match(rb"ACCEPT 127\.0\.0\.1:(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        assert port, s.stderr_text()
        r = tls_client(installed, "localhost", port, "GET / HTTP/1.0\r\n\r\n", tls_certs.ca)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith(b"HTTP/1.0 200 ok\r\n"), r.stdout[:200]
    finally:
        s.stop()


def test_openssl_s_client_against_server(installed, tls_certs):
    openssl_cli()
    with TlsServer(installed, tls_certs) as srv:
        r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{srv.port}",
                            "-servername", "localhost", "-verify_hostname", "localhost",
                            "-CAfile", tls_certs.ca, "-verify_return_error", "-quiet",
                            "-ign_eof"], input=b"from s_client", capture_output=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout == b"Received: from s_client"


def test_old_protocol_refused(installed, tls_certs):
    """TLS 1.1 (allowed on the openssl side by lowering its security level)."""
    openssl_cli()
    with TlsServer(installed, tls_certs) as srv:
        r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{srv.port}",
                            "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", "-quiet"],
                           input=b"", capture_output=True, timeout=60)
        assert r.returncode != 0
        srv.wait_stderr(r"handshake: protocol version too old")
