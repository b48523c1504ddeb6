/* net.c -- sockets made a bit less boring: timeouts, EINTR, partial I/O, no SIGPIPE. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* At most this many resolved addresses are tried by sockit_create_server. */
#define MAX_ADDRS 16

/* ---- Deadlines on CLOCK_MONOTONIC ---------------------------------------- */

static int64_t now_ms(void)
{
	return (int64_t)sk_clock_ms();
}

/* Deadline values: -1 waits forever, DEADLINE_NOW (0) means "timeout 0:
 * try once, never wait", anything else is a time on CLOCK_MONOTONIC (it is
 * past the first millisecond after boot).  The two specials cost no clock
 * read, so a timeout-0 call is exactly its one system call. */
#define DEADLINE_NOW 0

static int64_t deadline_of(int timeout_ms)
{
	if (timeout_ms <= 0)
		return timeout_ms < 0 ? -1 : DEADLINE_NOW;
	return now_ms() + timeout_ms;
}

/* Milliseconds left for poll(): -1 forever, else >= 0. */
static int remaining_ms(int64_t deadline)
{
	if (deadline < 0)
		return -1;
	if (deadline == DEADLINE_NOW)
		return 0;
	int64_t left = deadline - now_ms();
	return left <= 0 ? 0 : left > 0x7fffffff ? 0x7fffffff : (int)left;
}

/* Waits until fd is ready for events or the deadline passes: the revents
 * (> 0; error/hangup count as ready, the next call reports them),
 * -EAGAIN (DEADLINE_NOW) or -ETIMEDOUT when it passed, or -errno.  EINTR keeps the deadline. */
static int poll_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = events};
		int rc = poll(&p, 1, remaining_ms(deadline));
		if (rc > 0)
			return (p.revents & POLLNVAL) ? -EBADF : p.revents;
		if (rc == 0) {
			/* poll may wake a little early; only a passed deadline counts. */
			if (remaining_ms(deadline) == 0)
				return deadline == DEADLINE_NOW ? -EAGAIN : -ETIMEDOUT;
			continue;
		}
		if (errno != EINTR)
			return -errno;
	}
}

static int wait_fd(int fd, short events, int64_t deadline)
{
	int rc = poll_fd(fd, events, deadline);
	return rc < 0 ? rc : 0;
}

/* ---- The one retry loop -------------------------------------------------- */

/* One system call, described so that a single loop can retry it. */
struct io_op {
	enum { OP_SEND, OP_RECV, OP_SENDTO, OP_RECVFROM, OP_ACCEPT } kind;
	void *buf;
	size_t len;
	int flags;
	sockit_addr *addr; /* sendto's target, recvfrom's / accept's peer */
};

static ssize_t io_once(int fd, struct io_op *op)
{
	switch (op->kind) {
	case OP_SEND:
		return send(fd, op->buf, op->len, op->flags | MSG_NOSIGNAL);
	case OP_RECV:
		return recv(fd, op->buf, op->len, op->flags);
	case OP_SENDTO:
		return sendto(fd, op->buf, op->len, op->flags | MSG_NOSIGNAL,
			      (const struct sockaddr *)&op->addr->ss, op->addr->len);
	case OP_RECVFROM:
	case OP_ACCEPT: {
		/* No peer wanted: the kernel copies no address. */
		sockit_addr *a = op->addr;
		if (a != NULL) {
			memset(a, 0, sizeof(*a));
			a->len = sizeof(a->ss);
		}
		struct sockaddr *sa = a != NULL ? (struct sockaddr *)&a->ss : NULL;
		socklen_t *lenp = a != NULL ? &a->len : NULL;
		if (op->kind == OP_ACCEPT)
			return accept4(fd, sa, lenp, op->flags | SOCK_CLOEXEC);
		return recvfrom(fd, op->buf, op->len, op->flags, sa, lenp);
	}
	}
	errno = EINVAL;
	return -1;
}

/* Runs op until it succeeds, fails for real, or the deadline passes: EINTR
 * is retried here and nowhere else; EAGAIN waits with poll.  When a
 * deadline is set, send/recv use MSG_DONTWAIT so a blocking fd cannot
 * block past it; accept4 has no such flag, so on a blocking fd it first
 * waits for readability (another thread may still take the connection
 * first: share blocking listeners with care).
 * Costs: timeout 0 is one system call (plus, for accept only, one fcntl to
 * learn whether the fd blocks: a blocking accept4 cannot be told not to
 * wait; sockit_try_accept skips it for known non-blocking
 * listeners).  No clock read unless the first attempt finds EAGAIN and a
 * real deadline is set.  timeout -1: no fcntl, no clock. */
static ssize_t io_retry(int fd, struct io_op *op, int64_t deadline)
{
	short events = (op->kind == OP_SEND || op->kind == OP_SENDTO) ? POLLOUT : POLLIN;
	int wait_first = 0;
	if (deadline >= 0) {
		if (op->kind == OP_ACCEPT) {
			int fl = fcntl(fd, F_GETFL);
			if (fl < 0)
				return -errno;
			wait_first = !(fl & O_NONBLOCK);
			/* Waiting would hide "not a listening socket" until the deadline. */
			int on = 0;
			socklen_t sl = sizeof(on);
			if (wait_first && getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &sl) < 0)
				return -errno;
			if (wait_first && !on)
				return -EINVAL;
		} else {
			op->flags |= MSG_DONTWAIT;
		}
	}
	for (;;) {
		if (wait_first) {
			int rc = wait_fd(fd, events, deadline);
			if (rc < 0)
				return rc;
		}
		ssize_t n = io_once(fd, op);
		if (n >= 0)
			return n;
		int err = errno;
		if (err == EINTR)
			continue;
		if (err != EAGAIN && err != EWOULDBLOCK)
			return -err;
		if (deadline == DEADLINE_NOW)
			return -EAGAIN; /* timeout 0 tried once; no poll for nothing */
		if (deadline > 0 && remaining_ms(deadline) == 0)
			return -ETIMEDOUT;
		int rc = wait_fd(fd, events, deadline);
		if (rc < 0)
			return rc;
	}
}

/* ---- The tutorial's calls ------------------------------------------------ */

int sockit_socket(int family, int type)
{
	int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
	if ((family != AF_INET && family != AF_INET6 && family != AF_UNIX) ||
	    (base != SOCK_STREAM && base != SOCK_DGRAM && base != SOCK_SEQPACKET))
		return -EINVAL;
	int fd = socket(family, type | SOCK_CLOEXEC, 0);
	return fd < 0 ? -errno : fd;
}

int sockit_close(int fd)
{
	if (fd < 0)
		return -EINVAL;
	/* On Linux the fd is released even when close reports EINTR. */
	if (close(fd) < 0 && errno != EINTR)
		return -errno;
	return 0;
}

static int addr_ok(const sockit_addr *a)
{
	return a != NULL && a->len > 0 && a->len <= sizeof(a->ss);
}

int sockit_bind(int fd, const sockit_addr *a)
{
	if (fd < 0 || !addr_ok(a))
		return -EINVAL;
	return bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 ? -errno : 0;
}

int sockit_listen(int fd, int backlog)
{
	if (fd < 0)
		return -EINVAL;
	return listen(fd, backlog <= 0 ? SOMAXCONN : backlog) < 0 ? -errno : 0;
}

int sockit_connect(int fd, const sockit_addr *a, int timeout_ms)
{
	if (fd < 0 || !addr_ok(a))
		return -EINVAL;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -errno;
	/* A blocking fd with a deadline is made non-blocking for the attempt. */
	int restore = !(fl & O_NONBLOCK) && timeout_ms >= 0;
	if (restore && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	int rc = 0;
	if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0) {
		rc = -errno;
		/* EINTR: the connection goes on in the background; wait for it. */
		if (rc == -EINPROGRESS || rc == -EINTR) {
			if (timeout_ms == 0) {
				rc = -EINPROGRESS;
			} else {
				rc = wait_fd(fd, POLLOUT, deadline_of(timeout_ms));
				int soerr = 0;
				socklen_t sl = sizeof(soerr);
				if (rc == 0 &&
				    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
					rc = -errno;
				else if (rc == 0)
					rc = -soerr;
			}
		}
	}
	if (restore && fcntl(fd, F_SETFL, fl) < 0 && rc == 0)
		rc = -errno;
	return rc;
}

int sockit_accept(int fd, sockit_addr *peer, int flags, int timeout_ms)
{
	if (fd < 0 || (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) != 0)
		return -EINVAL;
	struct io_op op = {.kind = OP_ACCEPT, .flags = flags, .addr = peer};
	return (int)io_retry(fd, &op, deadline_of(timeout_ms));
}

/* The timeout-0 send/recv of event loops, straight-line: io_retry's
 * general loop costs about 80 more instructions per call (measured with
 * callgrind on `sockit serve -m line`). */
static ssize_t now_result(ssize_t n)
{
	if (n >= 0)
		return n;
	return errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

ssize_t sockit_send(int fd, const void *buf, size_t len, int timeout_ms)
{
	return sockit_send_flags(fd, buf, len, 0, timeout_ms);
}

ssize_t sockit_send_flags(int fd, const void *buf, size_t len, int flags, int timeout_ms)
{
	if (fd < 0 || (buf == NULL && len > 0))
		return -EINVAL;
	if (timeout_ms == 0) {
		ssize_t n;
		while ((n = send(fd, buf, len, flags | MSG_DONTWAIT | MSG_NOSIGNAL)) < 0 &&
		       errno == EINTR)
			;
		return now_result(n);
	}
	struct io_op op = {.kind = OP_SEND, .buf = (void *)buf, .len = len, .flags = flags};
	return io_retry(fd, &op, deadline_of(timeout_ms));
}

ssize_t sockit_recv(int fd, void *buf, size_t len, int timeout_ms)
{
	if (fd < 0 || (buf == NULL && len > 0))
		return -EINVAL;
	if (timeout_ms == 0) {
		ssize_t n;
		while ((n = recv(fd, buf, len, MSG_DONTWAIT)) < 0 && errno == EINTR)
			;
		return now_result(n);
	}
	struct io_op op = {.kind = OP_RECV, .buf = buf, .len = len};
	return io_retry(fd, &op, deadline_of(timeout_ms));
}

ssize_t sockit_sendto(int fd, const void *buf, size_t len, const sockit_addr *to, int timeout_ms)
{
	if (fd < 0 || (buf == NULL && len > 0) || !addr_ok(to))
		return -EINVAL;
	struct io_op op = {
		.kind = OP_SENDTO, .buf = (void *)buf, .len = len, .addr = (sockit_addr *)to};
	return io_retry(fd, &op, deadline_of(timeout_ms));
}

ssize_t sockit_recvfrom(int fd, void *buf, size_t len, sockit_addr *from, int timeout_ms)
{
	if (fd < 0 || (buf == NULL && len > 0))
		return -EINVAL;
	struct io_op op = {.kind = OP_RECVFROM, .buf = buf, .len = len, .addr = from};
	return io_retry(fd, &op, deadline_of(timeout_ms));
}

int sockit_shutdown(int fd, int how)
{
	if (fd < 0 || (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR))
		return -EINVAL;
	return shutdown(fd, how) < 0 ? -errno : 0;
}

/* ---- Python's conveniences ----------------------------------------------- */

ssize_t sockit_udp_sendto(int fd, const void *buf, size_t len, const char *host, int port,
			  int timeout_ms)
{
	if (fd < 0 || (buf == NULL && len > 0))
		return -EINVAL;
	/* Resolve in the socket's own family. */
	int family = 0;
	socklen_t sl = sizeof(family);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &sl) < 0)
		return -errno;
	if (family != AF_INET && family != AF_INET6)
		return -EAFNOSUPPORT;
	sockit_addr to;
	int n = sockit_resolve(host, port, family, SOCK_DGRAM, 0, &to, 1);
	if (n < 0)
		return n;
	return sockit_sendto(fd, buf, len, &to, timeout_ms);
}

static int setopt_int(int fd, int level, int name, int v)
{
	return setsockopt(fd, level, name, &v, sizeof(v)) < 0 ? -errno : 0;
}

/* Creates, configures and binds (and for streams listens on) one address. */
static int serve_one(const sockit_addr *a, int type, int backlog, int flags)
{
	int fd = sockit_socket(a->ss.ss_family,
			       type | ((flags & SOCKIT_NONBLOCK) ? SOCK_NONBLOCK : 0));
	if (fd < 0)
		return fd;
	int rc = setopt_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
	if (rc == 0 && (flags & SOCKIT_REUSEPORT))
		rc = setopt_int(fd, SOL_SOCKET, SO_REUSEPORT, 1);
	if (rc == 0 && a->ss.ss_family == AF_INET6)
		rc = setopt_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, !(flags & SOCKIT_DUALSTACK));
	if (rc == 0)
		rc = sockit_bind(fd, a);
	if (rc == 0 && type == SOCK_STREAM)
		rc = sockit_listen(fd, backlog);
	if (rc < 0) {
		sockit_close(fd);
		return rc;
	}
	return fd;
}

int sockit_create_server(const char *host, int port, int type, int backlog, int flags)
{
	const int known = SOCKIT_REUSEPORT | SOCKIT_DUALSTACK | SOCKIT_V6ONLY | SOCKIT_NONBLOCK;
	if ((type != SOCK_STREAM && type != SOCK_DGRAM) || (flags & ~known) != 0 ||
	    ((flags & SOCKIT_DUALSTACK) && (flags & SOCKIT_V6ONLY)))
		return -EINVAL;
	if (host == NULL || host[0] == '\0')
		host = (flags & SOCKIT_DUALSTACK) ? "::" : "0.0.0.0";
	sockit_addr addrs[MAX_ADDRS];
	int n = sockit_resolve(host, port, AF_UNSPEC, type, 1, addrs, MAX_ADDRS);
	if (n < 0)
		return n;
	int rc = -EADDRNOTAVAIL;
	for (int i = 0; i < n; i++) {
		rc = serve_one(&addrs[i], type, backlog, flags);
		if (rc >= 0)
			return rc;
	}
	return rc;
}

int sockit_sendall(int fd, const void *buf, size_t len, int timeout_ms, size_t *sent)
{
	if (sent != NULL)
		*sent = 0;
	if (fd < 0 || (buf == NULL && len > 0))
		return -EINVAL;
	int64_t deadline = deadline_of(timeout_ms);
	size_t off = 0;
	int rc = 0;
	while (off < len) {
		struct io_op op = {.kind = OP_SEND, .buf = (char *)buf + off, .len = len - off};
		ssize_t n = io_retry(fd, &op, deadline);
		if (n < 0) {
			rc = (int)n;
			break;
		}
		off += (size_t)n;
	}
	if (sent != NULL)
		*sent = off;
	return rc;
}

ssize_t sockit_recv_exact(int fd, void *buf, size_t len, int timeout_ms)
{
	if (fd < 0 || (buf == NULL && len > 0) || len > SSIZE_MAX)
		return -EINVAL;
	int64_t deadline = deadline_of(timeout_ms);
	size_t off = 0;
	while (off < len) {
		struct io_op op = {.kind = OP_RECV, .buf = (char *)buf + off, .len = len - off};
		ssize_t n = io_retry(fd, &op, deadline);
		if (n < 0)
			return n;
		if (n == 0)
			break;
		off += (size_t)n;
	}
	return (ssize_t)off;
}

/* Peeks until a '\n' is queued within len - 1 bytes, then consumes exactly
 * the line, so the next read gets the bytes after it.  Waiting for "more
 * than the n bytes queued" sets SO_RCVLOWAT to n + 1 around poll (restored
 * after; on TCP the kernel may grow the receive buffer to fit it).  Where
 * poll ignores it (non-TCP sockets, or n beyond the kernel's cap) a wake-up
 * without progress sleeps 10 ms instead of spinning.  Each wake-up re-peeks
 * from the start: O(len) per wake-up. */
ssize_t sockit_recvline(int fd, char *buf, size_t len, int timeout_ms)
{
	if (fd < 0 || buf == NULL || len < 2 || len > 0x7fffffff)
		return -EINVAL;
	int64_t deadline = deadline_of(timeout_ms);
	size_t want = len - 1;
	ssize_t have = -1;
	int eof = 0;
	for (;;) {
		struct io_op peek = {.kind = OP_RECV, .buf = buf, .len = want, .flags = MSG_PEEK};
		ssize_t n = io_retry(fd, &peek, deadline);
		if (n < 0)
			return n;
		char *nl = memchr(buf, '\n', (size_t)n);
		if (nl == NULL && (size_t)n == want)
			return -EMSGSIZE;
		if (nl != NULL || n == 0 || (n == have && eof)) {
			/* A whole line, EOF, or a partial line at EOF: take it. */
			size_t take = nl != NULL ? (size_t)(nl - buf) + 1 : (size_t)n;
			ssize_t got = sockit_recv_exact(fd, buf, take, remaining_ms(deadline));
			if (got < 0)
				return got;
			buf[got] = '\0';
			return got;
		}
		if (n == have) {
			/* Readable without progress: poll ignored SO_RCVLOWAT. */
			int ms = remaining_ms(deadline);
			if (ms == 0)
				return -ETIMEDOUT;
			poll(NULL, 0, ms < 0 || ms > 10 ? 10 : ms);
		}
		have = n;
		int old = 1;
		socklen_t sl = sizeof(old);
		if (getsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &old, &sl) < 0)
			return -errno;
		int rc = setopt_int(fd, SOL_SOCKET, SO_RCVLOWAT, (int)n + 1);
		if (rc < 0)
			return rc;
		int revents = poll_fd(fd, POLLIN | POLLRDHUP, deadline);
		setopt_int(fd, SOL_SOCKET, SO_RCVLOWAT, old);
		if (revents < 0)
			return revents;
		eof = (revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
	}
}
