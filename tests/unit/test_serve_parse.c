/* test_serve_parse.c -- serve_parse(): argv into a struct serve_config, no I/O but messages. */
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "serve.h"
#include "testutil.h"

#define PARSE(cfg, ...)                                                                            \
	parse_argv(cfg, (char *[]){"serve", __VA_ARGS__, NULL},                                    \
		   (int)(sizeof((char *[]){"serve", __VA_ARGS__}) / sizeof(char *)))

static int parse_argv(struct serve_config *cfg, char **argv, int argc)
{
	serve_config_free(cfg);
	serve_config_defaults(cfg);
	return serve_parse(argc, argv, cfg);
}

/* Issue 19, item 8: the one vocabulary's short names, old spellings kept. */
static void test_short_names(void **state)
{
	(void)state;
	struct serve_config cfg;
	serve_config_defaults(&cfg);
	assert_int_equal(PARSE(&cfg, "-u", "-i", "2s", "-v"), -1);
	assert_int_equal(cfg.udp, 1);
	assert_int_equal(cfg.tcp, 1);
	assert_int_equal(cfg.idle_timeout_ms, 2000);
	assert_int_equal(cfg.log_level, LOG_DEBUG);
	assert_int_equal(PARSE(&cfg, "--udp", "--idle-timeout", "500ms", "--verbose"), -1);
	assert_int_equal(cfg.udp, 1);
	assert_int_equal(cfg.idle_timeout_ms, 500);
	assert_int_equal(cfg.log_level, LOG_DEBUG);
	assert_int_equal(PARSE(&cfg, "-4"), -1);
	assert_int_equal(cfg.family, AF_INET);
	assert_int_equal(PARSE(&cfg, "-6"), -1);
	assert_int_equal(cfg.family, AF_INET6);
	assert_string_equal(cfg.host, "::1"); /* -6 alone: IPv6 loopback */
	assert_int_equal(PARSE(&cfg, "-4", "-6"), 2);
	serve_config_free(&cfg);
}

/* Issue 19, item 7: bracketed IPv6 hosts. */
static void test_bracketed_host(void **state)
{
	(void)state;
	struct serve_config cfg;
	serve_config_defaults(&cfg);
	assert_int_equal(PARSE(&cfg, "-H", "[::1]"), -1);
	assert_string_equal(cfg.host, "::1");
	assert_int_equal(PARSE(&cfg, "-H", "[::]", "--dualstack"), -1);
	assert_string_equal(cfg.host, "::");
	assert_int_equal(PARSE(&cfg, "-H", "::1"), -1);
	assert_string_equal(cfg.host, "::1");
	assert_int_equal(PARSE(&cfg, "-H", "[::1"), 2);
	assert_int_equal(PARSE(&cfg, "-H", "[]"), 2);
	assert_int_equal(PARSE(&cfg, "-H", ""), 2);
	serve_config_free(&cfg);
}

/* Issue 19, item 11: sizes, durations, ports through cli_opt_*. */
static void test_values(void **state)
{
	(void)state;
	struct serve_config cfg;
	serve_config_defaults(&cfg);
	assert_int_equal(PARSE(&cfg, "--max-bytes", "1kb"), 2);
	assert_int_equal(PARSE(&cfg, "--max-bytes", "4k", "--max-line", "1M"), -1);
	assert_int_equal(cfg.max_bytes, 4096);
	assert_int_equal(cfg.max_line, 1 << 20);
	assert_int_equal(PARSE(&cfg, "-p", "0"), -1);
	assert_int_equal(cfg.port, 0);
	assert_int_equal(PARSE(&cfg, "-p", "70000"), 2);
	assert_int_equal(PARSE(&cfg, "--workers", "0"), 2);
	assert_int_equal(PARSE(&cfg, "--mode", "line", "--allow", "10.0.0.0/8"), -1);
	assert_int_equal(cfg.mode, MODE_LINE);
	assert_int_equal(cfg.nallow, 1);
	assert_int_equal(PARSE(&cfg, "--allow", "10.0.0.0/33"), 2);
	serve_config_free(&cfg);
}

/* -U PATH: a Unix socket instead of TCP, with its own combinations. */
static void test_unix(void **state)
{
	(void)state;
	struct serve_config cfg;
	serve_config_defaults(&cfg);
	assert_int_equal(PARSE(&cfg, "-U", "/run/x.sock", "--unix-mode", "0660", "-u"), -1);
	assert_string_equal(cfg.unix_path, "/run/x.sock");
	assert_int_equal(cfg.unix_mode, 0660);
	assert_int_equal(cfg.tcp, 1);
	assert_int_equal(cfg.udp, 1);
	assert_int_equal(PARSE(&cfg, "--unix", "@name", "--udp-only"), -1);
	assert_string_equal(cfg.unix_path, "@name");
	assert_int_equal(cfg.tcp, 0);
	assert_int_equal(PARSE(&cfg, "-U", "/x", "--unix-mode", "7"), -1);
	assert_int_equal(cfg.unix_mode, 7);
	assert_int_equal(PARSE(&cfg, "-U", "/x", "-p", "1"), 2);
	assert_int_equal(PARSE(&cfg, "-p", "1", "-U", "/x"), 2);
	assert_int_equal(PARSE(&cfg, "-U", "/x", "-H", "::1"), 2);
	assert_int_equal(PARSE(&cfg, "-U", "/x", "-4"), 2);
	assert_int_equal(PARSE(&cfg, "-U", "/x", "--deny", "10.0.0.0/8"), 2);
	assert_int_equal(PARSE(&cfg, "--unix-mode", "0600"), 2);
	assert_int_equal(PARSE(&cfg, "-U", "/x", "--unix-mode", "08"), 2);
	assert_int_equal(PARSE(&cfg, "-U", "/x", "--unix-mode", "01000"), 2);
	assert_int_equal(PARSE(&cfg, "-U", "/x", "--unix-mode", "-1"), 2);
	assert_int_equal(PARSE(&cfg, "-U", "/x", "--unix-mode", ""), 2);
	assert_int_equal(PARSE(&cfg, "-U", "@x", "--unix-mode", "600"), 2);
	assert_int_equal(PARSE(&cfg, "-U", ""), 2);
	assert_int_equal(PARSE(&cfg, "-U", "@"), 2);
	char path[120];
	memset(path, 'a', sizeof(path));
	path[0] = '/';
	path[107] = '\0'; /* 107 bytes: the most sun_path holds with its NUL */
	assert_int_equal(PARSE(&cfg, "-U", path), -1);
	assert_int_equal(PARSE(&cfg, "-U", path, "-u"), 2); /* no room for ".dgram" */
	path[101] = '\0';
	assert_int_equal(PARSE(&cfg, "-U", path, "-u"), -1);
	path[101] = path[107] = 'a';
	path[108] = '\0';
	assert_int_equal(PARSE(&cfg, "-U", path), 2);
	serve_config_free(&cfg);
}

/* --metrics [HOST:]PORT: loopback unless a host is given; off by default. */
static void test_metrics(void **state)
{
	(void)state;
	struct serve_config cfg;
	serve_config_defaults(&cfg);
	assert_int_equal(PARSE(&cfg, "-p", "0"), -1);
	assert_null(cfg.metrics_host);
	assert_int_equal(PARSE(&cfg, "--metrics", "9100"), -1);
	assert_string_equal(cfg.metrics_host, "127.0.0.1");
	assert_int_equal(cfg.metrics_port, 9100);
	assert_int_equal(PARSE(&cfg, "--metrics", "0.0.0.0:9101"), -1);
	assert_string_equal(cfg.metrics_host, "0.0.0.0");
	assert_int_equal(cfg.metrics_port, 9101);
	assert_int_equal(PARSE(&cfg, "--metrics=[::1]:0"), -1);
	assert_string_equal(cfg.metrics_host, "::1");
	assert_int_equal(cfg.metrics_port, 0);
	assert_int_equal(PARSE(&cfg, "--metrics", "localhost:9102"), -1);
	assert_string_equal(cfg.metrics_host, "localhost");
	assert_int_equal(PARSE(&cfg, "--metrics", "::1:80"), 2);
	assert_int_equal(PARSE(&cfg, "--metrics", "[::1]"), 2);
	assert_int_equal(PARSE(&cfg, "--metrics", ":80"), 2);
	assert_int_equal(PARSE(&cfg, "--metrics", "x:"), 2);
	assert_int_equal(PARSE(&cfg, "--metrics", "70000"), 2);
	assert_int_equal(PARSE(&cfg, "--metrics", "a:b:c"), 2);
	/* the command line is kept for the upgrade */
	assert_int_equal(PARSE(&cfg, "-p", "7"), -1);
	assert_int_equal(cfg.argc, 3);
	assert_string_equal(cfg.argv[0], "serve");
	assert_string_equal(cfg.argv[2], "7");
	serve_config_free(&cfg);
}

/* Issues 15 and 16: the TLS files, the PROXY protocol and its header timeout. */
static void test_tls_and_proxy(void **state)
{
	(void)state;
	struct serve_config cfg;
	serve_config_defaults(&cfg);
	assert_int_equal(PARSE(&cfg, "--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-client-ca",
			       "ca.pem"),
			 -1);
	assert_string_equal(cfg.tls_cert, "c.pem");
	assert_string_equal(cfg.tls_key, "k.pem");
	assert_string_equal(cfg.tls_client_ca, "ca.pem");
	assert_int_equal(PARSE(&cfg, "--tls-key", "k.pem"), 2);
	assert_int_equal(PARSE(&cfg, "--tls-client-ca", "ca.pem"), 2);
	assert_int_equal(PARSE(&cfg, "--tls-cert", "c.pem", "--udp-only"), 2);
	assert_int_equal(PARSE(&cfg, "--tls-cert", ""), 2);
	assert_int_equal(PARSE(&cfg, "--proxy-protocol", "--proxy-from", "10.0.0.0/8",
			       "--proxy-from", "::1/128"),
			 -1);
	assert_int_equal(cfg.proxy, 1);
	assert_int_equal(cfg.nproxy_from, 2);
	assert_int_equal(cfg.proxy_timeout_ms, 5000); /* min(-i 30s, 5s) */
	assert_int_equal(PARSE(&cfg, "--proxy-protocol", "-i", "2s"), -1);
	assert_int_equal(cfg.proxy_timeout_ms, 2000);
	assert_int_equal(PARSE(&cfg, "--proxy-protocol", "-i", "0"), -1);
	assert_int_equal(cfg.proxy_timeout_ms, 5000); /* no idle timeout: still bounded */
	assert_int_equal(PARSE(&cfg, "--proxy-from", "10.0.0.0/8"), 2);
	assert_int_equal(PARSE(&cfg, "--proxy-protocol", "--proxy-from", "nope"), 2);
	assert_int_equal(PARSE(&cfg, "--proxy-protocol", "--udp-only"), 2);
	serve_config_free(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_short_names), cmocka_unit_test(test_bracketed_host),
		cmocka_unit_test(test_values),	    cmocka_unit_test(test_unix),
		cmocka_unit_test(test_metrics),	    cmocka_unit_test(test_tls_and_proxy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
