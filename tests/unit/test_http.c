/* test_http.c -- the metrics endpoint's request reader: forms, every prefix, limits, a guard page.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "http.h"

static void test_forms(void **state)
{
	(void)state;
	struct http_req r;
	const char *a = "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\nrest";
	int n = http_request_parse(a, strlen(a), &r);
	assert_int_equal(n, (int)strlen(a) - 4);
	assert_true(http_req_is(&r, "GET", "/metrics"));
	assert_false(http_req_is(&r, "GET", "/metric"));
	assert_int_equal(r.minor, 1);
	assert_int_equal(r.has_body, 0);
	for (size_t i = 0; i < (size_t)n; i++)
		assert_int_equal(http_request_parse(a, i, NULL), HTTP_INCOMPLETE);

	const char *b = "HEAD /healthz?probe=1 HTTP/1.0\r\n\r\n";
	assert_int_equal(http_request_parse(b, strlen(b), &r), (int)strlen(b));
	assert_true(http_req_is(&r, "HEAD", "/healthz"));
	assert_int_equal(r.minor, 0);

	const char *c = "POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
	assert_true(http_request_parse(c, strlen(c), &r) > 0);
	assert_int_equal(r.has_body, 1);
	const char *d = "GET / HTTP/1.1\r\ncontent-length: 0\r\n\r\n";
	assert_true(http_request_parse(d, strlen(d), &r) > 0);
	assert_int_equal(r.has_body, 0);
}

static void test_bad(void **state)
{
	(void)state;
	static const char *bad[] = {
		"\r\n\r\n",
		"GET /metrics\r\n\r\n",
		"GET /metrics HTTP/2.0\r\n\r\n",
		"GET metrics HTTP/1.1\r\n\r\n",
		"get /metrics HTTP/1.1\r\n\r\n",
		"GET  /metrics HTTP/1.1\r\n\r\n",
		"GET /metrics HTTP/1.1\n\n",
		"GET /metrics HTTP/1.1\r\nNoColon\r\n\r\n",
		"GET /metrics HTTP/1.1\r\nBad Name: v\r\n\r\n",
		"GET /m\x01 HTTP/1.1\r\n\r\n",
		"GET /metrics HTTP/1.1\rX",
		"\x16\x03\x01\x02\x00", /* a TLS ClientHello */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (http_request_parse(bad[i], strlen(bad[i]), NULL) != HTTP_BAD)
			fail_msg("%zu accepted or incomplete: %d", i,
				 http_request_parse(bad[i], strlen(bad[i]), NULL));
	/* A line past 8 KiB is refused before its end arrives. */
	size_t n = 9000;
	char *big = malloc(n);
	assert_non_null(big);
	memcpy(big, "GET /", 5);
	memset(big + 5, 'a', n - 5);
	assert_int_equal(http_request_parse(big, n, NULL), HTTP_BAD);
	/* Endless small headers are refused too. */
	size_t m = 40000;
	char *many = malloc(m);
	assert_non_null(many);
	strcpy(many, "GET / HTTP/1.1\r\n");
	for (size_t p = strlen(many); p + 6 < m; p += 6)
		memcpy(many + p, "a: b\r\n", 6);
	assert_int_equal(http_request_parse(many, m - 6, NULL), HTTP_BAD);
	free(many);
	free(big);
}

static void test_guard_page(void **state)
{
	(void)state;
	long pg = sysconf(_SC_PAGESIZE);
	char *m = mmap(NULL, 2 * (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	assert_true(m != MAP_FAILED);
	assert_int_equal(mprotect(m + pg, (size_t)pg, PROT_NONE), 0);
	const char *a = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
	size_t n = strlen(a);
	for (size_t i = 0; i <= n; i++) {
		char *at = m + pg - i;
		memcpy(at, a, i);
		assert_int_equal(http_request_parse(at, i, NULL),
				 i == n ? (int)n : HTTP_INCOMPLETE);
	}
	munmap(m, 2 * (size_t)pg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forms),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_guard_page),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
