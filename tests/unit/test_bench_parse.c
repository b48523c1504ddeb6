/* test_bench_parse.c -- `sockit bench`'s transport options into struct bench_config: -U,
 * --proxy-header, --attempt-delay and --tls*. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "bench.h"

/* Runs bench_parse on a NULL-terminated list of words (after "bench"),
 * capturing what it prints on stderr into err. */
static int parse(struct bench_config *cfg, char *err, size_t errlen, ...)
{
	char *argv[32] = {"bench"};
	int argc = 1;
	va_list ap;
	va_start(ap, errlen);
	for (char *w; (w = va_arg(ap, char *)) != NULL && argc < 31;)
		argv[argc++] = w;
	va_end(ap);
	FILE *tmp = tmpfile();
	assert_non_null(tmp);
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
	int rc = bench_parse(argc, argv, cfg);
	fflush(stderr);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	rewind(tmp);
	size_t n = fread(err, 1, errlen - 1, tmp);
	err[n] = '\0';
	fclose(tmp);
	return rc;
}

static void test_defaults(void **state)
{
	(void)state;
	struct bench_config cfg;
	char err[512];
	assert_int_equal(parse(&cfg, err, sizeof(err), "127.0.0.1", "7", NULL), 0);
	assert_string_equal(err, "");
	assert_null(cfg.unix_path);
	assert_int_equal(cfg.proxy_header, 0);
	assert_int_equal(cfg.attempt_delay_ms, SOCKIT_CONNECT_DELAY_MS);
	assert_int_equal(cfg.tls, 0);
	assert_null(cfg.tls_servername);
	assert_null(cfg.tls_ctx);
}

static void test_unix(void **state)
{
	(void)state;
	struct bench_config cfg;
	char err[512];
	assert_int_equal(parse(&cfg, err, sizeof(err), "-U", "/run/x.sock", NULL), 0);
	assert_string_equal(cfg.unix_path, "/run/x.sock");
	assert_int_equal(cfg.addr.ss.ss_family, AF_UNIX);
	assert_null(cfg.host);
	assert_int_equal(parse(&cfg, err, sizeof(err), "-u", "--unix", "@bench", NULL), 0);
	assert_int_equal(cfg.mode, BENCH_UDP);
	assert_int_equal(cfg.addr.ss.ss_family, AF_UNIX);
	/* TLS over a Unix socket names the certificate's host itself */
	assert_int_equal(parse(&cfg, err, sizeof(err), "--tls", "--tls-servername", "localhost",
			       "-U", "/x", NULL),
			 0);
	assert_string_equal(cfg.tls_servername, "localhost");
	assert_int_equal(parse(&cfg, err, sizeof(err), "--tls", "-U", "/x", NULL), 2);
	assert_non_null(strstr(err, "--tls over -U needs --tls-servername NAME"));
}

static void test_proxy_and_attempt_delay(void **state)
{
	(void)state;
	struct bench_config cfg;
	char err[512];
	assert_int_equal(parse(&cfg, err, sizeof(err), "--proxy-header", "v1", "--attempt-delay",
			       "100ms", "h", "7", NULL),
			 0);
	assert_int_equal(cfg.proxy_header, 1);
	assert_int_equal(cfg.attempt_delay_ms, 100);
	assert_int_equal(parse(&cfg, err, sizeof(err), "--proxy-header", "v2", "--attempt-delay",
			       "0", "h", "7", NULL),
			 0);
	assert_int_equal(cfg.proxy_header, 2);
	assert_int_equal(cfg.attempt_delay_ms, -1); /* one address after another */
	assert_int_equal(parse(&cfg, err, sizeof(err), "--proxy-header", "2", "h", "7", NULL), 2);
	assert_non_null(strstr(err, "invalid version '2' for --proxy-header"));
	assert_int_equal(parse(&cfg, err, sizeof(err), "--attempt-delay", "2m", "h", "7", NULL), 2);
	assert_non_null(strstr(err, "invalid duration '2m' for --attempt-delay"));
}

static void test_tls(void **state)
{
	(void)state;
	struct bench_config cfg;
	char err[512];
	assert_int_equal(parse(&cfg, err, sizeof(err), "--tls", "--tls-ca", "ca.pem",
			       "--tls-resume", "[::1]", "443", NULL),
			 0);
	assert_true(cfg.tls && cfg.tls_resume && !cfg.tls_insecure);
	assert_string_equal(cfg.tls_ca, "ca.pem");
	assert_string_equal(cfg.tls_servername, "::1"); /* HOST, unbracketed */
	assert_int_equal(parse(&cfg, err, sizeof(err), "--tls", "--tls-servername", "a.example",
			       "--tls-cert", "c.pem", "--tls-key", "k.pem", "h", "7", NULL),
			 0);
	assert_string_equal(cfg.tls_servername, "a.example");
	assert_string_equal(cfg.tls_cert, "c.pem");
	assert_string_equal(cfg.tls_key, "k.pem");
	assert_int_equal(parse(&cfg, err, sizeof(err), "--tls-servername", "x", "h", "7", NULL), 2);
	assert_non_null(strstr(err, "--tls-servername needs --tls"));
	assert_int_equal(
		parse(&cfg, err, sizeof(err), "--tls", "--tls-key", "k.pem", "h", "7", NULL), 2);
	assert_non_null(strstr(err, "--tls-cert and --tls-key go together"));
	assert_int_equal(parse(&cfg, err, sizeof(err), "--tls", "-u", "h", "7", NULL), 2);
	assert_non_null(strstr(err, "there is no DTLS"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_unix),
		cmocka_unit_test(test_proxy_and_attempt_delay),
		cmocka_unit_test(test_tls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
