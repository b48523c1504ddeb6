"""tlscerts.py -- throw-away certificates for the TLS tests, made with the openssl CLI.

ECDSA P-256 keys; a test CA signs everything with `openssl ca`, which takes
explicit validity dates (so an expired certificate needs no faked clock).

In pytest:

    from tlscerts import tls_certs  # noqa: F401  (the session fixture)

    def test_x(tls_certs):
        tls_certs.ca                     # the CA's certificate (PEM path)
        tls_certs.server.cert, .key      # localhost, 127.0.0.1, ::1

or make more: `ca = CA(dir); pair = ca.issue("name", sans=["DNS:name"])`.
From the shell (the unit tests' fixture, run by the Makefile):

    python3 tests/blackbox/tlscerts.py DIR

writes the standard set (make_certs) as DIR/ca.pem, DIR/server.pem +
DIR/server.key, and so on for each name in Certs.
"""
import collections
import datetime
import os
import subprocess
import sys

Pair = collections.namedtuple("Pair", "cert key")

# The standard set: what each is for.
Certs = collections.namedtuple("Certs", [
    "dir",
    "ca",         # the CA certificate to trust
    "server",     # CN=localhost; DNS:localhost, IP:127.0.0.1, IP:::1
    "server2",    # the same names, CN=localhost-2 (a reload's new pair)
    "expired",    # the same names, valid only on 2020-01-01
    "wrongname",  # CN=wrong.example, DNS:wrong.example only
    "client",     # CN=sockit test client, for client authentication
    "other_ca",   # a second CA, which nothing trusts
    "untrusted",  # localhost names, signed by other_ca
])

SERVER_SANS = ["DNS:localhost", "IP:127.0.0.1", "IP:::1"]

CA_CONF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = {name}
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ca]
default_ca = this
[this]
database = {dir}/index.txt
serial = {dir}/serial
new_certs_dir = {dir}
default_md = sha256
policy = any
unique_subject = no
[any]
commonName = supplied
"""

LEAF_EXT = """\
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = {usage}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
{sans}
"""


def _openssl(*args):
    r = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {r.stderr.strip()}")


def _when(t):
    return t.strftime("%Y%m%d%H%M%SZ")


class CA:
    """A certificate authority in its own directory under `directory`."""

    def __init__(self, directory, name="sockit test CA", slug="ca"):
        self.dir = os.path.join(os.path.abspath(directory), slug + ".d")
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "ca.cnf")
        with open(self.conf, "w") as f:
            f.write(CA_CONF.format(name=name, dir=self.dir))
        open(os.path.join(self.dir, "index.txt"), "w").close()
        with open(os.path.join(self.dir, "serial"), "w") as f:
            f.write("1000\n")
        self.cert = os.path.join(os.path.abspath(directory), slug + ".pem")
        self.key = os.path.join(self.dir, "ca.key")
        _openssl("req", "-x509", "-config", self.conf, "-extensions", "v3_ca",
                 "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", self.key, "-out", self.cert, "-days", "3650")

    def issue(self, path, cn, sans=(), client=False, not_before=None, not_after=None):
        """Writes path + ".pem" and path + ".key" (a P-256 key) for CN=cn,
        with sans ("DNS:x", "IP:1.2.3.4"), for serverAuth (or clientAuth),
        valid from not_before to not_after (datetimes; default: from a day
        ago for ten years).  Returns the Pair of paths."""
        now = datetime.datetime.now(datetime.timezone.utc)
        not_before = not_before or now - datetime.timedelta(days=1)
        not_after = not_after or now + datetime.timedelta(days=3650)
        pair = Pair(path + ".pem", path + ".key")
        csr = path + ".csr"
        ext = path + ".ext"
        with open(ext, "w") as f:
            f.write(LEAF_EXT.format(usage="clientAuth" if client else "serverAuth",
                                    sans="subjectAltName = " + ", ".join(sans) if sans else ""))
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", pair.key, "-out", csr, "-subj", f"/CN={cn}")
        _openssl("ca", "-batch", "-config", self.conf, "-cert", self.cert, "-keyfile", self.key,
                 "-extfile", ext, "-extensions", "leaf", "-in", csr, "-out", pair.cert,
                 "-notext", "-startdate", _when(not_before), "-enddate", _when(not_after))
        os.unlink(csr)
        os.unlink(ext)
        return pair


def make_certs(directory):
    """Writes the standard set (see Certs) into directory; returns it."""
    d = os.path.abspath(directory)
    os.makedirs(d, exist_ok=True)
    ca = CA(d)
    other = CA(d, name="sockit other CA", slug="other-ca")
    expired_from = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    return Certs(
        dir=d,
        ca=ca.cert,
        server=ca.issue(os.path.join(d, "server"), "localhost", SERVER_SANS),
        server2=ca.issue(os.path.join(d, "server2"), "localhost-2", SERVER_SANS),
        expired=ca.issue(os.path.join(d, "expired"), "localhost", SERVER_SANS,
                         not_before=expired_from,
                         not_after=expired_from + datetime.timedelta(days=1)),
        wrongname=ca.issue(os.path.join(d, "wrongname"), "wrong.example",
                           ["DNS:wrong.example"]),
        client=ca.issue(os.path.join(d, "client"), "sockit test client", client=True),
        other_ca=other.cert,
        untrusted=other.issue(os.path.join(d, "untrusted"), "localhost", SERVER_SANS),
    )


try:
    import pytest

    @pytest.fixture(scope="session")
    def tls_certs(tmp_path_factory):
        """The standard set, made once per test session."""
        return make_certs(tmp_path_factory.mktemp("tls-certs"))
except ImportError:  # the Makefile's use needs no pytest
    pass


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: tlscerts.py DIR")
    make_certs(sys.argv[1])
