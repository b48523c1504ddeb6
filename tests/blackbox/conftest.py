"""conftest.py -- shared fixtures: run the real sockit binary, read its port.

Every wait has a deadline; every process we start is stopped by its PID.
SOCKIT_BIN selects the binary (default: build/sockit).
"""
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOCKIT = os.environ.get("SOCKIT_BIN", os.path.join(ROOT, "build", "sockit"))
TUTORIAL_SERVER = os.path.join(ROOT, "bench", "peers", "tutorial_server.py")

LISTEN_RE = re.compile(r"listening on (tcp|udp) (\S+):(\d+) \((\w+)\)")


class Proc:
    """A started process whose stderr is collected by a reader thread."""

    def __init__(self, args, stdin=subprocess.DEVNULL, env=None, preexec_fn=None):
        self.args = args
        self.p = subprocess.Popen(args, stdin=stdin, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env,
                                  preexec_fn=preexec_fn)
        self.pid = self.p.pid
        self._err = []
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        self._t = threading.Thread(target=self._read_err, daemon=True)
        self._t.start()

    def _read_err(self):
        for line in iter(self.p.stderr.readline, b""):
            with self._cv:
                self._err.append(line.decode("utf-8", "replace"))
                self._cv.notify_all()
        with self._cv:
            self._cv.notify_all()

    def stderr_text(self):
        with self._lock:
            return "".join(self._err)

    def wait_stderr(self, pattern, timeout=10.0):
        """Waits until stderr matches pattern (a regex); returns the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                m = rx.search("".join(self._err))
                if m:
                    return m
                left = deadline - time.monotonic()
                if left <= 0 or (self.p.poll() is not None and not self._t.is_alive()):
                    raise AssertionError(
                        f"stderr never matched {pattern!r} within {timeout}s; "
                        f"exit={self.p.poll()} stderr:\n{''.join(self._err)}")
                self._cv.wait(min(left, 0.1))

    def signal(self, sig):
        if self.p.poll() is None:
            os.kill(self.pid, sig)

    def wait(self, timeout=10.0):
        return self.p.wait(timeout=timeout)

    def stop(self):
        if self.p.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.p.wait(timeout=10)
        self.p.stdout.close()
        self._t.join(timeout=5)
        self.p.stderr.close()


class Server(Proc):
    """`sockit serve` started with -p 0; .port / .udp_port read from stderr."""

    def __init__(self, args, env=None, preexec_fn=None, udp=False, tcp=True):
        super().__init__([SOCKIT, "serve", "-p", "0"] + list(args), env=env,
                         preexec_fn=preexec_fn)
        self.port = self.udp_port = None
        try:
            if tcp:
                m = self.wait_stderr(r"listening on tcp (\S+):(\d+) ")
                self.host, self.port = m.group(1), int(m.group(2))
            if udp:
                m = self.wait_stderr(r"listening on udp (\S+):(\d+) ")
                self.udp_host, self.udp_port = m.group(1), int(m.group(2))
        except Exception:
            self.stop()
            raise

    @property
    def addr(self):
        host = self.host.strip("[]")
        return (host, self.port)


@pytest.fixture
def serve():
    """Factory: serve(['--mode', 'line']) -> Server, stopped at teardown."""
    started = []

    def start(args=(), **kw):
        s = Server(args, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def run_sockit():
    """Runs `sockit ARGS...` to completion with a deadline; returns
    CompletedProcess with bytes stdout/stderr."""

    def run(args, input=None, timeout=30, env=None):
        return subprocess.run([SOCKIT] + list(args), input=input,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout, env=env)
    return run


@pytest.fixture
def tutorial_server():
    """The tutorial's own Python server on a free port: the reference."""
    p = subprocess.Popen([sys.executable, TUTORIAL_SERVER, "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = p.stdout.readline().decode()
        m = re.search(r"port (\d+)", line)
        assert m, f"tutorial server said {line!r}"
        yield ("127.0.0.1", int(m.group(1)))
    finally:
        p.kill()
        p.wait(timeout=10)
        p.stdout.close()
        p.stderr.close()


def exchange(addr, data, timeout=10.0, family=socket.AF_INET, shut_wr=False):
    """The tutorial's client: connect, sendall(data), read to EOF."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(addr)
        if data:
            s.sendall(data)
        if shut_wr:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)


def free_port(family=socket.AF_INET, type=socket.SOCK_STREAM):
    """A port that was free a moment ago (for tests that must pre-choose)."""
    with socket.socket(family, type) as s:
        s.bind(("127.0.0.1" if family == socket.AF_INET else "::1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return pred()
