// node_server.js -- the sockit protocol on Node.js `net` and `dgram`.
//
// Usage: node node_server.js once|line|udp PORT [--tls CERT KEY]
//        node node_server.js once|line -U PATH
// (127.0.0.1; PORT 0 picks one and prints "port N" on stdout; -U listens on
// a Unix stream socket at PATH and prints "unix PATH"; --tls serves TLS with
// the `tls` module: tls.createServer with the certificate chain and key,
// session tickets on as node defaults them.)
//
// once: the first data (at most 1024 bytes) gets "Received: " + data, then
//       end; EOF before any data gets "Received: ".
// line: "Received: " + line per \n-terminated line, pipelined; a final
//       unterminated line is answered at EOF; reading pauses while write()
//       reports a full buffer (backpressure); a line over 64 KiB closes.
// udp:  one datagram "Received: " + data back per datagram.
'use strict';
const net = require('net');
const dgram = require('dgram');
const fs = require('fs');
const tls = require('tls');

const PREFIX = Buffer.from('Received: ');
const ONCE_MAX = 1024;
const MAX_LINE = 64 * 1024;

function once(sock) {
  let answered = false;
  sock.on('data', (d) => {
    if (answered) return;
    answered = true;
    sock.end(Buffer.concat([PREFIX, d.subarray(0, ONCE_MAX)]));
  });
  sock.on('end', () => {
    if (!answered) {
      answered = true;
      sock.end(PREFIX);
    }
  });
  sock.on('error', () => sock.destroy());
}

function line(sock) {
  let part = null;
  sock.on('data', (d) => {
    if (part) d = Buffer.concat([part, d]);
    const end = d.lastIndexOf(10) + 1;
    part = end < d.length ? d.subarray(end) : null;
    if (end) {
      const out = [];
      let start = 0;
      for (let i = d.indexOf(10); i !== -1 && i < end; i = d.indexOf(10, i + 1)) {
        out.push(PREFIX, d.subarray(start, i + 1));
        start = i + 1;
      }
      if (!sock.write(Buffer.concat(out))) {
        sock.pause();
        sock.once('drain', () => sock.resume());
      }
    }
    if (part && part.length > MAX_LINE) sock.destroy();
  });
  sock.on('end', () => {
    sock.end(part ? Buffer.concat([PREFIX, part]) : undefined);
  });
  sock.on('error', () => sock.destroy());
}

function usage() {
  console.error('usage: node node_server.js once|line|udp PORT [--tls CERT KEY] | ' +
                'once|line -U PATH');
  process.exit(2);
}

function main() {
  const argv = process.argv.slice(2);
  const mode = argv.shift();
  let port = 0, path = null, cert = null, key = null;
  while (argv.length) {
    const a = argv.shift();
    if (a === '-U' && argv.length) path = argv.shift();
    else if (a === '--tls' && argv.length >= 2) [cert, key] = [argv.shift(), argv.shift()];
    else if (/^[0-9]+$/.test(a)) port = Number(a);
    else usage();
  }
  if (!['once', 'line', 'udp'].includes(mode) || (mode === 'udp' && (path || cert))) usage();
  if (mode === 'udp') {
    const s = dgram.createSocket('udp4');
    s.on('message', (msg, rinfo) => {
      const out = Buffer.concat([PREFIX, msg]);
      s.send(out.subarray(0, 65507), rinfo.port, rinfo.address);
    });
    s.bind(port, '127.0.0.1', () => console.log(`port ${s.address().port}`));
    return;
  }
  const handler = mode === 'once' ? once : line;
  const srv = cert ?
      tls.createServer({allowHalfOpen: true, cert: fs.readFileSync(cert),
                        key: fs.readFileSync(key)}, handler) :
      net.createServer({allowHalfOpen: true}, handler);
  if (path) {
    try { fs.unlinkSync(path); } catch (e) { /* none yet */ }
    srv.listen({path, backlog: 4096}, () => console.log(`unix ${path}`));
    return;
  }
  srv.listen({port, host: '127.0.0.1', backlog: 4096},
             () => console.log(`port ${srv.address().port}`));
}

main();
