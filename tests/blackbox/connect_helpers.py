"""connect_helpers.py -- small Python peers for the `sockit connect` tests.

Every server binds port 0 on loopback, every wait has a deadline, and every
thread is a daemon stopped at teardown.
"""
import os
import socket
import subprocess
import threading
import time

from conftest import SOCKIT


class TcpServer:
    """Accepts connections on loopback and runs handler(conn) in a thread
    per connection.  .port, .conns (accepted count), .stop()."""

    def __init__(self, handler, family=socket.AF_INET, backlog=16, port=0):
        self.handler = handler
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1" if family == socket.AF_INET else "::1", port))
        self.sock.listen(backlog)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.conns = 0
        self.errors = []
        self._stop = threading.Event()
        self.release = threading.Event()  # set by stop(): stalled handlers end
        self._threads = []
        self._t = threading.Thread(target=self._accept, daemon=True)
        self._t.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns += 1
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, conn):
        conn.settimeout(8)
        try:
            self.handler(conn)
        except Exception as e:  # recorded for the test to inspect
            self.errors.append(e)
        finally:
            conn.close()

    def stop(self):
        self._stop.set()
        self.release.set()
        self._t.join(timeout=5)
        self.sock.close()
        for t in self._threads:
            t.join(timeout=5)


def read_to_eof(conn, limit=1 << 24):
    chunks, total = [], 0
    while total < limit:
        b = conn.recv(65536)
        if not b:
            break
        chunks.append(b)
        total += len(b)
    return b"".join(chunks)


def echo_handler(conn):
    while True:
        b = conn.recv(65536)
        if not b:
            return
        conn.sendall(b)


class UdpServer:
    """A loopback UDP socket; reply(data) -> bytes or None decides the answer.
    .port, .received (list of datagrams)."""

    def __init__(self, reply, family=socket.AF_INET):
        self.reply = reply
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1" if family == socket.AF_INET else "::1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.received = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self.received.append(data)
            answer = self.reply(data)
            if answer is not None:
                self.sock.sendto(answer, peer)

    def stop(self):
        self._stop.set()
        self._t.join(timeout=5)
        self.sock.close()


def connect(args, input=None, timeout=30):
    """Runs `sockit connect ARGS` to completion; returns (CompletedProcess,
    elapsed seconds)."""
    t0 = time.monotonic()
    r = subprocess.run([SOCKIT, "connect"] + [str(a) for a in args], input=input,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return r, time.monotonic() - t0


def connect_lost_stdout(args, how, input=None, timeout=30):
    """Runs `sockit connect ARGS` with stdout lost: how is "closed" (the
    shell's >&-) or "full" (> /dev/full).  Returns (CompletedProcess with
    stdout None, elapsed seconds)."""
    t0 = time.monotonic()
    if how == "closed":
        r = subprocess.run([SOCKIT, "connect"] + [str(a) for a in args], input=input,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           preexec_fn=lambda: os.close(1), timeout=timeout)
    else:
        with open("/dev/full", "wb") as full:
            r = subprocess.run([SOCKIT, "connect"] + [str(a) for a in args], input=input,
                               stdout=full, stderr=subprocess.PIPE, timeout=timeout)
    return r, time.monotonic() - t0


def closed_port(family=socket.AF_INET, type=socket.SOCK_STREAM):
    """A loopback port with nothing bound to it (bound, read, closed)."""
    with socket.socket(family, type) as s:
        s.bind(("127.0.0.1" if family == socket.AF_INET else "::1", 0))
        return s.getsockname()[1]


def has_ipv6():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False
