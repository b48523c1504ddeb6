/* sockit.h -- sockets as easy as Python's socket module, and safer. */
#ifndef SOCKIT_H
#define SOCKIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What the shared object exports: the library is built with
 * -fvisibility=hidden, and only declarations marked SOCKIT_API are public. */
#if defined(__GNUC__)
#define SOCKIT_API __attribute__((visibility("default")))
#else
#define SOCKIT_API
#endif

#define SOCKIT_VERSION "0.2.0"
#define SOCKIT_VERSION_MAJOR 0
#define SOCKIT_VERSION_MINOR 2
#define SOCKIT_VERSION_PATCH 0

/* The library's version string, the same as SOCKIT_VERSION when the header
 * and the library match. */
SOCKIT_API const char *sockit_version(void);

/*
 * Conventions, for every function below unless it says otherwise:
 *
 * - Results are >= 0 on success, or a negative error code: -errno for
 *   system errors (e.g. -ECONNREFUSED), or SOCKIT_EAI_BASE - n for the
 *   resolver's EAI_* errors (see sockit_strerror).  errno is never the
 *   channel for an answer; the library keeps no global error state.
 * - A bad argument (NULL pointer, negative fd, unknown family, ...) returns
 *   -EINVAL; it never crashes.
 * - timeout_ms: -1 waits forever, 0 tries once without waiting, > 0 is a
 *   deadline in milliseconds on CLOCK_MONOTONIC.  EINTR is retried inside,
 *   keeping the deadline.  Blocking and non-blocking descriptors both work.
 * - "Would block" is -EAGAIN, everywhere (never -EWOULDBLOCK): what a
 *   timeout-0 call and every sockit_try_* call return when the kernel has
 *   nothing for them now, as Python's non-blocking socket raises
 *   BlockingIOError.  A positive timeout that expires is -ETIMEDOUT, as
 *   Python's socket with a timeout raises TimeoutError.
 * - Every descriptor created is close-on-exec.  Every send uses
 *   MSG_NOSIGNAL: a closed peer gives -EPIPE, never SIGPIPE.
 * - The library never prints, exits, or changes signal dispositions.
 * - Ports are 0..65535; port 0 binds a free port.
 */

/* ---- Errors ----------------------------------------------------------- */

/* Resolver errors map to SOCKIT_EAI_BASE + eai, where eai is getaddrinfo's
 * (negative) EAI_* code, so they never overlap -errno (errno < 4096). */
#define SOCKIT_EAI_BASE (-10000)
#define SOCKIT_IS_EAI(code) ((code) <= SOCKIT_EAI_BASE - 1 && (code) > SOCKIT_EAI_BASE - 1000)

/* Explains any code: 0, -errno, a resolver code, or a TLS code
 * (SOCKIT_TLS_BASE - n, sockit_tls.h).  Returns a static
 * string ("success", "connection refused", "name or service not known",
 * "unknown error -12345").  Thread-safe. */
SOCKIT_API const char *sockit_strerror(int code);

/* ---- Addresses -------------------------------------------------------- */

/* Large enough for any AF_INET, AF_INET6 or AF_UNIX address, with its
 * length. */
typedef struct sockit_addr {
	struct sockaddr_storage ss;
	socklen_t len;
} sockit_addr;

/* "[ffff:...:ffff%scope]:65535" or a Unix path of up to 108 bytes, plus
 * NUL, fits. */
#define SOCKIT_ADDRSTRLEN 112

/* Resolves host and port into at most max addresses, in getaddrinfo's
 * order.  host NULL or "" means the wildcard when passive, else loopback.
 * family: AF_UNSPEC, AF_INET or AF_INET6.  type: SOCK_STREAM/SOCK_DGRAM
 * (0 means stream).  passive != 0 asks for a bind address.  Returns the
 * number found (>= 1) or a negative code. */
SOCKIT_API int sockit_resolve(const char *host, int port, int family, int type, int passive,
			      sockit_addr *out, size_t max);

/* Parses a numeric "1.2.3.4:80", "[::1]:80", "[fe80::1%eth0]:80" (no DNS)
 * into out.  A string starting with '/', "./", "../" or '@' is a Unix
 * address instead (see sockit_addr_from_path).  Returns 0 or -EINVAL
 * (-ENAMETOOLONG for a Unix path too long). */
SOCKIT_API int sockit_addr_parse(const char *s, sockit_addr *out);

/* Splits "host:port", "[v6]:port" or "host" (port = default_port) into a
 * host buffer and a port, without resolving.  Returns 0, or -EINVAL for
 * malformed input, a bad port, or a host longer than hostlen - 1. */
SOCKIT_API int sockit_hostport_split(const char *s, char *host, size_t hostlen, int *port,
				     int default_port);

/* Builds an address from a numeric IP string and a port (no DNS). */
SOCKIT_API int sockit_addr_from_ip(const char *ip, int port, sockit_addr *out);

/* Formats "127.0.0.1:1234" or "[::1]:1234" into buf (>= SOCKIT_ADDRSTRLEN
 * is always enough).  IPv4-mapped IPv6 addresses print as IPv4.  A Unix
 * address prints as its path, "@name" when abstract (a NUL byte inside the
 * name prints as '@', as in ss(8)), or "" (length 0) for an unnamed socket
 * such as a stream client's.  Returns the length written (excluding NUL)
 * or -ENOSPC / -EINVAL. */
SOCKIT_API int sockit_addr_format(const sockit_addr *a, char *buf, size_t len);

/* Formats only the IP ("127.0.0.1", "::1"); a Unix address as above. */
SOCKIT_API int sockit_addr_format_ip(const sockit_addr *a, char *buf, size_t len);

/* The port of an address, or -EINVAL (also for a Unix address). */
SOCKIT_API int sockit_addr_port(const sockit_addr *a);

/* Local / peer address of a socket, as a struct and as a string. */
SOCKIT_API int sockit_getsockname(int fd, sockit_addr *out);
SOCKIT_API int sockit_getpeername(int fd, sockit_addr *out);
SOCKIT_API int sockit_sockname_str(int fd, char *buf, size_t len);
SOCKIT_API int sockit_peername_str(int fd, char *buf, size_t len);

/* A CIDR block: "10.0.0.0/8", "::1/128", "192.168.1.7" (a host). */
typedef struct sockit_cidr {
	int family;	  /* AF_INET or AF_INET6 */
	uint8_t addr[16]; /* network byte order, host bits cleared */
	unsigned prefix;  /* 0..32 or 0..128 */
} sockit_cidr;

/* Parses a CIDR.  Host bits set ("10.1.2.3/8") are accepted and cleared.
 * Returns 0 or -EINVAL. */
SOCKIT_API int sockit_cidr_parse(const char *s, sockit_cidr *out);

/* 1 if a is inside c, else 0.  An IPv4-mapped IPv6 address (::ffff:a.b.c.d)
 * matches IPv4 blocks. */
SOCKIT_API int sockit_cidr_match(const sockit_cidr *c, const sockit_addr *a);

/* ---- The tutorial's calls --------------------------------------------- */

/* socket(family, type | SOCK_CLOEXEC).  type may include SOCK_NONBLOCK.
 * Returns the fd. */
SOCKIT_API int sockit_socket(int family, int type);

/* close(2), with EINTR treated as closed (Linux semantics).  Returns 0. */
SOCKIT_API int sockit_close(int fd);

SOCKIT_API int sockit_bind(int fd, const sockit_addr *a);
SOCKIT_API int sockit_listen(int fd, int backlog); /* backlog <= 0: SOMAXCONN */

/* Connects within timeout_ms, also on a blocking fd (the fd is made
 * non-blocking for the attempt and restored).  Returns 0.  timeout_ms 0
 * returns -EINPROGRESS when the connection does not complete at once: it
 * goes on; wait for writability, then read SO_ERROR (for event loops). */
SOCKIT_API int sockit_connect(int fd, const sockit_addr *a, int timeout_ms);

/* Accepts one connection (accept4 with SOCK_CLOEXEC | flags, where flags
 * may be SOCK_NONBLOCK).  peer may be NULL.  Returns the new fd.  Cost:
 * timeout -1 is one accept4 on a ready listener; timeout >= 0 adds one
 * fcntl(F_GETFL), since only a blocking listener must be polled first. */
SOCKIT_API int sockit_accept(int fd, sockit_addr *peer, int flags, int timeout_ms);

/* One send / recv: returns the bytes moved (recv: 0 means EOF).  With
 * timeout 0 each is exactly one system call (no clock read, no poll). */
SOCKIT_API ssize_t sockit_send(int fd, const void *buf, size_t len, int timeout_ms);
SOCKIT_API ssize_t sockit_recv(int fd, void *buf, size_t len, int timeout_ms);

/* sockit_send with send(2) flags, e.g. MSG_MORE (more data or a FIN
 * follows: the kernel may hold this in the socket to join it).
 * MSG_NOSIGNAL is always added. */
SOCKIT_API ssize_t sockit_send_flags(int fd, const void *buf, size_t len, int flags,
				     int timeout_ms);

/* Datagrams.  from may be NULL. */
SOCKIT_API ssize_t sockit_sendto(int fd, const void *buf, size_t len, const sockit_addr *to,
				 int timeout_ms);
SOCKIT_API ssize_t sockit_recvfrom(int fd, void *buf, size_t len, sockit_addr *from,
				   int timeout_ms);

/* how: SHUT_RD, SHUT_WR or SHUT_RDWR. */
SOCKIT_API int sockit_shutdown(int fd, int how);

/* ---- One attempt, for event loops ----------------------------------------- */

/* Exactly one system call each (EINTR retried), for a caller that knows fd
 * is non-blocking (or ready): no clock read, no poll, no fcntl.  "Not now"
 * is -EAGAIN.  sockit_send/recv with timeout 0 behave the same but check
 * more; sockit_accept with timeout 0 also asks fcntl(F_GETFL) whether the
 * listener blocks, which these skip. */

/* send(MSG_DONTWAIT | MSG_NOSIGNAL | flags): the bytes taken, or -EAGAIN,
 * -EPIPE, ...  flags may be MSG_MORE (a FIN or more data follows at once:
 * the kernel may hold the bytes to join them). */
SOCKIT_API ssize_t sockit_try_send(int fd, const void *buf, size_t len, int flags);

/* recv(MSG_DONTWAIT): the bytes read (0 at EOF), or -EAGAIN, -ECONNRESET. */
SOCKIT_API ssize_t sockit_try_recv(int fd, void *buf, size_t len);

/* connect() on a non-blocking fd: 0 if connected at once, -EINPROGRESS
 * while the handshake goes on (watch for writability; the first send or
 * recv reports a failure), or the error (-ECONNREFUSED, -EAGAIN when out
 * of local ports, ...). */
SOCKIT_API int sockit_try_connect(int fd, const sockit_addr *a);

/* accept4(SOCK_CLOEXEC | flags) on a non-blocking listener (flags may be
 * SOCK_NONBLOCK, for the new fd): the new fd, -EAGAIN when none is queued,
 * or -errno.  peer may be NULL (the kernel then copies no address). */
SOCKIT_API int sockit_try_accept(int fd, sockit_addr *peer, int flags);

/* ---- Python's conveniences -------------------------------------------- */

/* One failed attempt of sockit_create_connection_ex / _opts. */
typedef struct sockit_attempt {
	sockit_addr addr;
	int error; /* negative code */
} sockit_attempt;

/* Resolves host (IPv6 and IPv4) and connects to the first address that
 * answers, racing them as sockit_create_connection_opts does, all within
 * timeout_ms.  Returns a connected, blocking, close-on-exec stream fd, or
 * the latest attempt's error (or the resolver's). */
SOCKIT_API int sockit_create_connection(const char *host, int port, int timeout_ms);

/* The same, with a family restriction (AF_UNSPEC, AF_INET, AF_INET6), a
 * socket type (SOCK_STREAM or SOCK_DGRAM; a datagram socket is connect()ed
 * to the first address that takes it), and a report of each failed
 * attempt: up to max entries are written to attempts, in the order the
 * failures happened; *nattempts gets the number of failures (may exceed
 * max).  attempts/nattempts may be NULL.  If connected is not NULL it
 * receives the address that worked.  timeout_ms bounds the whole call
 * (it used to bound each address in turn).  The Connection Attempt Delay
 * is SOCKIT_CONNECT_DELAY_MS. */
SOCKIT_API int sockit_create_connection_ex(const char *host, int port, int family, int type,
					   int timeout_ms, sockit_attempt *attempts, size_t max,
					   size_t *nattempts, sockit_addr *connected);

/* RFC 8305's recommended Connection Attempt Delay. */
#define SOCKIT_CONNECT_DELAY_MS 250

/* How sockit_create_connection_opts connects.  Start from
 * SOCKIT_CONNECT_OPTS_INIT and change what you need. */
typedef struct sockit_connect_opts {
	int family;	      /* AF_UNSPEC, AF_INET or AF_INET6 */
	int type;	      /* SOCK_STREAM (also 0) or SOCK_DGRAM */
	int timeout_ms;	      /* for the whole call; -1: no limit */
	int attempt_delay_ms; /* 0: SOCKIT_CONNECT_DELAY_MS; -1: the next only on failure */
	int flags;	      /* 0 or SOCKIT_NONBLOCK: return a non-blocking fd */
} sockit_connect_opts;

/* clang-format off */
#define SOCKIT_CONNECT_OPTS_INIT {AF_UNSPEC, SOCK_STREAM, -1, 0, 0}
/* clang-format on */

/* Happy Eyeballs (RFC 8305): resolves host, orders the addresses as
 * getaddrinfo sorted them (RFC 6724 on glibc) but with the families
 * alternating, starting with the first address's family, and starts a
 * non-blocking connect to the first.  Whenever attempt_delay_ms passes
 * without a connection, or an attempt fails, the next address is tried
 * too, without giving up those in flight; the first connection to
 * complete wins, and every other attempt is closed.  So an address that
 * drops packets costs about one delay, not the whole timeout.  The
 * deadline holds across all attempts: those in flight when it passes are
 * reported with -ETIMEDOUT, and the next address is not tried.  timeout 0
 * waits for nothing: addresses are tried while they fail without a wait
 * (as loopback refusals do), and one that connects without a wait wins;
 * else -EAGAIN.  No thread: one poll() over the attempts in
 * flight.  Datagram sockets connect at once, so the first address that takes one wins. opts NULL
 * means SOCKIT_CONNECT_OPTS_INIT.  attempts, max, nattempts and connected as for
 * sockit_create_connection_ex.  Returns the fd (close-on-exec; blocking unless SOCKIT_NONBLOCK),
 * the latest failure when every address failed, -ETIMEDOUT, the resolver's code, or -EINVAL for a
 * bad option.  Cost: at most 16 addresses, one socket each. */
SOCKIT_API int sockit_create_connection_opts(const char *host, int port,
					     const sockit_connect_opts *opts,
					     sockit_attempt *attempts, size_t max,
					     size_t *nattempts, sockit_addr *connected);

/* Flags for sockit_create_server. */
#define SOCKIT_REUSEPORT 0x1 /* SO_REUSEPORT, for one listener per thread */
#define SOCKIT_DUALSTACK 0x2 /* on an IPv6 wildcard, also accept IPv4 */
#define SOCKIT_V6ONLY 0x4    /* on IPv6, IPv6 only (the default unless DUALSTACK) */
#define SOCKIT_NONBLOCK 0x8  /* return a non-blocking socket */

/* Binds (and for SOCK_STREAM listens on) host:port, trying each resolved
 * address until one binds.  SO_REUSEADDR always.  host NULL or "" means all
 * interfaces: "::" with DUALSTACK, else "0.0.0.0".  backlog <= 0 means
 * SOMAXCONN.  Returns the fd (blocking unless SOCKIT_NONBLOCK). */
SOCKIT_API int sockit_create_server(const char *host, int port, int type, int backlog, int flags);

/* Sends all len bytes before one total deadline.  *sent (may be NULL)
 * gets the bytes sent, also on failure.  Returns 0 or a negative code. */
SOCKIT_API int sockit_sendall(int fd, const void *buf, size_t len, int timeout_ms, size_t *sent);

/* Receives exactly len bytes before one total deadline.  Returns len; the
 * count received so far (< len) if the peer closes first; or a negative
 * code (-ETIMEDOUT, -ECONNRESET, ...). */
SOCKIT_API ssize_t sockit_recv_exact(int fd, void *buf, size_t len, int timeout_ms);

/* Receives one line ending in '\n' into buf (NUL-terminated, the '\n'
 * kept), at most len - 1 bytes, before one deadline.  Reads byte-exact: it
 * never consumes past the '\n' (it peeks).  Returns the line's length; 0 at
 * EOF with nothing read; the partial line's length at EOF; -EMSGSIZE if no
 * '\n' within len - 1 bytes (those bytes stay unread). */
SOCKIT_API ssize_t sockit_recvline(int fd, char *buf, size_t len, int timeout_ms);

/* UDP with host and port: a datagram socket connected to host:port (first
 * address that works), and a one-shot send to a named host. */
SOCKIT_API int sockit_udp_connect(const char *host, int port, int family);
SOCKIT_API ssize_t sockit_udp_sendto(int fd, const void *buf, size_t len, const char *host,
				     int port, int timeout_ms);

/* The largest UDP payload over IPv4: 65535 - 20 (IP header) - 8 (UDP). */
#define SOCKIT_UDP_MAX 65507

/* ---- Unix-domain sockets (AF_UNIX) --------------------------------------- */

/* Local sockets, as Python's socket(AF_UNIX), nc -U and socat UNIX-*: name
 * them by a filesystem path ("/run/x.sock", "./x.sock") or, on Linux, by an
 * abstract name written "@name" (no file; gone when the last socket closes;
 * any bytes but NUL).  sockit_socket, sockit_bind, sockit_accept, the
 * send/recv calls and sockit_getsockname/getpeername all take AF_UNIX. */

/* Builds a Unix address from "path" or "@name".  A path keeps its NUL
 * terminator in sun_path, so it is at most 107 bytes; "@name" at most 107
 * bytes of name.  Returns 0, -EINVAL (NULL, "" or a bare "@"), or
 * -ENAMETOOLONG. */
SOCKIT_API int sockit_addr_from_path(const char *path, sockit_addr *out);

/* Binds path (and listens, unless type is SOCK_DGRAM).  type: SOCK_STREAM,
 * SOCK_DGRAM or SOCK_SEQPACKET.  backlog <= 0 means SOMAXCONN.  flags: 0
 * or SOCKIT_NONBLOCK.  mode: the socket file's permissions (e.g. 0600),
 * set before listen() so no one connects under a looser mode (a datagram
 * socket may receive before); 0 leaves what the umask gave; ignored for
 * "@name".  An existing socket file is probed with a connect(): one that
 * refuses (a dead server's leftover) is replaced; one still served is
 * -EADDRINUSE and left alone (its server sees one empty connection).  A
 * path that is not a socket (a file, a directory, a symlink) is -EEXIST
 * and never removed.  The file stays after close: remove it with
 * sockit_unlink_unix.  Returns the fd (close-on-exec, blocking unless
 * SOCKIT_NONBLOCK). */
SOCKIT_API int sockit_create_unix_server(const char *path, int type, int backlog, int flags,
					 unsigned mode);

/* Connects to path ("@name" for an abstract one) within timeout_ms: a
 * server whose backlog is full makes a stream connect wait (timeout 0:
 * -EAGAIN at once; expired: -ETIMEDOUT).  A SOCK_DGRAM socket is first
 * bound to an automatic abstract name (sockit_bind_unix_auto), so the
 * server can reply to it.  Returns a connected, blocking, close-on-exec fd,
 * or -ENOENT (no such path), -ECONNREFUSED (no one serves it), ... */
SOCKIT_API int sockit_create_unix_connection(const char *path, int type, int timeout_ms);

/* Binds an unbound AF_UNIX socket to a fresh abstract name chosen by the
 * kernel ("@" and 5 hex digits; Linux autobind), e.g. a datagram client
 * that sends with sockit_sendto and wants replies.  Returns 0 (also when
 * fd already has a name, which it keeps). */
SOCKIT_API int sockit_bind_unix_auto(int fd);

/* Removes the socket file at path, for a server on its way out.  Only a
 * socket is removed: anything else is -ENOTSOCK and kept.  "@name" is 0
 * (no file).  Returns 0, -ENOENT, -ENOTSOCK, ... */
SOCKIT_API int sockit_unlink_unix(const char *path);

/* The peer's credentials (SO_PEERCRED) on a connected AF_UNIX stream or
 * seqpacket socket, as they were at connect() (socketpair: at creation).
 * Any pointer may be NULL.  Returns 0, -EAFNOSUPPORT (not AF_UNIX) or
 * -ENOTCONN (no peer). */
SOCKIT_API int sockit_peercred(int fd, pid_t *pid, uid_t *uid, gid_t *gid);

/* ---- Options ---------------------------------------------------------- */

SOCKIT_API int sockit_set_nonblocking(int fd, int on);
SOCKIT_API int sockit_set_nodelay(int fd, int on);
/* idle_s/interval_s/count <= 0 keep the system default for that knob. */
SOCKIT_API int sockit_set_keepalive(int fd, int on, int idle_s, int interval_s, int count);
SOCKIT_API int sockit_set_sndbuf(int fd, int bytes);
SOCKIT_API int sockit_set_rcvbuf(int fd, int bytes);
SOCKIT_API int sockit_set_reuseport(int fd, int on);
/* SO_LINGER: on with seconds 0 makes close() send RST and drop unsent
 * data at once (for a connection being dropped); off restores the
 * default graceful close. */
SOCKIT_API int sockit_set_linger(int fd, int on, int seconds);
/* TCP_DEFER_ACCEPT on a listener: a connection is handed to accept() only
 * once data arrived or seconds passed (the kernel rounds to its
 * retransmission schedule).  0 turns it off. */
SOCKIT_API int sockit_set_defer_accept(int fd, int seconds);
/* Bytes in the socket's send queue not yet acknowledged by the peer
 * (SIOCOUTQ), or a negative code. */
SOCKIT_API int sockit_unacked(int fd);

#ifdef __cplusplus
}
#endif

#endif /* SOCKIT_H */
