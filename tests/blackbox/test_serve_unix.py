"""test_serve_unix.py -- `sockit serve -U PATH`: every mode over Unix stream
sockets with real clients (nc -U, socat UNIX-CONNECT:, Python), @abstract
names, stale and live socket files, removal on exit, --unix-mode with a
client of another UID, datagrams at PATH.dgram, per-UID limits, the
peer's PID/UID in the logs, and the usage errors."""
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import uuid

import pytest

from conftest import Server, closed_without_reply, recv_exact, recv_to_eof

PREFIX = b"Received: "
NOBODY = 65534


@pytest.fixture
def sockdir():
    """A directory everyone may enter (pytest's tmp_path is 0700, which
    would refuse another UID whatever the socket's mode)."""
    d = tempfile.mkdtemp(prefix="sockit-unix-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def unix_exchange(path, data, timeout=10.0, shut_wr=False):
    """The tutorial's client over AF_UNIX: connect, send, read to EOF."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        if data:
            s.sendall(data)
        if shut_wr:
            s.shutdown(socket.SHUT_WR)
        return recv_to_eof(s, timeout=timeout)


def unix_connect(path, timeout=10.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


def abstract(name):
    """Python's spelling of the abstract name sockit writes "@name"."""
    return "\0" + name[1:]


def as_nobody():
    os.setgid(NOBODY)
    os.setuid(NOBODY)


# A client run as another user: connects, sends, prints the reply or the
# errno name.
NOBODY_CLIENT = r"""
import errno, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("ERR", errno.errorcode.get(e.errno, e.errno)); sys.exit(0)
s.sendall(b"from nobody\n")
out = b""
while not out.endswith(b"\n"):
    b = s.recv(4096)
    if not b:
        break
    out += b
print("OK", out.decode().strip())
"""


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="runs a client as uid 65534")


def run_as_nobody(path):
    p = subprocess.run([sys.executable, "-c", NOBODY_CLIENT, path], preexec_fn=as_nobody,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout.decode().strip()


def stop_clean(srv):
    srv.signal(signal.SIGTERM)
    assert srv.wait(timeout=15) == 0, srv.stderr_text()


# ---- modes, with each client -------------------------------------------------


@pytest.mark.parametrize("backend", ["io_uring", "epoll"])
def test_once_python_client_and_file_removed_on_sigterm(serve, sockdir, backend):
    path = os.path.join(sockdir, "s.sock")
    srv = serve(["--backend", backend], unix=path)
    assert srv.path == path
    assert "listening on unix %s (once)" % path in srv.stderr_text()
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert unix_exchange(path, b"hello") == PREFIX + b"hello"
    assert unix_exchange(path, b"", shut_wr=True) == PREFIX  # EOF first: the bare prefix
    stop_clean(srv)
    assert not os.path.exists(path)


def test_auto_backend_is_epoll_for_unix_sockets(serve, sockdir):
    """Over Unix sockets the default event loop is epoll (it measures better
    there); --backend io_uring still gets io_uring."""
    srv = serve([], unix=os.path.join(sockdir, "auto.sock"))
    assert "event loop: epoll" in srv.stderr_text()
    srv = serve(["--backend", "io_uring"], unix=os.path.join(sockdir, "ring.sock"))
    assert "event loop: io_uring" in srv.stderr_text()


def test_line_mode_with_nc(serve, sockdir):
    path = os.path.join(sockdir, "line.sock")
    serve(["-m", "line"], unix=path)
    p = subprocess.run(["nc", "-N", "-U", path], input=b"one\ntwo\r\nthree",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout == PREFIX + b"one\n" + PREFIX + b"two\r\n" + PREFIX + b"three"


def test_once_with_nc(serve, sockdir):
    path = os.path.join(sockdir, "once.sock")
    serve([], unix=path)
    p = subprocess.run(["nc", "-U", path], input=b"tutorial",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert p.stdout == PREFIX + b"tutorial", p.stderr


def test_echo_mode_with_socat(serve, sockdir):
    path = os.path.join(sockdir, "echo.sock")
    serve(["-m", "echo"], unix=path)
    data = os.urandom(200000)
    p = subprocess.run(["socat", "-t", "10", "-", "UNIX-CONNECT:" + path], input=data,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout == data


def test_line_mode_pipelined_python(serve, sockdir):
    path = os.path.join(sockdir, "l.sock")
    serve(["-m", "line", "--workers", "3"], unix=path)
    with unix_connect(path) as s:
        lines = b"".join(b"line %d\n" % i for i in range(500))
        s.sendall(lines)
        want = b"".join(PREFIX + b"line %d\n" % i for i in range(500))
        assert recv_exact(s, len(want)) == want


def test_workers_share_the_listener(serve, sockdir):
    path = os.path.join(sockdir, "w.sock")
    srv = serve(["--workers", "4"], unix=path)
    socks = [unix_connect(path) for _ in range(40)]
    try:
        for i, s in enumerate(socks):
            s.sendall(b"c%d" % i)
        for i, s in enumerate(socks):
            assert recv_to_eof(s) == PREFIX + b"c%d" % i
    finally:
        for s in socks:
            s.close()
    c = srv.wait_counter("closed_done", 40)
    assert c["accepted"] == 40 and c["closed_done"] == 40, c


def test_abstract_name(serve):
    name = "@sockit-test-" + uuid.uuid4().hex
    srv = serve(["-m", "line"], unix=name)
    assert srv.path == name
    with unix_connect(abstract(name)) as s:
        s.sendall(b"abstract\n")
        assert recv_exact(s, len(PREFIX) + 9) == PREFIX + b"abstract\n"
    stop_clean(srv)


# ---- the socket file -----------------------------------------------------------


def test_stale_file_is_replaced(serve, sockdir):
    path = os.path.join(sockdir, "stale.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)
    dead.listen(1)
    dead.close()  # a dead server's leftover: the file stays, no one listens
    assert os.path.exists(path)
    serve([], unix=path)
    assert unix_exchange(path, b"fresh") == PREFIX + b"fresh"


def test_live_server_is_not_stolen(serve, sockdir, run_sockit):
    path = os.path.join(sockdir, "live.sock")
    first = serve([], unix=path)
    p = run_sockit(["serve", "-U", path])
    assert p.returncode == 1
    assert p.stderr.decode().endswith(f"\nsockit serve: another server is listening on {path}\n")
    assert unix_exchange(path, b"still mine") == PREFIX + b"still mine"
    assert first.p.poll() is None
    stop_clean(first)
    assert not os.path.exists(path)


def test_not_a_socket_is_kept(sockdir, run_sockit):
    path = os.path.join(sockdir, "file")
    with open(path, "w") as f:
        f.write("keep me")
    p = run_sockit(["serve", "-U", path])
    assert p.returncode == 1
    assert "not a socket" in p.stderr.decode()
    with open(path) as f:
        assert f.read() == "keep me"


def test_replaced_file_is_not_removed_at_exit(serve, sockdir):
    """A newer server's socket at our path is its own: we leave it."""
    path = os.path.join(sockdir, "r.sock")
    srv = serve([], unix=path)
    os.unlink(path)
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(path)
    try:
        stop_clean(srv)
        assert stat.S_ISSOCK(os.stat(path).st_mode)
    finally:
        other.close()


# ---- permissions and credentials ----------------------------------------------


@needs_root
def test_unix_mode_0600_refuses_another_uid(serve, sockdir):
    path = os.path.join(sockdir, "private.sock")
    serve(["-m", "line", "--unix-mode", "0600"], unix=path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert run_as_nobody(path) == "ERR EACCES"
    assert unix_exchange(path, b"root\n", shut_wr=True) == PREFIX + b"root\n"  # the owner may


@needs_root
def test_unix_mode_0666_admits_another_uid(serve, sockdir):
    """The control: the directory lets nobody in, so 0600 is what refused."""
    path = os.path.join(sockdir, "open.sock")
    serve(["-m", "line", "--unix-mode", "666"], unix=path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666
    assert run_as_nobody(path) == "OK Received: from nobody"


@needs_root
def test_max_conns_per_ip_counts_per_uid(serve, sockdir):
    path = os.path.join(sockdir, "uid.sock")
    srv = serve(["-m", "line", "--max-conns-per-ip", "1", "--unix-mode", "0666"], unix=path)
    with unix_connect(path) as held:
        held.sendall(b"first\n")
        assert recv_exact(held, len(PREFIX) + 6) == PREFIX + b"first\n"
        with unix_connect(path) as second:  # the same UID (root): refused
            assert closed_without_reply(second)
        assert run_as_nobody(path) == "OK Received: from nobody"  # another UID: admitted
    c = srv.counters()
    assert c["refused_perip"] == 1 and c["accepted"] == 2, c
    assert "refused pid " in srv.stderr_text()


def test_debug_log_names_pid_and_uid(serve, sockdir):
    path = os.path.join(sockdir, "log.sock")
    srv = serve(["-v"], unix=path)
    with unix_connect(path) as s:
        s.sendall(b"x")
        recv_to_eof(s)
    me = os.getpid()
    srv.wait_stderr(rf"accepted fd \d+ from pid {me} uid 0\n")
    srv.wait_stderr(rf"closed fd \d+ from pid {me} uid 0 \(done\)")


def test_json_log_has_pid_and_uid(sockdir):
    path = os.path.join(sockdir, "json.sock")
    srv = Server(["--log-level", "debug", "--log-format", "json"], unix=path, tcp=False)
    try:
        srv.wait_stderr(r'"proto":"unix","addr":"%s"' % path)
        with unix_connect(path) as s:
            s.sendall(b"x")
            recv_to_eof(s)
        m = srv.wait_stderr(r'(\{[^\n]*"event":"accepted"[^\n]*\})\n')
        obj = json.loads(m.group(1))
        assert obj["pid"] == os.getpid() and obj["uid"] == 0, obj
        assert obj["peer"] == "pid %d uid 0" % os.getpid()
    finally:
        srv.stop()


# ---- datagrams --------------------------------------------------------------------


def test_udp_serves_datagrams_at_path_dgram(serve, sockdir):
    path = os.path.join(sockdir, "d.sock")
    srv = serve(["--udp", "--workers", "2"], unix=path, udp=True)
    assert srv.dgram_path == path + ".dgram"
    assert unix_exchange(path, b"stream") == PREFIX + b"stream"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as c:
        c.bind(os.path.join(sockdir, "client"))  # a bound sender gets replies
        c.settimeout(10)
        for i in range(5):
            c.sendto(b"dgram %d" % i, path + ".dgram")
            data, src = c.recvfrom(65536)
            assert data == PREFIX + b"dgram %d" % i and src == path + ".dgram"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as c:
        c.bind("")  # Linux autobind: an abstract name, also answerable
        c.settimeout(10)
        c.sendto(b"auto", path + ".dgram")
        assert c.recvfrom(65536)[0] == PREFIX + b"auto"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as c:
        c.sendto(b"unbound", path + ".dgram")  # no address: cannot be answered
    c = srv.wait_counter("dgrams_dropped_port", 1)
    assert c["dgrams_in"] == 7 and c["dgrams_out"] == 6 and c["dgrams_dropped_port"] == 1, c
    stop_clean(srv)
    assert not os.path.exists(path) and not os.path.exists(path + ".dgram")


def test_udp_unbound_sender_first_is_dropped_not_answered(serve, sockdir):
    # the first datagram a worker ever reads comes from an unbound sender:
    # no address at all, so no family either; it is dropped and counted,
    # and a bound sender after it is answered as usual
    path = os.path.join(sockdir, "f.sock")
    srv = serve(["--udp", "--workers", "1"], unix=path, udp=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as c:
        c.sendto(b"unbound", path + ".dgram")
    c = srv.wait_counter("dgrams_in", 1)
    c = srv.wait_counter("dgrams_dropped_port", 1, timeout=3.0)
    assert c["dgrams_in"] == 1 and c["dgrams_dropped_port"] == 1 and c["dgrams_out"] == 0, c
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as c:
        c.bind(os.path.join(sockdir, "client"))
        c.settimeout(10)
        c.sendto(b"bound", path + ".dgram")
        assert c.recvfrom(65536)[0] == PREFIX + b"bound"
    assert "udp send" not in srv.stderr_text()
    stop_clean(srv)


def test_udp_only_serves_only_path_dgram(serve, sockdir):
    path = os.path.join(sockdir, "u.sock")
    srv = serve(["--udp-only", "-m", "echo"], unix=path, udp=True, tcp=False)
    assert "listening on unix " not in srv.stderr_text()
    assert not os.path.exists(path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as c:
        c.bind("")
        c.settimeout(10)
        c.sendto(b"verbatim", path + ".dgram")
        assert c.recvfrom(65536)[0] == b"verbatim"


def test_udp_rate_per_unix_sender(serve, sockdir):
    path = os.path.join(sockdir, "rate.sock")
    srv = serve(["--udp-only", "--udp-rate", "3", "--workers", "1"], unix=path, udp=True,
                tcp=False)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as c:
        c.bind("")
        for i in range(10):
            c.sendto(b"r", path + ".dgram")
    c = srv.wait_counter("dgrams_in", 10)
    assert c["dgrams_dropped_rate"] >= 5 and c["dgrams_out"] <= 5, c


# ---- usage -------------------------------------------------------------------------


@pytest.mark.parametrize("args,message", [
    (["-U", "/tmp/x.sock", "-p", "0"], "-U and -p: choose one"),
    (["-U", "/tmp/x.sock", "-H", "127.0.0.1"], "-U and -H: choose one"),
    (["-U", "/tmp/x.sock", "-6"], "-U and -6: choose one"),
    (["--unix-mode", "0600"], "--unix-mode needs -U PATH"),
    (["-U", "/tmp/x.sock", "--unix-mode", "0800"], "invalid mode '0800' for --unix-mode"),
    (["-U", "/tmp/x.sock", "--unix-mode=rw"], "invalid mode 'rw' for --unix-mode"),
    (["-U", "/tmp/x.sock", "--unix-mode", "0"], "invalid mode '0' for --unix-mode"),
    (["-U", "@abs", "--unix-mode", "0600"], "abstract socket (@abs) has no file"),
    (["-U", "/tmp/x.sock", "--allow", "127.0.0.0/8"], "--allow does not apply to Unix"),
    (["-U", "/tmp/" + "x" * 110], "too long"),
    (["-U", "/tmp/" + "x" * 100, "-u"], "as -u adds \".dgram\""),
    (["-U", ""], "expected a file path or @name"),
])
def test_usage_errors(run_sockit, args, message):
    p = run_sockit(["serve"] + args)
    assert p.returncode == 2, p.stderr
    assert message in p.stderr.decode(), p.stderr


def test_help_names_unix_options(run_sockit):
    out = run_sockit(["serve", "--help"]).stdout.decode()
    for word in ("-U, --unix PATH", "--unix-mode OCTAL", "PATH.dgram", "per UID"):
        assert word in out
