/* test_addr.c -- resolve, parse, split and format addresses, malformed input included. */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sockit.h"
#include "testutil.h"

/* Parses s and formats it back: the result must be expect. */
static void round_trip(const char *s, const char *expect)
{
	sockit_addr a;
	char buf[SOCKIT_ADDRSTRLEN];
	assert_int_equal(sockit_addr_parse(s, &a), 0);
	assert_int_equal(sockit_addr_format(&a, buf, sizeof(buf)), (int)strlen(expect));
	assert_string_equal(buf, expect);
}

static void test_parse_format(void **state)
{
	(void)state;
	round_trip("127.0.0.1:80", "127.0.0.1:80");
	round_trip("0.0.0.0:0", "0.0.0.0:0");
	round_trip("255.255.255.255:65535", "255.255.255.255:65535");
	round_trip("[::1]:8080", "[::1]:8080");
	round_trip("[::]:1", "[::]:1");
	round_trip("[2001:DB8::0001]:443", "[2001:db8::1]:443");
	/* IPv4-mapped IPv6 prints as IPv4. */
	round_trip("[::ffff:1.2.3.4]:5", "1.2.3.4:5");
	/* A scope by number comes back by name where the interface exists. */
	char lo[IF_NAMESIZE];
	if (if_indextoname(1, lo) != NULL) {
		char expect[64];
		snprintf(expect, sizeof(expect), "[fe80::1%%%s]:80", lo);
		round_trip("[fe80::1%1]:80", expect);
		round_trip(expect, expect);
	}
	round_trip("[fe80::1%999999]:80", "[fe80::1%999999]:80");

	sockit_addr a;
	assert_int_equal(sockit_addr_parse("10.1.2.3:4567", &a), 0);
	assert_int_equal(a.ss.ss_family, AF_INET);
	assert_int_equal(a.len, sizeof(struct sockaddr_in));
	assert_int_equal(sockit_addr_port(&a), 4567);
	char ip[SOCKIT_ADDRSTRLEN];
	assert_int_equal(sockit_addr_format_ip(&a, ip, sizeof(ip)), 8);
	assert_string_equal(ip, "10.1.2.3");
	assert_int_equal(sockit_addr_parse("[::1]:7", &a), 0);
	assert_int_equal(a.ss.ss_family, AF_INET6);
	assert_int_equal(sockit_addr_format_ip(&a, ip, sizeof(ip)), 3);
	assert_string_equal(ip, "::1");
}

static void test_parse_malformed(void **state)
{
	(void)state;
	static const char *bad[] = {
		"",
		":",
		"1.2.3.4",
		"1.2.3.4:",
		"1.2.3.4:-1",
		"1.2.3.4:+80",
		"1.2.3.4:80x",
		"1.2.3.4: 80",
		"1.2.3.4:65536",
		"1.2.3.4:99999",
		"1.2.3.4:000080",
		"[::1",
		"[::1]",
		"[::1]80",
		"[::1]:",
		"[]:80",
		"[1.2.3.4]:80",
		"::1:80",
		"::1",
		"999.1.1.1:80",
		"1.2.3:80",
		"localhost:80",
		"[fe80::1%]:80",
		"[fe80::1%nosuchif0]:80",
		"[::1%4294967296]:80",
		"[::1%00000000001]:80",
		"[::1]:80:80",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		sockit_addr a;
		int rc = sockit_addr_parse(bad[i], &a);
		if (rc != -EINVAL)
			fail_msg("sockit_addr_parse(\"%s\") = %d, want -EINVAL", bad[i], rc);
	}
	sockit_addr a;
	assert_int_equal(sockit_addr_parse(NULL, &a), -EINVAL);
	assert_int_equal(sockit_addr_parse("1.2.3.4:80", NULL), -EINVAL);
}

static void test_hostport_split(void **state)
{
	(void)state;
	char host[64];
	int port = -2;
	assert_int_equal(sockit_hostport_split("example.com:443", host, sizeof(host), &port, 80),
			 0);
	assert_string_equal(host, "example.com");
	assert_int_equal(port, 443);
	assert_int_equal(sockit_hostport_split("example.com", host, sizeof(host), &port, 80), 0);
	assert_string_equal(host, "example.com");
	assert_int_equal(port, 80);
	assert_int_equal(sockit_hostport_split("[::1]:0", host, sizeof(host), &port, 80), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 0);
	assert_int_equal(sockit_hostport_split("[fe80::1%eth0]", host, sizeof(host), &port, 9), 0);
	assert_string_equal(host, "fe80::1%eth0");
	assert_int_equal(port, 9);
	/* An empty host (all interfaces) with a port. */
	assert_int_equal(sockit_hostport_split(":80", host, sizeof(host), &port, 1), 0);
	assert_string_equal(host, "");
	assert_int_equal(port, 80);

	/* Exactly fitting, then one byte too long. */
	char small[5];
	assert_int_equal(sockit_hostport_split("abcd:1", small, sizeof(small), &port, 0), 0);
	assert_string_equal(small, "abcd");
	assert_int_equal(sockit_hostport_split("abcde:1", small, sizeof(small), &port, 0), -EINVAL);
	char longhost[300];
	memset(longhost, 'a', sizeof(longhost) - 1);
	longhost[sizeof(longhost) - 1] = '\0';
	assert_int_equal(sockit_hostport_split(longhost, host, sizeof(host), &port, 80), -EINVAL);

	static const char *bad[] = {"host:", "host:99999", "host:-1", "[::1",  "::1:80",
				    "::1",   "[::1]x",	   "[]",      "a:b:c", "host:8o"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = sockit_hostport_split(bad[i], host, sizeof(host), &port, 80);
		if (rc != -EINVAL)
			fail_msg("sockit_hostport_split(\"%s\") = %d, want -EINVAL", bad[i], rc);
	}
	/* No port given and no valid default. */
	assert_int_equal(sockit_hostport_split("host", host, sizeof(host), &port, -1), -EINVAL);
	assert_int_equal(sockit_hostport_split("host", host, sizeof(host), &port, 65536), -EINVAL);
	assert_int_equal(sockit_hostport_split(NULL, host, sizeof(host), &port, 80), -EINVAL);
	assert_int_equal(sockit_hostport_split("h:1", NULL, 10, &port, 80), -EINVAL);
	assert_int_equal(sockit_hostport_split("h:1", host, 0, &port, 80), -EINVAL);
	assert_int_equal(sockit_hostport_split("h:1", host, sizeof(host), NULL, 80), -EINVAL);
}

static void test_from_ip(void **state)
{
	(void)state;
	sockit_addr a;
	assert_int_equal(sockit_addr_from_ip("192.168.0.1", 65535, &a), 0);
	assert_int_equal(sockit_addr_port(&a), 65535);
	assert_int_equal(sockit_addr_from_ip("::", 0, &a), 0);
	assert_int_equal(a.ss.ss_family, AF_INET6);
	assert_int_equal(sockit_addr_from_ip("1.2.3.4", 65536, &a), -EINVAL);
	assert_int_equal(sockit_addr_from_ip("1.2.3.4", -1, &a), -EINVAL);
	assert_int_equal(sockit_addr_from_ip("1.2.3.4.5", 1, &a), -EINVAL);
	assert_int_equal(sockit_addr_from_ip("127.1", 1, &a), -EINVAL);
	assert_int_equal(sockit_addr_from_ip("example.com", 1, &a), -EINVAL);
	assert_int_equal(sockit_addr_from_ip("", 1, &a), -EINVAL);
	assert_int_equal(sockit_addr_from_ip(NULL, 1, &a), -EINVAL);
	assert_int_equal(sockit_addr_from_ip("::1", 1, NULL), -EINVAL);
}

static void test_format_limits(void **state)
{
	(void)state;
	sockit_addr a;
	char buf[SOCKIT_ADDRSTRLEN];
	assert_int_equal(sockit_addr_parse("1.2.3.4:5", &a), 0);
	/* "1.2.3.4:5" is 9 bytes: 10 fit, 9 do not. */
	assert_int_equal(sockit_addr_format(&a, buf, 10), 9);
	assert_string_equal(buf, "1.2.3.4:5");
	assert_int_equal(sockit_addr_format(&a, buf, 9), -ENOSPC);
	assert_int_equal(sockit_addr_format_ip(&a, buf, 7), -ENOSPC);
	assert_int_equal(sockit_addr_format_ip(&a, buf, 8), 7);
	/* The longest address fits SOCKIT_ADDRSTRLEN. */
	assert_int_equal(
		sockit_addr_parse("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe%4294967295]:65535", &a),
		0);
	int n = sockit_addr_format(&a, buf, sizeof(buf));
	assert_in_range(n, 1, SOCKIT_ADDRSTRLEN - 1);
	assert_string_equal(buf, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe%4294967295]:65535");

	sockit_addr bad;
	memset(&bad, 0, sizeof(bad));
	bad.ss.ss_family = AF_UNIX;
	bad.len = sizeof(bad.ss);
	assert_int_equal(sockit_addr_format(&bad, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(sockit_addr_port(&bad), -EINVAL);
	bad.ss.ss_family = AF_INET6;
	bad.len = 4; /* too short for its family */
	assert_int_equal(sockit_addr_format(&bad, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(sockit_addr_format(NULL, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(sockit_addr_format(&a, NULL, 10), -EINVAL);
	assert_int_equal(sockit_addr_format_ip(NULL, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(sockit_addr_port(NULL), -EINVAL);
}

static void test_resolve(void **state)
{
	(void)state;
	sockit_addr out[4];
	char buf[SOCKIT_ADDRSTRLEN];
	assert_int_equal(sockit_resolve("127.0.0.1", 80, AF_UNSPEC, 0, 0, out, 4), 1);
	sockit_addr_format(&out[0], buf, sizeof(buf));
	assert_string_equal(buf, "127.0.0.1:80");
	assert_int_equal(sockit_resolve("::1", 9, AF_INET6, SOCK_DGRAM, 0, out, 4), 1);
	sockit_addr_format(&out[0], buf, sizeof(buf));
	assert_string_equal(buf, "[::1]:9");
	/* Passive with no host: the wildcard. */
	assert_int_equal(sockit_resolve(NULL, 1234, AF_INET, SOCK_STREAM, 1, out, 4), 1);
	sockit_addr_format(&out[0], buf, sizeof(buf));
	assert_string_equal(buf, "0.0.0.0:1234");
	/* Active with no host: loopback. */
	assert_int_equal(sockit_resolve("", 1234, AF_INET, SOCK_STREAM, 0, out, 4), 1);
	sockit_addr_format(&out[0], buf, sizeof(buf));
	assert_string_equal(buf, "127.0.0.1:1234");
	/* A family mismatch is a resolver error, in its own range. */
	int rc = sockit_resolve("127.0.0.1", 80, AF_INET6, 0, 0, out, 4);
	assert_true(SOCKIT_IS_EAI(rc));
	assert_int_equal(sockit_resolve("127.0.0.1", 80, AF_UNIX, 0, 0, out, 4), -EINVAL);
	assert_int_equal(sockit_resolve("127.0.0.1", 80, AF_INET, SOCK_RAW, 0, out, 4), -EINVAL);
	assert_int_equal(sockit_resolve("127.0.0.1", 65536, AF_INET, 0, 0, out, 4), -EINVAL);
	assert_int_equal(sockit_resolve("127.0.0.1", 80, AF_INET, 0, 0, NULL, 4), -EINVAL);
	assert_int_equal(sockit_resolve("127.0.0.1", 80, AF_INET, 0, 0, out, 0), -EINVAL);
}

static void test_sockname_peername(void **state)
{
	(void)state;
	int srv = sockit_create_server("127.0.0.1", 0, SOCK_STREAM, 1, 0);
	assert_ok(srv);
	sockit_addr me;
	assert_int_equal(sockit_getsockname(srv, &me), 0);
	int port = sockit_addr_port(&me);
	assert_in_range(port, 1, 65535);
	char want[32], buf[SOCKIT_ADDRSTRLEN];
	snprintf(want, sizeof(want), "127.0.0.1:%d", port);
	assert_int_equal(sockit_sockname_str(srv, buf, sizeof(buf)), (int)strlen(want));
	assert_string_equal(buf, want);
	int c = sockit_create_connection("127.0.0.1", port, 2000);
	assert_ok(c);
	assert_int_equal(sockit_peername_str(c, buf, sizeof(buf)), (int)strlen(want));
	assert_string_equal(buf, want);
	/* A listener has no peer. */
	assert_int_equal(sockit_peername_str(srv, buf, sizeof(buf)), -ENOTCONN);
	assert_int_equal(sockit_getsockname(-1, &me), -EINVAL);
	assert_int_equal(sockit_getpeername(c, NULL), -EINVAL);
	assert_int_equal(sockit_sockname_str(srv, buf, 5), -ENOSPC);
	sockit_close(c);
	sockit_close(srv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_format),	  cmocka_unit_test(test_parse_malformed),
		cmocka_unit_test(test_hostport_split),	  cmocka_unit_test(test_from_ip),
		cmocka_unit_test(test_format_limits),	  cmocka_unit_test(test_resolve),
		cmocka_unit_test(test_sockname_peername),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
