/* test_cidr.c -- CIDR parsing (strict, host bits cleared) and matching (v4, v6, mapped). */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "sockit.h"

/* Parses s; its network, printed, must be net and its prefix prefix. */
static void parses_as(const char *s, int family, const char *net, unsigned prefix)
{
	sockit_cidr c;
	char buf[INET6_ADDRSTRLEN];
	assert_int_equal(sockit_cidr_parse(s, &c), 0);
	assert_int_equal(c.family, family);
	assert_int_equal(c.prefix, prefix);
	assert_non_null(inet_ntop(family, c.addr, buf, sizeof(buf)));
	assert_string_equal(buf, net);
}

static void test_parse(void **state)
{
	(void)state;
	parses_as("10.0.0.0/8", AF_INET, "10.0.0.0", 8);
	parses_as("10.1.2.3/8", AF_INET, "10.0.0.0", 8);
	parses_as("172.31.255.255/12", AF_INET, "172.16.0.0", 12);
	parses_as("192.168.1.7", AF_INET, "192.168.1.7", 32);
	parses_as("192.168.1.7/32", AF_INET, "192.168.1.7", 32);
	parses_as("1.2.3.4/0", AF_INET, "0.0.0.0", 0);
	parses_as("::1/128", AF_INET6, "::1", 128);
	parses_as("::1", AF_INET6, "::1", 128);
	parses_as("2001:db8:ffff::1/32", AF_INET6, "2001:db8::", 32);
	parses_as("2001:db8::ff/121", AF_INET6, "2001:db8::80", 121);
	parses_as("ffff::/0", AF_INET6, "::", 0);
	parses_as("::ffff:10.1.2.3/104", AF_INET6, "::ffff:10.0.0.0", 104);
}

static void test_parse_bad(void **state)
{
	(void)state;
	static const char *bad[] = {
		"",
		"/",
		"/8",
		"1.2.3.4/",
		"1.2.3.4/33",
		"::/129",
		"1.2.3.4/-1",
		"1.2.3.4/+8",
		"1.2.3.4/8x",
		"1.2.3.4/8/8",
		"1.2.3.4 /8",
		"1.2.3.4/ 8",
		"junk",
		"junk/8",
		"1.2.3/8",
		"1.2.3.4.5/8",
		"1.2.3.4/1000",
		"::1/0128",
		"10.0.0.0/08x",
		"[::1]/128",
		"::1%lo/128",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		sockit_cidr c;
		int rc = sockit_cidr_parse(bad[i], &c);
		if (rc != -EINVAL)
			fail_msg("sockit_cidr_parse(\"%s\") = %d, want -EINVAL", bad[i], rc);
	}
	sockit_cidr c;
	assert_int_equal(sockit_cidr_parse(NULL, &c), -EINVAL);
	assert_int_equal(sockit_cidr_parse("10.0.0.0/8", NULL), -EINVAL);
}

/* 1 if the IP (any port) is inside the CIDR. */
static int match(const char *cidr, const char *ip)
{
	sockit_cidr c;
	sockit_addr a;
	assert_int_equal(sockit_cidr_parse(cidr, &c), 0);
	assert_int_equal(sockit_addr_from_ip(ip, 1234, &a), 0);
	return sockit_cidr_match(&c, &a);
}

static void test_match_v4(void **state)
{
	(void)state;
	assert_int_equal(match("10.0.0.0/8", "10.255.0.1"), 1);
	assert_int_equal(match("10.0.0.0/8", "11.0.0.1"), 0);
	assert_int_equal(match("10.0.0.0/8", "9.255.255.255"), 0);
	assert_int_equal(match("172.16.0.0/12", "172.31.255.255"), 1);
	assert_int_equal(match("172.16.0.0/12", "172.32.0.0"), 0);
	assert_int_equal(match("127.0.0.1/32", "127.0.0.1"), 1);
	assert_int_equal(match("127.0.0.1/32", "127.0.0.2"), 0);
	assert_int_equal(match("127.0.0.1", "127.0.0.1"), 1);
	assert_int_equal(match("0.0.0.0/0", "1.2.3.4"), 1);
	assert_int_equal(match("0.0.0.0/0", "255.255.255.255"), 1);
	/* A v4 block never matches a plain v6 address. */
	assert_int_equal(match("0.0.0.0/0", "::1"), 0);
	assert_int_equal(match("0.0.0.0/0", "::"), 0);
}

static void test_match_v6(void **state)
{
	(void)state;
	assert_int_equal(match("::1/128", "::1"), 1);
	assert_int_equal(match("::1/128", "::2"), 0);
	assert_int_equal(match("2001:db8::/32", "2001:db8:ffff::1"), 1);
	assert_int_equal(match("2001:db8::/32", "2001:db9::1"), 0);
	assert_int_equal(match("2001:db8::80/121", "2001:db8::ff"), 1);
	assert_int_equal(match("2001:db8::80/121", "2001:db8::7f"), 0);
	assert_int_equal(match("::/0", "fe80::1"), 1);
	assert_int_equal(match("fe80::/10", "febf::1"), 1);
	assert_int_equal(match("fe80::/10", "fec0::1"), 0);
}

static void test_match_mapped(void **state)
{
	(void)state;
	/* What a dual-stack listener reports for an IPv4 client. */
	assert_int_equal(match("10.0.0.0/8", "::ffff:10.1.2.3"), 1);
	assert_int_equal(match("10.0.0.0/8", "::ffff:11.1.2.3"), 0);
	assert_int_equal(match("127.0.0.1/32", "::ffff:127.0.0.1"), 1);
	assert_int_equal(match("0.0.0.0/0", "::ffff:8.8.8.8"), 1);
	/* And the other way: a mapped v6 block holds the v4 addresses. */
	assert_int_equal(match("::ffff:10.0.0.0/104", "10.9.9.9"), 1);
	assert_int_equal(match("::ffff:10.0.0.0/104", "11.9.9.9"), 0);
	/* Not mapped: ::10.1.2.3 (the deprecated compatible form) is not v4. */
	assert_int_equal(match("10.0.0.0/8", "::10.1.2.3"), 0);
}

static void test_match_bad(void **state)
{
	(void)state;
	sockit_cidr c;
	sockit_addr a;
	assert_int_equal(sockit_cidr_parse("0.0.0.0/0", &c), 0);
	assert_int_equal(sockit_addr_from_ip("1.2.3.4", 1, &a), 0);
	assert_int_equal(sockit_cidr_match(NULL, &a), 0);
	assert_int_equal(sockit_cidr_match(&c, NULL), 0);
	a.ss.ss_family = AF_UNIX;
	assert_int_equal(sockit_cidr_match(&c, &a), 0);
	sockit_cidr garbage = {.family = AF_INET, .prefix = 200};
	assert_int_equal(sockit_addr_from_ip("1.2.3.4", 1, &a), 0);
	assert_int_equal(sockit_cidr_match(&garbage, &a), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),	     cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_match_v4),     cmocka_unit_test(test_match_v6),
		cmocka_unit_test(test_match_mapped), cmocka_unit_test(test_match_bad),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
