/* test_tls_io.c -- libsockit_tls: data, timeouts, close_notify vs truncation, resumption, reload.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "tls/cork.h"
#include "tls_fixture.h"

#define MIB (1024 * 1024)

static uint8_t pattern_at(size_t i)
{
	return (uint8_t)((i * 2654435761u) >> 13);
}

static uint8_t *pattern(size_t n)
{
	uint8_t *b = malloc(n);
	assert_non_null(b);
	for (size_t i = 0; i < n; i++)
		b[i] = pattern_at(i);
	return b;
}

/* A peer thread: reads until close_notify, checking every byte against the
 * pattern, then sends reply bytes of the pattern back and its close_notify. */
struct sink {
	sockit_tls *t;
	size_t reply;
	size_t got;
	long long bad_at; /* the first wrong byte, or -1 */
	int rc;
	pthread_t thread;
};

static void *sink_run(void *arg)
{
	struct sink *k = arg;
	uint8_t buf[16384];
	k->bad_at = -1;
	for (;;) {
		ssize_t n = sockit_tls_recv(k->t, buf, sizeof(buf), 60000);
		if (n <= 0) {
			k->rc = (int)n;
			break;
		}
		for (size_t i = 0; i < (size_t)n; i++)
			if (buf[i] != pattern_at(k->got + i) && k->bad_at < 0)
				k->bad_at = (long long)(k->got + i);
		k->got += (size_t)n;
	}
	if (k->rc == 0 && k->reply > 0) {
		uint8_t *b = malloc(k->reply);
		for (size_t i = 0; b != NULL && i < k->reply; i++)
			b[i] = pattern_at(i);
		k->rc = b == NULL ? -ENOMEM : sockit_tls_sendall(k->t, b, k->reply, 60000, NULL);
		if (k->rc == 0)
			k->rc = sockit_tls_shutdown(k->t, 10000);
		free(b);
	}
	return NULL;
}

static void sink_start(struct sink *k, sockit_tls *t, size_t reply)
{
	*k = (struct sink){.t = t, .reply = reply};
	assert_int_equal(pthread_create(&k->thread, NULL, sink_run, k), 0);
}

static void sink_join(struct sink *k, size_t expect)
{
	assert_int_equal(pthread_join(k->thread, NULL), 0);
	assert_code(k->rc, 0);
	assert_int_equal(k->got, expect);
	assert_int_equal(k->bad_at, -1);
}

/* A handshaken pair on host with the standard certificates. */
struct world {
	sockit_tls_ctx *cctx, *sctx;
	struct pair p;
};

static void world_up(struct world *w, const char *host)
{
	w->cctx = client_ctx(0);
	w->sctx = server_ctx("server.pem", "server.key", NULL);
	w->p = tls_pair(w->cctx, w->sctx, host, "localhost");
	int crc, src;
	handshake_both(&w->p, &crc, &src);
	assert_code(crc, 0);
	assert_code(src, 0);
}

static void world_down(struct world *w)
{
	pair_close(&w->p);
	sockit_tls_ctx_free(w->cctx);
	sockit_tls_ctx_free(w->sctx);
}

/* 1 MiB each way, byte-exact, over IPv4 and IPv6: sendall, then close_notify
 * as a half-close, the reply read until the peer's close_notify. */
static void test_mib_both_ways(void **state)
{
	(void)state;
	static const char *const hosts[] = {"127.0.0.1", "::1"};
	for (size_t h = 0; h < 2; h++) {
		struct world w;
		world_up(&w, hosts[h]);
		struct sink k;
		sink_start(&k, w.p.s, MIB);
		uint8_t *data = pattern(MIB);
		size_t sent = 0;
		assert_code(sockit_tls_sendall(w.p.c, data, MIB, 60000, &sent), 0);
		assert_int_equal(sent, MIB);
		assert_code(sockit_tls_shutdown(w.p.c, 10000), 0);
		size_t got = 0;
		uint8_t buf[20000];
		ssize_t n;
		while ((n = sockit_tls_recv(w.p.c, buf, sizeof(buf), 60000)) > 0) {
			assert_true(got + (size_t)n <= MIB);
			assert_memory_equal(buf, data + got, (size_t)n);
			got += (size_t)n;
		}
		assert_code(n, 0); /* the server's close_notify */
		assert_int_equal(got, MIB);
		sink_join(&k, MIB);
		free(data);
		world_down(&w);
	}
}

/* timeout 0 on a full socket: -EAGAIN with the bytes taken so far and
 * SOCKIT_WRITABLE; the rest goes when the peer reads.  A positive
 * timeout that expires is -ETIMEDOUT. */
static void test_send_would_block(void **state)
{
	(void)state;
	struct world w;
	world_up(&w, "127.0.0.1");
	assert_ok(sockit_set_sndbuf(sockit_tls_fd(w.p.c), 65536));
	assert_ok(sockit_set_rcvbuf(sockit_tls_fd(w.p.s), 65536));
	uint8_t *data = pattern(MIB);
	size_t sent = 0;
	assert_code(sockit_tls_sendall(w.p.c, data, MIB, 0, &sent), -EAGAIN);
	assert_true(sent < MIB);
	assert_int_equal(sockit_tls_want(w.p.c), SOCKIT_WRITABLE);
	size_t more = 0;
	uint64_t t0 = fixture_now_ms();
	assert_code(sockit_tls_sendall(w.p.c, data + sent, MIB - sent, 200, &more), -ETIMEDOUT);
	assert_true(fixture_now_ms() - t0 >= 190);
	sent += more;
	/* The retry starts at the first byte not yet taken, as OpenSSL requires. */
	struct sink k;
	sink_start(&k, w.p.s, 0);
	assert_code(sockit_tls_sendall(w.p.c, data + sent, MIB - sent, 60000, &more), 0);
	assert_int_equal(sent + more, MIB);
	assert_code(sockit_tls_shutdown(w.p.c, 10000), 0);
	sink_join(&k, MIB);
	free(data);
	world_down(&w);
}

/* Corked (cork.h: serve's once mode), a session keeps what it writes
 * until the uncork sends it all in one go.  What the socket does not take
 * then waits (SOCKIT_WRITABLE, sk_tls_kept) and goes first with the
 * session's next write: the peer reads every byte once, in order. */
static void test_cork(void **state)
{
	(void)state;
	enum { TOTAL = 64 * 1024 };
	sockit_tls_ctx *cctx = client_ctx(0);
	sockit_tls_ctx *sctx = server_ctx("server.pem", "server.key", NULL);
	/* Small buffers, the client's before it connects (a window, once
	 * offered, never shrinks). */
	int l = sockit_create_server("127.0.0.1", 0, SOCK_STREAM, 8, 0);
	assert_ok(l);
	sockit_addr a;
	assert_ok(sockit_getsockname(l, &a));
	int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_ok(cfd);
	assert_ok(sockit_set_rcvbuf(cfd, 4096));
	assert_ok(connect(cfd, (struct sockaddr *)&a.ss, a.len));
	int sfd = sockit_accept(l, NULL, 0, 10000);
	assert_ok(sfd);
	sockit_close(l);
	assert_ok(sockit_set_sndbuf(sfd, 4096));
	struct pair p;
	assert_ok(sockit_tls_client(cctx, cfd, "localhost", &p.c));
	assert_ok(sockit_tls_server(sctx, sfd, &p.s));
	int crc, src;
	handshake_both(&p, &crc, &src);
	assert_code(crc, 0);
	assert_code(src, 0);
	uint8_t *data = pattern(TOTAL);
	size_t klen;
	struct pollfd pc = {.fd = cfd, .events = POLLIN};
	/* Read what the handshake left (TLS 1.3's tickets), so that the
	 * socket is empty below. */
	uint8_t buf[64];
	assert_code(sockit_tls_recv(p.c, buf, sizeof(buf), 0), -EAGAIN);
	assert_int_equal(poll(&pc, 1, 0), 0);

	sk_tls_cork(p.s);
	assert_int_equal(sockit_tls_send(p.s, data, 100, 0), 100);
	assert_non_null(sk_tls_kept(p.s, &klen));
	assert_true(klen > 100);		/* the record */
	assert_int_equal(poll(&pc, 1, 100), 0); /* nothing sent */
	assert_code(sk_tls_uncork(p.s, 0), 0);
	sk_tls_kept(p.s, &klen);
	assert_int_equal(klen, 0);
	assert_int_equal(poll(&pc, 1, 10000), 1);

	/* More than the socket takes, kept together, then uncorked. */
	size_t off = 100;
	sk_tls_cork(p.s);
	for (int i = 0; i < 15; i++, off += 1000)
		assert_int_equal(sockit_tls_send(p.s, data + off, 1000, 0), 1000);
	assert_code(sk_tls_uncork(p.s, 0), -EAGAIN);
	assert_int_equal(sockit_tls_want(p.s), SOCKIT_WRITABLE);
	assert_non_null(sk_tls_kept(p.s, &klen));
	assert_true(klen > 0);
	sk_tls_cork(p.s); /* no effect while bytes wait */
	struct sink k;
	sink_start(&k, p.c, 0);
	size_t more = 0;
	assert_code(sockit_tls_sendall(p.s, data + off, TOTAL - off, 60000, &more), 0);
	assert_int_equal(off + more, TOTAL);
	sk_tls_kept(p.s, &klen);
	assert_int_equal(klen, 0);
	assert_code(sockit_tls_shutdown(p.s, 10000), 0);
	sink_join(&k, TOTAL);
	free(data);
	pair_close(&p);
	sockit_tls_ctx_free(cctx);
	sockit_tls_ctx_free(sctx);
}

static void test_recv_would_block_and_pending(void **state)
{
	(void)state;
	struct world w;
	world_up(&w, "::1");
	char buf[128];
	assert_code(sockit_tls_recv(w.p.c, buf, sizeof(buf), 0), -EAGAIN);
	assert_int_equal(sockit_tls_want(w.p.c), SOCKIT_READABLE);
	uint64_t t0 = fixture_now_ms();
	assert_code(sockit_tls_recv(w.p.c, buf, sizeof(buf), 150), -ETIMEDOUT);
	assert_true(fixture_now_ms() - t0 >= 140);
	/* One record of 100 bytes, read 10 at a time: the rest is pending. */
	assert_code(
		sockit_tls_send(w.p.s, "0123456789abcdefghijklmnopqrstuvwxyz" /* 36 */, 36, 10000),
		36);
	assert_code(sockit_tls_recv(w.p.c, buf, 10, 10000), 10);
	assert_int_equal(sockit_tls_pending(w.p.c), 26);
	assert_code(sockit_tls_recv(w.p.c, buf, sizeof(buf), 0), 26);
	assert_memory_equal(buf, "abcdefghijklmnopqrstuvwxyz", 26);
	assert_int_equal(sockit_tls_pending(w.p.c), 0);
	world_down(&w);
}

/* A server that accepts TCP but never answers the ClientHello. */
static void test_handshake_timeout(void **state)
{
	(void)state;
	int l = sockit_create_server("127.0.0.1", 0, SOCK_STREAM, 8, 0);
	assert_ok(l);
	sockit_addr a;
	assert_ok(sockit_getsockname(l, &a));
	int fd = sockit_create_connection("127.0.0.1", sockit_addr_port(&a), 10000);
	assert_ok(fd);
	sockit_tls_ctx *cctx = client_ctx(0);
	sockit_tls *c;
	assert_ok(sockit_tls_client(cctx, fd, "localhost", &c));
	assert_code(sockit_tls_handshake(c, 0), -EAGAIN);
	assert_int_equal(sockit_tls_want(c), SOCKIT_READABLE); /* the ClientHello went out */
	uint64_t t0 = fixture_now_ms();
	assert_code(sockit_tls_handshake(c, 300), -ETIMEDOUT);
	assert_true(fixture_now_ms() - t0 >= 290);
	assert_code(sockit_tls_close(c, 0), 0); /* no handshake, no close_notify */
	sockit_close(l);
	sockit_tls_ctx_free(cctx);
}

/* close_notify gives 0; a FIN without it is SOCKIT_TLS_ETRUNCATED; a reset
 * is -ECONNRESET.  The data before each arrives in full. */
static void test_close_notify_vs_truncation(void **state)
{
	(void)state;
	char buf[16];
	for (int how = 0; how < 3; how++) {
		struct world w;
		world_up(&w, "127.0.0.1");
		assert_code(sockit_tls_sendall(w.p.s, "bye", 3, 10000, NULL), 0);
		int sfd = sockit_tls_fd(w.p.s);
		if (how == 0) {
			assert_code(sockit_tls_shutdown(w.p.s, 10000), 0);
		} else if (how == 1) {
			assert_ok(sockit_shutdown(sfd, SHUT_WR));
		} else {
			/* Let "bye" arrive first: a reset drops what is unread. */
			assert_code(sockit_tls_recv(w.p.c, buf, sizeof(buf), 10000), 3);
			assert_ok(sockit_set_linger(sfd, 1, 0));
			sockit_tls_free(w.p.s);
			w.p.s = NULL;
			sockit_close(sfd);
		}
		if (how != 2)
			assert_code(sockit_tls_recv(w.p.c, buf, sizeof(buf), 10000), 3);
		ssize_t end = sockit_tls_recv(w.p.c, buf, sizeof(buf), 10000);
		static const int expect[] = {0, SOCKIT_TLS_ETRUNCATED, -ECONNRESET};
		assert_code(end, expect[how]);
		if (how == 1)
			assert_string_equal(sockit_strerror((int)end),
					    "TLS connection truncated (no close_notify)");
		assert_code(sockit_tls_recv(w.p.c, buf, sizeof(buf), 0), expect[how]);
		if (w.p.s == NULL) {
			sockit_tls_close(w.p.c, 0);
			sockit_tls_ctx_free(w.cctx);
			sockit_tls_ctx_free(w.sctx);
		} else {
			world_down(&w);
		}
	}
}

/* The session of the first connection, as bytes: n, or fails. */
static int first_session(struct pair *p, uint8_t *buf, size_t len)
{
	char c;
	/* TLS 1.3: no ticket until the client reads past the handshake. */
	assert_code(sockit_tls_session_get(p->c, NULL, 0), -ENODATA);
	assert_code(sockit_tls_sendall(p->s, "x", 1, 10000, NULL), 0);
	assert_code(sockit_tls_recv(p->c, &c, 1, 10000), 1);
	int n = sockit_tls_session_get(p->c, NULL, 0);
	assert_ok(n);
	assert_true((size_t)n <= len);
	assert_code(sockit_tls_session_get(p->c, buf, 1), -ENOSPC);
	assert_code(sockit_tls_session_get(p->c, buf, len), n);
	assert_code(sockit_tls_session_get(p->s, buf, len), -EINVAL);
	return n;
}

static int resumed_with(sockit_tls_ctx *cctx, sockit_tls_ctx *sctx, const uint8_t *sess, int n)
{
	struct pair p = tls_pair(cctx, sctx, "127.0.0.1", "localhost");
	assert_code(sockit_tls_session_set(p.c, sess, (size_t)n), 0);
	int crc, src;
	handshake_both(&p, &crc, &src);
	assert_code(crc, 0);
	assert_code(src, 0);
	int r = sockit_tls_resumed(p.c);
	assert_int_equal(sockit_tls_resumed(p.s), r);
	assert_code(sockit_tls_session_set(p.c, sess, (size_t)n), -EINVAL); /* too late */
	pair_close(&p);
	return r;
}

static void test_resumption(void **state)
{
	(void)state;
	struct world w;
	world_up(&w, "127.0.0.1");
	uint8_t sess[8192];
	int n = first_session(&w.p, sess, sizeof(sess));
	assert_int_equal(sockit_tls_resumed(w.p.c), 0);
	assert_int_equal(resumed_with(w.cctx, w.sctx, sess, n), 1);
	assert_int_equal(resumed_with(w.cctx, w.sctx, sess, n), 1);
	/* Garbage is refused before any I/O. */
	struct pair p = tls_pair(w.cctx, w.sctx, "127.0.0.1", "localhost");
	assert_code(sockit_tls_session_set(p.c, "garbage", 7), SOCKIT_TLS_ESESSION);
	pair_close(&p);
	world_down(&w);
}

static void assert_subject(sockit_tls *c, const char *want)
{
	char subject[128];
	assert_ok(sockit_tls_peer_subject(c, subject, sizeof(subject)));
	assert_string_equal(subject, want);
}

/* Reload: bad files change nothing; a good pair serves new connections
 * while those wrapped before keep the old one; tickets survive. */
static void test_reload(void **state)
{
	(void)state;
	struct world w;
	world_up(&w, "127.0.0.1");
	uint8_t sess[8192];
	int n = first_session(&w.p, sess, sizeof(sess));

	assert_code(sockit_tls_ctx_reload(w.sctx, cert("missing.pem"), cert("server2.key")),
		    -ENOENT);
	assert_code(sockit_tls_ctx_reload(w.sctx, cert("server2.pem"), cert("server.key")),
		    SOCKIT_TLS_EKEYMISMATCH);
	assert_code(sockit_tls_ctx_reload(w.sctx, cert("server2.key"), cert("server2.key")),
		    SOCKIT_TLS_ECERTFILE);
	assert_code(sockit_tls_ctx_reload(w.sctx, NULL, NULL), -EINVAL);
	struct pair p = tls_pair(w.cctx, w.sctx, "127.0.0.1", "localhost");
	int crc, src;
	handshake_both(&p, &crc, &src);
	assert_code(crc, 0);
	assert_subject(p.c, "CN=localhost");
	pair_close(&p);

	struct pair before = tls_pair(w.cctx, w.sctx, "127.0.0.1", "localhost");
	assert_code(sockit_tls_ctx_reload(w.sctx, cert("server2.pem"), cert("server2.key")), 0);
	handshake_both(&before, &crc, &src);
	assert_code(crc, 0);
	assert_subject(before.c, "CN=localhost");
	pair_close(&before);

	p = tls_pair(w.cctx, w.sctx, "::1", "localhost");
	handshake_both(&p, &crc, &src);
	assert_code(crc, 0);
	assert_subject(p.c, "CN=localhost-2");
	pair_close(&p);

	assert_int_equal(resumed_with(w.cctx, w.sctx, sess, n), 1);
	world_down(&w);
}

/* Connections wrapped in one thread while another reloads. */
struct wrapper {
	sockit_tls_ctx *ctx;
	int fd;
	int rc;
};

static void *wrap_many(void *arg)
{
	struct wrapper *wr = arg;
	for (int i = 0; i < 200 && wr->rc == 0; i++) {
		sockit_tls *t;
		wr->rc = sockit_tls_server(wr->ctx, wr->fd, &t);
		if (wr->rc == 0)
			sockit_tls_free(t);
	}
	return NULL;
}

static void test_reload_while_wrapping(void **state)
{
	(void)state;
	sockit_tls_ctx *sctx = server_ctx("server.pem", "server.key", NULL);
	struct wrapper wr = {.ctx = sctx, .fd = 0};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, wrap_many, &wr), 0);
	for (int i = 0; i < 10; i++)
		assert_code(sockit_tls_ctx_reload(sctx, cert(i % 2 ? "server.pem" : "server2.pem"),
						  cert(i % 2 ? "server.key" : "server2.key")),
			    0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_code(wr.rc, 0);
	sockit_tls_ctx_free(sctx);
}

int main(void)
{
	certs_find();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mib_both_ways),
		cmocka_unit_test(test_send_would_block),
		cmocka_unit_test(test_cork),
		cmocka_unit_test(test_recv_would_block_and_pending),
		cmocka_unit_test(test_handshake_timeout),
		cmocka_unit_test(test_close_notify_vs_truncation),
		cmocka_unit_test(test_resumption),
		cmocka_unit_test(test_reload),
		cmocka_unit_test(test_reload_while_wrapping),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
