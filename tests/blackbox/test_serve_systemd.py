"""test_serve_systemd.py -- `sockit serve` under systemd's protocols: socket
activation through the real `systemd-socket-activate` (TCP, UDP, Unix,
LISTEN_FDNAMES, options that contradict the passed sockets), readiness
through NOTIFY_SOCKET (READY=1, STATUS=, STOPPING=1, WATCHDOG=1), and the
contrib/systemd units (`systemd-analyze verify`, `security --offline`)."""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import ROOT, SOCKIT, Proc, free_port, is_listening, recv_to_eof, wait_until

PREFIX = b"Received: "
UNITS = os.path.join(ROOT, "contrib", "systemd")
SECURITY_MAX = 1.5  # systemd-analyze security's exposure level (0 = best, 10 = worst)

needs_activate = pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                                    reason="systemd-socket-activate missing: scripts/deps.sh test")


@pytest.fixture
def tmpdir_short():
    d = tempfile.mkdtemp(prefix="sockit-sd-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def backend_args():
    b = os.environ.get("SOCKIT_TEST_BACKEND")
    return ["--backend", b] if b else []


def check_sanitizers(p):
    text = p.stderr_text()
    for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        assert marker not in text, text


@pytest.fixture
def activate():
    """Factory: activate(listen_args, serve_args, env_vars) starts
    `systemd-socket-activate LISTEN... -E VAR... sockit serve ARGS`."""
    started = []

    def start(listen, args=(), setenv=()):
        cmd = ["systemd-socket-activate"] + list(listen)
        for v in setenv:
            cmd += ["-E", v]
        p = Proc(cmd + [SOCKIT, "serve"] + list(args) + backend_args())
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()
    for p in started:
        check_sanitizers(p)


def tcp_ask(port, data, timeout=10.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        return recv_to_eof(s, timeout=timeout)


def poke(port):
    """A connection that starts serve; it may be reset as serve exits."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"x")
            s.recv(10)
    except (ConnectionResetError, BrokenPipeError, socket.timeout):
        pass


def udp_bound(port):
    with open("/proc/net/udp") as f:
        next(f)
        return any(int(line.split()[1].rsplit(":", 1)[1], 16) == port for line in f)


def stop_clean(p):
    p.signal(signal.SIGTERM)
    assert p.wait(timeout=15) == 0, p.stderr_text()


# ---- socket activation ----------------------------------------------------------


@needs_activate
def test_tcp_socket_activation_with_workers(activate):
    port = free_port()
    p = activate(["-l", f"127.0.0.1:{port}"], ["--workers", "3"])
    assert wait_until(lambda: is_listening(port)), p.stderr_text()
    # the first connection starts serve, which takes the waiting client
    assert tcp_ask(port, b"first") == PREFIX + b"first"
    p.wait_stderr(rf"listening on tcp 127\.0\.0\.1:{port} \(once, from systemd\)")
    for i in range(20):
        assert tcp_ask(port, b"n%d" % i) == PREFIX + b"n%d" % i
    assert "3 worker(s)" in p.stderr_text()
    stop_clean(p)


@needs_activate
def test_fdname_tcp_and_matching_port_accepted(activate):
    port = free_port()
    p = activate(["-l", f"127.0.0.1:{port}", "--fdname=tcp"],
                 ["-m", "line", "-p", str(port), "-H", "127.0.0.1"])
    assert wait_until(lambda: is_listening(port))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"a\nb\n")
        s.shutdown(socket.SHUT_WR)
        assert recv_to_eof(s) == PREFIX + b"a\n" + PREFIX + b"b\n"
    p.wait_stderr(r"\(line, from systemd\)")
    stop_clean(p)


@needs_activate
def test_fdname_contradicting_type_is_an_error(activate):
    port = free_port()
    p = activate(["-l", f"127.0.0.1:{port}", "--fdname=udp"])
    assert wait_until(lambda: is_listening(port))
    poke(port)
    assert p.wait(timeout=15) == 1
    assert "named 'udp' but is a TCP socket" in p.stderr_text()


@needs_activate
def test_two_stream_sockets_are_an_error(activate):
    port, port2 = free_port(), free_port()
    p = activate(["-l", f"127.0.0.1:{port}", "-l", f"127.0.0.1:{port2}"])
    assert wait_until(lambda: is_listening(port) and is_listening(port2))
    poke(port)
    assert p.wait(timeout=15) == 1
    assert "systemd passed two stream sockets (descriptors 3 and 4)" in p.stderr_text()


@needs_activate
@pytest.mark.parametrize("args,message", [
    (["-p", "1"], "-p 1: systemd passed a socket on port"),
    (["-H", "::1"], "-H ::1: systemd passed a socket on 127.0.0.1:"),
    (["-U", "/tmp/x.sock"], "-U /tmp/x.sock: systemd passed 127.0.0.1:"),
    (["-u"], "-u: systemd passed no datagram socket"),
    (["--udp-only"], "--udp-only: systemd passed no datagram socket"),
    (["-6"], "-6: systemd passed a socket on 127.0.0.1:"),
])
def test_contradicting_options_are_usage_errors(activate, args, message):
    port = free_port()
    p = activate(["-l", f"127.0.0.1:{port}"], args)
    assert wait_until(lambda: is_listening(port))
    poke(port)
    assert p.wait(timeout=15) == 2, p.stderr_text()
    assert message in p.stderr_text()


@needs_activate
def test_udp_socket_activation(activate):
    port = free_port(type=socket.SOCK_DGRAM)
    p = activate(["-d", "-l", f"127.0.0.1:{port}", "--fdname=udp"], ["-u"])
    assert wait_until(lambda: udp_bound(port)), p.stderr_text()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        c.settimeout(10)
        c.sendto(b"dgram", ("127.0.0.1", port))  # starts serve; it answers this one
        assert c.recvfrom(65536)[0] == PREFIX + b"dgram"
        c.sendto(b"again", ("127.0.0.1", port))
        assert c.recvfrom(65536)[0] == PREFIX + b"again"
    p.wait_stderr(rf"listening on udp 127\.0\.0\.1:{port} \(once, from systemd\)")
    assert "listening on tcp" not in p.stderr_text()
    stop_clean(p)


@needs_activate
def test_unix_socket_activation_leaves_the_file(activate, tmpdir_short):
    path = os.path.join(tmpdir_short, "sd.sock")
    p = activate(["-l", path], ["-m", "echo", "-U", path])
    assert wait_until(lambda: os.path.exists(path))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(b"verbatim")
        s.shutdown(socket.SHUT_WR)
        assert recv_to_eof(s) == b"verbatim"
    p.wait_stderr(rf"listening on unix {re.escape(path)} \(echo, from systemd\)")
    stop_clean(p)
    assert os.path.exists(path)  # systemd's socket: not ours to remove


def test_listen_pid_of_another_process_is_ignored(tmpdir_short):
    """LISTEN_PID names someone else (our parent, say): bind as usual."""
    env = dict(os.environ, LISTEN_PID="1", LISTEN_FDS="1")
    p = Proc([SOCKIT, "serve", "-p", "0"] + backend_args(), env=env)
    try:
        m = p.wait_stderr(r"listening on tcp 127\.0\.0\.1:(\d+) \(once\)")
        assert tcp_ask(int(m.group(1)), b"x") == PREFIX + b"x"
    finally:
        p.stop()


# ---- readiness -----------------------------------------------------------------


class Notify:
    """The service manager's end of NOTIFY_SOCKET: a datagram socket."""

    def __init__(self, path):
        self.path = path
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind(path if not path.startswith("@") else "\0" + path[1:])
        self.got = []

    def recv_until(self, pred, timeout=10.0):
        """Messages until one satisfies pred; returns that one."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching notification in {timeout}s: {self.got}")
            self.s.settimeout(left)
            msg = self.s.recv(4096).decode()
            self.got.append(msg)
            if pred(msg):
                return msg

    def close(self):
        self.s.close()


@pytest.fixture
def notify(tmpdir_short):
    n = Notify(os.path.join(tmpdir_short, "notify"))
    yield n
    n.close()


def test_ready_status_stopping(notify):
    env = dict(os.environ, NOTIFY_SOCKET=notify.path)
    p = Proc([SOCKIT, "serve", "-p", "0", "--workers", "2"] + backend_args(), env=env)
    try:
        m = p.wait_stderr(r"listening on tcp 127\.0\.0\.1:(\d+) ")
        first = notify.recv_until(lambda s: "READY=1" in s)
        assert first == "READY=1\nSTATUS=0 active, 0 accepted", first
        port = int(m.group(1))
        for _ in range(3):
            assert tcp_ask(port, b"x") == PREFIX + b"x"
        notify.recv_until(lambda s: s == "STATUS=0 active, 3 accepted")
        p.signal(signal.SIGTERM)
        notify.recv_until(lambda s: s == "STOPPING=1")
        assert p.wait(timeout=15) == 0
        check_sanitizers(p)
    finally:
        p.stop()


def test_watchdog_pings():
    n = Notify("@sockit-test-notify-%d" % os.getpid())  # an abstract NOTIFY_SOCKET too
    env = dict(os.environ, NOTIFY_SOCKET=n.path, WATCHDOG_USEC="200000")
    env.pop("WATCHDOG_PID", None)
    p = Proc([SOCKIT, "serve", "-p", "0"] + backend_args(), env=env)
    try:
        n.recv_until(lambda s: "READY=1" in s)
        deadline = time.monotonic() + 1.0  # every 100 ms: 2 is generous
        while time.monotonic() < deadline:
            n.s.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                n.got.append(n.s.recv(4096).decode())
            except socket.timeout:
                break
        assert sum(g == "WATCHDOG=1" for g in n.got) >= 2, n.got
    finally:
        p.stop()
        n.close()


def test_watchdog_for_another_pid_is_off(notify):
    env = dict(os.environ, NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="100000", WATCHDOG_PID="1")
    p = Proc([SOCKIT, "serve", "-p", "0"] + backend_args(), env=env)
    try:
        notify.recv_until(lambda s: "READY=1" in s)
        time.sleep(0.5)
        notify.s.settimeout(0.2)
        try:
            while True:
                notify.got.append(notify.s.recv(4096).decode())
        except socket.timeout:
            pass
        assert "WATCHDOG=1" not in notify.got, notify.got
    finally:
        p.stop()


@needs_activate
def test_activation_and_readiness_together(activate, notify):
    port = free_port()
    p = activate(["-l", f"127.0.0.1:{port}"], [], setenv=[f"NOTIFY_SOCKET={notify.path}"])
    assert wait_until(lambda: is_listening(port))
    assert tcp_ask(port, b"go") == PREFIX + b"go"
    notify.recv_until(lambda s: s.startswith("READY=1\nSTATUS="))
    stop_clean(p)
    notify.recv_until(lambda s: s == "STOPPING=1")


# ---- the unit files ---------------------------------------------------------------


def units_in(tmp):
    """contrib/systemd's units in tmp, ExecStart pointing at the binary
    under test (verify checks that it is executable)."""
    for name in ("sockit.socket", "sockit.service"):
        with open(os.path.join(UNITS, name)) as f:
            text = f.read().replace("/usr/local/bin/sockit", os.path.abspath(SOCKIT))
        with open(os.path.join(tmp, name), "w") as f:
            f.write(text)
    return [os.path.join(tmp, n) for n in ("sockit.socket", "sockit.service")]


needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze missing: scripts/deps.sh test")


@needs_analyze
def test_units_verify(tmpdir_short):
    units = units_in(tmpdir_short)
    p = subprocess.run(["systemd-analyze", "verify", "--man=no"] + units,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0 and p.stderr == b"", p.stderr.decode()


@needs_analyze
def test_service_security_exposure(tmpdir_short):
    service = units_in(tmpdir_short)[1]
    p = subprocess.run(["systemd-analyze", "security", "--offline=true", service],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    out = p.stdout.decode() + p.stderr.decode()
    m = re.search(r"Overall exposure level for sockit\.service: (\d+\.\d+)", out)
    assert m, out
    assert float(m.group(1)) <= SECURITY_MAX, out


def test_units_name_what_serve_does():
    with open(os.path.join(UNITS, "sockit.service")) as f:
        service = f.read()
    for line in ("Type=notify", "WatchdogSec=", "DynamicUser=yes", "ProtectSystem=strict",
                 "ExecReload=/bin/kill -HUP $MAINPID", "io_uring_setup"):
        assert line in service
