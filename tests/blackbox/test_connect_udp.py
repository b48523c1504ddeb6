"""test_connect_udp.py -- `sockit connect -u`: datagrams out, replies printed,
--reply-timeout, and the exit code when nothing answers."""
import json
import os
import select
import signal
import socket
import subprocess

import pytest

from conftest import SOCKIT, wait_until
from connect_helpers import UdpServer, closed_port, connect, connect_lost_stdout, has_ipv6


@pytest.fixture
def udp_server():
    started = []

    def start(reply, **kw):
        s = UdpServer(reply, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def received(data):
    return b"Received: " + data


def test_udp_data_with_reply(udp_server):
    s = udp_server(received)
    r, took = connect(["-u", "--reply-timeout", "300ms", "127.0.0.1", s.port, "hello"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"Received: hello\n"
    assert s.received == [b"hello\n"]
    assert took < 5


def test_udp_each_data_argument_is_a_datagram(udp_server):
    s = udp_server(received)
    r, _ = connect(["-u", "-n", "--reply-timeout", "300ms", "127.0.0.1", s.port, "a", "bb"])
    assert r.returncode == 0, r.stderr
    assert s.received == [b"a", b"bb"]
    assert r.stdout == b"Received: aReceived: bb"


def test_udp_each_stdin_line_is_a_datagram(udp_server):
    s = udp_server(received)
    r, _ = connect(["-u", "--reply-timeout", "300ms", "127.0.0.1", s.port],
                   input=b"one\ntwo\nlast")
    assert r.returncode == 0, r.stderr
    assert s.received == [b"one\n", b"two\n", b"last"]
    assert r.stdout == b"Received: one\nReceived: two\nReceived: last"


def test_udp_stdin_lines_without_newline(udp_server):
    s = udp_server(received)
    r, _ = connect(["-u", "-n", "--reply-timeout", "300ms", "127.0.0.1", s.port],
                   input=b"one\ntwo\n")
    assert r.returncode == 0, r.stderr
    assert s.received == [b"one", b"two"]


def test_udp_several_replies_printed_as_they_come(udp_server):
    s = udp_server(lambda d: d.upper())
    r, _ = connect(["-u", "--reply-timeout", "300ms", "--json", "127.0.0.1", s.port],
                   input=b"x\ny\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"X\nY\n"
    j = json.loads(r.stderr)
    assert (j["datagrams_sent"], j["datagrams_received"]) == (2, 2), j
    assert (j["bytes_sent"], j["bytes_received"], j["proto"]) == (4, 4, "udp"), j
    assert j["address"] == f"127.0.0.1:{s.port}", j


def test_udp_no_reply_exit_1_after_reply_timeout(udp_server):
    s = udp_server(lambda d: None)
    r, took = connect(["-u", "--reply-timeout", "400ms", "127.0.0.1", s.port, "hello"])
    assert r.returncode == 1
    assert r.stdout == b""
    assert b"no reply within 400ms" in r.stderr
    assert s.received == [b"hello\n"]
    assert 0.3 < took < 5


def test_udp_reply_timeout_zero_sends_and_exits_0(udp_server):
    s = udp_server(lambda d: None)
    r, took = connect(["-u", "--reply-timeout", "0", "127.0.0.1", s.port, "fire"])
    assert r.returncode == 0, r.stderr
    assert took < 5
    assert wait_until(lambda: s.received, timeout=5) == [b"fire\n"]


def test_udp_closed_port_is_refused():
    port = closed_port(type=socket.SOCK_DGRAM)
    r, _ = connect(["-u", "--reply-timeout", "2s", "127.0.0.1", port, "hello"])
    if r.returncode == 1 and b"no reply" in r.stderr:
        pytest.skip("this kernel reports no ICMP port unreachable on loopback")
    assert r.returncode == 1
    assert b"udp 127.0.0.1:%d: connection refused" % port in r.stderr


def test_udp_empty_input_exits_0_at_once(udp_server):
    s = udp_server(received)
    r, took = connect(["-u", "127.0.0.1", s.port], input=b"")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b""
    assert took < 5


def test_udp_ipv6(udp_server):
    if not has_ipv6():
        pytest.skip("no IPv6 loopback")
    s = udp_server(received, family=socket.AF_INET6)
    r, _ = connect(["-u", "-6", "--reply-timeout", "300ms", "::1", s.port, "six"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"Received: six\n"


def test_udp_against_serve(serve):
    h = subprocess.run([SOCKIT, "--help"], stdout=subprocess.PIPE, timeout=10)
    if b"  serve " not in h.stdout:
        pytest.skip("`sockit serve` is not in this build yet")
    s = serve(["--udp-only"], tcp=False, udp=True)
    r, _ = connect(["-u", "--reply-timeout", "500ms", "127.0.0.1", s.udp_port, "hello"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"Received: hello\n"


def test_udp_quit_before_reply_timeout(udp_server):
    s = udp_server(lambda d: None)
    r, took = connect(["-u", "-v", "-q", "200ms", "--reply-timeout", "20s", "127.0.0.1", s.port,
                       "x"], timeout=15)
    assert r.returncode == 0, r.stderr
    assert b"end=quit exit=0" in r.stderr
    assert took < 10


def test_udp_idle_timeout(udp_server):
    s = udp_server(lambda d: None)
    r, took = connect(["-u", "-i", "300ms", "--reply-timeout", "20s", "127.0.0.1", s.port, "x"],
                      timeout=15)
    assert r.returncode == 1
    assert b"idle timeout: no datagram either way for 300ms" in r.stderr, r.stderr
    assert took < 10


@pytest.mark.parametrize("idle", ["1s", "300ms"])
def test_udp_idle_timeout_after_a_reply_exits_0(udp_server, idle):
    """issue 19, item 2: -i used to turn a successful exchange into a
    failure ("Received: x", then "idle timeout", exit 1).  UDP exits 0 once
    a reply came."""
    s = udp_server(received)
    r, took = connect(["-u", "-i", idle, "--reply-timeout", "20s", "127.0.0.1", s.port, "x"],
                      timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"Received: x\n"
    assert r.stderr == b""
    assert took < 15
    r, _ = connect(["-u", "-i", "1s", "127.0.0.1", s.port, "x"], timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stderr == b""


def test_udp_idle_timeout_while_stdin_is_open_after_a_reply(udp_server):
    """issue 19, item 2: the same when stdin stays open (nc -u style)."""
    s = udp_server(received)
    p = subprocess.Popen([SOCKIT, "connect", "-u", "-i", "500ms", "127.0.0.1", str(s.port)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        p.stdin.write(b"ping\n")
        p.stdin.flush()
        out, err = p.communicate(timeout=15)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
    assert p.returncode == 0, err
    assert out == b"Received: ping\n"


@pytest.mark.parametrize("how", ["full", "closed"])
def test_udp_lost_stdout_exit_1(udp_server, how):
    """issue 19, items 1 and 9: a reply that cannot be written is a failure."""
    s = udp_server(received)
    r, took = connect_lost_stdout(["-u", "--reply-timeout", "300ms", "127.0.0.1", s.port, "x"],
                                  how)
    assert r.returncode == 1, r.stderr
    assert r.stderr.count(b"\n") == 1, r.stderr
    assert took < 10


def test_udp_data_too_long_for_a_datagram(udp_server):
    s = udp_server(received)
    r, _ = connect(["-u", "127.0.0.1", s.port, "ok", "y" * 65507])
    assert r.returncode == 1
    assert b"DATA argument 2 is too long for a datagram (65508 bytes, at most 65507)" in r.stderr
    assert wait_until(lambda: s.received, timeout=5) == [b"ok\n"]


def test_udp_signal_prints_summary_then_dies_of_it(udp_server):
    s = udp_server(received)
    p = subprocess.Popen([SOCKIT, "connect", "-u", "--json", "127.0.0.1", str(s.port)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        p.stdin.write(b"ping\n")
        p.stdin.flush()
        assert wait_until(lambda: s.received, timeout=10) == [b"ping\n"]
        ready, _, _ = select.select([p.stdout], [], [], 10)
        assert ready, "no reply printed"
        first = os.read(p.stdout.fileno(), 4096)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
    assert p.returncode == -signal.SIGTERM, err
    assert first + out == b"Received: ping\n"
    j = json.loads(err)
    assert (j["end"], j["datagrams_sent"], j["datagrams_received"]) == ("signal", 1, 1), j
