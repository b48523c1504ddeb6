/* test_tls_verify.c -- libsockit_tls: contexts, certificate checks, and the handshake's failures.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tls_fixture.h"

/* The handshake's result for a client trusting ca.pem (or flags) that
 * checks servername, against a server with the given pair. */
static void handshake_case(const char *host, const char *servername, const char *srv_cert,
			   const char *srv_key, int flags, int *crc, int *src)
{
	sockit_tls_ctx *cctx = client_ctx(flags);
	sockit_tls_ctx *sctx = server_ctx(srv_cert, srv_key, NULL);
	struct pair p = tls_pair(cctx, sctx, host, servername);
	handshake_both(&p, crc, src);
	pair_close(&p);
	sockit_tls_ctx_free(cctx);
	sockit_tls_ctx_free(sctx);
}

static int client_result(const char *host, const char *servername, const char *srv_cert,
			 const char *srv_key, int flags)
{
	int crc, src;
	handshake_case(host, servername, srv_cert, srv_key, flags, &crc, &src);
	return crc;
}

static void test_verify_ok_ipv4(void **state)
{
	(void)state;
	sockit_tls_ctx *cctx = client_ctx(0);
	sockit_tls_ctx *sctx = server_ctx("server.pem", "server.key", NULL);
	struct pair p = tls_pair(cctx, sctx, "127.0.0.1", "localhost");
	assert_null(sockit_tls_protocol(p.c));
	int crc, src;
	handshake_both(&p, &crc, &src);
	assert_code(crc, 0);
	assert_code(src, 0);
	assert_string_equal(sockit_tls_protocol(p.c), "TLSv1.3");
	assert_string_equal(sockit_tls_protocol(p.s), "TLSv1.3");
	assert_non_null(sockit_tls_cipher(p.c));
	assert_string_equal(sockit_tls_cipher(p.c), sockit_tls_cipher(p.s));
	char subject[256];
	assert_code(sockit_tls_peer_subject(p.c, subject, sizeof(subject)), strlen("CN=localhost"));
	assert_string_equal(subject, "CN=localhost");
	assert_code(sockit_tls_peer_subject(p.c, subject, 5), -ENOSPC);
	assert_code(sockit_tls_peer_subject(p.s, subject, sizeof(subject)), -ENODATA);
	assert_int_equal(sockit_tls_resumed(p.c), 0);
	pair_close(&p);
	sockit_tls_ctx_free(cctx);
	sockit_tls_ctx_free(sctx);
}

/* IP literals are checked against the certificate's IP addresses. */
static void test_verify_ip_names(void **state)
{
	(void)state;
	assert_code(client_result("127.0.0.1", "127.0.0.1", "server.pem", "server.key", 0), 0);
	assert_code(client_result("::1", "::1", "server.pem", "server.key", 0), 0);
	assert_code(client_result("::1", "localhost", "server.pem", "server.key", 0), 0);
	assert_code(client_result("127.0.0.1", "127.0.0.2", "server.pem", "server.key", 0),
		    SOCKIT_TLS_EHOSTNAME);
	assert_code(client_result("::1", "::2", "server.pem", "server.key", 0),
		    SOCKIT_TLS_EHOSTNAME);
}

static void test_hostname_mismatch(void **state)
{
	(void)state;
	int crc, src;
	handshake_case("127.0.0.1", "localhost", "wrongname.pem", "wrongname.key", 0, &crc, &src);
	assert_code(crc, SOCKIT_TLS_EHOSTNAME);
	assert_string_equal(sockit_strerror(crc), "certificate verify failed: hostname mismatch");
	assert_true(src < 0); /* the client's alert ends the server's handshake too */
	assert_true(SOCKIT_IS_TLS(src));
	/* A name the certificate has, on an IPv6 connection. */
	assert_code(client_result("::1", "wrong.example", "wrongname.pem", "wrongname.key", 0), 0);
}

static void test_expired(void **state)
{
	(void)state;
	int rc = client_result("127.0.0.1", "localhost", "expired.pem", "expired.key", 0);
	assert_code(rc, SOCKIT_TLS_EEXPIRED);
	assert_string_equal(sockit_strerror(rc),
			    "certificate verify failed: certificate has expired");
}

static void test_unknown_ca(void **state)
{
	(void)state;
	int rc = client_result("127.0.0.1", "localhost", "untrusted.pem", "untrusted.key", 0);
	assert_code(rc, SOCKIT_TLS_EUNKNOWNCA);
	assert_string_equal(sockit_strerror(rc), "certificate verify failed: unknown CA");

	/* The default trust store (the system's) does not know the test CA. */
	sockit_tls_ctx *cctx = NULL;
	assert_ok(sockit_tls_client_ctx_new(NULL, &cctx));
	sockit_tls_ctx *sctx = server_ctx("server.pem", "server.key", NULL);
	struct pair p = tls_pair(cctx, sctx, "127.0.0.1", "localhost");
	int crc, src;
	handshake_both(&p, &crc, &src);
	assert_code(crc, SOCKIT_TLS_EUNKNOWNCA);
	pair_close(&p);
	sockit_tls_ctx_free(cctx);
	sockit_tls_ctx_free(sctx);
}

static void test_insecure_connects_anyway(void **state)
{
	(void)state;
	static const char *const bad[][2] = {{"untrusted.pem", "untrusted.key"},
					     {"expired.pem", "expired.key"},
					     {"wrongname.pem", "wrongname.key"}};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_code(client_result("127.0.0.1", "localhost", bad[i][0], bad[i][1],
					  SOCKIT_TLS_INSECURE),
			    0);
	/* No name at all: only with SOCKIT_TLS_INSECURE. */
	assert_code(
		client_result("127.0.0.1", NULL, "server.pem", "server.key", SOCKIT_TLS_INSECURE),
		0);
	sockit_tls_ctx *cctx = client_ctx(0);
	sockit_tls *t = NULL;
	assert_code(sockit_tls_client(cctx, 0, NULL, &t), -EINVAL);
	assert_code(sockit_tls_client(cctx, 0, "", &t), -EINVAL);
	assert_null(t);
	sockit_tls_ctx_free(cctx);
}

static void test_client_cert_required(void **state)
{
	(void)state;
	sockit_tls_ctx *sctx = server_ctx("server.pem", "server.key", "ca.pem");

	/* Without one: the server says why; the TLS 1.3 client learns it at
	 * its first read (its handshake ended before the server checked). */
	sockit_tls_ctx *cctx = client_ctx(0);
	struct pair p = tls_pair(cctx, sctx, "127.0.0.1", "localhost");
	int crc, src;
	handshake_both(&p, &crc, &src);
	assert_code(src, SOCKIT_TLS_ENOPEERCERT);
	assert_string_equal(sockit_strerror(src), "peer did not send a certificate");
	char buf[16];
	if (crc == 0)
		crc = (int)sockit_tls_recv(p.c, buf, sizeof(buf), 10000);
	assert_code(crc, SOCKIT_TLS_ECERTREQUIRED);
	pair_close(&p);
	sockit_tls_ctx_free(cctx);

	/* With one. */
	sockit_tls_config cfg = {.ca_file = cert("ca.pem"),
				 .cert_file = cert("client.pem"),
				 .key_file = cert("client.key")};
	assert_ok(sockit_tls_client_ctx_new(&cfg, &cctx));
	p = tls_pair(cctx, sctx, "127.0.0.1", "localhost");
	handshake_both(&p, &crc, &src);
	assert_code(crc, 0);
	assert_code(src, 0);
	char subject[128];
	assert_ok(sockit_tls_peer_subject(p.s, subject, sizeof(subject)));
	assert_string_equal(subject, "CN=sockit test client");
	assert_code(sockit_tls_sendall(p.c, "hi", 2, 10000, NULL), 0);
	assert_code(sockit_tls_recv(p.s, buf, sizeof(buf), 10000), 2);
	pair_close(&p);
	sockit_tls_ctx_free(cctx);

	/* One the server's CA did not sign: rejected. */
	cfg.cert_file = cert("untrusted.pem");
	cfg.key_file = cert("untrusted.key");
	assert_ok(sockit_tls_client_ctx_new(&cfg, &cctx));
	p = tls_pair(cctx, sctx, "127.0.0.1", "localhost");
	handshake_both(&p, &crc, &src);
	assert_code(src, SOCKIT_TLS_EUNKNOWNCA);
	if (crc == 0)
		crc = (int)sockit_tls_recv(p.c, buf, sizeof(buf), 10000);
	assert_code(crc, SOCKIT_TLS_ECERTREJECTED);
	pair_close(&p);
	sockit_tls_ctx_free(cctx);
	sockit_tls_ctx_free(sctx);
}

/* A plaintext client (an HTTP request, or a line) on a TLS port, and a TLS
 * client on a plaintext server. */
static void test_not_tls(void **state)
{
	(void)state;
	static const char *const plain[] = {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "hello\n",
					    "Received: hello"};
	sockit_tls_ctx *sctx = server_ctx("server.pem", "server.key", NULL);
	for (size_t i = 0; i < 2; i++) {
		int cfd, sfd;
		tcp_pair("127.0.0.1", &cfd, &sfd);
		assert_ok(sockit_sendall(cfd, plain[i], strlen(plain[i]), 10000, NULL));
		sockit_tls *s;
		assert_ok(sockit_tls_server(sctx, sfd, &s));
		int rc = sockit_tls_handshake(s, 10000);
		assert_code(rc, SOCKIT_TLS_ENOTTLS);
		assert_string_equal(sockit_strerror(rc), "not a TLS handshake");
		sockit_tls_close(s, 0);
		sockit_close(cfd);
	}
	sockit_tls_ctx_free(sctx);

	sockit_tls_ctx *cctx = client_ctx(0);
	int cfd, sfd;
	tcp_pair("127.0.0.1", &cfd, &sfd);
	assert_ok(sockit_sendall(sfd, plain[2], strlen(plain[2]), 10000, NULL));
	sockit_tls *c;
	assert_ok(sockit_tls_client(cctx, cfd, "localhost", &c));
	assert_code(sockit_tls_handshake(c, 10000), SOCKIT_TLS_ENOTTLS);
	/* A failed connection stays failed, with the same answer. */
	char buf[8];
	assert_code(sockit_tls_recv(c, buf, sizeof(buf), 0), SOCKIT_TLS_ENOTTLS);
	sockit_tls_close(c, 0);
	sockit_close(sfd);
	sockit_tls_ctx_free(cctx);
}

static void test_ctx_errors(void **state)
{
	(void)state;
	sockit_tls_ctx *ctx = NULL;
	sockit_tls_config cfg = {.cert_file = cert("missing.pem"), .key_file = cert("server.key")};
	assert_code(sockit_tls_server_ctx_new(&cfg, &ctx), -ENOENT);
	cfg.cert_file = cert("server.key"); /* a key is no certificate */
	assert_code(sockit_tls_server_ctx_new(&cfg, &ctx), SOCKIT_TLS_ECERTFILE);
	cfg.cert_file = cert("server.pem");
	cfg.key_file = cert("ca.pem");
	assert_code(sockit_tls_server_ctx_new(&cfg, &ctx), SOCKIT_TLS_EKEYFILE);
	cfg.key_file = cert("client.key");
	assert_code(sockit_tls_server_ctx_new(&cfg, &ctx), SOCKIT_TLS_EKEYMISMATCH);
	assert_string_equal(sockit_strerror(SOCKIT_TLS_EKEYMISMATCH),
			    "private key does not match the certificate");
	cfg.key_file = cert("server.key");
	cfg.ca_file = cert("server.key");
	assert_code(sockit_tls_server_ctx_new(&cfg, &ctx), SOCKIT_TLS_ECAFILE);
	assert_code(sockit_tls_server_ctx_new(NULL, &ctx), -EINVAL);
	cfg.ca_file = NULL;
	cfg.flags = SOCKIT_TLS_INSECURE; /* a client flag */
	assert_code(sockit_tls_server_ctx_new(&cfg, &ctx), -EINVAL);
	assert_null(ctx);

	sockit_tls_config ccfg = {.ca_file = cert("missing.pem")};
	assert_code(sockit_tls_client_ctx_new(&ccfg, &ctx), -ENOENT);
	ccfg.ca_file = cert("server.key");
	assert_code(sockit_tls_client_ctx_new(&ccfg, &ctx), SOCKIT_TLS_ECAFILE);
	ccfg = (sockit_tls_config){.cert_file = cert("client.pem"), .key_file = cert("server.key")};
	assert_code(sockit_tls_client_ctx_new(&ccfg, &ctx), SOCKIT_TLS_EKEYMISMATCH);
	ccfg = (sockit_tls_config){.flags = 0x100};
	assert_code(sockit_tls_client_ctx_new(&ccfg, &ctx), -EINVAL);
	assert_null(ctx);

	/* The roles do not mix. */
	sockit_tls_ctx *cctx = client_ctx(0);
	sockit_tls_ctx *sctx = server_ctx("server.pem", "server.key", NULL);
	sockit_tls *t = NULL;
	assert_code(sockit_tls_server(cctx, 0, &t), -EINVAL);
	assert_code(sockit_tls_client(sctx, 0, "localhost", &t), -EINVAL);
	assert_code(sockit_tls_client(cctx, -1, "localhost", &t), -EINVAL);
	assert_null(t);
	sockit_tls_ctx_free(cctx);
	sockit_tls_ctx_free(sctx);
	sockit_tls_ctx_free(NULL);
	sockit_tls_free(NULL);
}

/* Every TLS code has its own words, in libsockit's one sockit_strerror. */
static void test_strerror(void **state)
{
	(void)state;
	for (int code = SOCKIT_TLS_EPROTO; code >= SOCKIT_TLS_ESESSION; code--) {
		const char *m = sockit_strerror(code);
		assert_true(SOCKIT_IS_TLS(code));
		if (strncmp(m, "unknown error", 13) == 0)
			fail_msg("code %d has no message", code);
		for (int other = code + 1; other <= SOCKIT_TLS_EPROTO; other++)
			assert_string_not_equal(m, sockit_strerror(other));
	}
	assert_string_equal(sockit_strerror(SOCKIT_TLS_ETRUNCATED),
			    "TLS connection truncated (no close_notify)");
	assert_string_equal(sockit_strerror(SOCKIT_TLS_EVERSION), "protocol version too old");
	assert_string_equal(sockit_strerror(SOCKIT_TLS_ESESSION - 1), "unknown error -20019");
	assert_string_equal(sockit_strerror(SOCKIT_TLS_BASE), "unknown error -20000");
	assert_false(SOCKIT_IS_TLS(SOCKIT_TLS_BASE));
	assert_false(SOCKIT_IS_TLS(SOCKIT_EAI_BASE - 2));
	assert_false(SOCKIT_IS_TLS(-ETIMEDOUT));
}

int main(void)
{
	certs_find();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verify_ok_ipv4),
		cmocka_unit_test(test_verify_ip_names),
		cmocka_unit_test(test_hostname_mismatch),
		cmocka_unit_test(test_expired),
		cmocka_unit_test(test_unknown_ca),
		cmocka_unit_test(test_insecure_connects_anyway),
		cmocka_unit_test(test_client_cert_required),
		cmocka_unit_test(test_not_tls),
		cmocka_unit_test(test_ctx_errors),
		cmocka_unit_test(test_strerror),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
