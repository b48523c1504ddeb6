/* test_cli.c -- the shared bounded parsers: durations, sizes, ports, integers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli.h"

#define DUR_MAX (24ull * 3600 * 1000)

static void dur_ok(const char *s, uint64_t want)
{
	uint64_t v = 12345;
	int rc = cli_parse_duration_ms(s, DUR_MAX, &v);
	if (rc != 0)
		fail_msg("cli_parse_duration_ms(\"%s\") = %d, want 0", s, rc);
	if (v != want)
		fail_msg("cli_parse_duration_ms(\"%s\") gave %llu ms, want %llu", s,
			 (unsigned long long)v, (unsigned long long)want);
}

static void dur_bad(const char *s, uint64_t max)
{
	uint64_t v = 777;
	int rc = cli_parse_duration_ms(s, max, &v);
	if (rc >= 0)
		fail_msg("cli_parse_duration_ms(\"%s\") = %d (%llu ms), want < 0", s ? s : "NULL",
			 rc, (unsigned long long)v);
	assert_int_equal(v, 777); /* untouched on failure */
}

static void test_duration(void **state)
{
	(void)state;
	dur_ok("500ms", 500);
	dur_ok("2s", 2000);
	dur_ok("1.5s", 1500);
	dur_ok("1m", 60000);
	dur_ok("1min", 60000);
	dur_ok("1h", 3600000);
	dur_ok("0", 0);
	dur_ok("0s", 0);
	dur_ok("3", 3000); /* a bare number is seconds */
	dur_ok("0.25", 250);
	dur_ok("250us", 1);  /* rounded up */
	dur_ok("1001us", 2); /* rounded up */
	dur_ok("1.0001s", 1001);
	dur_ok("0.1ms", 1);
	dur_ok("24h", DUR_MAX);
	static const char *bad[] = {
		"",
		"-1",
		"1x",
		"s",
		"ms",
		"1.s",
		".5s",
		" 1s",
		"1s ",
		"1 s",
		"+1s",
		"1e3",
		"1,5s",
		"1sms",
		"1S",
		"0x10",
		"1.2.3s",
		"--1",
		"1..5s",
		"99999999999999999999",
		"184467440737095516160ms",
		"25h",
		"86400001ms",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		dur_bad(bad[i], DUR_MAX);
	dur_bad(NULL, DUR_MAX);
	dur_bad("2s", 1999);
	/* A fraction alone larger than the maximum (found by tests/fuzz/cli):
	 * max - fraction must not wrap around. */
	dur_bad("0.5s", 100);
	dur_bad("0.123456789123s", 1);
	uint64_t v;
	assert_int_equal(cli_parse_duration_us("0.5h", 1000000, &v), -1);
	assert_int_equal(cli_parse_size("0.5G", 0, 1024, &v), -1);
	assert_int_equal(cli_parse_duration_ms("2s", 2000, &v), 0);
	assert_int_equal(v, 2000);
	/* A maximum that cannot be scaled to microseconds is refused. */
	assert_int_equal(cli_parse_duration_ms("1s", UINT64_MAX, &v), -1);
}

static void size_ok(const char *s, uint64_t want)
{
	uint64_t v = 0;
	if (cli_parse_size(s, 0, UINT64_MAX, &v) != 0)
		fail_msg("cli_parse_size(\"%s\") failed", s);
	if (v != want)
		fail_msg("cli_parse_size(\"%s\") gave %llu, want %llu", s, (unsigned long long)v,
			 (unsigned long long)want);
}

static void test_size(void **state)
{
	(void)state;
	size_ok("0", 0);
	size_ok("1024", 1024);
	size_ok("64k", 65536);
	size_ok("64K", 65536);
	size_ok("64KiB", 65536);
	size_ok("1m", 1048576);
	size_ok("1MiB", 1048576);
	size_ok("1.5k", 1536);
	size_ok("2G", 2147483648ull);
	size_ok("18446744073709551615", UINT64_MAX);
	static const char *bad[] = {"",
				    "k",
				    "-1",
				    "1q",
				    "1 k",
				    "1kk",
				    "1.k",
				    "+1",
				    "0x1",
				    "1e3",
				    "18446744073709551616",
				    "17179869184G"};
	uint64_t v;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (cli_parse_size(bad[i], 0, UINT64_MAX, &v) >= 0)
			fail_msg("cli_parse_size(\"%s\") accepted: %llu", bad[i],
				 (unsigned long long)v);
	assert_int_equal(cli_parse_size("64k", 0, 65535, &v), -1);
	assert_int_equal(cli_parse_size("1", 2, 100, &v), -1);
	assert_int_equal(cli_parse_size("64k", 0, 65536, &v), 0);
	assert_int_equal(v, 65536);
	assert_int_equal(cli_parse_size(NULL, 0, 100, &v), -1);
}

static void test_port(void **state)
{
	(void)state;
	int p = -5;
	assert_int_equal(cli_parse_port("0", 1, &p), 0);
	assert_int_equal(p, 0);
	assert_int_equal(cli_parse_port("1234", 0, &p), 0);
	assert_int_equal(p, 1234);
	assert_int_equal(cli_parse_port("65535", 0, &p), 0);
	assert_int_equal(p, 65535);
	p = -5;
	assert_int_equal(cli_parse_port("0", 0, &p), -1);
	static const char *bad[] = {"",	   "65536",	      "-1",	    "80x", " 80",
				    "+80", "no-such-service", "99999999999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (cli_parse_port(bad[i], 1, &p) != -1)
			fail_msg("cli_parse_port(\"%s\") accepted: %d", bad[i], p);
	assert_int_equal(p, -5);
	/* Service names, as nc takes them (issue 19, item 12). */
	assert_int_equal(cli_parse_port("http", 1, &p), 0);
	assert_int_equal(p, 80);
}

/* A number with an unknown unit is told apart from one out of range, so
 * the message can say which (issue 19, item 11: "--max-bytes 1kb"). */
static void test_unknown_unit(void **state)
{
	(void)state;
	uint64_t v;
	assert_int_equal(cli_parse_size("1kb", 0, UINT64_MAX, &v), -2);
	assert_int_equal(cli_parse_size("1kB", 0, UINT64_MAX, &v), -2);
	assert_int_equal(cli_parse_size("2G", 0, 1024, &v), -1);
	assert_int_equal(cli_parse_duration_ms("5x", 1000000, &v), -2);
	assert_int_equal(cli_parse_duration_ms("5000s", 1000, &v), -1);
}

static void test_format(void **state)
{
	(void)state;
	char b[32];
	static const struct {
		uint64_t v;
		const char *want;
	} sizes[] = {{0, "0"},
		     {1000, "1000"},
		     {1024, "1KiB"},
		     {65536, "64KiB"},
		     {1536, "1536"},
		     {1048576, "1MiB"},
		     {16u << 20, "16MiB"},
		     {1u << 30, "1GiB"},
		     /* 1 TiB: in a unit the parser takes (found by tests/fuzz/cli) */
		     {1ull << 40, "1024GiB"}};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		cli_format_size(b, sizeof(b), sizes[i].v);
		assert_string_equal(b, sizes[i].want);
		uint64_t back;
		assert_int_equal(cli_parse_size(b, 0, UINT64_MAX, &back), 0);
		assert_int_equal(back, sizes[i].v);
	}
	static const struct {
		uint64_t ms;
		const char *want;
	} durs[] = {{0, "0ms"},	      {500, "500ms"}, {1000, "1s"},   {1500, "1.5s"},
		    {1250, "1250ms"}, {60000, "1m"},  {90000, "90s"}, {3600000, "1h"}};
	for (size_t i = 0; i < sizeof(durs) / sizeof(durs[0]); i++) {
		cli_format_duration(b, sizeof(b), durs[i].ms);
		assert_string_equal(b, durs[i].want);
		uint64_t back;
		assert_int_equal(cli_parse_duration_ms(b, UINT64_MAX / 1000, &back), 0);
		assert_int_equal(back, durs[i].ms);
	}
}

static void test_host(void **state)
{
	(void)state;
	char b[64];
	assert_string_equal(cli_host("[::1]", b, sizeof(b)), "::1");
	assert_string_equal(cli_host("::1", b, sizeof(b)), "::1");
	assert_string_equal(cli_host("localhost", b, sizeof(b)), "localhost");
	assert_null(cli_host("[::1", b, sizeof(b)));
	assert_null(cli_host("[]", b, sizeof(b)));
	assert_null(cli_host("[::1]]", b, sizeof(b)));
}

static void test_int_u64(void **state)
{
	(void)state;
	int i = 0;
	assert_int_equal(cli_parse_int("-5", -10, 10, &i), 0);
	assert_int_equal(i, -5);
	assert_int_equal(cli_parse_int("10", -10, 10, &i), 0);
	assert_int_equal(i, 10);
	assert_int_equal(cli_parse_int("2147483647", 0, 2147483647, &i), 0);
	assert_int_equal(i, 2147483647);
	static const char *bad[] = {
		"11", "-11", "", "-", "--5", "5-", "1.0", "2147483648", "99999999999999999999999",
		" 1"};
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
		if (cli_parse_int(bad[k], -10, 10, &i) != -1)
			fail_msg("cli_parse_int(\"%s\") accepted: %d", bad[k], i);
	assert_int_equal(cli_parse_int(NULL, 0, 1, &i), -1);

	uint64_t u = 0;
	assert_int_equal(cli_parse_u64("18446744073709551615", 0, UINT64_MAX, &u), 0);
	assert_true(u == UINT64_MAX);
	assert_int_equal(cli_parse_u64("18446744073709551616", 0, UINT64_MAX, &u), -1);
	assert_int_equal(cli_parse_u64("-1", 0, UINT64_MAX, &u), -1);
	assert_int_equal(cli_parse_u64("5", 6, 10, &u), -1);
	assert_int_equal(cli_parse_u64("11", 6, 10, &u), -1);
	assert_int_equal(cli_parse_u64("7k", 0, 10, &u), -1);
	assert_int_equal(cli_parse_u64("", 0, 10, &u), -1);
	assert_int_equal(cli_parse_u64(NULL, 0, 10, &u), -1);
}

static void test_usage(void **state)
{
	(void)state;
	/* Capture stderr in a temporary file for the call. */
	FILE *tmp = tmpfile();
	assert_non_null(tmp);
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
	int rc = cli_usage("test", "bad --%s '%s'", "port", "x");
	fflush(stderr);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	assert_int_equal(rc, 2);
	char out[256] = "";
	rewind(tmp);
	size_t n = fread(out, 1, sizeof(out) - 1, tmp);
	out[n] = '\0';
	fclose(tmp);
	assert_string_equal(out, "sockit test: bad --port 'x'\nTry 'sockit test --help'.\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration), cmocka_unit_test(test_size),
		cmocka_unit_test(test_port),	 cmocka_unit_test(test_unknown_unit),
		cmocka_unit_test(test_format),	 cmocka_unit_test(test_host),
		cmocka_unit_test(test_int_u64),	 cmocka_unit_test(test_usage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
