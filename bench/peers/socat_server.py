"""socat_server.py -- the sockit protocol with socat, one process per
connection or datagram (fork), as a shell user would set it up.

Usage: python3 socat_server.py once|line|udp PORT [--tls CERT KEY]
(127.0.0.1; PORT 0 picks a free port first, then prints "port N" on stdout;
socat then replaces this process, so its PID is the server's).  --tls
listens with OPENSSL-LISTEN (cert=, key=, verify=0: no client certificate)
instead of TCP-LISTEN, fork per connection all the same.

Each connection (TCP-LISTEN,fork) or datagram (UDP4-RECVFROM,fork) gets a
socat child that runs socat_reply.sh MODE on the stream: see there for how
each mode gets exactly the protocol's bytes.  For udp, -b lets one datagram
through whole and -t 0.05 ends each child soon after its reply (UDP has
no EOF to wait for).
"""
import os
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port(kind):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    tls = len(sys.argv) == 6 and sys.argv[3] == "--tls"
    if (len(sys.argv) != 3 and not tls) or sys.argv[1] not in ("once", "line", "udp") or \
            (tls and sys.argv[1] == "udp"):
        sys.exit("usage: socat_server.py once|line|udp PORT | once|line PORT --tls CERT KEY")
    mode, port = sys.argv[1], int(sys.argv[2])
    if port == 0:
        port = free_port(socket.SOCK_DGRAM if mode == "udp" else socket.SOCK_STREAM)
    print(f"port {port}", flush=True)
    if mode == "udp":
        opts = ["-b", "65546", "-t", "5"]
        listen = f"UDP4-RECVFROM:{port},bind=127.0.0.1,reuseaddr,fork"
    elif tls:
        opts = []
        listen = (f"OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,backlog=4096,"
                  f"cert={sys.argv[4]},key={sys.argv[5]},verify=0")
    else:
        opts = []
        listen = f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,backlog=4096"
    script = os.path.join(HERE, "socat_reply.sh")
    os.execvp("socat", ["socat", *opts, listen, f"EXEC:{script} {mode}"])


if __name__ == "__main__":
    main()
