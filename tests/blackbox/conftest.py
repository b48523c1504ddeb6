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
# -U PATH: "listening on unix /tmp/x.sock (once)", "... unixgram /tmp/x.sock.dgram ..."
UNIX_LISTEN_RE = re.compile(r"listening on (unix|unixgram) (\S+) \((\w+)")

# The counters line of `sockit serve` (text log format), and its keys.
COUNTERS_RE = re.compile(r"sockit: counters ([^\n]*)")
COUNTER_KEYS = ("accepted", "active", "refused_maxconns", "refused_perip",
                "refused_denied", "closed_done", "closed_eof", "closed_reset",
                "closed_timeout", "closed_limit", "bytes_in", "bytes_out",
                "dgrams_in", "dgrams_out", "dgrams_dropped_port",
                "dgrams_dropped_rate", "cpu_yields",
                # issue 15 (TLS) and 16 (PROXY protocol), appended
                "closed_tls_plaintext", "closed_tls_handshake", "closed_tls_cert",
                "closed_tls_timeout", "closed_tls_reset", "refused_proxy_from",
                "closed_proxy_missing", "closed_proxy_malformed", "closed_proxy_oversized",
                "closed_proxy_truncated", "closed_proxy_timeout", "proxy_local")


def parse_counters(rest):
    """'accepted=1 active=0 ...' -> {'accepted': 1, 'active': 0, ...}."""
    out = {}
    for tok in rest.split():
        k, sep, v = tok.partition("=")
        assert sep and v.isdigit(), f"bad counters token {tok!r} in {rest!r}"
        out[k] = int(v)
    return out


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
        """Waits for the exit; then for the stderr reader to reach EOF, so
        stderr_text() holds everything the process wrote."""
        rc = self.p.wait(timeout=timeout)
        self._t.join(timeout=5)
        return rc

    def stop(self):
        if self.p.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.p.wait(timeout=10)
        self.p.stdout.close()
        self._t.join(timeout=5)
        self.p.stderr.close()


class Server(Proc):
    """`sockit serve` started with -p 0; .port / .udp_port read from stderr.
    With unix=PATH: `-U PATH` instead; .path / .dgram_path from stderr."""

    def __init__(self, args, env=None, preexec_fn=None, udp=False, tcp=True, unix=None):
        args = list(args)
        # make test runs the suite once on serve's default backend and once
        # on the other: SOCKIT_TEST_BACKEND=epoll
        backend = os.environ.get("SOCKIT_TEST_BACKEND")
        if backend and "--backend" not in args:
            args += ["--backend", backend]
        where = ["-U", unix] if unix is not None else ["-p", "0"]
        super().__init__([SOCKIT, "serve"] + where + args, env=env,
                         preexec_fn=preexec_fn)
        self.port = self.udp_port = self.path = self.dgram_path = None
        try:
            if unix is not None:
                if tcp:
                    self.path = self.wait_stderr(r"listening on unix (\S+) \(").group(1)
                if udp:
                    self.dgram_path = self.wait_stderr(
                        r"listening on unixgram (\S+) \(").group(1)
            if unix is None and tcp:
                m = self.wait_stderr(r"listening on tcp (\S+):(\d+) ")
                self.host, self.port = m.group(1), int(m.group(2))
            if unix is None and udp:
                m = self.wait_stderr(r"listening on udp (\S+):(\d+) ")
                self.udp_host, self.udp_port = m.group(1), int(m.group(2))
        except Exception:
            self.stop()
            raise

    @property
    def addr(self):
        host = self.host.strip("[]")
        return (host, self.port)

    @property
    def udp_addr(self):
        return (self.udp_host.strip("[]"), self.udp_port)

    def counters(self, timeout=10.0):
        """Sends SIGUSR1 and returns the counters line it prints, as a dict."""
        n = len(COUNTERS_RE.findall(self.stderr_text()))
        self.signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while True:
            found = COUNTERS_RE.findall(self.stderr_text())
            if len(found) > n:
                return parse_counters(found[n])
            if time.monotonic() > deadline or self.p.poll() is not None:
                raise AssertionError(f"no counters line after SIGUSR1 within {timeout}s; "
                                     f"exit={self.p.poll()} stderr:\n{self.stderr_text()}")
            time.sleep(0.02)

    def wait_counter(self, key, minimum, timeout=10.0):
        """Polls the counters (SIGUSR1) until counters[key] >= minimum;
        returns the last counters dict (the caller asserts)."""
        deadline = time.monotonic() + timeout
        while True:
            c = self.counters()
            if c.get(key, -1) >= minimum or time.monotonic() > deadline:
                return c
            time.sleep(0.05)


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
    # a sanitizer build (SOCKIT_BIN=build/asan/sockit) reports here even when
    # the report came after the test's last assertion
    for s in started:
        text = s.stderr_text()
        for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            if marker in text:
                pytest.fail(f"sanitizer report from {' '.join(s.args)}:\n{text}")


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
        port = int(m.group(1))
        # it announces the port after bind() but before listen(): wait for
        # the LISTEN state rather than racing it with a connect
        assert wait_until(lambda: is_listening(port), timeout=10), \
            f"tutorial server never listened on {port}"
        yield ("127.0.0.1", port)
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


def recv_to_eof(sock, timeout=10.0, limit=1 << 26):
    """Reads until EOF (or limit bytes) with one total deadline; a reset
    raises ConnectionResetError, a deadline socket.timeout."""
    deadline = time.monotonic() + timeout
    chunks, n = [], 0
    while n < limit:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout(f"no EOF within {timeout}s (got {n} bytes)")
        sock.settimeout(left)
        b = sock.recv(65536)
        if not b:
            break
        chunks.append(b)
        n += len(b)
    return b"".join(chunks)


def recv_exact(sock, n, timeout=10.0):
    """Reads exactly n bytes with one total deadline (short on EOF)."""
    deadline = time.monotonic() + timeout
    chunks, got = [], 0
    while got < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout(f"only {got} of {n} bytes within {timeout}s")
        sock.settimeout(left)
        b = sock.recv(min(65536, n - got))
        if not b:
            break
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def connect(addr, timeout=10.0, family=None):
    """A connected TCP socket (family from the address if not given)."""
    if family is None:
        family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(addr)
    except BaseException:
        s.close()
        raise
    return s


def closed_without_reply(sock, timeout=10.0):
    """True if the peer closes (EOF or reset) without sending a byte within
    timeout; False if it sends anything; socket.timeout if it stays open."""
    try:
        data = recv_to_eof(sock, timeout=timeout)
    except (ConnectionResetError, BrokenPipeError):
        return True
    return data == b""


def proc_cpu_seconds(pid):
    """utime + stime of a whole process (all threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status(pid, key):
    """A numeric field of /proc/PID/status (e.g. VmRSS in kB, Threads)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def raise_nofile(n):
    """Raises this process's soft RLIMIT_NOFILE to at least n (if the hard
    limit allows) for tests that hold many sockets."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n if hard == resource.RLIM_INFINITY else min(n, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def recv_until_close(sock, timeout=10.0):
    """Like recv_to_eof, but a reset ends the read too: returns (data,
    was_reset) for tests where a reset after the data is acceptable."""
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout(f"still open after {timeout}s")
            sock.settimeout(left)
            b = sock.recv(65536)
            if not b:
                return b"".join(chunks), False
            chunks.append(b)
    except ConnectionResetError:
        return b"".join(chunks), True


def reset_close(sock):
    """Closes with SO_LINGER 0: the kernel sends RST instead of FIN."""
    import struct
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def is_listening(port, tables=("/proc/net/tcp", "/proc/net/tcp6")):
    """True if some socket is in the LISTEN state on this local TCP port."""
    for table in tables:
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        return True
        except FileNotFoundError:
            pass
    return False
