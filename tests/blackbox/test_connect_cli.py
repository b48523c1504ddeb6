"""test_connect_cli.py -- `sockit connect`'s command line: usage errors, help,
version, and the -v / --json summaries."""
import json
import re

import pytest

from connect_helpers import TcpServer, closed_port, connect, read_to_eof

HOST, PORT = "127.0.0.1", "9"


@pytest.mark.parametrize("args,message", [
    ([], "missing HOST and PORT"),
    ([HOST], "missing PORT after HOST '127.0.0.1'"),
    ([HOST, "0"], "bad PORT '0'"),
    ([HOST, "65536"], "bad PORT '65536'"),
    ([HOST, "http"], "bad PORT 'http'"),
    (["", PORT], "bad HOST ''"),
    (["--bogus", HOST, PORT], "unknown option '--bogus'"),
    (["-x", HOST, PORT], "unknown option '-x'"),
    (["-w", "abc", HOST, PORT], "bad -w 'abc'"),
    (["-w", "-1", HOST, PORT], "bad -w '-1'"),
    (["-i", "5parsecs", HOST, PORT], "bad -i '5parsecs'"),
    (["-q", "", HOST, PORT], "bad -q ''"),
    (["-u", "--reply-timeout", "x", HOST, PORT], "bad --reply-timeout 'x'"),
    (["--wait-for", "soon", HOST, PORT], "bad --wait-for 'soon'"),
    ([HOST, PORT, "-w"], "option '-w' needs a value"),
    ([HOST, PORT, "--wait-for"], "option '--wait-for' needs a value"),
    (["-4", "-6", HOST, PORT], "-4 and -6 exclude each other"),
    (["-z", HOST, PORT, "data"], "-z sends no data, but DATA 'data' was given"),
    (["-z", "-u", HOST, PORT], "-z checks TCP connections"),
    (["-u", "--wait-for", "1s", HOST, PORT], "--wait-for waits for a TCP port"),
    (["--reply-timeout", "1s", HOST, PORT], "--reply-timeout applies to UDP only"),
])
def test_usage_errors_exit_2_and_name_the_argument(args, message):
    r, _ = connect(args)
    assert r.returncode == 2, r.stderr
    assert r.stdout == b""
    err = r.stderr.decode()
    assert err.startswith("sockit connect: "), err
    assert message in err, err
    assert "Try 'sockit connect --help'." in err


def test_help_has_the_eof_table():
    for flag in ("--help", "-h"):
        r, _ = connect([flag])
        assert r.returncode == 0
        out = r.stdout.decode()
        assert out.startswith("usage: sockit connect")
        for row in ("input EOF", "server closes (FIN)", "server resets (RST)",
                    "-i idle timeout", "-w connect timeout", "stdout closed (EPIPE)"):
            assert row in out, row


def test_version():
    r, _ = connect(["--version"])
    assert r.returncode == 0
    assert re.fullmatch(rb"sockit \d+\.\d+\.\d+\n", r.stdout), r.stdout


@pytest.fixture
def reply_server():
    s = TcpServer(lambda c: c.sendall(b"Received: " + read_to_eof(c)))
    yield s
    s.stop()


def test_verbose_summary(reply_server):
    r, _ = connect(["-v", HOST, reply_server.port, "hello"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"Received: hello\n"
    err = r.stderr.decode()
    assert f"connected to 127.0.0.1:{reply_server.port} (tcp" in err, err
    assert re.search(r"sent 6 bytes, received 16 bytes, \d+ ms, end=fin exit=0\n", err), err


def test_verbose_summary_of_a_failure():
    port = closed_port()
    r, _ = connect(["-v", HOST, port])
    assert r.returncode == 1
    err = r.stderr.decode()
    assert f"tried 127.0.0.1:{port}: connection refused" in err, err
    assert "end=connect-failed exit=1" in err, err


KEYS = {"host", "port", "proto", "tried", "connected", "attempts", "bytes_sent",
        "bytes_received", "datagrams_sent", "datagrams_received", "duration_ms", "end",
        "exit", "error"}


def test_json_summary_parses(reply_server):
    r, _ = connect(["--json", HOST, reply_server.port, "hello"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"Received: hello\n"
    assert r.stderr.count(b"\n") == 1
    j = json.loads(r.stderr)
    assert set(j) == KEYS, set(j) ^ KEYS
    addr = f"127.0.0.1:{reply_server.port}"
    assert j["host"] == HOST and j["port"] == reply_server.port and j["proto"] == "tcp"
    assert j["tried"] == [{"addr": addr, "error": None}]
    assert j["connected"] == addr
    assert (j["bytes_sent"], j["bytes_received"]) == (6, 16)
    assert (j["end"], j["exit"], j["error"], j["attempts"]) == ("fin", 0, None, 1)
    assert isinstance(j["duration_ms"], int) and j["duration_ms"] >= 0


def test_json_summary_of_a_failure_carries_the_error():
    port = closed_port()
    r, _ = connect(["--json", "-v", HOST, port, "x"])
    assert r.returncode == 1
    j = json.loads(r.stderr)  # the only thing on stderr
    addr = f"127.0.0.1:{port}"
    assert j["tried"] == [{"addr": addr, "error": "connection refused"}], j
    assert j["connected"] is None
    assert (j["end"], j["exit"]) == ("connect-failed", 1)
    assert addr in j["error"]


def test_json_escapes_the_host():
    r, _ = connect(["--json", 'no"such\\host.invalid', 80])
    assert r.returncode == 1
    j = json.loads(r.stderr)
    assert j["host"] == 'no"such\\host.invalid'
    assert j["end"] == "resolve-failed"
