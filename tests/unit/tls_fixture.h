/* tls_fixture.h -- what the TLS unit tests share: certificates, connected pairs, handshakes. */
#ifndef SOCKIT_TLS_FIXTURE_H
#define SOCKIT_TLS_FIXTURE_H

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sockit_tls.h"
#include "testutil.h"

/* Each test file uses some of these. */
#define FIXTURE static __attribute__((unused))

/* The certificates tests/blackbox/tlscerts.py wrote (the Makefile runs it)
 * beside the test binary in tls-certs/, or in $SOCKIT_TLS_CERTS. */
static char certs_dir[PATH_MAX];

FIXTURE void certs_find(void)
{
	const char *env = getenv("SOCKIT_TLS_CERTS");
	if (env != NULL) {
		snprintf(certs_dir, sizeof(certs_dir), "%s", env);
		return;
	}
	char exe[PATH_MAX - 16]; /* room for "/tls-certs" */
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0) {
		fprintf(stderr, "cannot find the test binary\n");
		exit(1);
	}
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	*slash = '\0';
	snprintf(certs_dir, sizeof(certs_dir), "%s/tls-certs", exe);
}

/* "server.pem" -> its path, in one of 8 rotating buffers. */
FIXTURE const char *cert(const char *name)
{
	static char paths[8][PATH_MAX + 64];
	static unsigned next;
	char *p = paths[next++ % 8];
	snprintf(p, PATH_MAX + 64, "%s/%s", certs_dir, name);
	return p;
}

FIXTURE uint64_t fixture_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A connected TCP pair on host (127.0.0.1 or ::1). */
FIXTURE void tcp_pair(const char *host, int *c, int *s)
{
	int l = sockit_create_server(host, 0, SOCK_STREAM, 8, 0);
	assert_ok(l);
	sockit_addr a;
	assert_ok(sockit_getsockname(l, &a));
	*c = sockit_create_connection(host, sockit_addr_port(&a), 10000);
	assert_ok(*c);
	*s = sockit_accept(l, NULL, 0, 10000);
	assert_ok(*s);
	sockit_close(l);
}

FIXTURE sockit_tls_ctx *server_ctx(const char *cert_name, const char *key_name, const char *ca)
{
	sockit_tls_config cfg = {.cert_file = cert(cert_name),
				 .key_file = cert(key_name),
				 .ca_file = ca != NULL ? cert(ca) : NULL};
	sockit_tls_ctx *ctx = NULL;
	assert_ok(sockit_tls_server_ctx_new(&cfg, &ctx));
	return ctx;
}

FIXTURE sockit_tls_ctx *client_ctx(int flags)
{
	sockit_tls_config cfg = {.ca_file = cert("ca.pem"), .flags = flags};
	sockit_tls_ctx *ctx = NULL;
	assert_ok(sockit_tls_client_ctx_new(&cfg, &ctx));
	return ctx;
}

/* Both ends of one connection over host, wrapped, handshake not started. */
struct pair {
	sockit_tls *c, *s;
};

FIXTURE struct pair tls_pair(sockit_tls_ctx *cctx, sockit_tls_ctx *sctx, const char *host,
			     const char *servername)
{
	int cfd, sfd;
	tcp_pair(host, &cfd, &sfd);
	struct pair p;
	assert_ok(sockit_tls_client(cctx, cfd, servername, &p.c));
	assert_ok(sockit_tls_server(sctx, sfd, &p.s));
	return p;
}

FIXTURE void pair_close(struct pair *p)
{
	sockit_tls_close(p->c, 0);
	sockit_tls_close(p->s, 0);
}

FIXTURE short poll_events(const sockit_tls *t)
{
	return sockit_tls_want(t) == SOCKIT_WRITABLE ? POLLOUT : POLLIN;
}

/* Drives both handshakes in this thread, as an event loop would: timeout 0,
 * then poll for what each wants, until neither says -EAGAIN. */
FIXTURE void handshake_both(struct pair *p, int *crc, int *src)
{
	*crc = *src = -EAGAIN;
	uint64_t end = fixture_now_ms() + 30000;
	while (*crc == -EAGAIN || *src == -EAGAIN) {
		if (*crc == -EAGAIN)
			*crc = sockit_tls_handshake(p->c, 0);
		if (*src == -EAGAIN)
			*src = sockit_tls_handshake(p->s, 0);
		struct pollfd fds[2];
		nfds_t n = 0;
		if (*crc == -EAGAIN)
			fds[n++] = (struct pollfd){sockit_tls_fd(p->c), poll_events(p->c), 0};
		if (*src == -EAGAIN)
			fds[n++] = (struct pollfd){sockit_tls_fd(p->s), poll_events(p->s), 0};
		if (n > 0)
			poll(fds, n, 1000);
		if (fixture_now_ms() > end)
			fail_msg("handshake stuck: client %d, server %d", *crc, *src);
	}
}

/* Asserts a code, printing both codes and their meanings. */
#define assert_code(expr, want)                                                                    \
	do {                                                                                       \
		long long got_ = (long long)(expr), want_ = (long long)(want);                     \
		if (got_ != want_)                                                                 \
			fail_msg("%s = %lld (%s), expected %lld (%s)", #expr, got_,                \
				 sockit_strerror((int)got_), want_, sockit_strerror((int)want_));  \
	} while (0)

#endif /* SOCKIT_TLS_FIXTURE_H */
