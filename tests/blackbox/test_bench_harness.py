"""test_bench_harness.py -- `make bench`'s harness (bench/run.py) works.

A smoke run on tiny durations: it checks the harness measures, tabulates
and writes its JSON and chart, never how fast anything is.
"""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, SOCKIT

RUN = os.path.join(ROOT, "bench", "run.py")
needs_cc = pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")),
                              reason="no C compiler: the epoll peer cannot be built")


def harness(args, tmp_path, timeout=120):
    argv = [sys.executable, RUN, "--sockit", SOCKIT, "--json", str(tmp_path / "r.json"),
            "--svg", str(tmp_path / "r.svg")] + args
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def rows(stdout):
    """{(workload, server label): [cells]} of the markdown table."""
    out = {}
    for line in stdout.splitlines():
        if line.startswith("| ") and not line.startswith("| workload"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            out[(cells[0], cells[1])] = cells[2:]
    return out


@needs_cc
def test_quick_run_measures_epoll_and_sockit(tmp_path):
    r = harness(["--quick", "--servers", "epoll,sockit"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "| workload | server | CPU µs/req |" in r.stdout, r.stdout
    table = rows(r.stdout)
    for wl in ("once-16", "line-16", "udp-16"):
        for label in ("minimal epoll", "sockit serve -w1"):
            cells = table[(wl, label)]
            # CPU µs/req, req/s: a number with its ratio to the epoll server.
            assert re.fullmatch(r"[0-9.]+ \([0-9.]+x\)( ⚠)?", cells[0]), cells
            assert re.fullmatch(r"[0-9.]+ \([0-9.]+x\)", cells[1]), cells
        assert table[(wl, "minimal epoll")][0].split(" ⚠")[0].endswith("(1.00x)")
    for label in ("minimal epoll", "sockit serve -w1"):
        assert re.search(r"200: -?[0-9.]+", table[("idle", label)][-1]), table[("idle", label)]
    verdicts = re.findall(r"^(PASS|FAIL|SKIP) ", r.stdout, re.M)
    assert len(verdicts) == 8, r.stdout

    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["params"]["servers"] == ["epoll", "sockit"]
    for name in ("epoll", "sockit"):
        f = doc["summary"][name]["once-16"]
        assert f["cpu_us_per_req"] > 0 and f["rps"] > 0 and f["reps"] == 1, f
        assert "200" in doc["summary"][name]["idle"]["bytes_per_conn"]
    load = [x for x in doc["runs"] if x["workload"] != "idle"]
    assert len(load) == 6 and all(x["requests"] > 0 for x in load), load
    assert len(doc["targets"]) == 8
    assert (tmp_path / "r.svg").read_text().startswith("<svg")


@needs_cc
def test_a_peer_without_the_mode_shows_na(tmp_path):
    r = harness(["--quick", "--servers", "tutorial,epoll", "--workloads", "line-16"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    table = rows(r.stdout)
    assert table[("line-16", "tutorial (Python)")][0] == "n/a"
    assert table[("line-16", "minimal epoll")][0] != "n/a"
    assert "n/a: tutorial (Python), line-16: " in r.stdout
    doc = json.loads((tmp_path / "r.json").read_text())
    assert "na" in doc["summary"]["tutorial"]["line-16"]


def test_unknown_server_is_a_usage_error(tmp_path):
    r = harness(["--servers", "epoll,nosuch"], tmp_path, timeout=30)
    assert r.returncode == 2
    assert "unknown server 'nosuch'" in r.stderr


def load_run_py():
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_run", RUN)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_targets_judge_ratios_the_right_way_round():
    run = load_run_py()
    args = run.parse_args(["--servers", "epoll,sockit,sockit2,libuv",
                           "--workloads", "once-64,line-16,udp-16,idle", "--idle", "100,1000"])

    def load(cpu, p99=100.0, errors=0, over=0):
        return {"cpu_us_per_req": cpu, "rps": 1.0, "p50_us": 1.0, "p99_us": p99,
                "errors": errors, "over_100ms": over, "peak_rss_kb": 1000, "reps": 3,
                "noisy_reps": 0, "failed_reps": 0}

    def idle(b):
        return {"bytes_per_conn": {"100": b, "1000": b}, "peak_rss_kb": 1000, "reps": 3}

    summary = {
        "epoll": {"once-64": load(10.0), "line-16": load(10.0), "udp-16": load(10.0),
                  "idle": idle(50.0)},
        # once 0.70x (pass), line 1.05x (fail), udp 0.50x (pass), idle 300 B (fail)
        "sockit": {"once-64": load(7.0), "line-16": load(10.5, over=1), "udp-16": load(5.0),
                   "idle": idle(300.0)},
        # 2 workers: once 1.2x of 1 worker (fail); the others within 1.1x
        "sockit2": {"once-64": load(8.4), "line-16": load(10.5), "udp-16": load(5.2),
                    "idle": {"na": "1 worker only"}},
        "libuv": {"once-64": load(12.0), "line-16": load(10.0), "udp-16": load(6.0),
                  "idle": idle(250.0)},
    }
    got = {title.split(":")[0]: (verdict, detail) for title, verdict, detail in
           run.targets(summary, args)}
    assert got["once"][0] == "PASS" and "0.70x" in got["once"][1], got
    assert got["line"][0] == "FAIL", got
    assert got["udp"][0] == "PASS", got
    assert got["idle"] == ("FAIL", "300 B/conn"), got
    assert got["stalls"][0] == "FAIL" and "line-16" in got["stalls"][1], got
    assert got["latency"][0] == "SKIP", got   # no c=1 workload measured
    assert got["workers"][0] == "FAIL" and "once-64 1.20x" in got["workers"][1], got
    beats = got["beats every peer (CPU/req, idle B/conn)"]
    assert beats[0] == "FAIL" and "libuv line-16" in beats[1] and "libuv idle" in beats[1]
    assert "libuv once-64" not in beats[1]

    table, _ = run.table(summary, args)
    assert "| once-64 | sockit serve -w1 | 7.00 (0.70x) |" in table

    # With each repetition's figures, the ratio within each one is shown
    # too (the verdict stays on the medians).
    def reps(*cpu):
        return {str(i): {"cpu_us_per_req": c, "p99_us": 100.0} for i, c in enumerate(cpu)}
    summary["epoll"]["once-64"]["by_rep"] = reps(10.0, 20.0, 10.0)
    summary["sockit"]["once-64"]["by_rep"] = reps(7.0, 12.0, 8.0)
    got = {title.split(":")[0]: (verdict, detail) for title, verdict, detail in
           run.targets(summary, args)}
    assert got["once"] == ("PASS", "once-64 0.70x (by rep 0.70/0.60/0.80)"), got
    assert "| idle | sockit serve -w2 | n/a |" in table


def test_reading_a_server_log_leaves_the_servers_offset_alone(tmp_path):
    """The server writes through a descriptor that shares the log file's
    offset with the harness: reading must not move it, or the server's
    next write lands over its port line (make bench once stopped so)."""
    run = load_run_py()
    with open(tmp_path / "srv.out", "w+b") as f:
        f.write(b"po")
        f.flush()
        assert run.Server._read(f) == b"po"
        f.write(b"rt 4321\n")
        f.flush()
        assert f.tell() == 10
        assert run.Server._read(f) == b"port 4321\n"
