"""test_bench_serve.py -- `sockit bench` against the real `sockit serve`, in each
mode: exit 0, and its counts agree with the server's own counters."""
import pytest

from test_bench import bench

MODES = {
    # mode: (serve args, bench args)
    "once": (["-m", "once"], ["-c", "8"]),
    "line": (["-m", "line"], ["-c", "8", "-P", "4"]),
    "echo": (["-m", "echo"], ["-c", "4", "-P", "2", "-s", "300"]),
    "udp": (["--udp-only"], ["-c", "8"]),
}


def start(serve, mode):
    udp = mode == "udp"
    srv = serve(MODES[mode][0] + ["--workers", "1"], udp=udp, tcp=not udp)
    return srv, (srv.udp_port if udp else srv.port)


def served(counters, mode, size):
    """Requests the server saw, from its counters."""
    if mode == "once":
        return counters["accepted"]
    if mode == "udp":
        return counters["dgrams_in"]
    assert counters["bytes_in"] % size == 0, counters
    return counters["bytes_in"] // size


@pytest.mark.parametrize("mode", list(MODES))
def test_against_sockit_serve(run_sockit, serve, mode):
    srv, port = start(serve, mode)
    rc, d, err = bench(run_sockit, ["-m", mode, "-d", "1s"] + MODES[mode][1] +
                       ["127.0.0.1", port])
    assert rc == 0, (d, err)
    assert d["errors_total"] == 0 and d["requests"] > 0
    assert d["rate_per_s"] == pytest.approx(d["requests"] / (d["duration_ms"] / 1000), rel=0.05)
    assert d["duration_ms"] == pytest.approx(1000, abs=50)
    window = d["conns"] * d["depth"]
    c = srv.counters()
    seen = served(c, mode, d["size"])
    assert d["requests"] <= seen <= d["requests"] + window, (d["requests"], c)


@pytest.mark.parametrize("mode", list(MODES))
def test_n_exact_against_sockit_serve(run_sockit, serve, mode):
    srv, port = start(serve, mode)
    rc, d, err = bench(run_sockit, ["-m", mode, "-n", "1000"] + MODES[mode][1] +
                       ["127.0.0.1", port])
    assert rc == 0, (d, err)
    assert d["requests"] == 1000
    key = {"once": "accepted", "udp": "dgrams_in"}.get(mode, "bytes_in")
    want = 1000 if key != "bytes_in" else 1000 * d["size"]
    c = srv.wait_counter(key, want)
    assert served(c, mode, d["size"]) == 1000, c


def test_prefix_against_sockit_serve(run_sockit, serve):
    srv = serve(["-m", "line", "--prefix", "ack "])
    rc, d, _ = bench(run_sockit, ["-m", "line", "-n", "50", "--prefix", "ack ",
                                  "127.0.0.1", srv.port])
    assert rc == 0 and d["requests"] == 50
    rc, d, _ = bench(run_sockit, ["-m", "line", "-n", "50", "127.0.0.1", srv.port])
    assert rc == 1 and d["errors"]["mismatch"] > 0


def test_ipv6_against_sockit_serve(run_sockit, serve):
    srv = serve(["-H", "::1", "-m", "line", "--workers", "1"])
    rc, d, err = bench(run_sockit, ["-m", "line", "-n", "200", "-c", "2", "::1", srv.port])
    assert rc == 0, err
    assert d["requests"] == 200 and d["host"] == "::1"
