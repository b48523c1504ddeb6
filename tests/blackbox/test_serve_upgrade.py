"""test_serve_upgrade.py -- SIGUSR2: a new binary takes the listeners; no request fails.

The test process becomes a child subreaper (prctl), so the old servers,
orphaned when their own parent exits, are reparented to it and their exit
codes can be read with waitpid.
"""
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import SOCKIT, Proc

PR_SET_CHILD_SUBREAPER = 36
READY_RE = r"upgrade: process (\d+) is ready"
LISTEN_RE = r"listening on tcp (\S+):(\d+) "


@pytest.fixture
def subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        pytest.skip("prctl(PR_SET_CHILD_SUBREAPER) refused")
    yield
    libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def wait_exit(pid, timeout=60.0):
    """The exit code of pid, once it is our child (reparented) and ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got, st = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            got = 0  # not reparented to us yet
        if got == pid:
            return os.waitstatus_to_exitcode(st)
        time.sleep(0.05)
    raise AssertionError(f"process {pid} did not exit within {timeout}s")


def kill_quietly(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    try:
        wait_exit(pid, timeout=10)
    except AssertionError:
        pass


def wait_nth(proc, pattern, n, timeout=30.0):
    """The n-th (1-based) match of pattern in proc's stderr."""
    deadline = time.monotonic() + timeout
    while True:
        found = list(re.finditer(pattern, proc.stderr_text()))
        if len(found) >= n:
            return found[n - 1]
        if time.monotonic() > deadline:
            raise AssertionError(f"no match {n} of {pattern!r} within {timeout}s; "
                                 f"stderr:\n{proc.stderr_text()}")
        time.sleep(0.02)


def exchange(addr, data=b"ping"):
    with socket.create_connection(addr, timeout=10) as c:
        c.sendall(data)
        c.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            chunk = c.recv(4096)
            if not chunk:
                return out
            out += chunk


def start_server(args, binary=SOCKIT, env=None):
    backend = os.environ.get("SOCKIT_TEST_BACKEND")  # as conftest's Server
    if backend:
        args = args + ["--backend", backend]
    p = Proc([binary, "serve", "-p", "0"] + args, env=env)
    m = p.wait_stderr(LISTEN_RE)
    return p, (m.group(1).strip("[]"), int(m.group(2)))


def check_no_sanitizer_report(p):
    text = p.stderr_text()
    for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        assert marker not in text, text


@pytest.mark.parametrize("mode", ["once", "line"])
def test_three_upgrades_under_load(subreaper, tmp_path, mode):
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    env = dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "notify"))
    # line mode: bench keeps its connections, so the old servers serve them
    # until bench ends; the drain timeout must outlast the run
    p, addr = start_server(["-m", mode, "--workers", "2", "--drain-timeout", "30s",
                            "--metrics", "0"], env=env)
    pids = [p.pid]
    bench = None
    try:
        maddr = re.search(r"metrics on http://(\S+):(\d+)/", p.stderr_text())
        bench = subprocess.Popen([SOCKIT, "bench", "-m", mode, "-R", "500", "-d", "6s",
                                  "-c", "8", "--json", addr[0], str(addr[1])],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.0)
        for i in range(1, 4):
            os.kill(pids[-1], signal.SIGUSR2)
            pids.append(int(wait_nth(p, READY_RE, i).group(1)))
            time.sleep(1.0)
        out, err = bench.communicate(timeout=60)
        res = json.loads(out)
        assert res["errors_total"] == 0, res["errors"]
        assert res["requests"] > 0 and res["exit"] == 0, err.decode()
        # the old ones drained and exited 0; the newest serves alone
        assert p.wait(timeout=60) == 0
        for pid in pids[1:-1]:
            assert wait_exit(pid) == 0, p.stderr_text()
        assert len(set(pids)) == 4
        os.kill(pids[-1], 0)
        assert exchange(addr) == b"Received: ping"
        # systemd heard of each new main process
        notify.settimeout(5)
        said = []
        while len([s for s in said if s.startswith("MAINPID=")]) < 3:
            said.append(notify.recv(4096).decode())
        assert [s for s in said if s.startswith("MAINPID=")] == \
            [f"MAINPID={pid}" for pid in pids[1:]]
        # the metrics listener moved along: /healthz answers from the newest
        with socket.create_connection((maddr.group(1), int(maddr.group(2))), timeout=10) as c:
            c.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            assert c.makefile("rb").read().endswith(b"\r\n\r\nok\n")
        os.kill(pids[-1], signal.SIGTERM)
        assert wait_exit(pids[-1]) == 0
        p.wait()
        check_no_sanitizer_report(p)
    finally:
        if bench is not None and bench.poll() is None:
            bench.kill()
            bench.wait()
        for pid in pids[1:]:
            kill_quietly(pid)
        p.stop()
        notify.close()


def test_broken_new_binary_keeps_the_old_one(subreaper, tmp_path):
    binary = tmp_path / "sockit"
    shutil.copy2(SOCKIT, binary)
    p, addr = start_server(["--workers", "2"], binary=str(binary))
    try:
        # a binary that fails at once
        new = tmp_path / "sockit.new"
        new.write_text("#!/bin/sh\nexit 1\n")
        new.chmod(0o755)
        os.replace(new, binary)
        p.signal(signal.SIGUSR2)
        p.wait_stderr(r"upgrade failed: process \d+ \(\S+sockit\) exited with status 1 "
                      r"before it was ready; still serving")
        assert exchange(addr) == b"Received: ping"
        # a file that cannot be executed
        binary.chmod(0o644)
        p.signal(signal.SIGUSR2)
        p.wait_stderr(r"upgrade failed: process \d+ \(\S+\) could not be executed: "
                      r"permission denied; still serving")
        assert exchange(addr) == b"Received: ping"
        # a binary that never becomes ready: stopped after 10 s
        binary.write_text("#!/bin/sh\nexec sleep 60\n")
        binary.chmod(0o755)
        p.signal(signal.SIGUSR2)
        p.wait_stderr(r"upgrade failed: process \d+ \(\S+\) was not ready within 10s: "
                      r"stopped it; still serving", timeout=30)
        assert exchange(addr) == b"Received: ping"
        assert p.p.poll() is None
        p.signal(signal.SIGTERM)
        assert p.wait() == 0
        check_no_sanitizer_report(p)
    finally:
        p.stop()


def test_upgrade_keeps_the_unix_socket_file(subreaper, tmp_path):
    """The old process leaves the socket file to the new one that serves on
    it (it would remove it at exit, as its own)."""
    path = tmp_path / "s.sock"
    p = Proc([SOCKIT, "serve", "-U", str(path), "--workers", "2"])
    pids = [p.pid]
    try:
        p.wait_stderr(r"listening on unix ")
        os.kill(p.pid, signal.SIGUSR2)
        pids.append(int(wait_nth(p, READY_RE, 1).group(1)))
        assert p.wait(timeout=60) == 0, p.stderr_text()
        assert path.is_socket(), p.stderr_text()
        with socket.socket(socket.AF_UNIX) as c:
            c.settimeout(10)
            c.connect(str(path))
            c.sendall(b"ping")
            c.shutdown(socket.SHUT_WR)
            assert c.recv(4096) == b"Received: ping"
        os.kill(pids[-1], signal.SIGTERM)
        assert wait_exit(pids[-1]) == 0
        assert not path.exists()  # the newest removes it, as its own
    finally:
        for pid in pids[1:]:
            kill_quietly(pid)
        p.stop()


def test_upgrade_behind_a_balancer_hands_over_at_once(subreaper):
    """With --proxy-protocol, SIGTERM first refuses the balancer's health
    checks; after an upgrade the new process answers them, so the old one
    stops without that step."""
    p, addr = start_server(["--proxy-protocol", "--workers", "2"])
    pids = [p.pid]
    try:
        os.kill(p.pid, signal.SIGUSR2)
        pids.append(int(wait_nth(p, READY_RE, 1).group(1)))
        assert p.wait(timeout=60) == 0, p.stderr_text()
        assert "draining behind a load balancer" not in p.stderr_text()
        os.kill(pids[-1], signal.SIGTERM)
        assert wait_exit(pids[-1]) == 0
        assert "draining behind a load balancer" in p.stderr_text()
    finally:
        for pid in pids[1:]:
            kill_quietly(pid)
        p.stop()
