/* test_connect_parse.c -- `sockit connect`'s command line into struct connect_config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "connect.h"

/* Runs connect_parse on a NULL-terminated list of words (after
 * "connect"), capturing what it prints on stderr into err.  argv is static:
 * cfg->data points into it, and stays valid until the next call. */
static int parse(struct connect_config *cfg, char *err, size_t errlen, ...)
{
	static char *argv[32];
	int argc = 0;
	argv[argc++] = "connect";
	va_list ap;
	va_start(ap, errlen);
	for (char *w; (w = va_arg(ap, char *)) != NULL && argc < 31;)
		argv[argc++] = w;
	va_end(ap);
	argv[argc] = NULL;
	FILE *tmp = tmpfile();
	assert_non_null(tmp);
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
	int rc = connect_parse(argc, argv, cfg);
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
	struct connect_config cfg;
	char err[512];
	assert_int_equal(parse(&cfg, err, sizeof(err), "example.org", "7", NULL), 0);
	assert_string_equal(err, "");
	assert_string_equal(cfg.host, "example.org");
	assert_string_equal(cfg.name, "example.org");
	assert_int_equal(cfg.port, 7);
	assert_int_equal(cfg.family, AF_UNSPEC);
	assert_int_equal(cfg.connect_ms, 10000);
	assert_int_equal(cfg.idle_ms, 0);
	assert_true(cfg.quit_ms == CONNECT_NEVER);
	assert_int_equal(cfg.reply_ms, 1000);
	assert_int_equal(cfg.newline, 1);
	assert_int_equal(cfg.udp | cfg.zero | cfg.verbose | cfg.json, 0);
	assert_null(cfg.data);
	assert_int_equal(cfg.ndata, 0);
	assert_int_equal(cfg.attempt_delay_ms, SOCKIT_CONNECT_DELAY_MS);
	assert_int_equal(cfg.proxy_header, 0);
	assert_int_equal(cfg.tls | cfg.tls_insecure, 0);
	assert_null(cfg.unix_path);
	assert_null(cfg.tls_name);
}

/* issues 15, 16, 17: the new options and what they set. */
static void test_wave_options(void **state)
{
	(void)state;
	struct connect_config cfg;
	char err[512];
	assert_int_equal(parse(&cfg, err, sizeof(err), "--attempt-delay", "100ms", "--proxy-header",
			       "v2", "--tls", "--tls-ca", "ca.pem", "--tls-cert", "c.pem",
			       "--tls-key", "c.key", "[::1]", "443", NULL),
			 0);
	assert_int_equal(cfg.attempt_delay_ms, 100);
	assert_int_equal(cfg.proxy_header, 2);
	assert_int_equal(cfg.tls, 1);
	assert_string_equal(cfg.tls_ca, "ca.pem");
	assert_string_equal(cfg.tls_cert, "c.pem");
	assert_string_equal(cfg.tls_key, "c.key");
	assert_string_equal(cfg.tls_name, "::1"); /* HOST, unwrapped */
	/* 0 = one address after another: -1 for sockit_connect_opts */
	assert_int_equal(parse(&cfg, err, sizeof(err), "--attempt-delay", "0", "--tls",
			       "--tls-servername", "example.org", "--tls-insecure", "h", "1", NULL),
			 0);
	assert_int_equal(cfg.attempt_delay_ms, -1);
	assert_string_equal(cfg.tls_name, "example.org");
	assert_int_equal(cfg.tls_insecure, 1);
	/* -U: no HOST PORT, every word is DATA */
	assert_int_equal(parse(&cfg, err, sizeof(err), "-U", "@sock", "-u", "a", "b", NULL), 0);
	assert_string_equal(cfg.unix_path, "@sock");
	assert_string_equal(cfg.host, "@sock");
	assert_int_equal(cfg.port, 0);
	assert_int_equal(cfg.ndata, 2);
	assert_string_equal(cfg.data[0], "a");
	assert_int_equal(parse(&cfg, err, sizeof(err), "--unix", "./s.sock", "--tls",
			       "--tls-insecure", "--proxy-header", "v2", NULL),
			 0);
	assert_null(cfg.tls_name); /* no name to check: insecure */
	assert_int_equal(cfg.ndata, 0);
	assert_string_equal(err, "");
}

/* issue 19, item 8: every long form means its short one. */
static void test_long_forms(void **state)
{
	(void)state;
	struct connect_config s, l;
	char err[512];
	assert_int_equal(parse(&s, err, sizeof(err), "-u", "-4", "-w", "2s", "-i", "3s", "-q",
			       "500ms", "-n", "-v", "h", "1", "a", "b", NULL),
			 0);
	assert_int_equal(parse(&l, err, sizeof(err), "--udp", "--ipv4", "--timeout", "2s",
			       "--idle-timeout=3s", "--quit-after", "500ms", "--no-newline",
			       "--verbose", "h", "1", "a", "b", NULL),
			 0);
	assert_int_equal(s.udp, 1);
	assert_int_equal(l.udp, 1);
	assert_int_equal(l.family, AF_INET);
	assert_int_equal(s.family, AF_INET);
	assert_int_equal(l.connect_ms, 2000);
	assert_int_equal(s.connect_ms, 2000);
	assert_int_equal(l.idle_ms, 3000);
	assert_int_equal(s.idle_ms, 3000);
	assert_int_equal(l.quit_ms, 500);
	assert_int_equal(s.quit_ms, 500);
	assert_int_equal(l.newline, 0);
	assert_int_equal(l.verbose, 1);
	assert_int_equal(l.ndata, 2);
	assert_string_equal(l.data[1], "b");
	assert_int_equal(parse(&l, err, sizeof(err), "--zero-io", "--ipv6", "h", "1", NULL), 0);
	assert_int_equal(l.zero, 1);
	assert_int_equal(l.family, AF_INET6);
	assert_int_equal(parse(&l, err, sizeof(err), "--help", NULL), CONNECT_PARSE_HELP);
	assert_int_equal(parse(&l, err, sizeof(err), "-V", NULL), CONNECT_PARSE_VERSION);
	assert_string_equal(err, "");
}

/* issue 19, items 7 and 12: bracketed hosts and service names. */
static void test_host_and_port_forms(void **state)
{
	(void)state;
	struct connect_config cfg;
	char err[512];
	assert_int_equal(parse(&cfg, err, sizeof(err), "[::1]", "65535", NULL), 0);
	assert_string_equal(cfg.host, "[::1]");
	assert_string_equal(cfg.name, "::1");
	assert_int_equal(cfg.port, 65535);
	assert_int_equal(parse(&cfg, err, sizeof(err), "::1", "1", NULL), 0);
	assert_string_equal(cfg.name, "::1");
	if (parse(&cfg, err, sizeof(err), "h", "http", NULL) == 0)
		assert_int_equal(cfg.port, 80);
	else
		assert_non_null(strstr(err, "no such service")); /* no /etc/services */
}

/* issue 19, item 11: one wording per kind of value, the option as spelled. */
static void test_usage_errors(void **state)
{
	(void)state;
	static const struct {
		const char *words[6];
		const char *message;
	} cases[] = {
		{{"-w", "x", "h", "1"}, "invalid duration 'x' for -w: expected 0..576h"},
		{{"--timeout", "x", "h", "1"}, "invalid duration 'x' for --timeout"},
		{{"--timeout=1parsec", "h", "1"},
		 "invalid duration '1parsec' for --timeout: unknown"},
		{{"-q", "-1", "h", "1"}, "invalid duration '-1' for -q"},
		{{"--quit-after", "z", "h", "1"}, "invalid duration 'z' for --quit-after"},
		{{"h", "0"}, "invalid port '0' for PORT: expected 1..65535 or a service name"},
		{{"", "1"}, "invalid host '' for HOST: empty"},
		{{"[::1", "1"},
		 "invalid host '[::1' for HOST: expected an IPv6 address in brackets"},
		{{"-4", "--ipv6", "h", "1"}, "-4 and -6 exclude each other"},
		{{"h"}, "missing PORT after HOST 'h'"},
		{{"--reply-timeout", "1s", "h", "1"}, "--reply-timeout applies to UDP only"},
		{{"--attempt-delay", "x", "h", "1"}, "invalid duration 'x' for --attempt-delay"},
		{{"--attempt-delay", "1s", "-u", "h", "1"}, "cannot be used with -u"},
		{{"--proxy-header", "v3", "h", "1"},
		 "invalid version 'v3' for --proxy-header: expected v1 or v2"},
		{{"--proxy-header", "v1", "-U", "/x"}, "use v2 with -U"},
		{{"--proxy-header", "v1", "-u", "h", "1"}, "cannot be used with -u"},
		{{"-U", ""}, "invalid path '' for -U: expected a path or @name"},
		{{"-6", "-U", "/x"}, "cannot be used with -U"},
		{{"--attempt-delay", "1s", "-U", "/x"}, "cannot be used with -U"},
		{{"--tls-insecure", "h", "1"}, "apply to --tls only; add --tls"},
		{{"--tls", "-u", "h", "1"}, "cannot be used with -u"},
		{{"--tls", "--tls-key", "k", "h", "1"}, "--tls-key needs --tls-cert"},
		{{"--tls", "--tls-insecure", "--tls-ca=c", "h", "1"}, "--tls-ca would not be used"},
		{{"--tls", "-U", "/x"}, "needs --tls-servername NAME"},
		{{"--tls", "--tls-ca", "", "h", "1"}, "invalid value '' for --tls-ca: empty"},
		{{}, "missing HOST and PORT (or -U PATH)"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *const *w = cases[i].words;
		struct connect_config cfg;
		char err[512];
		int rc = parse(&cfg, err, sizeof(err), w[0], w[1], w[2], w[3], w[4], NULL);
		if (rc != 2 || strstr(err, cases[i].message) == NULL ||
		    strncmp(err, "sockit connect: ", 16) != 0)
			fail_msg("case %zu: rc %d, stderr \"%s\", want 2 and \"%s\"", i, rc, err,
				 cases[i].message);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),     cmocka_unit_test(test_long_forms),
		cmocka_unit_test(test_wave_options), cmocka_unit_test(test_host_and_port_forms),
		cmocka_unit_test(test_usage_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
