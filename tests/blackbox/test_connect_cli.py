"""test_connect_cli.py -- `sockit connect`'s command line: usage errors, help,
version, and the -v / --json summaries."""
import json
import re
import socket

import pytest

from connect_helpers import (TcpServer, UdpServer, closed_port, connect, connect_lost_stdout,
                             has_ipv6, read_to_eof)

HOST, PORT = "127.0.0.1", "9"


# issue 19, item 11: one wording per kind of value (cli_opt_*), naming the
# option as it was spelled.
@pytest.mark.parametrize("args,message", [
    ([], "missing HOST and PORT"),
    ([HOST], "missing PORT after HOST '127.0.0.1'"),
    ([HOST, "0"], "invalid port '0' for PORT: expected 1..65535 or a service name"),
    ([HOST, "65536"], "invalid port '65536' for PORT: expected 1..65535"),
    ([HOST, "nosuchservice"], "invalid port 'nosuchservice' for PORT: no such service"),
    (["", PORT], "invalid host '' for HOST: empty"),
    (["[::1", PORT], "invalid host '[::1' for HOST"),
    (["--bogus", HOST, PORT], "unknown option '--bogus'"),
    (["-x", HOST, PORT], "unknown option '-x'"),
    (["-w", "abc", HOST, PORT], "invalid duration 'abc' for -w: expected"),
    (["--timeout", "abc", HOST, PORT], "invalid duration 'abc' for --timeout: expected"),
    (["-w", "-1", HOST, PORT], "invalid duration '-1' for -w"),
    (["-i", "5parsecs", HOST, PORT], "invalid duration '5parsecs' for -i: unknown unit"),
    (["--idle-timeout", "5parsecs", HOST, PORT],
     "invalid duration '5parsecs' for --idle-timeout: unknown unit"),
    (["-q", "", HOST, PORT], "invalid duration '' for -q"),
    (["--quit-after", "x", HOST, PORT], "invalid duration 'x' for --quit-after"),
    (["-u", "--reply-timeout", "x", HOST, PORT], "invalid duration 'x' for --reply-timeout"),
    (["--wait-for", "soon", HOST, PORT], "invalid duration 'soon' for --wait-for"),
    ([HOST, PORT, "-w"], "option '-w' needs a value"),
    ([HOST, PORT, "--wait-for"], "option '--wait-for' needs a value"),
    (["-4", "-6", HOST, PORT], "-4 and -6 exclude each other"),
    (["--ipv4", "--ipv6", HOST, PORT], "-4 and -6 exclude each other"),
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


def test_help_lists_the_long_forms():
    """issue 19, item 8: one short and one long name for each option."""
    r, _ = connect(["--help"])
    out = r.stdout.decode()
    for pair in ("-u, --udp", "-4, --ipv4", "-6, --ipv6", "-w, --timeout", "-i, --idle-timeout",
                 "-q, --quit-after", "-n, --no-newline", "-z, --zero-io", "-v, --verbose",
                 "-h, --help", "-V, --version"):
        assert pair in out, pair


def test_version():
    for flag in ("--version", "-V"):
        r, _ = connect([flag])
        assert r.returncode == 0
        assert re.fullmatch(rb"sockit \d+\.\d+\.\d+\n", r.stdout), r.stdout


@pytest.mark.parametrize("flag", ["--help", "--version"])
@pytest.mark.parametrize("how", ["closed", "full"])
def test_help_and_version_lost_stdout_exit_1(flag, how):
    """issue 19, item 9: --help and --version check their output too."""
    r, _ = connect_lost_stdout([flag], how)
    assert r.returncode == 1, r.stderr
    assert b"sockit connect: cannot write to standard output" in r.stderr, r.stderr


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
    assert re.search(r"sent 6 bytes, received 16 bytes, \d+(\.\d)?(ms|s), end=fin exit=0\n", err), err


def test_verbose_summary_of_a_failure():
    port = closed_port()
    r, _ = connect(["-v", HOST, port])
    assert r.returncode == 1
    err = r.stderr.decode()
    assert f"cannot connect to 127.0.0.1:{port}: connection refused" in err, err
    assert err.count(f"127.0.0.1:{port}") == 1, err  # issue 19, item 11: said once
    assert "end=connect-failed exit=1" in err, err


# issue 19, item 10: the keys bench shares are spelled the same (host, port,
# address, duration_ms, bytes_sent, bytes_received, exit, error).
KEYS = {"host", "port", "proto", "address", "attempts", "connect_ms", "rounds", "bytes_sent",
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
    assert j["attempts"] == [{"address": addr, "error": None}]
    assert j["address"] == addr
    assert (j["bytes_sent"], j["bytes_received"]) == (6, 16)
    assert (j["end"], j["exit"], j["error"], j["rounds"]) == ("fin", 0, None, 1)
    assert isinstance(j["duration_ms"], (int, float)) and j["duration_ms"] >= 0


def test_json_summary_of_a_failure_carries_the_error():
    port = closed_port()
    r, _ = connect(["--json", "-v", HOST, port, "x"])
    assert r.returncode == 1
    j = json.loads(r.stderr)  # the only thing on stderr
    assert set(j) == KEYS, set(j) ^ KEYS
    addr = f"127.0.0.1:{port}"
    assert j["attempts"] == [{"address": addr, "error": "connection refused"}], j
    assert j["address"] is None
    assert (j["end"], j["exit"]) == ("connect-failed", 1)
    assert j["error"] == f"cannot connect to {addr}: connection refused (is the server running?)"


def test_json_escapes_the_host():
    r, _ = connect(["--json", 'no"such\\host.invalid', 80])
    assert r.returncode == 1
    j = json.loads(r.stderr)
    assert set(j) == KEYS, set(j) ^ KEYS
    assert j["host"] == 'no"such\\host.invalid'
    assert (j["end"], j["exit"], j["address"], j["attempts"]) == ("resolve-failed", 1, None, [])


# ---- Long forms (issue 19, item 8) ----------------------------------------

def test_long_forms_tcp(reply_server):
    """--verbose, --timeout, --idle-timeout, --ipv4, --quit-after, --no-newline
    mean what -v, -w, -i, -4, -q, -n mean."""
    r, _ = connect(["--verbose", "--timeout", "5s", "--idle-timeout", "5s", "--ipv4",
                    "--quit-after", "5s", "--no-newline", HOST, reply_server.port, "hello"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"Received: hello"
    assert b"end=fin exit=0" in r.stderr, r.stderr


def test_long_form_zero_io(reply_server):
    for flag in ("-z", "--zero-io"):
        r, _ = connect(["--verbose", flag, HOST, reply_server.port])
        assert r.returncode == 0, r.stderr
        assert b"end=open exit=0" in r.stderr, r.stderr


def test_long_form_quit_after_ends_the_wait():
    s = TcpServer(lambda c: (read_to_eof(c), s.release.wait(10)))
    try:
        r, took = connect(["--quit-after", "200ms", "-v", HOST, s.port, "x"], timeout=15)
        assert r.returncode == 0, r.stderr
        assert b"end=quit exit=0" in r.stderr
        assert took < 10
    finally:
        s.stop()


def test_long_form_idle_timeout():
    s = TcpServer(lambda c: s.release.wait(10))
    try:
        r, took = connect(["--idle-timeout", "300ms", HOST, s.port, "x"], timeout=15)
        assert r.returncode == 1
        assert b"idle timeout: no data either way for 300ms" in r.stderr, r.stderr
        assert took < 10
    finally:
        s.stop()


def test_long_forms_udp_and_ipv6():
    s = UdpServer(lambda d: b"Received: " + d)
    try:
        r, _ = connect(["--udp", "--reply-timeout", "300ms", HOST, s.port, "u"])
        assert r.returncode == 0, r.stderr
        assert r.stdout == b"Received: u\n"
    finally:
        s.stop()
    if not has_ipv6():
        return
    s6 = TcpServer(lambda c: c.sendall(b"six " + read_to_eof(c)), family=socket.AF_INET6)
    try:
        r, _ = connect(["--ipv6", "localhost", s6.port, "hi"])
        if b"cannot resolve" in r.stderr:
            r, _ = connect(["--ipv6", "::1", s6.port, "hi"])
        assert r.returncode == 0, r.stderr
        assert r.stdout == b"six hi\n"
    finally:
        s6.stop()
