/*
 * tls_epoll_server.c -- the TLS yardstick: the minimal epoll server
 * (epoll_server.c) with OpenSSL 3 in front of it, non-blocking throughout.
 *
 * Usage: tls_epoll_server once|line PORT CERT KEY   (127.0.0.1; PORT 0 picks
 * one and prints "port N" on stdout).
 *
 * once: SSL_accept until done, then (at once, no extra epoll round trip)
 *       one SSL_read of up to 1024 bytes of plaintext, one SSL_write of
 *       "Received: " + data, one SSL_shutdown (our close_notify, not waiting
 *       for the peer's), close.  close_notify before any data gets
 *       "Received: ".
 * line: "Received: " + line for every \n-terminated line, pipelined; SSL_read
 *       until it wants more, one SSL_write per batch; output the socket does
 *       not take is kept and reading stops until it drains; a final
 *       unterminated line is answered at close_notify; a line over 64 KiB
 *       closes the connection.
 *
 * OpenSSL as a careful C user would set it up: TLS 1.2 minimum, the
 * library's default ciphers and groups, SSL_MODE_RELEASE_BUFFERS (no
 * buffers held by an idle connection), stateless session tickets (one per
 * handshake; a resumed handshake skips the certificate signature), no
 * server-side session cache.  Level-triggered epoll, the fd indexes a table
 * of per-connection state, accept4(SOCK_NONBLOCK) until EAGAIN.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4 */
#endif
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define PREFIX "Received: "
#define PREFIX_LEN 10
#define ONCE_MAX 1024
#define MAX_LINE (64 * 1024)
#define READ_CHUNK (16 * 1024)
#define OUT_CAP (11 * READ_CHUNK + MAX_LINE + PREFIX_LEN)
#define MAX_EVENTS 1024

enum state { ST_FREE, ST_HANDSHAKE, ST_OPEN, ST_CLOSING };

struct conn {
	SSL *ssl;
	enum state state;
	unsigned interest;
	char *part; /* carried partial line */
	size_t part_len;
	char *pend; /* a batch SSL_write has not finished */
	size_t pend_len;
};

static struct conn *conns;
static SSL_CTX *ctx;
static int ep, mode_line;
static char inbuf[MAX_LINE + READ_CHUNK];
static char outbuf[OUT_CAP];

static void conn_close(int fd)
{
	struct conn *c = &conns[fd];

	SSL_free(c->ssl);
	free(c->part);
	free(c->pend);
	memset(c, 0, sizeof(*c));
	close(fd);
}

/* Our close_notify, without waiting for the peer's, then close. */
static void conn_finish(int fd)
{
	(void)SSL_shutdown(conns[fd].ssl);
	conn_close(fd);
}

static int set_interest(int fd, unsigned events)
{
	struct conn *c = &conns[fd];
	struct epoll_event ev = {.events = events, .data.fd = fd};

	if (c->interest == events)
		return 0;
	c->interest = events;
	return epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

/* After an SSL call returned r <= 0: 0 if it only waits for the socket
 * (interest set accordingly), -1 if the connection is over. */
static int ssl_wait(int fd, int r)
{
	switch (SSL_get_error(conns[fd].ssl, r)) {
	case SSL_ERROR_WANT_READ:
		return set_interest(fd, EPOLLIN) < 0 ? -1 : 0;
	case SSL_ERROR_WANT_WRITE:
		return set_interest(fd, EPOLLOUT) < 0 ? -1 : 0;
	default:
		ERR_clear_error();
		return -1;
	}
}

static void accept_all(int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return; /* EAGAIN, or EMFILE: retried on the next event */
		}
		struct conn *c = &conns[fd];
		struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
		c->ssl = SSL_new(ctx);
		if (!c->ssl || !SSL_set_fd(c->ssl, fd) ||
		    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			conn_close(fd);
			continue;
		}
		c->state = ST_HANDSHAKE;
		c->interest = EPOLLIN;
	}
}

static void once_read(int fd)
{
	char buf[PREFIX_LEN + ONCE_MAX];
	SSL *ssl = conns[fd].ssl;
	int n = SSL_read(ssl, buf + PREFIX_LEN, ONCE_MAX);

	if (n <= 0) {
		if (SSL_get_error(ssl, n) != SSL_ERROR_ZERO_RETURN) {
			if (ssl_wait(fd, n) < 0)
				conn_close(fd);
			return;
		}
		n = 0; /* close_notify before data: the tutorial replies the prefix */
	}
	memcpy(buf, PREFIX, PREFIX_LEN);
	/* A fresh connection's send buffer always takes it: a reply that does
	 * not go out at once closes the connection anyway (as epoll_server). */
	(void)SSL_write(ssl, buf, PREFIX_LEN + n);
	conn_finish(fd);
}

/* Writes out, or keeps it for SSL_write to retry.  Returns -1 on error. */
static int line_send(int fd, const char *out, size_t len)
{
	struct conn *c = &conns[fd];
	int n;

	if (!len)
		return 0;
	n = SSL_write(c->ssl, out, (int)len);
	if (n > 0)
		return 0;
	if (ssl_wait(fd, n) < 0)
		return -1;
	c->pend = malloc(len); /* SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER */
	if (!c->pend)
		return -1;
	memcpy(c->pend, out, len);
	c->pend_len = len;
	return 0;
}

/* One SSL_read's worth of lines.  Returns 1 to read on, 0 to wait, -1 to
 * close. */
static int line_chunk(int fd)
{
	struct conn *c = &conns[fd];
	size_t have = c->part_len, out = 0, start = 0, i;
	int n;

	if (have)
		memcpy(inbuf, c->part, have);
	n = SSL_read(c->ssl, inbuf + have, READ_CHUNK);
	if (n <= 0) {
		if (SSL_get_error(c->ssl, n) != SSL_ERROR_ZERO_RETURN)
			return ssl_wait(fd, n);
		if (have) { /* close_notify: answer a final unterminated line */
			memcpy(outbuf, PREFIX, PREFIX_LEN);
			memcpy(outbuf + PREFIX_LEN, inbuf, have);
			out = PREFIX_LEN + have;
		}
		c->state = ST_CLOSING;
		if (line_send(fd, outbuf, out) < 0 || !c->pend)
			return -1;
		return 0;
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
	if (have - start > MAX_LINE)
		return -1;
	if (have == start) {
		free(c->part);
		c->part = NULL;
	} else {
		char *p = realloc(c->part, have - start);
		if (!p)
			return -1;
		memcpy(p, inbuf + start, have - start);
		c->part = p;
	}
	c->part_len = have - start;
	if (line_send(fd, outbuf, out) < 0)
		return -1;
	return c->pend ? 0 : 1;
}

static void line_event(int fd)
{
	struct conn *c = &conns[fd];
	int r;

	if (c->pend) { /* retry the batch the socket did not take */
		r = SSL_write(c->ssl, c->pend, (int)c->pend_len);
		if (r <= 0) {
			if (ssl_wait(fd, r) < 0)
				conn_close(fd);
			return;
		}
		free(c->pend);
		c->pend = NULL;
		if (c->state == ST_CLOSING) {
			conn_finish(fd);
			return;
		}
	}
	while ((r = line_chunk(fd)) > 0)
		;
	if (r < 0)
		conn_finish(fd);
}

static void conn_event(int fd)
{
	struct conn *c = &conns[fd];

	if (c->state == ST_HANDSHAKE) {
		int r = SSL_accept(c->ssl);
		if (r <= 0) {
			if (ssl_wait(fd, r) < 0)
				conn_close(fd);
			return;
		}
		c->state = ST_OPEN;
	}
	if (mode_line)
		line_event(fd);
	else
		once_read(fd);
}

static SSL_CTX *make_ctx(const char *cert, const char *key)
{
	SSL_CTX *x = SSL_CTX_new(TLS_server_method());

	if (!x || !SSL_CTX_set_min_proto_version(x, TLS1_2_VERSION) ||
	    SSL_CTX_use_certificate_chain_file(x, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(x, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(x) != 1) {
		ERR_print_errors_fp(stderr);
		exit(1);
	}
	SSL_CTX_set_mode(x, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_session_cache_mode(x, SSL_SESS_CACHE_OFF);
	(void)SSL_CTX_set_num_tickets(x, 1);
	return x;
}

static int listen_on(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	socklen_t slen = sizeof(sa);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4096) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &slen) < 0) {
		perror("tls_epoll_server: listen");
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
	int lfd, i, n;

	if (argc != 5 || (strcmp(argv[1], "once") && strcmp(argv[1], "line"))) {
		fprintf(stderr, "usage: tls_epoll_server once|line PORT CERT KEY\n");
		return 2;
	}
	mode_line = !strcmp(argv[1], "line");
	signal(SIGPIPE, SIG_IGN);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	conns = calloc(rl.rlim_cur, sizeof(*conns));
	if (!conns)
		return 1;
	ctx = make_ctx(argv[3], argv[4]);
	lfd = listen_on(atoi(argv[2]));
	ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) {
		perror("tls_epoll_server: epoll");
		return 1;
	}
	for (;;) {
		n = epoll_wait(ep, evs, MAX_EVENTS, -1);
		for (i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == lfd)
				accept_all(lfd);
			else if (conns[fd].state != ST_FREE)
				conn_event(fd);
		}
	}
}
