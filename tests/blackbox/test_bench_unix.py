"""test_bench_unix.py -- `sockit bench -U PATH` (or @name): the stream modes against
Python AF_UNIX servers, `-u -U` datagrams (each thread's socket autobound so that
replies come back), the report and JSON naming the path, and the usage errors."""
import os
import socket
import threading

import pytest

from test_bench import bench

PREFIX = b"Received: "


class UnixServer:
    """mode once | line | echo over SOCK_STREAM, or udp (SOCK_DGRAM) at path
    (a filesystem path, or "@name" in the abstract namespace)."""

    def __init__(self, path, mode):
        self.path, self.mode = path, mode
        self.lock = threading.Lock()
        self.requests = 0
        self.peers = set()  # datagram clients' addresses
        addr = "\0" + path[1:] if path.startswith("@") else path
        kind = socket.SOCK_DGRAM if mode == "udp" else socket.SOCK_STREAM
        self.sock = socket.socket(socket.AF_UNIX, kind)
        self.sock.bind(addr)
        if mode == "udp":
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            target = self._dgrams
        else:
            self.sock.listen(256)
            target = self._accept
        self.sock.settimeout(0.05)  # so that stop() is seen: close wakes no accept()
        self.stopping = False
        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def _count(self, n=1):
        with self.lock:
            self.requests += n

    def _dgrams(self):
        while not self.stopping:
            try:
                data, peer = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self._count()
            self.peers.add(peer)
            try:
                self.sock.sendto(PREFIX + data, peer)
            except OSError:
                pass

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        c.settimeout(20)
        try:
            if self.mode == "once":
                data = c.recv(65536)
                self._count()
                c.sendall(PREFIX + data)
                c.shutdown(socket.SHUT_WR)
                while c.recv(4096):
                    pass
                return
            p = b"" if self.mode == "echo" else PREFIX
            buf = b""
            while True:
                data = c.recv(65536)
                if not data:
                    return
                buf += data
                *lines, buf = buf.split(b"\n")
                self._count(len(lines))
                c.sendall(b"".join(p + ln + b"\n" for ln in lines))
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self.stopping = True
        self.thread.join(timeout=5)
        self.sock.close()
        if not self.path.startswith("@") and os.path.exists(self.path):
            os.unlink(self.path)


@pytest.fixture
def unix_server():
    started = []

    def start(path, mode):
        s = UnixServer(path, mode)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.mark.parametrize("mode,extra", [
    ("once", ["-c", "4"]),
    ("line", ["-c", "3", "-P", "4"]),
    ("echo", ["-c", "2", "-P", "2", "-s", "300"]),
    ("udp", ["-c", "4", "-t", "2"]),
])
def test_every_mode(run_sockit, unix_server, tmp_path, mode, extra):
    path = str(tmp_path / f"{mode}.sock")
    srv = unix_server(path, mode)
    flags = ["-u"] if mode == "udp" else ["-m", mode]
    rc, d, err = bench(run_sockit, flags + extra + ["-n", "300", "-U", path])
    assert rc == 0 and d["errors_total"] == 0, (d, err)
    assert d["requests"] == 300 and srv.requests >= 300
    assert d["address"] == path and d["unix"] == path
    assert d["host"] is None and d["port"] is None
    if mode == "udp":
        # one autobound (abstract) name per thread: the replies' way back
        assert len(srv.peers) == 2 and all(p.startswith(b"\0") for p in srv.peers), srv.peers


@pytest.mark.parametrize("mode", ["line", "udp"])
def test_abstract_name(run_sockit, unix_server, mode):
    name = f"@sockit-bench-test-{os.getpid()}-{mode}"
    unix_server(name, mode)
    flags = ["-u"] if mode == "udp" else ["-m", mode]
    rc, d, err = bench(run_sockit, flags + ["-c", "2", "-n", "100", "-U", name])
    assert rc == 0 and d["errors_total"] == 0, (d, err)
    assert d["address"] == name


def test_text_report_names_the_path(run_sockit, unix_server, tmp_path):
    path = str(tmp_path / "t.sock")
    unix_server(path, "once")
    r = run_sockit(["bench", "-c", "2", "-n", "10", "-U", path])
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().splitlines()[0].startswith(f"sockit bench: once {path}, ")


def test_nothing_there(run_sockit, tmp_path):
    path = str(tmp_path / "none.sock")
    rc, d, err = bench(run_sockit, ["-c", "1", "-n", "5", "-U", path])
    assert rc == 1 and d["requests"] == 0 and d["errors_total"] > 0
    assert "FAILED" in err


@pytest.mark.parametrize("args,message", [
    (["-U", "/tmp/x.sock", "127.0.0.1", "9"], "-U PATH replaces HOST PORT"),
    (["-U", "/tmp/" + "x" * 120], "longer than 107 bytes"),
    (["-U", "@"], "invalid path '@' for -U"),
    (["-4", "-U", "/tmp/x.sock"], "-4 and -6 do not apply to -U"),
    (["--attempt-delay", "1s", "-U", "/tmp/x.sock"], "--attempt-delay applies to TCP"),
    (["--tls", "-U", "/tmp/x.sock"], "--tls over -U needs --tls-servername NAME"),
])
def test_usage_errors(run_sockit, args, message):
    r = run_sockit(["bench"] + args)
    assert r.returncode == 2, r.stderr
    assert message.encode() in r.stderr, r.stderr
