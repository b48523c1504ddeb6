"""test_checks.py -- the soak's verdicts fail when they should (tests/soak/checks.py).

Synthetic samples only: no server.  `make soak` runs these first, so a
check that has stopped failing cannot pass the soak silently.
"""
import math
import os
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checks  # noqa: E402
from checks import parse_prometheus  # noqa: E402

# A quiescent scrape that adds up: 10 accepted, 7 done + 2 eof + 1 proxy
# malformed closed, none open; 5 datagrams in, 3 answered, 2 dropped.
GOOD = """\
# HELP sockit_connections_accepted_total TCP connections accepted.
# TYPE sockit_connections_accepted_total counter
sockit_connections_accepted_total 10
sockit_connections_refused_total{reason="maxconns"} 4
sockit_connections_refused_total{reason="denied"} 0
sockit_connections_closed_total{reason="done"} 7
sockit_connections_closed_total{reason="eof"} 2
sockit_connections_closed_total{reason="proxy_malformed"} 1
sockit_received_bytes_total 100
sockit_sent_bytes_total 170
sockit_datagrams_received_total 5
sockit_datagrams_sent_total 3
sockit_datagrams_dropped_total{reason="port"} 0
sockit_datagrams_dropped_total{reason="rate"} 2
sockit_cpu_yields_total 1
sockit_connections_active{worker="0"} 0
sockit_connections_active{worker="1"} 0
sockit_connections_open 0
sockit_workers 2
sockit_connection_duration_seconds_bucket{le="0.00025"} 4
sockit_connection_duration_seconds_bucket{le="0.0005"} 9
sockit_connection_duration_seconds_bucket{le="+Inf"} 10
sockit_connection_duration_seconds_sum 0.003
sockit_connection_duration_seconds_count 10
process_open_fds 18
"""


def good():
    return parse_prometheus(GOOD)


def edit(text, line, new):
    assert line in text, line
    return parse_prometheus(text.replace(line, new))


def checks_named(failures):
    return sorted({f.check for f in failures})


def test_parse_prometheus_reads_labels_and_inf():
    m = good()
    assert checks.metric(m, "sockit_connections_closed_total", reason="eof") == 2
    assert checks.reasons(m, "sockit_connections_closed_total") == {
        "done": 7, "eof": 2, "proxy_malformed": 1}
    assert m[("sockit_connection_duration_seconds_bucket", (("le", "+Inf"),))] == 10
    assert math.isinf(float("+Inf"))


def test_parse_prometheus_refuses_a_bad_line():
    try:
        parse_prometheus("sockit_x{reason=\"a\"} 1\nthis is not a sample line at all\n")
    except ValueError as e:
        assert "unreadable" in str(e)
    else:
        raise AssertionError("a bad line was accepted")


def test_identities_hold_on_a_consistent_scrape():
    assert checks.check_identities(good(), "x") == []


def test_identities_catch_accepted_not_closed_plus_open():
    m = edit(GOOD, "sockit_connections_accepted_total 10", "sockit_connections_accepted_total 11")
    f = checks.check_identities(m, "x")
    assert checks_named(f) == ["counters x"]
    assert any("accepted 11 != closed 10 + open 0" in x.detail for x in f)


def test_identities_catch_an_open_gauge_that_disagrees_with_the_workers():
    m = edit(GOOD, 'sockit_connections_active{worker="1"} 0',
             'sockit_connections_active{worker="1"} 1')
    assert any("per-worker" in x.detail for x in checks.check_identities(m, "x"))


def test_identities_catch_the_histogram():
    m = edit(GOOD, "sockit_connection_duration_seconds_count 10",
             "sockit_connection_duration_seconds_count 9")
    details = " ".join(x.detail for x in checks.check_identities(m, "x"))
    assert "+Inf bucket 10 != _count 9" in details and "_count 9 != closed 10" in details
    m = edit(GOOD, 'sockit_connection_duration_seconds_bucket{le="0.0005"} 9',
             'sockit_connection_duration_seconds_bucket{le="0.0005"} 3')
    assert any("decrease" in x.detail for x in checks.check_identities(m, "x"))


def test_identities_catch_lost_datagrams():
    m = edit(GOOD, "sockit_datagrams_received_total 5", "sockit_datagrams_received_total 6")
    assert any("datagrams in 6" in x.detail for x in checks.check_identities(m, "x"))


def test_identities_under_load_check_only_what_holds_per_worker():
    # accepted ahead of closed + open: a scrape in flight, not a failure...
    m = edit(GOOD, "sockit_connections_accepted_total 10", "sockit_connections_accepted_total 12")
    assert checks.check_identities(m, "x", quiescent=False) == []
    # ...but a histogram that is not cumulative is one at any time
    m = edit(GOOD, "sockit_connection_duration_seconds_count 10",
             "sockit_connection_duration_seconds_count 11")
    assert checks.check_identities(m, "x", quiescent=False) != []


def test_identities_fail_without_the_counters():
    assert checks.check_identities(parse_prometheus("process_open_fds 3\n"), "x") != []


def sample(t, phase, rss, fds=20, metrics=None, req=0):
    return {"t": t, "phase": phase, "rss_kb": rss, "fds": fds, "cpu_s": t / 100,
            "metrics": metrics if metrics is not None else good(), "bench_req": req,
            "bench_err": 0}


def run(growth_at_end, n=20, base=10000):
    """Samples: 2 base, warm-up from t=2 to 10 (reference from 6), load to
    t=40 growing linearly to base * (1 + growth_at_end)."""
    ss = [sample(0, "base", base // 2)]
    for t in range(2, 11, 2):
        ss.append(sample(t, "warm", base))
    for i, t in enumerate(range(12, 41, 2)):
        ss.append(sample(t, "load", int(base * (1 + growth_at_end * (i + 1) / 15))))
    return ss


def test_rss_growth_of_6_percent_fails_and_2_percent_passes():
    f = checks.check_rss(run(0.06), 6, 40, "x")
    # the last quarter's median: 5.4% above the reference
    assert checks_named(f) == ["rss x"] and "grew 5.4%" in f[0].detail, f
    assert checks.check_rss(run(0.02), 6, 40, "x") == []


def test_rss_reference_is_after_the_priming():
    # a warm-up whose first half held a burst's buffers: not the reference
    ss = run(0.0)
    ss[1]["rss_kb"] = ss[2]["rss_kb"] = 30000
    assert checks.rss_growth(ss, 6, 40)[0] == 10000
    assert checks.check_rss(ss, 6, 40, "x") == []


def test_rss_one_sample_spike_is_noise_but_a_trend_is_not():
    ss = run(0.0)
    ss[-2]["rss_kb"] = 20000  # one never-reader's buffers, gone in the next sample
    assert checks.check_rss(ss, 6, 40, "x") == []
    ss = run(0.0)
    for s in ss[-4:]:
        s["rss_kb"] = 10600
    assert checks.check_rss(ss, 6, 40, "x") != []


def test_rss_needs_samples():
    assert checks.check_rss([sample(0, "base", 1)], 6, 40, "x") != []


def test_fds_not_back_fails():
    assert checks.check_fds(17, 17, "x") == []
    f = checks.check_fds(17, 18, "x")
    assert checks_named(f) == ["fds x"] and "18 descriptors open" in f[0].detail


def test_open_fds_gauge_counts_the_scrape():
    assert checks.check_open_fds_gauge(good(), 17, "x") == []
    assert checks.check_open_fds_gauge(good(), 18, "x") != []


def test_monotonic_catches_a_counter_going_back():
    a = sample(0, "load", 1)
    b = sample(2, "load", 1, metrics=edit(GOOD, 'sockit_connections_closed_total{reason="eof"} 2',
                                          'sockit_connections_closed_total{reason="eof"} 1'))
    f = checks.check_monotonic([a, b], "x")
    assert checks_named(f) == ["monotonic x"] and "eof" in f[0].detail
    assert checks.check_monotonic([a, sample(2, "load", 1)], "x") == []
    # a datagram counted as sent when queued is taken back if the send fails
    c = sample(2, "load", 1, metrics=edit(GOOD, "sockit_datagrams_sent_total 3",
                                          "sockit_datagrams_sent_total 2"))
    assert checks.check_monotonic([a, c], "x") == []


def bench(errors=None, requests=100, rc=0):
    errs = {"mismatch": 0, "truncated": 0, "reset": 0, "timeout": 0}
    errs.update(errors or {})
    return {"json": {"requests": requests, "errors": errs, "errors_total": sum(errs.values()),
                     "error": None}, "exit": rc, "stderr": ""}


def test_bench_errors_fail():
    assert checks.check_bench(bench(), "b") == []
    f = checks.check_bench(bench({"timeout": 1}, rc=1), "b")
    assert checks_named(f) == ["bench b"] and "timeout=1" in f[0].detail


def test_bench_without_requests_or_json_fails():
    assert checks.check_bench(bench(requests=0, rc=1), "b") != []
    assert checks.check_bench({"json": None, "exit": 2, "stderr": "usage"}, "b") != []
    assert checks.check_bench(bench(rc=1), "b") != []


def test_exit_counters_must_equal_the_last_scrape():
    line = {"accepted": 10, "active": 0, "refused_maxconns": 4, "closed_done": 7,
            "closed_eof": 2, "closed_proxy_malformed": 1, "bytes_in": 100, "bytes_out": 170,
            "dgrams_in": 5, "dgrams_out": 3, "dgrams_dropped_rate": 2, "cpu_yields": 3}
    assert checks.check_exit_counters(good(), line, "x") == []  # cpu_yields may grow
    f = checks.check_exit_counters(good(), dict(line, closed_eof=3), "x")
    assert checks_named(f) == ["exit x"] and "closed_eof=3" in f[0].detail
    f = checks.check_exit_counters(good(), dict(line, closed_new_reason=1), "x")
    assert f and "not in /metrics" in f[0].detail


def test_line_keys_map_to_metric_names():
    assert checks.line_key_to_metric("closed_tls_timeout") == (
        "sockit_connections_closed_total", (("reason", "tls_timeout"),))
    assert checks.line_key_to_metric("refused_proxy_from") == (
        "sockit_connections_refused_total", (("reason", "proxy_from"),))
    assert checks.line_key_to_metric("proxy_local") == ("sockit_proxy_local_total", ())
    assert checks.line_key_to_metric("active") == ("sockit_connections_open", ())


def test_hostile_unexpected_outcomes_and_idle_kinds_fail():
    ok = {"attempts": 3, "outcomes": {"ok": 3}, "unexpected": {}}
    assert checks.check_hostile(ok, "k") == []
    bad = {"attempts": 3, "outcomes": {"ok": 2, "still_open": 1},
           "unexpected": {"still_open": "not closed within 13s"}}
    f = checks.check_hostile(bad, "k")
    assert checks_named(f) == ["hostile k"] and "1 x still_open" in f[0].detail
    assert checks.check_hostile({"attempts": 0, "outcomes": {}, "unexpected": {}}, "k") != []


def test_at_least():
    assert checks.check_at_least(5, 5, "c", "x") == []
    assert checks.check_at_least(4, 5, "c", "x") != []


def test_table_and_plot_are_well_formed():
    ss = run(0.01)
    for i, s in enumerate(ss):
        s["bench_req"] = 100 * i
    text = checks.table("x", ss, max_rows=8)
    assert len(text.splitlines()) <= 2 + 8 + 3  # a row per phase's ends at most beyond
    assert "RSS KiB" in text and "base" in text and "load" in text
    assert checks.phase_summary("x", ss)[0].split()[:2] == ["x", "base"]
    svg = checks.svg_plot({"a": ss, "b<&>": ss}, [("warm", 2, 10), ("load", 10, 40)], "t")
    root = ET.fromstring(svg)  # valid XML, names escaped
    lines = root.findall("{http://www.w3.org/2000/svg}polyline")
    assert len(lines) == 6  # three panels x two servers
    for pl in lines:
        for pt in pl.get("points").split():
            x, y = map(float, pt.split(","))
            assert 0 <= x <= float(root.get("width")) and 0 <= y <= float(root.get("height"))
