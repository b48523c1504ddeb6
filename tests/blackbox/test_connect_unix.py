"""test_connect_unix.py -- `sockit connect -U PATH` (issue 17): Unix stream and
datagram sockets, by path and by @abstract name, against Python's socket
module and socat; TLS over a Unix socket; the usage errors of -U."""
import json
import os
import shutil
import socket
import ssl
import threading
import time

import pytest

from conftest import Proc
from connect_helpers import connect, read_to_eof
from tlscerts import tls_certs  # noqa: F401  (the session fixture)


class UnixServer:
    """An AF_UNIX stream (handler(conn) per connection, in a thread) or
    datagram server (reply(data) -> bytes or None) at path ("\\0name":
    abstract)."""

    def __init__(self, path, handler=None, reply=None, dgram=False):
        self.sock = socket.socket(socket.AF_UNIX,
                                  socket.SOCK_DGRAM if dgram else socket.SOCK_STREAM)
        self.sock.bind(path)
        if not dgram:
            self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.handler, self.reply = handler, reply
        self.received, self.peers, self.errors = [], [], []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._dgram if dgram else self._accept, daemon=True)
        self._t.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(8)
            try:
                self.handler(conn)
            except Exception as e:  # recorded for the test
                self.errors.append(e)
            finally:
                conn.close()

    def _dgram(self):
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self.received.append(data)
            self.peers.append(peer)
            answer = self.reply(data)
            if answer is not None:
                self.sock.sendto(answer, peer)

    def stop(self):
        self._stop.set()
        self._t.join(timeout=5)
        self.sock.close()


@pytest.fixture
def unix_server():
    started = []

    def start(*a, **kw):
        s = UnixServer(*a, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()
    for s in started:
        assert not s.errors, s.errors


def upper_after_eof(conn):
    conn.sendall(read_to_eof(conn).upper())


def echo(conn):
    while True:
        b = conn.recv(65536)
        if not b:
            return
        conn.sendall(b)


def test_stream_by_path_one_shot(unix_server, tmp_path):
    path = str(tmp_path / "s.sock")
    unix_server(path, handler=upper_after_eof)
    r, _ = connect(["-U", path, "--json", "hello", "world"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"HELLO WORLD\n"
    j = json.loads(r.stderr)
    assert j["host"] == path and j["port"] is None and j["proto"] == "unix", j
    assert j["address"] == path and j["end"] == "fin", j


def test_stream_abstract_name_verbose(unix_server):
    name = f"sockit-test-{os.getpid()}-{time.monotonic_ns()}"
    unix_server("\0" + name, handler=upper_after_eof)
    r, _ = connect(["-v", "--unix", "@" + name, "hi"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"HI\n"
    assert f"connected to @{name} (unix)".encode() in r.stderr, r.stderr


def test_stream_relay_one_mib_byte_exact(unix_server, tmp_path):
    path = str(tmp_path / "e.sock")
    unix_server(path, handler=echo)
    data = os.urandom(1 << 20)
    r, _ = connect(["-U", path], input=data, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == data


def test_missing_path_names_it(tmp_path):
    path = str(tmp_path / "nobody.sock")
    r, _ = connect(["-U", path, "x"])
    assert r.returncode == 1
    assert r.stderr == f"sockit connect: cannot connect to {path}: no such file or directory\n" \
        .encode(), r.stderr


def test_refused_when_nobody_listens(tmp_path):
    path = str(tmp_path / "dead.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)  # a socket file nobody listens on: a dead server's leftover
    s.close()
    r, _ = connect(["-U", path, "x"])
    assert r.returncode == 1
    assert b"connection refused (is the server running?)" in r.stderr, r.stderr


def test_datagrams_get_replies_through_the_autobound_name(unix_server, tmp_path):
    path = str(tmp_path / "d.sock")
    srv = unix_server(path, reply=lambda d: b"re: " + d, dgram=True)
    before = set(os.listdir(tmp_path))
    r, _ = connect(["-u", "-U", path, "--json", "one", "two"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"re: one\nre: two\n"
    assert srv.received == [b"one\n", b"two\n"]
    # the client's address: an automatic abstract name (no file to remove)
    assert all(isinstance(p, bytes) and p.startswith(b"\0") for p in srv.peers), srv.peers
    assert set(os.listdir(tmp_path)) == before
    j = json.loads(r.stderr)
    assert j["proto"] == "unix-dgram" and j["datagrams_received"] == 2, j


def test_datagram_no_reply_exit_1(unix_server, tmp_path):
    path = str(tmp_path / "q.sock")
    unix_server(path, reply=lambda d: None, dgram=True)
    r, _ = connect(["-u", "-U", path, "--reply-timeout", "300ms", "ping"])
    assert r.returncode == 1
    assert b"no reply within 300ms" in r.stderr


def test_tls_over_unix(tmp_path, tls_certs):
    path = str(tmp_path / "t.sock")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls_certs.server.cert, tls_certs.server.key)

    def handler(conn):
        tls = ctx.wrap_socket(conn, server_side=True)
        tls.sendall(read_to_eof(tls)[::-1])
        tls.unwrap()

    srv = UnixServer(path, handler=handler)
    try:
        r, _ = connect(["-U", path, "--tls", "--tls-ca", tls_certs.ca, "--tls-servername",
                        "localhost", "-n", "abc"])
    finally:
        srv.stop()
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"cba"
    assert not srv.errors


@pytest.mark.skipif(shutil.which("socat") is None, reason="socat not installed")
def test_against_socat_unix_listen(tmp_path):
    path = str(tmp_path / "socat.sock")
    p = Proc(["socat", f"UNIX-LISTEN:{path}", "SYSTEM:tr a-z A-Z"])
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.05)
        r, _ = connect(["-U", path, "from sockit"])
        assert r.returncode == 0, r.stderr
        assert r.stdout == b"FROM SOCKIT\n"
    finally:
        p.stop()


@pytest.mark.parametrize("words,want", [
    (["-U", ""], "invalid path '' for -U"),
    (["--unix", "@"], "invalid path '@' for --unix"),
    (["-U", "/" + "x" * 200], "at most 107 bytes"),
    (["-4", "-U", "/tmp/x.sock"], "cannot be used with -U"),
    (["--attempt-delay", "1s", "-U", "/tmp/x.sock"], "cannot be used with -U"),
    (["--wait-for", "1s", "-u", "-U", "/tmp/x.sock"], "cannot be used with -u"),
    (["--proxy-header", "v1", "-U", "/tmp/x.sock"], "use v2 with -U"),
])
def test_unix_usage_errors(words, want):
    r, _ = connect(words)
    assert r.returncode == 2, r.stderr
    assert want in r.stderr.decode(), r.stderr


def test_unix_operands_are_data(unix_server, tmp_path):
    """With -U there is no HOST PORT: every word is DATA."""
    path = str(tmp_path / "w.sock")
    unix_server(path, handler=upper_after_eof)
    r, _ = connect(["-U", path, "localhost", "1234"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"LOCALHOST 1234\n"
