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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_short_names),
		cmocka_unit_test(test_bracketed_host),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_metrics),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
