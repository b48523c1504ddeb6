"""test_serve_metrics.py -- serve --metrics: Prometheus text, /healthz, the endpoint's bounds.

The output is checked by promtool (Debian's prometheus package, installed by
scripts/deps.sh test) and against the traffic the test sent.
"""
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import SOCKIT

METRICS_RE = r"metrics on http://(\S+):(\d+)/metrics"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def metrics_addr(s):
    m = s.wait_stderr(METRICS_RE)
    return (m.group(1).strip("[]"), int(m.group(2)))


def http(addr, raw, timeout=10.0):
    """Sends raw bytes, reads to EOF: (status, headers dict, body bytes)."""
    with socket.create_connection(addr, timeout=timeout) as c:
        c.sendall(raw)
        data = b""
        while True:
            chunk = c.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def get(addr, path, method="GET", version="1.1"):
    return http(addr, f"{method} {path} HTTP/{version}\r\nHost: x\r\n\r\n".encode())


def samples(text):
    """'name{labels} value' lines -> {'name{labels}': float}."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            out[k] = float(v)
    return out


def once_exchange(addr, payload, timeout=10.0):
    with socket.create_connection(addr, timeout=timeout) as c:
        c.sendall(payload)
        data = b""
        while True:
            chunk = c.recv(4096)
            if not chunk:
                return data
            data += chunk


@pytest.mark.skipif(not os.path.exists(PROMTOOL), reason="promtool: scripts/deps.sh test")
def test_promtool_and_numbers(serve, run_sockit):
    s = serve(["--metrics", "0", "--workers", "2"])
    maddr = metrics_addr(s)
    for _ in range(5):
        assert once_exchange(s.addr, b"hello\n") == b"Received: hello\n"
    status, headers, body = get(maddr, "/metrics")
    assert status == 200
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    chk = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True,
                         timeout=60)
    assert chk.returncode == 0, chk.stdout.decode() + chk.stderr.decode()
    m = samples(body.decode())
    assert m["sockit_connections_accepted_total"] == 5
    assert m['sockit_connections_closed_total{reason="done"}'] == 5
    assert m['sockit_connections_closed_total{reason="eof"}'] == 0
    assert m['sockit_connections_refused_total{reason="maxconns"}'] == 0
    assert m["sockit_received_bytes_total"] == 5 * 6
    assert m["sockit_sent_bytes_total"] == 5 * 16
    assert m['sockit_datagrams_dropped_total{reason="rate"}'] == 0
    assert m["sockit_cpu_yields_total"] >= 0
    assert m['sockit_connections_active{worker="0"}'] == 0
    assert m['sockit_connections_active{worker="1"}'] == 0
    assert m["sockit_connections_open"] == 0
    assert m["sockit_workers"] == 2
    assert m["sockit_draining"] == 0
    assert m["sockit_connection_duration_seconds_count"] == 5
    assert m['sockit_connection_duration_seconds_bucket{le="+Inf"}'] == 5
    assert m["sockit_connection_duration_seconds_sum"] >= 0
    version = run_sockit(["-V"]).stdout.decode().split()[-1]
    assert m[f'sockit_build_info{{version="{version}"}}'] == 1
    assert m["process_open_fds"] > 3
    assert m["process_max_fds"] >= m["process_open_fds"]
    assert m["process_resident_memory_bytes"] > 0
    assert m["process_virtual_memory_bytes"] >= m["process_resident_memory_bytes"]
    assert m["process_cpu_seconds_total"] >= 0
    assert abs(m["process_start_time_seconds"] - time.time()) < 3600
    # every counter of the counters line is exported: as many samples of
    # the sockit_*_total families as the counters line has keys but active
    keys = len(s.counters())
    assert len([k for k in m if re.match(r"sockit_\w+_total\b", k)]) == keys - 1


def test_histogram_buckets(serve):
    """A connection held ~1 s lands in the buckets above 1 s only."""
    s = serve(["--metrics", "0", "-m", "line"])
    maddr = metrics_addr(s)
    with socket.create_connection(s.addr, timeout=10) as c:
        c.sendall(b"a\n")
        assert c.recv(100) == b"Received: a\n"
        time.sleep(1.1)
    deadline = time.monotonic() + 10
    while True:
        m = samples(get(maddr, "/metrics")[2].decode())
        if m["sockit_connection_duration_seconds_count"] == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert m["sockit_connection_duration_seconds_count"] == 1
    assert m['sockit_connection_duration_seconds_bucket{le="0.512"}'] == 0
    assert m['sockit_connection_duration_seconds_bucket{le="2.048"}'] == 1
    assert 1.0 <= m["sockit_connection_duration_seconds_sum"] < 60


def test_healthz_then_draining(serve):
    s = serve(["--metrics", "0", "-m", "line", "--drain-timeout", "60s"])
    maddr = metrics_addr(s)
    assert get(maddr, "/healthz")[0:3:2] == (200, b"ok\n")
    status, headers, body = get(maddr, "/healthz", method="HEAD")
    assert (status, body, headers["content-length"]) == (200, b"", "3")
    held = socket.create_connection(s.addr, timeout=10)
    held.sendall(b"x\n")
    assert held.recv(100) == b"Received: x\n"
    s.signal(signal.SIGTERM)
    s.wait_stderr(r"draining 1 connection")
    status, _, body = get(maddr, "/healthz")
    assert (status, body) == (503, b"draining\n")
    m = samples(get(maddr, "/metrics")[2].decode())
    assert m["sockit_draining"] == 1 and m["sockit_connections_open"] == 1
    held.close()
    assert s.wait() == 0


def test_paths_methods_and_bad_requests(serve):
    s = serve(["--metrics", "127.0.0.1:0"])
    maddr = metrics_addr(s)
    assert get(maddr, "/nope")[0] == 404
    assert get(maddr, "/")[0] == 404
    assert get(maddr, "/metrics/x")[0] == 404
    status, headers, _ = get(maddr, "/metrics", method="POST")
    assert status == 405 and headers["allow"] == "GET, HEAD"
    assert get(maddr, "/metrics?x=1", version="1.0")[0] == 200
    status, headers, body = get(maddr, "/metrics", method="HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 100
    assert http(maddr, b"hello there\r\n\r\n")[0] == 400
    assert http(maddr, b"GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")[0] == 400
    assert http(maddr, b"GET /metrics HTTP/1.1\nHost: x\n\n")[0] == 400
    # a head that does not fit 4 KiB: 400, not a wait
    assert http(maddr, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 5000)[0] == 400
    # the server still serves
    assert once_exchange(s.addr, b"q") == b"Received: q"


def test_slowloris_scraper_delays_nothing(serve):
    s = serve(["--metrics", "0"])
    maddr = metrics_addr(s)
    slow = socket.create_connection(maddr, timeout=20)
    stop = threading.Event()

    def drip():
        for b in b"GET /metrics HTTP/1.1\r\n":
            if stop.wait(1.0):
                return
            try:
                slow.send(bytes([b]))
            except OSError:
                return
    t = threading.Thread(target=drip, daemon=True)
    t.start()
    try:
        time.sleep(0.5)
        t0 = time.monotonic()
        assert get(maddr, "/metrics")[0] == 200
        assert once_exchange(s.addr, b"ping", timeout=10) == b"Received: ping"
        # both answered while the slow one still holds its slot: it has
        # 5 s for its request head
        assert time.monotonic() - t0 < 4.0
        r, _, _ = select.select([slow], [], [], 0)
        assert not r, "the slow scraper was closed too early"
        # then its deadline closes it, without an answer
        r, _, _ = select.select([slow], [], [], 15)
        assert r and slow.recv(100) == b""
    finally:
        stop.set()
        t.join(timeout=5)
        slow.close()


def test_concurrent_scrapers_capped(serve):
    s = serve(["--metrics", "0"])
    maddr = metrics_addr(s)
    socks = [socket.create_connection(maddr, timeout=10) for _ in range(40)]
    try:
        closed = set()
        deadline = time.monotonic() + 3
        while len(closed) < 24 and time.monotonic() < deadline:
            r, _, _ = select.select([c for c in socks if c not in closed], [], [], 0.2)
            for c in r:
                if c.recv(100) == b"":
                    closed.add(c)
        assert len(closed) == 24, f"{len(closed)} of 40 idle scrapers closed at once"
        # the 16 held ones end at their 5 s deadline; then scrapes work again
        for c in socks:
            if c not in closed:
                r, _, _ = select.select([c], [], [], 15)
                assert r and c.recv(100) == b""
        assert get(maddr, "/metrics")[0] == 200
    finally:
        for c in socks:
            c.close()


def test_metrics_address_forms(serve, run_sockit):
    if socket.has_ipv6:
        try:
            socket.socket(socket.AF_INET6).bind(("::1", 0))
        except OSError:
            pass
        else:
            s = serve(["--metrics", "[::1]:0"])
            assert metrics_addr(s)[0] == "::1"
            assert get(metrics_addr(s), "/healthz")[0] == 200
    for bad in ("::1:80", "[::1]", "host:", ":80", "127.0.0.1:99999"):
        r = run_sockit(["serve", "--metrics", bad])
        assert r.returncode == 2, (bad, r.stderr)
        assert b"--metrics" in r.stderr
    r = run_sockit(["serve", "--help"])
    assert b"--metrics [HOST:]PORT" in r.stdout


def test_metrics_port_in_use(serve):
    s = serve(["--metrics", "0"])
    _, port = metrics_addr(s)
    p = subprocess.run([SOCKIT, "serve", "-p", "0", "--metrics", str(port)],
                       capture_output=True, timeout=30)
    assert p.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port} for --metrics".encode() in p.stderr
