"""asyncio_server.py -- the sockit protocol on Python's asyncio (stdlib loop,
no third-party packages), written for speed: TCP uses BufferedProtocol and
reads into one shared buffer (plain Protocol makes asyncio allocate, and the
allocator mmap and munmap, a 256 KiB bytes object for every read).

Usage: python3 asyncio_server.py once|line|udp PORT [--tls CERT KEY]
       python3 asyncio_server.py once|line -U PATH
(127.0.0.1; PORT 0 picks one and prints "port N" on stdout; -U serves a
Unix stream socket at PATH with start_unix_server and prints "unix PATH";
--tls wraps every TCP connection in the stdlib ssl module's TLS, a server
context with the certificate chain and key, session tickets on as OpenSSL
defaults them.)

once: the first data (at most 1024 bytes) gets b"Received: " + data, then
      close; EOF before any data gets b"Received: ".
line: b"Received: " + line per \\n-terminated line, pipelined; a final
      unterminated line is answered at EOF; reading pauses while the
      transport's write buffer is over its high-water mark; a line over
      64 KiB closes the connection.
udp:  one datagram b"Received: " + data back per datagram.
"""
import argparse
import asyncio
import os
import resource
import ssl
import sys

PREFIX = b"Received: "
ONCE_MAX = 1024
MAX_LINE = 64 * 1024


# One read buffer for every connection: the loop is single-threaded and
# each read is consumed before the next one starts.
BUF = bytearray(64 * 1024)
VIEW = memoryview(BUF)


class Once(asyncio.BufferedProtocol):
    def connection_made(self, transport):
        self.t = transport

    def get_buffer(self, sizehint):
        return VIEW

    def buffer_updated(self, n):
        self.t.write(PREFIX + BUF[:min(n, ONCE_MAX)])
        self.t.close()

    def eof_received(self):
        self.t.write(PREFIX)
        self.t.close()


class Line(asyncio.BufferedProtocol):
    def connection_made(self, transport):
        self.t = transport
        self.part = b""

    def get_buffer(self, sizehint):
        return VIEW

    def buffer_updated(self, n):
        data = bytes(VIEW[:n])
        if self.part:
            data = self.part + data
        end = data.rfind(b"\n") + 1
        self.part = data[end:]
        if end:
            lines = data[:end].split(b"\n")
            lines.pop()
            self.t.write(b"".join(PREFIX + ln + b"\n" for ln in lines))
        if len(self.part) > MAX_LINE:
            self.t.close()

    def eof_received(self):
        if self.part:
            self.t.write(PREFIX + self.part)
        self.t.close()

    def pause_writing(self):
        self.t.pause_reading()

    def resume_writing(self):
        self.t.resume_reading()


class Udp(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.t = transport

    def datagram_received(self, data, addr):
        self.t.sendto((PREFIX + data)[:65507], addr)


async def main(mode, port, unix=None, tls=None):
    loop = asyncio.get_running_loop()
    proto = Once if mode == "once" else Line
    ctx = None
    if tls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(tls[0], tls[1])
    if unix:
        if os.path.exists(unix):
            os.unlink(unix)
        await loop.create_unix_server(proto, unix, backlog=4096, ssl=ctx)
        print(f"unix {unix}", flush=True)
        await asyncio.Event().wait()
    if mode == "udp":
        t, _ = await loop.create_datagram_endpoint(Udp, local_addr=("127.0.0.1", port))
        port = t.get_extra_info("sockname")[1]
    else:
        srv = await loop.create_server(proto, "127.0.0.1", port, backlog=4096,
                                       reuse_address=True, ssl=ctx)
        port = srv.sockets[0].getsockname()[1]
    print(f"port {port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(usage="asyncio_server.py once|line|udp PORT [--tls CERT KEY]"
                                       " | once|line -U PATH [--tls CERT KEY]")
    ap.add_argument("mode", choices=("once", "line", "udp"))
    ap.add_argument("port", type=int, nargs="?", default=0)
    ap.add_argument("-U", "--unix")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    a = ap.parse_args()
    if a.mode == "udp" and (a.unix or a.tls):
        ap.error("udp is plain and on 127.0.0.1 only")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        asyncio.run(main(a.mode, a.port, a.unix, a.tls))
    except KeyboardInterrupt:
        pass
