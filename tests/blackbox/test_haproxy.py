"""test_haproxy.py -- the scale-out recipe of issue 16, tested: the real HAProxy
(Debian's package, scripts/deps.sh) runs contrib/haproxy/haproxy.cfg with its ports
replaced, in front of three `sockit serve --proxy-protocol` instances, and shows
that `sockit bench` through it gets every reply, that SIGTERM to one instance in
the middle of a run costs zero requests, that sockit sees the client's own
address (logs, --max-conns-per-ip), and that the health checks (PROXY LOCAL) are
answered without being counted as clients."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import ROOT, SOCKIT, Proc, free_port, is_listening, recv_exact, wait_until

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
TEMPLATE = os.path.join(ROOT, "contrib", "haproxy", "haproxy.cfg")
PREFIX = b"Received: "

pytestmark = pytest.mark.skipif(
    not os.access(HAPROXY, os.X_OK),
    reason="haproxy not installed (scripts/deps.sh test installs it)")


def write_config(path, front, backends):
    """The recipe with this run's ports: the frontend's (chosen just before, so
    a small race is possible: HAProxy cannot bind port 0) and the instances'."""
    with open(TEMPLATE) as f:
        text = f.read()
    assert "127.0.0.1:7000" in text and len(re.findall(r"127\.0\.0\.1:700[123]", text)) == 3
    text = text.replace("127.0.0.1:7000", f"127.0.0.1:{front}")
    for i, port in enumerate(backends, 1):
        text = text.replace(f"127.0.0.1:700{i}", f"127.0.0.1:{port}")
    with open(path, "w") as f:
        f.write(text)


@pytest.fixture
def cluster(serve, tmp_path):
    """Factory: three instances with extra args, HAProxy in front (foreground, -db).
    Returns (front_port, [servers]); HAProxy is stopped by PID at teardown."""
    procs = []

    def start(extra=()):
        servers = [serve(["--proxy-protocol", "--proxy-from", "127.0.0.1/32",
                          "--drain-timeout", "10s"] + list(extra)) for _ in range(3)]
        front = free_port()
        cfg = tmp_path / "haproxy.cfg"
        write_config(cfg, front, [s.port for s in servers])
        hp = Proc([HAPROXY, "-db", "-f", str(cfg)])
        procs.append(hp)
        assert wait_until(lambda: is_listening(front) or hp.p.poll() is not None, timeout=15) \
            and hp.p.poll() is None, hp.stderr_text()
        # every server up: each has answered a health check
        for s in servers:
            assert wait_until(lambda s=s: s.counters()["proxy_local"] >= 1, timeout=15), \
                (s.stderr_text(), hp.stderr_text())
        return front, servers, hp

    yield start
    for p in procs:
        p.signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        p.stop()


def bench(port, duration="3s", extra=()):
    return subprocess.Popen([SOCKIT, "bench", "-m", "once", "-c", "8", "-d", duration,
                             "--json", *extra, "127.0.0.1", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def bench_result(p, timeout=60):
    out, err = p.communicate(timeout=timeout)
    assert out, err.decode()
    return json.loads(out), p.returncode, err.decode()


def test_bench_through_haproxy_every_reply(cluster):
    front, servers, hp = cluster()
    r, rc, err = bench_result(bench(front))
    assert rc == 0 and r["errors_total"] == 0, (r, err, hp.stderr_text())
    assert r["requests"] > 100, r
    served = [s.counters() for s in servers]
    # every instance served a share; the replies were whole
    assert all(c["closed_done"] > 0 for c in served), served
    assert sum(c["closed_done"] for c in served) >= r["requests"], (served, r)
    for c in served:
        assert c["closed_proxy_missing"] + c["closed_proxy_malformed"] + \
            c["closed_proxy_truncated"] + c["closed_proxy_timeout"] == 0, c


def test_sigterm_to_one_instance_costs_zero_requests(cluster):
    front, servers, hp = cluster()
    p = bench(front, duration="4s")
    time.sleep(1.5)
    victim = servers[1]
    before = victim.counters()["closed_done"]
    victim.signal(signal.SIGTERM)
    assert victim.wait(timeout=20) == 0, victim.stderr_text()
    r, rc, err = bench_result(p)
    assert rc == 0 and r["errors_total"] == 0, (
        {k: v for k, v in r["errors"].items() if v}, r["first_mismatch"], err[-300:],
        hp.stderr_text()[-600:])
    assert before > 0
    # it told HAProxy first: a health check refused, then the listeners closed
    assert "draining: refusing the balancer's health checks" in victim.stderr_text()
    # the others went on serving after it left
    assert all(s.counters()["closed_done"] > 0 for s in (servers[0], servers[2]))


def bound_client(front, addr="127.0.0.7"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    s.bind((addr, 0))
    s.connect(("127.0.0.1", front))
    return s


def test_client_address_in_logs_and_per_ip_limit(cluster):
    """A client bound to 127.0.0.7 connects to HAProxy on 127.0.0.1: sockit's
    debug log names 127.0.0.7, and --max-conns-per-ip 1 counts it, in each
    instance, while HAProxy's own address is nobody's slot."""
    front, servers, hp = cluster(["-m", "line", "-v", "--max-conns-per-ip", "1"])
    held = []
    try:
        # roundrobin: three connections land one on each instance
        for i in range(3):
            s = bound_client(front)
            held.append(s)
            s.sendall(b"hello %d\n" % i)
            assert recv_exact(s, len(PREFIX) + 8) == PREFIX + b"hello %d\n" % i
        # a fourth from the same client finds its slot taken wherever it lands
        extra = bound_client(front)
        extra.sendall(b"over\n")
        try:
            got = extra.recv(100)
        except ConnectionResetError:
            got = b""
        assert got == b"", got
        extra.close()
        assert wait_until(lambda: sum(s.counters()["refused_perip"] for s in servers) == 1,
                          timeout=10), [s.counters() for s in servers]
        # another client address is served next to them
        other = bound_client(front, "127.0.0.8")
        other.sendall(b"other\n")
        assert recv_exact(other, len(PREFIX) + 6) == PREFIX + b"other\n"
        other.close()
    finally:
        for s in held:
            s.close()
    for s in servers:
        s.wait_stderr(r"accepted fd \d+ from 127\.0\.0\.7:\d+ via 127\.0\.0\.1:\d+")
    text = "".join(s.stderr_text() for s in servers)
    assert "from 127.0.0.8:" in text
    # the health checks: PROXY LOCAL from HAProxy's address, answered, never
    # refused by the per-IP limit although several come from one address
    assert re.search(r"accepted fd \d+ from 127\.0\.0\.1:\d+ \(PROXY LOCAL: a health check\)",
                     text), text
    counters = [s.counters() for s in servers]
    assert all(c["proxy_local"] >= 1 for c in counters), counters
    assert sum(c["refused_perip"] for c in counters) == 1, counters
    assert "refused 127.0.0.1" not in text
