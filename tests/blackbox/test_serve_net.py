"""test_serve_net.py -- `sockit serve` addresses and workers: IPv6, the
v6-only default of `-H ::`, --dualstack, --workers."""
import re
import socket

import pytest

from conftest import exchange, proc_status, wait_until

PREFIX = b"Received: "


def test_default_host_is_loopback_v4(serve):
    srv = serve()
    assert srv.host == "127.0.0.1"
    assert exchange(srv.addr, b"v4") == PREFIX + b"v4"


def test_ipv6_loopback(serve):
    srv = serve(["-H", "::1"])
    assert srv.host == "[::1]"
    assert exchange(("::1", srv.port), b"over v6", family=socket.AF_INET6) == PREFIX + b"over v6"
    with pytest.raises(ConnectionRefusedError):
        exchange(("127.0.0.1", srv.port), b"v4?", timeout=5)


def test_ipv6_any_is_v6_only_by_default(serve):
    srv = serve(["-H", "::"])
    assert srv.host == "[::]"
    assert exchange(("::1", srv.port), b"six", family=socket.AF_INET6) == PREFIX + b"six"
    with pytest.raises(ConnectionRefusedError):
        exchange(("127.0.0.1", srv.port), b"four?", timeout=5)


def test_dualstack_serves_v4_too(serve):
    srv = serve(["-H", "::", "--dualstack"])
    assert exchange(("::1", srv.port), b"six", family=socket.AF_INET6) == PREFIX + b"six"
    assert exchange(("127.0.0.1", srv.port), b"four") == PREFIX + b"four"


def test_dualstack_udp(serve):
    srv = serve(["-H", "::", "--dualstack", "--udp-only"], udp=True, tcp=False)
    for fam, host in ((socket.AF_INET6, "::1"), (socket.AF_INET, "127.0.0.1")):
        with socket.socket(fam, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            s.sendto(b"dual", (host, srv.udp_port))
            reply, src = s.recvfrom(4096)
            assert reply == PREFIX + b"dual"


def tcp_listeners(port, table="/proc/net/tcp"):
    """How many sockets listen on this local port (state 0A)."""
    n = 0
    with open(table) as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                n += 1
    return n


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_workers_serve(serve, workers):
    """Each worker has its own SO_REUSEPORT listener (and thread)."""
    srv = serve(["--workers", str(workers)])
    for i in range(40):
        msg = f"w{workers} #{i}".encode()
        assert exchange(srv.addr, msg) == PREFIX + msg
    wait_until(lambda: proc_status(srv.pid, "Threads") >= workers, timeout=10)
    threads = proc_status(srv.pid, "Threads")
    assert threads >= workers, f"--workers {workers} but {threads} threads"
    assert tcp_listeners(srv.port) == workers


def test_workers_many_modes(serve):
    for mode, data, want in (("line", b"a\nb\n", PREFIX + b"a\n" + PREFIX + b"b\n"),
                             ("echo", b"echo me", b"echo me")):
        srv = serve(["--workers", "3", "--mode", mode])
        for _ in range(10):
            assert exchange(srv.addr, data, shut_wr=True) == want
        srv.stop()


def test_host_name_localhost(serve):
    srv = serve(["-H", "localhost"])
    assert srv.host in ("127.0.0.1", "[::1]"), srv.host
    fam = socket.AF_INET6 if srv.host.startswith("[") else socket.AF_INET
    assert exchange(srv.addr, b"name", family=fam) == PREFIX + b"name"


def test_unassignable_address_exit_1_names_it(run_sockit):
    # TEST-NET-1: not on this machine, so bind fails at once (no traffic)
    r = run_sockit(["serve", "-H", "192.0.2.1", "-p", "0"], timeout=10)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 1, (r.returncode, err)
    assert "192.0.2.1" in err, err


def test_many_workers(serve):
    srv = serve(["--workers", "8", "--mode", "line"])
    assert wait_until(lambda: proc_status(srv.pid, "Threads") >= 8, timeout=10)
    for i in range(30):
        assert exchange(srv.addr, b"%d\n" % i, shut_wr=True) == PREFIX + b"%d\n" % i


def udp_sockets(port, table="/proc/net/udp"):
    n = 0
    with open(table) as f:
        next(f)
        for line in f:
            if int(line.split()[1].rsplit(":", 1)[1], 16) == port:
                n += 1
    return n


@pytest.mark.parametrize("workers", [1, 3])
def test_workers_udp_sockets(serve, workers):
    """--udp: each worker has its own SO_REUSEPORT UDP socket too, and
    datagrams are answered whichever gets them."""
    srv = serve(["--udp", "--workers", str(workers)], udp=True)
    assert udp_sockets(srv.udp_port) == workers
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(12)]
    try:
        for i, s in enumerate(socks):  # different source ports spread over workers
            s.settimeout(5)
            s.sendto(b"w%d" % i, srv.udp_addr)
            assert s.recvfrom(100)[0] == PREFIX + b"w%d" % i
    finally:
        for s in socks:
            s.close()


def test_bracketed_ipv6_host(serve):
    """Issue 19, item 7: -H '[::1]' (as URLs write it) listens on ::1; it
    used to fail with 'cannot listen on [[::1]]:0'."""
    srv = serve(["-H", "[::1]"])
    assert srv.host == "[::1]"
    assert exchange(srv.addr, b"br", family=socket.AF_INET6) == PREFIX + b"br"


def test_ipv6_flag_alone_listens_on_ipv6_loopback(serve):
    """Issue 19, item 8: -6 without -H listens on ::1."""
    srv = serve(["-6"])
    assert srv.host == "[::1]"
    assert exchange(srv.addr, b"six", family=socket.AF_INET6) == PREFIX + b"six"


def test_ipv4_flag_restricts_a_name(serve):
    """Issue 19, item 8: -4 -H localhost binds localhost's IPv4 address."""
    srv = serve(["-4", "-H", "localhost"])
    assert srv.host == "127.0.0.1"
    assert exchange(srv.addr, b"four") == PREFIX + b"four"


def test_ipv6_flag_refuses_an_ipv4_host(run_sockit):
    """Issue 19, item 8: -6 with an IPv4 literal cannot listen: exit 1, host named."""
    r = run_sockit(["serve", "-p", "0", "-6", "-H", "127.0.0.1"], timeout=10)
    err = r.stderr.decode()
    assert r.returncode == 1, (r.returncode, err)
    assert "cannot listen on 127.0.0.1" in err, err


def test_dualstack_shows_in_listening_line(serve):
    """Issue 19, item 12: --dualstack is visible where the listener is named."""
    srv = serve(["-H", "::", "--dualstack"])
    assert re.search(rf"listening on tcp \[::\]:{srv.port} \(once, dualstack\)",
                     srv.stderr_text()), srv.stderr_text()
    assert exchange(("127.0.0.1", srv.port), b"ds") == PREFIX + b"ds"
