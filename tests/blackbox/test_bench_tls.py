"""test_bench_tls.py -- `sockit bench --tls` against Python's ssl module (a server nobody
here wrote): once and line workloads verified reply by reply, session resumption, the
handshake figures, TLS errors counted by kind, the PROXY header before the handshake,
and the --tls-* command line."""
import socket
import ssl
import threading

import pytest

from test_bench import DOCUMENTED_KEYS, bench, bench_server  # noqa: F401 (fixture)
from test_bench_proxy import read_proxy_header
from tlscerts import tls_certs  # noqa: F401  (the session fixture)

PREFIX = b"Received: "


class TlsServer:
    """A threaded TLS server on host, port 0, speaking sockit's protocol.
    mode: once (one read, "Received: " + it, close_notify, close) or line
    ("Received: " + line per line).  behaviour: ok | no_close_notify (once:
    close without close_notify).  proxy: read a PROXY header before the
    handshake and check it.  client_ca: require client certificates."""

    def __init__(self, pair, mode="once", behaviour="ok", host="127.0.0.1", proxy=False,
                 client_ca=None):
        self.mode, self.behaviour, self.proxy = mode, behaviour, proxy
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(pair.cert, pair.key)
        if client_ca:
            self.ctx.verify_mode = ssl.CERT_REQUIRED
            self.ctx.load_verify_locations(client_ca)
        self.lock = threading.Lock()
        self.requests = self.handshakes = 0
        self.errors = []  # handshake and header failures, as the server saw them
        self.headers = []  # the PROXY headers' (src, dst) that matched
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.05)  # so that stop() is seen: close wakes no accept()
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _note(self, what):
        with self.lock:
            self.errors.append(what)

    def _serve(self, c):
        c.settimeout(20)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if self.proxy:
                hdr = read_proxy_header(c)
                if hdr != (c.getpeername()[:2], c.getsockname()[:2]):
                    self._note(f"PROXY header {hdr} from {c.getpeername()}")
                    return
                with self.lock:
                    self.headers.append(hdr)
            try:
                s = self.ctx.wrap_socket(c, server_side=True)
            except (ssl.SSLError, OSError) as e:
                self._note(repr(e))
                return
            with self.lock:
                self.handshakes += 1
            if self.mode == "once":
                self._once(s)
            else:
                self._lines(s)
        except (ssl.SSLError, OSError):
            pass
        finally:
            c.close()

    def _once(self, s):
        data = s.recv(65536)
        with self.lock:
            self.requests += 1
        s.sendall(PREFIX + data)
        if self.behaviour == "no_close_notify":
            return
        s.unwrap()  # close_notify; then waits for the client's

    def _lines(self, s):
        buf = b""
        while True:
            data = s.recv(65536)
            if not data:
                break
            buf += data
            *lines, buf = buf.split(b"\n")
            if lines:
                with self.lock:
                    self.requests += len(lines)
                s.sendall(b"".join(PREFIX + ln + b"\n" for ln in lines))

    def stop(self):
        self.stopping = True
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def tls_server():
    """Factory: tls_server(pair, **kw) -> TlsServer, stopped at teardown."""
    started = []

    def start(pair, **kw):
        s = TlsServer(pair, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def check_hist(h):
    assert h is not None and h["p50"] is not None, h
    assert 0 < h["min"] <= h["p50"] <= h["p99"] <= h["max"], h


@pytest.mark.parametrize("mode,extra", [
    ("once", ["-c", "2", "-n", "60"]),
    ("line", ["-c", "2", "-P", "4", "-n", "400"]),
    ("line", ["-c", "1", "-s", "40000", "-n", "20"]),  # requests of several TLS records
])
def test_every_reply_verified(run_sockit, tls_server, tls_certs, mode, extra):
    srv = tls_server(tls_certs.server, mode=mode)
    rc, d, err = bench(run_sockit, ["--tls", "--tls-ca", tls_certs.ca, "-m", mode] + extra
                       + ["127.0.0.1", srv.port])
    assert rc == 0, (d, err)
    assert d["errors_total"] == 0, d["errors"]
    assert d["requests"] == int(extra[extra.index("-n") + 1])
    assert d["tls"] is True and d["tls_servername"] == "127.0.0.1"
    # handshakes are figures of their own, apart from the requests' latency
    check_hist(d["handshake_ms"])
    check_hist(d["handshake_full_ms"])
    check_hist(d["latency_ms"])
    assert d["handshake_resumed_ms"]["p50"] is None  # no --tls-resume
    assert d["tls_resumed"] == 0 and d["tls_resumed_share"] == 0.0
    assert d["tls_handshakes"] == (d["requests"] if mode == "once" else d["conns"])
    assert srv.requests >= d["requests"] and not srv.errors
    assert d["tls_error"] is None


def test_resumption(run_sockit, tls_server, tls_certs):
    srv = tls_server(tls_certs.server)
    rc, d, err = bench(run_sockit, ["--tls", "--tls-resume", "--tls-ca", tls_certs.ca,
                                    "-c", "2", "-d", "1s", "localhost", srv.port])
    assert rc == 0, (d, err)
    assert d["errors_total"] == 0
    assert d["tls_resume"] is True and d["tls_servername"] == "localhost"
    assert d["tls_handshakes"] >= d["requests"] > 2
    assert d["tls_resumed_share"] > 0.5, d
    assert d["tls_resumed_share"] == pytest.approx(d["tls_resumed"] / d["tls_handshakes"],
                                                   abs=1e-3)
    # full and resumed handshakes measured apart
    check_hist(d["handshake_full_ms"])
    check_hist(d["handshake_resumed_ms"])
    check_hist(d["handshake_ms"])


def test_text_report(run_sockit, tls_server, tls_certs):
    srv = tls_server(tls_certs.server)
    r = run_sockit(["bench", "--tls", "--tls-resume", "--tls-ca", tls_certs.ca, "-c", "1",
                    "-n", "20", "127.0.0.1", str(srv.port)])
    out = r.stdout.decode()
    assert r.returncode == 0, (out, r.stderr)
    assert "TLS resuming sessions" in out.splitlines()[0]
    rows = {ln.split()[0]: ln for ln in out.splitlines()[1:] if ln.strip()}
    assert "handshake" in rows and "resumed" in rows and "latency" in rows, out
    assert "tls        20 handshakes, 19 resumed (95.0%)" in out, out


def test_wrong_name_is_a_verify_error(run_sockit, tls_server, tls_certs):
    srv = tls_server(tls_certs.wrongname)
    rc, d, err = bench(run_sockit, ["--tls", "--tls-ca", tls_certs.ca, "-c", "2", "-n", "10",
                                    "127.0.0.1", srv.port])
    assert rc == 1
    assert d["requests"] == 0
    assert d["errors"]["tls_verify"] == d["errors_total"] > 0, d["errors"]
    assert "hostname mismatch" in d["tls_error"]
    failed = [ln for ln in err.splitlines() if "FAILED" in ln]
    assert len(failed) == 1, err
    assert "tls_verify" in failed[0] and "hostname mismatch" in failed[0], failed
    assert "--tls-servername" in failed[0] and "--tls-insecure" in failed[0], failed


@pytest.mark.parametrize("pair,expect", [("untrusted", "unknown CA"), ("expired", "expired")])
def test_other_verify_failures(run_sockit, tls_server, tls_certs, pair, expect):
    srv = tls_server(getattr(tls_certs, pair))
    rc, d, err = bench(run_sockit, ["--tls", "--tls-ca", tls_certs.ca, "-c", "1", "-n", "3",
                                    "127.0.0.1", srv.port])
    assert rc == 1 and d["errors"]["tls_verify"] == d["errors_total"] > 0, d["errors"]
    assert expect in d["tls_error"], d["tls_error"]


def test_insecure_and_servername(run_sockit, tls_server, tls_certs):
    srv = tls_server(tls_certs.wrongname)
    rc, d, err = bench(run_sockit, ["--tls", "--tls-insecure", "-c", "2", "-n", "20",
                                    "127.0.0.1", srv.port])
    assert rc == 0 and d["errors_total"] == 0 and d["tls_insecure"] is True, (d, err)
    rc, d, err = bench(run_sockit, ["--tls", "--tls-ca", tls_certs.ca, "--tls-servername",
                                    "wrong.example", "-n", "5", "127.0.0.1", srv.port])
    assert rc == 0 and d["errors_total"] == 0, (d, err)
    assert d["tls_servername"] == "wrong.example"


def test_ipv6(run_sockit, tls_server, tls_certs):
    srv = tls_server(tls_certs.server, mode="line", host="::1")
    rc, d, err = bench(run_sockit, ["--tls", "--tls-ca", tls_certs.ca, "-m", "line", "-c", "2",
                                    "-n", "100", "::1", srv.port])
    assert rc == 0 and d["errors_total"] == 0, (d, err)
    assert d["address"] == f"[::1]:{srv.port}"


def test_client_certificate(run_sockit, tls_server, tls_certs):
    srv = tls_server(tls_certs.server, client_ca=tls_certs.ca)
    rc, d, err = bench(run_sockit, ["--tls", "--tls-ca", tls_certs.ca, "--tls-cert",
                                    tls_certs.client.cert, "--tls-key", tls_certs.client.key,
                                    "-n", "10", "127.0.0.1", srv.port])
    assert rc == 0 and d["errors_total"] == 0, (d, err)
    # without one, the server refuses it (TLS 1.3: after the client's handshake)
    rc, d, err = bench(run_sockit, ["--tls", "--tls-ca", tls_certs.ca, "-n", "3",
                                    "127.0.0.1", srv.port])
    assert rc == 1 and d["requests"] == 0
    tls_kinds = sum(v for k, v in d["errors"].items() if k.startswith("tls_"))
    assert tls_kinds + d["errors"]["reset"] == d["errors_total"] > 0, d["errors"]


def test_plaintext_server_is_a_handshake_error(run_sockit, bench_server, tls_certs):
    srv = bench_server("once")
    rc, d, err = bench(run_sockit, ["--tls", "--tls-ca", tls_certs.ca, "-c", "1", "-n", "3",
                                    "127.0.0.1", srv.port])
    assert rc == 1 and d["errors"]["tls_handshake"] == d["errors_total"] > 0, d["errors"]
    assert "does the server speak TLS" in err


def test_missing_close_notify_is_truncation(run_sockit, tls_server, tls_certs):
    srv = tls_server(tls_certs.server, behaviour="no_close_notify")
    rc, d, err = bench(run_sockit, ["--tls", "--tls-ca", tls_certs.ca, "-c", "1", "-n", "3",
                                    "127.0.0.1", srv.port])
    assert rc == 1 and d["errors"]["tls_truncated"] == d["errors_total"] > 0, d["errors"]
    assert "truncated" in d["tls_error"]


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("mode", ["once", "line"])
def test_proxy_header_goes_before_the_handshake(run_sockit, tls_server, tls_certs, version,
                                                mode):
    srv = tls_server(tls_certs.server, mode=mode, proxy=True)
    rc, d, err = bench(run_sockit, ["--tls", "--tls-ca", tls_certs.ca, "--proxy-header",
                                    version, "-m", mode, "-c", "2", "-n", "40", "127.0.0.1",
                                    srv.port])
    assert rc == 0 and d["errors_total"] == 0, (d, err, srv.errors)
    assert not srv.errors and len(srv.headers) == srv.handshakes > 0
    assert d["proxy_header"] == version


def test_json_keys(run_sockit, tls_server, tls_certs):
    srv = tls_server(tls_certs.server)
    rc, d, _ = bench(run_sockit, ["--tls", "--tls-ca", tls_certs.ca, "-n", "5", "127.0.0.1",
                                  srv.port])
    assert rc == 0
    for key, typ in DOCUMENTED_KEYS.items():
        assert key in d, key
        assert isinstance(d[key], typ), (key, d[key])
    for key in ("handshake_ms", "handshake_full_ms", "handshake_resumed_ms"):
        assert set(d[key]) == {"min", "mean", "p50", "p90", "p99", "p999", "max"}
    assert isinstance(d["tls_handshakes"], int) and isinstance(d["tls_resumed_share"], float)


@pytest.mark.parametrize("args,message", [
    (["--tls-ca", "x.pem"], "--tls-ca needs --tls"),
    (["--tls-resume"], "--tls-resume needs --tls"),
    (["--tls-insecure"], "--tls-insecure needs --tls"),
    (["--tls", "-u"], "--tls applies to TCP"),
    (["--tls", "--tls-cert", "c.pem"], "--tls-cert and --tls-key go together"),
    (["--tls", "--tls-insecure", "--tls-ca", "x.pem"], "exclude each other"),
    (["--tls", "--tls-servername", ""], "invalid name '' for --tls-servername"),
])
def test_usage_errors(run_sockit, args, message):
    r = run_sockit(["bench"] + args + ["127.0.0.1", "9"])
    assert r.returncode == 2, r.stderr
    assert message.encode() in r.stderr, r.stderr


def test_bad_ca_file_is_a_usage_error(run_sockit, tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    for path in (str(bad), str(tmp_path / "missing.pem")):
        r = run_sockit(["bench", "--tls", "--tls-ca", path, "127.0.0.1", "9"])
        assert r.returncode == 2, r.stderr
        assert f"cannot use '{path}' for --tls-ca".encode() in r.stderr, r.stderr
        assert r.stdout == b""


def test_help_names_the_tls_flags(run_sockit):
    out = run_sockit(["bench", "--help"]).stdout.decode()
    for flag in ("--tls ", "--tls-ca", "--tls-servername", "--tls-insecure", "--tls-resume",
                 "--tls-cert", "--tls-key", "tls_verify", "tls_handshake", "tls_truncated"):
        assert flag in out, flag
