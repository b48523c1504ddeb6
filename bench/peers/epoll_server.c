/*
 * epoll_server.c -- the yardstick: a minimal single-threaded epoll server
 * speaking the sockit protocol, with no features and no wasted system calls.
 *
 * Usage: epoll_server once|line|udp PORT   (127.0.0.1; PORT 0 picks one and
 * prints "port N" on stdout), or epoll_server once|line -U PATH (a Unix
 * stream socket at PATH, replacing a stale file; prints "unix PATH").
 *
 * once: accept4(SOCK_NONBLOCK) in a loop until EAGAIN, register each
 *       connection for EPOLLIN, then one read of up to 1024 bytes, one write of
 *       "Received: " + data, close.  A fresh socket's send buffer (at least
 *       tcp_wmem[0] = 4 KiB) always takes a reply of at most 1034 bytes at
 *       once; a short write closes the connection anyway, and the client sees
 *       a truncated reply.
 * line: "Received: " + line for every \n-terminated line, pipelined, one
 *       read and one write per batch; unsent output is kept and reading
 *       stops until it drains (backpressure); a final unterminated line
 *       gets its reply at EOF; a line over 64 KiB closes the connection.
 * udp:  recvfrom, sendto of "Received: " + datagram, until EAGAIN.
 *
 * Level-triggered, one epoll_wait for up to 1024 events, the fd is the
 * index into a table of per-connection state, which is touched only in line
 * mode.  Deliberately not done (they are what sockit serve may do better):
 * TCP_DEFER_ACCEPT, reading before registering, recvmmsg/sendmmsg.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4 */
#endif
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define PREFIX "Received: "
#define PREFIX_LEN 10
#define ONCE_MAX 1024
#define MAX_LINE (64 * 1024)
#define READ_CHUNK (16 * 1024)
/* Worst case output of one read: every byte a "\n" (11x) plus a carried
 * partial line of up to MAX_LINE bytes and its prefix. */
#define OUT_CAP (11 * READ_CHUNK + MAX_LINE + PREFIX_LEN)
#define MAX_EVENTS 1024

enum mode { MODE_ONCE, MODE_LINE, MODE_UDP };

/* Line-mode state of one connection, indexed by fd. */
struct conn {
	char *part; /* carried partial line */
	size_t part_len;
	char *pend; /* output the kernel did not take yet */
	size_t pend_off, pend_len;
	int closing; /* close once pend drains */
};

static struct conn *conns;
static char inbuf[MAX_LINE + READ_CHUNK];
static char outbuf[OUT_CAP];

static int set_interest(int ep, int fd, unsigned events)
{
	struct epoll_event ev = {.events = events, .data.fd = fd};

	return epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

static void conn_close(int fd)
{
	struct conn *c = &conns[fd];

	free(c->part);
	free(c->pend);
	memset(c, 0, sizeof(*c));
	close(fd);
}

static void accept_all(int ep, int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return; /* EAGAIN, or EMFILE: retried on the next event */
		}
		struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
			close(fd);
	}
}

static void once_ready(int fd)
{
	char buf[PREFIX_LEN + ONCE_MAX];
	ssize_t n;

	memcpy(buf, PREFIX, PREFIX_LEN);
	n = read(fd, buf + PREFIX_LEN, ONCE_MAX);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n >= 0) /* n == 0: EOF before data, the tutorial replies the prefix */
		(void)write(fd, buf, PREFIX_LEN + (size_t)n);
	close(fd);
}

/* Writes out; keeps what the kernel did not take. Returns -1 on error. */
static int line_send(int ep, int fd, const char *out, size_t len)
{
	struct conn *c = &conns[fd];
	ssize_t n = len ? write(fd, out, len) : 0;

	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			return -1;
		n = 0;
	}
	if ((size_t)n == len)
		return 0;
	c->pend = malloc(len - (size_t)n);
	if (!c->pend)
		return -1;
	memcpy(c->pend, out + n, len - (size_t)n);
	c->pend_off = 0;
	c->pend_len = len - (size_t)n;
	return set_interest(ep, fd, EPOLLOUT); /* stop reading until it drains */
}

static void line_readable(int ep, int fd)
{
	struct conn *c = &conns[fd];
	size_t have = c->part_len, out = 0, start = 0, i;
	ssize_t n;

	if (have)
		memcpy(inbuf, c->part, have);
	n = read(fd, inbuf + have, READ_CHUNK);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		conn_close(fd);
		return;
	}
	if (n == 0) { /* EOF: answer a final unterminated line, then close */
		if (have) {
			memcpy(outbuf, PREFIX, PREFIX_LEN);
			memcpy(outbuf + PREFIX_LEN, inbuf, have);
			out = PREFIX_LEN + have;
		}
		free(c->part);
		c->part = NULL;
		c->part_len = 0;
		c->closing = 1;
		if (line_send(ep, fd, outbuf, out) < 0 || !c->pend)
			conn_close(fd);
		return;
	}
	have += (size_t)n;
	for (i = c->part_len; i < have; i++) {
		if (inbuf[i] != '\n')
			continue;
		memcpy(outbuf + out, PREFIX, PREFIX_LEN);
		memcpy(outbuf + out + PREFIX_LEN, inbuf + start, i + 1 - start);
		out += PREFIX_LEN + i + 1 - start;
		start = i + 1;
	}
	if (have - start > MAX_LINE) {
		conn_close(fd);
		return;
	}
	if (have == start) {
		free(c->part);
		c->part = NULL;
	} else {
		char *p = realloc(c->part, have - start);
		if (!p) {
			conn_close(fd);
			return;
		}
		memcpy(p, inbuf + start, have - start);
		c->part = p;
	}
	c->part_len = have - start;
	if (line_send(ep, fd, outbuf, out) < 0)
		conn_close(fd);
}

static void line_writable(int ep, int fd)
{
	struct conn *c = &conns[fd];
	ssize_t n = write(fd, c->pend + c->pend_off, c->pend_len - c->pend_off);

	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		conn_close(fd);
		return;
	}
	c->pend_off += (size_t)n;
	if (c->pend_off < c->pend_len)
		return;
	free(c->pend);
	c->pend = NULL;
	if (c->closing || set_interest(ep, fd, EPOLLIN) < 0)
		conn_close(fd);
}

static void udp_readable(int fd)
{
	static char buf[PREFIX_LEN + 65536];
	struct sockaddr_storage from;
	socklen_t flen;
	ssize_t n;

	memcpy(buf, PREFIX, PREFIX_LEN);
	for (;;) {
		flen = sizeof(from);
		n = recvfrom(fd, buf + PREFIX_LEN, sizeof(buf) - PREFIX_LEN, 0,
			     (struct sockaddr *)&from, &flen);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		size_t len = PREFIX_LEN + (size_t)n;
		if (len > 65507)
			len = 65507;
		(void)sendto(fd, buf, len, 0, (struct sockaddr *)&from, flen);
	}
}

static int listen_unix(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_un sun = {.sun_family = AF_UNIX};

	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "epoll_server: path too long: %s\n", path);
		exit(2);
	}
	strcpy(sun.sun_path, path);
	(void)unlink(path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, 4096) < 0) {
		perror("epoll_server: listen");
		exit(1);
	}
	printf("unix %s\n", path);
	fflush(stdout);
	return fd;
}

static int listen_on(enum mode mode, int port)
{
	int type = mode == MODE_UDP ? SOCK_DGRAM : SOCK_STREAM;
	int fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	socklen_t slen = sizeof(sa);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    (type == SOCK_STREAM && listen(fd, 4096) < 0) ||
	    getsockname(fd, (struct sockaddr *)&sa, &slen) < 0) {
		perror("epoll_server: listen");
		exit(1);
	}
	printf("port %d\n", ntohs(sa.sin_port));
	fflush(stdout);
	return fd;
}

int main(int argc, char **argv)
{
	static struct epoll_event evs[MAX_EVENTS];
	struct rlimit rl;
	enum mode mode;
	int ep, lfd, i, n;

	if (argc != 3 && !(argc == 4 && !strcmp(argv[2], "-U"))) {
		fprintf(stderr, "usage: epoll_server once|line|udp PORT | once|line -U PATH\n");
		return 2;
	}
	if (!strcmp(argv[1], "once"))
		mode = MODE_ONCE;
	else if (!strcmp(argv[1], "line"))
		mode = MODE_LINE;
	else if (!strcmp(argv[1], "udp"))
		mode = MODE_UDP;
	else {
		fprintf(stderr, "epoll_server: bad mode '%s'\n", argv[1]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	/* Untouched pages cost nothing: only used entries become resident. */
	conns = calloc(rl.rlim_cur, sizeof(*conns));
	if (!conns)
		return 1;
	if (argc == 4 && mode == MODE_UDP) {
		fprintf(stderr, "epoll_server: -U serves once and line only\n");
		return 2;
	}
	lfd = argc == 4 ? listen_unix(argv[3]) : listen_on(mode, atoi(argv[2]));
	ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) {
		perror("epoll_server: epoll");
		return 1;
	}
	for (;;) {
		n = epoll_wait(ep, evs, MAX_EVENTS, -1);
		for (i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == lfd && mode == MODE_UDP)
				udp_readable(fd);
			else if (fd == lfd)
				accept_all(ep, lfd);
			else if (mode == MODE_ONCE)
				once_ready(fd);
			else if (evs[i].events & EPOLLOUT)
				line_writable(ep, fd);
			else
				line_readable(ep, fd);
		}
	}
}
