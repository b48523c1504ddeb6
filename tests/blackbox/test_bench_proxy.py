"""test_bench_proxy.py -- `sockit bench --proxy-header v1|v2`: every connection starts with
a PROXY header that announces its own local address and the server's, checked by a
Python server that parses the header itself (HAProxy's doc/proxy-protocol.txt) and
then answers in once or line mode.  TLS with a header: test_bench_tls.py."""
import ipaddress
import socket
import struct
import threading

import pytest

from test_bench import bench

PREFIX = b"Received: "
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def _recv_exact(c, n):
    buf = b""
    while len(buf) < n:
        d = c.recv(n - len(buf))
        if not d:
            raise EOFError(f"EOF after {len(buf)} of {n} header bytes")
        buf += d
    return buf


def read_proxy_header(c):
    """Reads exactly one PROXY header from socket c (nothing after it) and
    returns ((src ip, src port), (dst ip, dst port)), or for AF_UNIX (src
    path, dst path); raises ValueError on anything malformed."""
    first = _recv_exact(c, 5)
    if first == b"PROXY":  # v1: a line of at most 107 bytes
        line = first
        while not line.endswith(b"\r\n"):
            line += _recv_exact(c, 1)
            if len(line) > 107:
                raise ValueError("v1 line too long")
        parts = line[:-2].decode().split(" ")
        if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
            raise ValueError(f"bad v1 line {line!r}")
        src, dst = ipaddress.ip_address(parts[2]), ipaddress.ip_address(parts[3])
        if (src.version == 4) != (parts[1] == "TCP4"):
            raise ValueError(f"family mismatch {line!r}")
        return (str(src), int(parts[4])), (str(dst), int(parts[5]))
    head = first + _recv_exact(c, 7)
    if head[:12] != V2_SIG:
        raise ValueError(f"no PROXY signature: {head!r}")
    ver_cmd, fam, length = struct.unpack("!BBH", _recv_exact(c, 4))
    body = _recv_exact(c, length)
    if ver_cmd != 0x21:
        raise ValueError(f"not v2 PROXY: {ver_cmd:#x}")
    if fam == 0x11:
        s, d, sp, dp = struct.unpack("!4s4sHH", body[:12])
        return (socket.inet_ntop(socket.AF_INET, s), sp), (socket.inet_ntop(socket.AF_INET, d), dp)
    if fam == 0x21:
        s, d, sp, dp = struct.unpack("!16s16sHH", body[:36])
        return ((socket.inet_ntop(socket.AF_INET6, s), sp),
                (socket.inet_ntop(socket.AF_INET6, d), dp))
    if fam == 0x31:
        return body[:108].rstrip(b"\0"), body[108:216].rstrip(b"\0")
    raise ValueError(f"unexpected family {fam:#x}")


class ProxyServer:
    """Plain TCP (or AF_UNIX, unix=PATH) server: a PROXY header, then
    sockit's protocol in mode once or line.  .good counts headers that
    named the real peer and this server; .bad lists the others."""

    def __init__(self, mode="once", host="127.0.0.1", unix=None):
        self.mode, self.unix = mode, unix
        self.lock = threading.Lock()
        self.good, self.bad, self.requests = 0, [], 0
        if unix:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(unix)
        else:
            fam = socket.AF_INET6 if ":" in host else socket.AF_INET
            self.sock = socket.socket(fam, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((host, 0))
            self.port = self.sock.getsockname()[1]
        self.sock.listen(256)
        self.sock.settimeout(0.05)  # so that stop() is seen: close wakes no accept()
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _expected(self, c):
        if self.unix:
            return b"", self.unix.encode()  # a stream client's address is unnamed
        return c.getpeername()[:2], c.getsockname()[:2]

    def _serve(self, c):
        c.settimeout(20)
        try:
            try:
                hdr = read_proxy_header(c)
            except (ValueError, EOFError) as e:
                hdr = repr(e)
            with self.lock:
                if hdr == self._expected(c):
                    self.good += 1
                else:
                    self.bad.append((hdr, self._expected(c)))
                    return  # no reply: bench counts it
            if self.mode == "once":
                data = c.recv(65536)
                c.sendall(PREFIX + data)
                c.shutdown(socket.SHUT_WR)
                while c.recv(4096):
                    pass
                return
            buf = b""
            while True:
                data = c.recv(65536)
                if not data:
                    return
                buf += data
                *lines, buf = buf.split(b"\n")
                c.sendall(b"".join(PREFIX + ln + b"\n" for ln in lines))
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self.stopping = True
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def proxy_server():
    started = []

    def start(**kw):
        s = ProxyServer(**kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("mode,extra", [("once", ["-c", "4"]), ("line", ["-c", "3", "-P", "4"])])
@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_header_names_the_real_addresses(run_sockit, proxy_server, version, mode, extra, host):
    srv = proxy_server(mode=mode, host=host)
    rc, d, err = bench(run_sockit, ["--proxy-header", version, "-m", mode, "-n", "200"] + extra
                       + [host, srv.port])
    assert rc == 0 and d["errors_total"] == 0, (d, err, srv.bad)
    assert d["requests"] == 200
    assert not srv.bad and srv.good == (200 if mode == "once" else 3)
    assert d["proxy_header"] == version


def test_without_the_flag_the_server_sees_no_header(run_sockit, proxy_server):
    """The control: the server above does catch a missing header."""
    srv = proxy_server(mode="once")
    rc, d, err = bench(run_sockit, ["-c", "1", "-n", "2", "-w", "2s", "127.0.0.1", srv.port])
    assert rc == 1 and d["errors_total"] > 0
    assert srv.bad and srv.good == 0
    assert d["proxy_header"] is None


def test_v2_over_a_unix_socket(run_sockit, proxy_server, tmp_path):
    path = str(tmp_path / "p.sock")
    srv = proxy_server(mode="once", unix=path)
    rc, d, err = bench(run_sockit, ["--proxy-header", "v2", "-c", "2", "-n", "20", "-U", path])
    assert rc == 0 and d["errors_total"] == 0, (d, err, srv.bad)
    assert srv.good == 20 and not srv.bad


@pytest.mark.parametrize("args,message", [
    (["--proxy-header", "v3", "127.0.0.1", "9"], "invalid version 'v3' for --proxy-header: "
                                                 "expected v1 or v2"),
    (["--proxy-header", "v1", "-u", "127.0.0.1", "9"], "--proxy-header applies to TCP"),
    (["--proxy-header", "v1", "-U", "/tmp/x.sock"], "--proxy-header v1 cannot announce a Unix"),
])
def test_usage_errors(run_sockit, args, message):
    r = run_sockit(["bench"] + args)
    assert r.returncode == 2, r.stderr
    assert message.encode() in r.stderr, r.stderr
