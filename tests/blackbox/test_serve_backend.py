"""test_serve_backend.py -- `sockit serve --backend`: each event loop
serves every mode, says which one runs, and io_uring's completion
operations (multishot accept, reply + FIN + close handed to the ring) keep
the tutorial's behaviour byte for byte.  The rest of the suite runs on both
backends through make test (SOCKIT_TEST_BACKEND)."""
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import (SOCKIT, closed_without_reply, exchange, parse_counters, recv_to_eof,
                      wait_until)

PREFIX = b"Received: "
BACKENDS = ["io_uring", "epoll"]


def loop_line(srv):
    m = srv.wait_stderr(r"event loop: (\w+),")
    return m.group(1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_named_and_once_mode(serve, backend):
    srv = serve(["--backend", backend, "--workers", "2"])
    assert loop_line(srv) == backend
    for i in range(50):
        data = b"hello %d" % i
        assert exchange(srv.addr, data) == PREFIX + data
    c = srv.wait_counter("closed_done", 50)
    assert c["accepted"] == 50 and c["closed_done"] == 50 and c["active"] == 0
    assert c["bytes_out"] == sum(len(PREFIX + b"hello %d" % i) for i in range(50))


def test_auto_is_io_uring_here(serve):
    # This kernel allows io_uring (the unit tests prove it): auto takes it.
    srv = serve(["--backend", "auto"])
    assert loop_line(srv) == "io_uring"


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_request_and_eof(serve, backend):
    srv = serve(["--backend", backend])
    with socket.create_connection(srv.addr, timeout=10) as s:
        s.shutdown(socket.SHUT_WR)
        assert recv_to_eof(s) == PREFIX
    assert srv.wait_counter("closed_eof", 1)["closed_eof"] == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_many_concurrent_clients(serve, backend):
    """200 clients at once, from 8 threads: every reply exact, none lost."""
    srv = serve(["--backend", backend, "--workers", "2"])
    errors = []

    def client(k):
        try:
            for i in range(25):
                data = b"%d-%d" % (k, i)
                got = exchange(srv.addr, data)
                if got != PREFIX + data:
                    errors.append((data, got))
        except OSError as e:
            errors.append(e)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    c = srv.wait_counter("closed_done", 200)
    assert c["closed_done"] == 200 and c["closed_reset"] == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_line_and_udp(serve, backend):
    srv = serve(["--backend", backend, "-m", "line", "--udp"], udp=True)
    with socket.create_connection(srv.addr, timeout=10) as s:
        s.sendall(b"a\nb\n")
        want = PREFIX + b"a\n" + PREFIX + b"b\n"
        got = b""
        while len(got) < len(want):
            chunk = s.recv(100)
            assert chunk
            got += chunk
        assert got == want
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(10)
        u.sendto(b"dgram", srv.udp_addr)
        assert u.recvfrom(100)[0] == PREFIX + b"dgram"


@pytest.mark.parametrize("backend", BACKENDS)
def test_drain_closes_listener_and_exits(serve, backend):
    """SIGTERM: the multishot accept (io_uring) holds the listener; it must
    be cancelled, or the port would keep accepting after the drain."""
    srv = serve(["--backend", backend])
    assert exchange(srv.addr, b"x") == PREFIX + b"x"
    srv.signal(signal.SIGTERM)
    assert srv.p.wait(timeout=20) == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(srv.addr, timeout=5).close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_acl_uses_readiness_accept(serve, backend):
    """--deny needs the peer's address, which a multishot accept lacks:
    serve accepts through readiness then, and still refuses."""
    srv = serve(["--backend", backend, "--deny", "127.0.0.0/8"])
    with socket.create_connection(srv.addr, timeout=10) as s:
        s.sendall(b"x")
        assert closed_without_reply(s)
    assert wait_until(lambda: srv.counters()["refused_denied"] >= 1)


def sigterm_under_load(srv, mode, port, conns, counter, minimum, pause=0.0):
    """Runs `sockit bench` against srv, SIGTERMs srv once counter reaches
    minimum (plus pause), and returns srv's stderr after it exited 0,
    clean under ASan."""
    load = subprocess.Popen([SOCKIT, "bench", "-m", mode, "-c", str(conns), "-d", "5s",
                             "--timeout", "2s", "127.0.0.1", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert srv.wait_counter(counter, minimum)[counter] >= minimum
        time.sleep(pause)
        srv.signal(signal.SIGTERM)
        assert srv.wait(timeout=20) == 0, srv.stderr_text()
    finally:
        load.kill()
        load.wait(timeout=10)
    err = srv.stderr_text()
    assert "Sanitizer" not in err
    return parse_counters(err.strip().splitlines()[-1].split("counters ", 1)[1])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["line", "echo"])
def test_drain_timeout_under_load(serve, backend, mode):
    """When the drain times out, every busy connection is closed at once,
    some with a reply still in the ring (io_uring): the server exits 0,
    every connection counted, and under ASan nothing leaked or touched
    after its free."""
    srv = serve(["--backend", backend, "-m", mode, "--workers", "2",
                 "--drain-timeout", "300ms"])
    last = sigterm_under_load(srv, mode, srv.port, 32, "accepted", 32, pause=0.3)
    assert last["accepted"] == 32 and last["active"] == 0, last
    assert last["closed_timeout"] == 32, last


@pytest.mark.parametrize("backend", BACKENDS)
def test_drain_under_udp_load(serve, backend):
    """SIGTERM while lone datagrams are answered (on io_uring through the
    ring): a reply still queued is handed to the kernel before the socket
    closes, the server exits 0, and the counters agree with what clients
    could receive."""
    srv = serve(["--backend", backend, "--udp-only", "--workers", "2"], udp=True, tcp=False)
    last = sigterm_under_load(srv, "udp", srv.udp_port, 4, "dgrams_out", 100)
    assert last["dgrams_out"] == last["dgrams_in"], last


@pytest.mark.parametrize("backend,workers,mode", [
    ("io_uring", 2, "line"), ("io_uring", 2, "echo"), ("io_uring", 1, "line"),
    ("epoll", 2, "line")])
def test_workers_sharing_a_cpu_yield_it(serve, backend, workers, mode):
    """Line/echo workers pinned to one CPU give it up to each other before
    they sleep (io_uring only), counted as cpu_yields.  One worker has no
    one to give it to, and epoll does not do it: there the count stays 0."""
    cpu = min(os.sched_getaffinity(0))
    srv = serve(["--backend", backend, "--workers", str(workers), "-m", mode],
                preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    expect_yields = backend == "io_uring" and workers > 1
    prefix = PREFIX if mode == "line" else b""
    conns = [socket.create_connection(srv.addr, timeout=10) for _ in range(8)]
    try:
        deadline = time.monotonic() + 30
        for r in range(2000):
            for k, s in enumerate(conns):
                s.sendall(b"r%d c%d\n" % (r, k))
            for k, s in enumerate(conns):
                want = prefix + b"r%d c%d\n" % (r, k)
                got = b""
                while len(got) < len(want):
                    chunk = s.recv(len(want) - len(got))
                    assert chunk, "server closed"
                    got += chunk
                assert got == want
            if r >= 300 and (not expect_yields or r % 100 == 0 and
                             srv.counters()["cpu_yields"] > 0):
                break
            assert time.monotonic() < deadline
    finally:
        for s in conns:
            s.close()
    c = srv.counters()
    if expect_yields:
        assert c["cpu_yields"] > 0, c
    else:
        assert c["cpu_yields"] == 0, c


def test_once_workers_sharing_a_cpu_do_not_yield(serve):
    """In once mode the yield measured dearer (bench/README.md): off."""
    cpu = min(os.sched_getaffinity(0))
    srv = serve(["--backend", "io_uring", "--workers", "2"],
                preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    for i in range(300):
        assert exchange(srv.addr, b"x%d" % i) == PREFIX + b"x%d" % i
    c = srv.wait_counter("closed_done", 300)
    assert c["closed_done"] == 300 and c["cpu_yields"] == 0, c


@pytest.mark.parametrize("args,want", [
    ([], "100us"),                                 # once mode: on by default
    (["-m", "line"], "off"),                       # line and echo: off by default
    (["-m", "echo"], "off"),
    (["--coalesce", "0"], "off"),
    (["--coalesce", "120us"], "120us"),
    (["-m", "line", "--coalesce", "2ms"], "2ms"),
])
def test_coalescing_setting_is_logged(serve, args, want):
    """issue 20: --coalesce reaches the workers' loops, once mode's default."""
    srv = serve(args)
    m = srv.wait_stderr(r"event loop: \w+, coalescing (\S+)")
    assert m.group(1) == want
    want_reply = b"x\n" if "echo" in args else PREFIX + b"x\n"
    assert exchange(srv.addr, b"x\n", shut_wr=True) == want_reply


@pytest.mark.parametrize("bad", ["5x", "2s", "-1"])
def test_coalesce_bad_values(run_sockit, bad):
    r = run_sockit(["serve", "--coalesce", bad])
    assert r.returncode == 2
    assert b"for --coalesce" in r.stderr, r.stderr
