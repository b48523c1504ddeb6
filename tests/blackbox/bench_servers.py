"""bench_servers.py -- small Python servers, right and deliberately wrong, for
testing `sockit bench`: it must pass the right ones and catch each wrong one.

A server runs in daemon threads on 127.0.0.1, port 0; .port holds the port,
.requests counts the requests it answered (or saw, for the wrong ones).
Run as a script (`python3 bench_servers.py MODE [BEHAVIOUR]`) it prints
its port and serves until killed.
"""
import socket
import socketserver
import struct
import sys
import threading
import time

PREFIX = b"Received: "


class _Count:
    def __init__(self):
        self.n = 0
        self.lock = threading.Lock()

    def add(self, k=1):
        with self.lock:
            self.n += k


def _reset(sock):
    """Close with RST: SO_LINGER on with a zero timeout."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class BenchServer:
    """mode: once | line | echo | udp.
    behaviour: ok | wrong_prefix | truncate | reset | stall | extra |
    slow (each reply 150 ms late) | late (udp: every 5th reply 300 ms late)."""

    def __init__(self, mode, behaviour="ok", prefix=PREFIX):
        self.mode, self.behaviour, self.prefix = mode, behaviour, prefix
        self.count = _Count()
        self.stop_event = threading.Event()
        if mode == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            self.port = self.sock.getsockname()[1]
            self.thread = threading.Thread(target=self._udp, daemon=True)
        else:
            owner = self

            class Handler(socketserver.BaseRequestHandler):
                def handle(self):
                    owner._tcp(self.request)

            class Srv(socketserver.ThreadingTCPServer):
                allow_reuse_address = True
                daemon_threads = True
                request_queue_size = 512

            self.srv = Srv(("127.0.0.1", 0), Handler)
            self.port = self.srv.server_address[1]
            self.thread = threading.Thread(target=self.srv.serve_forever,
                                           kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def requests(self):
        return self.count.n

    def reply_for(self, data):
        p = b"" if self.mode == "echo" else self.prefix
        if self.behaviour == "wrong_prefix":
            p = b"Recieved: " if p else b"x"
        return p + data

    # -- TCP -----------------------------------------------------------------
    def _tcp(self, s):
        s.settimeout(30)
        try:
            if self.mode == "once":
                self._once(s)
            else:
                self._lines(s)
        except OSError:
            pass
        finally:
            try:
                s.close()
            except OSError:
                pass

    def _once(self, s):
        data = s.recv(65536)
        self.count.add()
        b = self.behaviour
        if b == "stall":
            self.stop_event.wait(30)
            return
        if b == "reset":
            _reset(s)
            return
        if b == "slow":
            time.sleep(0.15)
        reply = self.reply_for(data)
        if b == "truncate":
            reply = reply[:-3]
        if b == "extra":
            reply += b"!"
        s.sendall(reply)
        s.shutdown(socket.SHUT_WR)
        # drain until the client closes, so closing sends no RST
        while s.recv(4096):
            pass

    def _lines(self, s):
        f = s.makefile("rb")
        for line in f:
            self.count.add()
            b = self.behaviour
            if b == "stall":
                self.stop_event.wait(30)
                return
            if b == "reset" and self.count.n > 3:
                _reset(s)
                return
            if b == "slow":
                time.sleep(0.15)
            reply = self.reply_for(line)
            if b == "truncate" and self.count.n > 3:
                s.sendall(reply[:-3])
                s.shutdown(socket.SHUT_WR)
                return
            s.sendall(reply)

    # -- UDP -----------------------------------------------------------------
    def _udp(self):
        s = self.sock
        s.settimeout(0.1)
        while not self.stop_event.is_set():
            try:
                data, addr = s.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self.count.add()
            b = self.behaviour
            if b == "stall":
                continue
            reply = self.reply_for(data)
            if b == "truncate":
                reply = reply[:-3]
            if b == "slow" or (b == "late" and self.count.n % 5 == 0):
                t = threading.Timer(0.15 if b == "slow" else 0.3, self._sendto,
                                    (reply, addr))
                t.daemon = True
                t.start()
                continue
            self._sendto(reply, addr)

    def _sendto(self, reply, addr):
        try:
            self.sock.sendto(reply, addr)
        except OSError:
            pass

    def stop(self):
        self.stop_event.set()
        if self.mode == "udp":
            self.thread.join(timeout=5)
            self.sock.close()
        else:
            self.srv.shutdown()
            self.srv.server_close()


if __name__ == "__main__":
    srv = BenchServer(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "ok")
    print(f"port {srv.port}", flush=True)
    threading.Event().wait()
