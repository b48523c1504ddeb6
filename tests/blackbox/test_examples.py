"""test_examples.py -- the tutorial's server and client in C on libsockit,
built in-tree and against an installed copy found through pkg-config."""
import os
import re
import shutil
import socket
import subprocess

import pytest

from conftest import ROOT

EXAMPLES = os.path.join(ROOT, "build", "examples")


@pytest.fixture(scope="module", autouse=True)
def built_examples():
    subprocess.run(["make", "-s", "examples"], cwd=ROOT, check=True, timeout=300,
                   stdout=subprocess.DEVNULL)


class ExampleServer:
    """Starts a tutorial_server binary on port 0 and reads its port."""

    def __init__(self, path, env=None):
        self.p = subprocess.Popen([path, "0"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env)
        line = self.p.stdout.readline().decode()  # a port line, or EOF if it died
        m = re.fullmatch(r"port (\d+)\n", line)
        if not m:
            self.stop()
            raise AssertionError(f"server said {line!r}, stderr: {self.p.stderr.read()!r}")
        self.port = int(m.group(1))

    def stop(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(timeout=10)
        self.p.stdout.close()
        self.p.stderr.close()


def tutorial_exchange(port, data):
    """The tutorial's client in Python: connect, send, one recv."""
    with socket.create_connection(("localhost", port), timeout=10) as s:
        s.sendall(data)
        chunks = []
        while True:
            b = s.recv(2048)
            if not b:
                return b"".join(chunks)
            chunks.append(b)


def test_server_and_client():
    srv = ExampleServer(os.path.join(EXAMPLES, "tutorial_server"))
    try:
        r = subprocess.run([os.path.join(EXAMPLES, "tutorial_client"), "localhost",
                            str(srv.port), "hello"], capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert r.stdout == b"Received: hello"
        # The server keeps serving, and answers Python's socket module too.
        assert tutorial_exchange(srv.port, b"again") == b"Received: again"
        assert tutorial_exchange(srv.port, b"x" * 1024) == b"Received: " + b"x" * 1024
    finally:
        srv.stop()


def test_client_reports_refused():
    with socket.socket() as s:  # bound, not listening: a dead port we own
        s.bind(("127.0.0.1", 0))
        r = subprocess.run([os.path.join(EXAMPLES, "tutorial_client"), "127.0.0.1",
                            str(s.getsockname()[1]), "hello"], capture_output=True, timeout=30)
    assert r.returncode == 1
    assert b"connection refused" in r.stderr


@pytest.mark.skipif(shutil.which("pkg-config") is None, reason="pkg-config not installed")
def test_installed_library_with_pkg_config(tmp_path):
    dest = tmp_path / "root"
    subprocess.run(["make", "-s", "install", "PREFIX=/usr", f"DESTDIR={dest}"], cwd=ROOT,
                   check=True, timeout=300, stdout=subprocess.DEVNULL)
    libdir = dest / "usr" / "lib"
    for f in ["include/sockit.h", "lib/libsockit.a", "lib/libsockit.so",
              "lib/pkgconfig/sockit.pc"]:
        assert (dest / "usr" / f).exists(), f
    pcdir = str(libdir / "pkgconfig")
    env = dict(os.environ, PKG_CONFIG_SYSROOT_DIR=str(dest), PKG_CONFIG_PATH=pcdir,
               PKG_CONFIG_LIBDIR=pcdir)
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "sockit"], env=env,
                           check=True, capture_output=True, text=True).stdout.split()
    assert f"-I{dest}/usr/include" in flags and f"-L{libdir}" in flags and "-lsockit" in flags
    version = subprocess.run(["pkg-config", "--modversion", "sockit"], env=env, check=True,
                             capture_output=True, text=True).stdout.strip()
    with open(os.path.join(ROOT, "include", "sockit.h")) as h:
        assert f'#define SOCKIT_VERSION "{version}"' in h.read()
    # Only the installed files: the example is copied out of the source tree.
    src = tmp_path / "tutorial_server.c"
    shutil.copy(os.path.join(ROOT, "examples", "tutorial_server.c"), src)
    exe = tmp_path / "tutorial_server"
    subprocess.run(["cc", "-o", str(exe), str(src)] + flags, check=True, timeout=120)
    # Linked against the shared library, found only through LD_LIBRARY_PATH.
    srv = ExampleServer(str(exe), env=dict(os.environ, LD_LIBRARY_PATH=str(libdir)))
    try:
        with open(f"/proc/{srv.p.pid}/maps") as maps:
            assert str(libdir / "libsockit.so") in maps.read()
        assert tutorial_exchange(srv.port, b"hello") == b"Received: hello"
    finally:
        srv.stop()
