/* test_proxy.c -- the PROXY protocol parser and writer: every form, every prefix, a guard page. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "sockit_proxy.h"

static const char V2SIG[] = "\r\n\r\n\0\r\nQUIT\n";

static void addr_is(const sockit_addr *a, const char *want)
{
	char buf[SOCKIT_ADDRSTRLEN];
	assert_true(sockit_addr_format(a, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, want);
}

/* Every strict prefix of a valid header is incomplete, the whole is its
 * length, and nothing past it is consumed. */
static void whole_and_prefixes(const void *hdr, size_t n)
{
	unsigned char buf[2048];
	assert_true(n + 5 <= sizeof(buf));
	memcpy(buf, hdr, n);
	memcpy(buf + n, "DATA\n", 5);
	for (size_t i = 0; i < n; i++)
		if (sockit_proxy_parse(buf, i, NULL) != SOCKIT_PROXY_INCOMPLETE)
			fail_msg("prefix of %zu/%zu bytes: %d, want incomplete", i, n,
				 sockit_proxy_parse(buf, i, NULL));
	assert_int_equal(sockit_proxy_parse(buf, n, NULL), (int)n);
	assert_int_equal(sockit_proxy_parse(buf, n + 5, NULL), (int)n);
}

static void test_v1(void **state)
{
	(void)state;
	sockit_proxy_hdr h;
	const char *l4 = "PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n";
	assert_int_equal(sockit_proxy_parse(l4, strlen(l4), &h), (int)strlen(l4));
	assert_int_equal(h.version, 1);
	assert_int_equal(h.local, 0);
	assert_int_equal(h.transport, SOCK_STREAM);
	addr_is(&h.src, "192.0.2.7:56324");
	addr_is(&h.dst, "198.51.100.1:443");
	whole_and_prefixes(l4, strlen(l4));

	const char *l6 = "PROXY TCP6 2001:db8::1 ::1 65535 0\r\n";
	assert_int_equal(sockit_proxy_parse(l6, strlen(l6), &h), (int)strlen(l6));
	addr_is(&h.src, "[2001:db8::1]:65535");
	addr_is(&h.dst, "[::1]:0");

	const char *lu = "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n";
	assert_int_equal(sockit_proxy_parse(lu, strlen(lu), &h), (int)strlen(lu));
	assert_int_equal(h.local, 1);
	const char *lu2 = "PROXY UNKNOWN\r\n";
	assert_int_equal(sockit_proxy_parse(lu2, strlen(lu2), &h), (int)strlen(lu2));
	assert_int_equal(h.local, 1);
}

static void test_v1_bad(void **state)
{
	(void)state;
	static const char *bad[] = {
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", /* LF alone: no CRLF, then too long below */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", /* port range */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", /* a field missing */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
		"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", /* two spaces */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
		"PROXY TCP4 ::1 ::1 1 2\r\n", /* family mismatch */
		"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY \r\n",
		"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
		"PROXZ TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"GET / HTTP/1.1\r\n",
		"Received",
		"\r\n\r\n\x01",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = sockit_proxy_parse(bad[i], strlen(bad[i]), NULL);
		if (i == 0) /* a LF alone is incomplete until 107 bytes pass */
			assert_int_equal(rc, SOCKIT_PROXY_INCOMPLETE);
		else if (rc != SOCKIT_PROXY_BAD)
			fail_msg("%zu: \"%s\": %d, want bad", i, bad[i], rc);
	}
	/* No CRLF within 107 bytes: bad, whatever follows. */
	char longl[200];
	memset(longl, 'x', sizeof(longl));
	memcpy(longl, "PROXY UNKNOWN ", 14);
	assert_int_equal(sockit_proxy_parse(longl, 106, NULL), SOCKIT_PROXY_INCOMPLETE);
	assert_int_equal(sockit_proxy_parse(longl, 107, NULL), SOCKIT_PROXY_BAD);
	/* The longest legal line, exactly 107 bytes with its CRLF. */
	memcpy(longl + 105, "\r\n", 2);
	assert_int_equal(sockit_proxy_parse(longl, 107, NULL), 107);
	/* A NUL inside the line is never taken. */
	const char nul[] = "PROXY UNKNOWN \0x\r\n";
	assert_int_equal(sockit_proxy_parse(nul, sizeof(nul) - 1, NULL), SOCKIT_PROXY_BAD);
}

/* A v2 header: fixed part + body of blen bytes. */
static size_t v2(unsigned char *out, unsigned ver_cmd, unsigned fam, const void *body, size_t blen)
{
	memcpy(out, V2SIG, 12);
	out[12] = (unsigned char)ver_cmd;
	out[13] = (unsigned char)fam;
	out[14] = (unsigned char)(blen >> 8);
	out[15] = (unsigned char)blen;
	if (blen > 0)
		memcpy(out + 16, body, blen);
	return 16 + blen;
}

static void test_v2(void **state)
{
	(void)state;
	unsigned char b[1200], body[600];
	sockit_proxy_hdr h;
	/* TCP over IPv4 with two TLVs (ALPN "h2", a NOOP of 0 bytes). */
	unsigned char a4[] = {192,  0,	  2,	7, 198, 51,  100, 1,	0xdc, 0x04,
			      0x01, 0xbb, 0x01, 0, 2,	'h', '2', 0x04, 0,    0};
	size_t n = v2(b, 0x21, 0x11, a4, sizeof(a4));
	assert_int_equal(sockit_proxy_parse(b, n, &h), (int)n);
	assert_int_equal(h.version, 2);
	assert_int_equal(h.local, 0);
	assert_int_equal(h.transport, SOCK_STREAM);
	addr_is(&h.src, "192.0.2.7:56324");
	addr_is(&h.dst, "198.51.100.1:443");
	whole_and_prefixes(b, n);

	/* UDP over IPv6. */
	memset(body, 0, 36);
	body[15] = 1;			  /* ::1 */
	body[16] = 0x20, body[17] = 0x01; /* 2001:: */
	body[32] = 0x30, body[33] = 0x39; /* 12345 */
	body[34] = 0x00, body[35] = 0x35; /* 53 */
	n = v2(b, 0x21, 0x22, body, 36);
	assert_int_equal(sockit_proxy_parse(b, n, &h), (int)n);
	assert_int_equal(h.transport, SOCK_DGRAM);
	addr_is(&h.src, "[::1]:12345");
	addr_is(&h.dst, "[2001::]:53");

	/* Unix stream. */
	memset(body, 0, 216);
	strcpy((char *)body, "/run/client.sock");
	strcpy((char *)body + 108, "/run/server.sock");
	n = v2(b, 0x21, 0x31, body, 216);
	assert_int_equal(sockit_proxy_parse(b, n, &h), (int)n);
	assert_int_equal(h.src.ss.ss_family, AF_UNIX);
	assert_string_equal(((struct sockaddr_un *)&h.src.ss)->sun_path, "/run/client.sock");
	assert_string_equal(((struct sockaddr_un *)&h.dst.ss)->sun_path, "/run/server.sock");

	/* LOCAL (HAProxy's health check): no address, even if some is sent. */
	n = v2(b, 0x20, 0x00, NULL, 0);
	assert_int_equal(sockit_proxy_parse(b, n, &h), 16);
	assert_int_equal(h.local, 1);
	assert_int_equal(h.transport, 0);
	n = v2(b, 0x20, 0x11, a4, 12);
	assert_int_equal(sockit_proxy_parse(b, n, &h), 28);
	assert_int_equal(h.local, 1);
	/* PROXY with UNSPEC: the receiver uses the real addresses. */
	n = v2(b, 0x21, 0x00, "\x00\x00\x00", 3); /* one empty TLV */
	assert_int_equal(sockit_proxy_parse(b, n, &h), 19);
	assert_int_equal(h.local, 1);
}

static void test_v2_bad(void **state)
{
	(void)state;
	unsigned char b[70000], body[64] = {0};
	size_t n;
	n = v2(b, 0x11, 0x11, body, 12); /* version 1 in a v2 header */
	assert_int_equal(sockit_proxy_parse(b, n, NULL), SOCKIT_PROXY_BAD);
	n = v2(b, 0x22, 0x11, body, 12); /* command 2 */
	assert_int_equal(sockit_proxy_parse(b, n, NULL), SOCKIT_PROXY_BAD);
	n = v2(b, 0x21, 0x41, body, 12); /* family 4 */
	assert_int_equal(sockit_proxy_parse(b, n, NULL), SOCKIT_PROXY_BAD);
	n = v2(b, 0x21, 0x13, body, 12); /* transport 3 */
	assert_int_equal(sockit_proxy_parse(b, n, NULL), SOCKIT_PROXY_BAD);
	n = v2(b, 0x21, 0x11, body, 11); /* addresses cut */
	assert_int_equal(sockit_proxy_parse(b, n, NULL), SOCKIT_PROXY_BAD);
	n = v2(b, 0x21, 0x21, body, 35);
	assert_int_equal(sockit_proxy_parse(b, n, NULL), SOCKIT_PROXY_BAD);
	unsigned char tl[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 5, 'a', 'b'};
	n = v2(b, 0x21, 0x11, tl, sizeof(tl)); /* a TLV running past the end */
	assert_int_equal(sockit_proxy_parse(b, n, NULL), SOCKIT_PROXY_BAD);
	n = v2(b, 0x21, 0x11, tl, 14); /* two stray bytes: no room for a TLV */
	assert_int_equal(sockit_proxy_parse(b, n, NULL), SOCKIT_PROXY_BAD);
	/* Oversized: refused from the fixed part alone, without waiting. */
	memcpy(b, V2SIG, 12);
	b[12] = 0x21, b[13] = 0x11, b[14] = 0xff, b[15] = 0xff;
	assert_int_equal(sockit_proxy_parse(b, 16, NULL), SOCKIT_PROXY_BAD);
	b[14] = (SOCKIT_PROXY_MAX - 16 + 1) >> 8, b[15] = (SOCKIT_PROXY_MAX - 16 + 1) & 0xff;
	assert_int_equal(sockit_proxy_parse(b, 16, NULL), SOCKIT_PROXY_BAD);
	/* A signature that goes wrong in its last byte. */
	memcpy(b, V2SIG, 12);
	b[11] = 'X';
	assert_int_equal(sockit_proxy_parse(b, 12, NULL), SOCKIT_PROXY_BAD);
	assert_int_equal(sockit_proxy_parse(b, 11, NULL), SOCKIT_PROXY_INCOMPLETE);
	assert_int_equal(sockit_proxy_parse(NULL, 4, NULL), SOCKIT_PROXY_BAD);
	assert_int_equal(sockit_proxy_parse(b, 0, NULL), SOCKIT_PROXY_INCOMPLETE);
}

static void roundtrip(int version, const char *src, const char *dst, const char *want_src)
{
	sockit_addr s, d;
	assert_int_equal(sockit_addr_parse(src, &s), 0);
	assert_int_equal(sockit_addr_parse(dst, &d), 0);
	unsigned char buf[SOCKIT_PROXY_FORMAT_MAX];
	int n = sockit_proxy_format(version, &s, &d, buf, sizeof(buf));
	assert_true(n > 0);
	sockit_proxy_hdr h;
	assert_int_equal(sockit_proxy_parse(buf, (size_t)n, &h), n);
	assert_int_equal(h.version, version);
	addr_is(&h.src, want_src);
	assert_int_equal(sockit_proxy_format(version, &s, &d, buf, (size_t)n - 1), -ENOSPC);
}

static void test_format(void **state)
{
	(void)state;
	roundtrip(1, "127.0.0.7:4000", "127.0.0.1:1234", "127.0.0.7:4000");
	roundtrip(2, "127.0.0.7:4000", "127.0.0.1:1234", "127.0.0.7:4000");
	roundtrip(1, "[::1]:4000", "[::1]:1234", "[::1]:4000");
	roundtrip(2, "[2001:db8::5]:1", "[::1]:1234", "[2001:db8::5]:1");
	/* A mapped address is announced as IPv4. */
	roundtrip(1, "[::ffff:10.1.2.3]:80", "127.0.0.1:1234", "10.1.2.3:80");
	char line[64];
	sockit_addr s, d;
	sockit_addr_parse("10.0.0.1:5", &s);
	sockit_addr_parse("10.0.0.2:6", &d);
	assert_int_equal(sockit_proxy_format(1, &s, &d, line, sizeof(line)), 34);
	assert_memory_equal(line, "PROXY TCP4 10.0.0.1 10.0.0.2 5 6\r\n", 34);
	/* LOCAL / UNKNOWN. */
	unsigned char buf[64];
	sockit_proxy_hdr h;
	assert_int_equal(sockit_proxy_format(2, NULL, NULL, buf, sizeof(buf)), 16);
	assert_int_equal(sockit_proxy_parse(buf, 16, &h), 16);
	assert_int_equal(h.local, 1);
	assert_int_equal(sockit_proxy_format(1, NULL, NULL, buf, sizeof(buf)), 15);
	/* Mixed families and bad versions. */
	sockit_addr six;
	sockit_addr_parse("[2001:db8::1]:5", &six);
	assert_int_equal(sockit_proxy_format(1, &s, &six, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(sockit_proxy_format(3, &s, &d, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(sockit_proxy_format(2, &s, NULL, buf, sizeof(buf)), -EINVAL);
}

/* Headers that end at a PROT_NONE page: the parser never reads past len. */
static void test_guard_page(void **state)
{
	(void)state;
	long pg = sysconf(_SC_PAGESIZE);
	unsigned char *m = mmap(NULL, 2 * (size_t)pg, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(m != MAP_FAILED);
	assert_int_equal(mprotect(m + pg, (size_t)pg, PROT_NONE), 0);
	const char *l = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
	unsigned char v[16 + 12];
	unsigned char a4[12] = {1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2};
	size_t vn = v2(v, 0x21, 0x11, a4, 12);
	const struct {
		const void *p;
		size_t n;
	} hs[] = {{l, strlen(l)}, {v, vn}};
	for (size_t k = 0; k < 2; k++)
		for (size_t i = 0; i <= hs[k].n; i++) {
			unsigned char *at = m + pg - i;
			memcpy(at, hs[k].p, i);
			int rc = sockit_proxy_parse(at, i, NULL);
			assert_int_equal(rc, i == hs[k].n ? (int)i : SOCKIT_PROXY_INCOMPLETE);
		}
	munmap(m, 2 * (size_t)pg);
}

/* Properties over mutated headers: never more consumed than given, and a
 * header parsed once parses the same from a longer buffer. */
static void test_mutations(void **state)
{
	(void)state;
	unsigned char seed[2][64], buf[128];
	const char *l = "PROXY TCP6 2001:db8::1 ::1 65535 0\r\n";
	size_t ln = strlen(l);
	memcpy(seed[0], l, ln);
	unsigned char a4[] = {1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2, 4, 0, 1, 9};
	size_t vn = v2(seed[1], 0x21, 0x11, a4, sizeof(a4));
	size_t lens[2] = {ln, vn};
	unsigned rnd = 12345;
	for (int it = 0; it < 200000; it++) {
		int k = it & 1;
		size_t n = lens[k];
		memcpy(buf, seed[k], n);
		for (int flips = 1 + (it % 3); flips > 0; flips--) {
			rnd = rnd * 1103515245u + 12345u;
			buf[(rnd >> 8) % n] = (unsigned char)(rnd >> 20);
		}
		rnd = rnd * 1103515245u + 12345u;
		size_t cut = (rnd >> 8) % (n + 1);
		int rc = sockit_proxy_parse(buf, cut, NULL);
		assert_true(rc == SOCKIT_PROXY_BAD || rc == SOCKIT_PROXY_INCOMPLETE ||
			    (rc > 0 && (size_t)rc <= cut));
		if (rc > 0) {
			sockit_proxy_hdr h;
			memset(buf + cut, 'Z', sizeof(buf) - cut);
			assert_int_equal(sockit_proxy_parse(buf, sizeof(buf), &h), rc);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1),	  cmocka_unit_test(test_v1_bad),
		cmocka_unit_test(test_v2),	  cmocka_unit_test(test_v2_bad),
		cmocka_unit_test(test_format),	  cmocka_unit_test(test_guard_page),
		cmocka_unit_test(test_mutations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
