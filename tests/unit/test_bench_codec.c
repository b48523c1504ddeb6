/* test_bench_codec.c -- bench's request template and reply checker (codec.c): id
 * formatting, in-place matches, the pure checker's verdicts, escaping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"

static void test_id_format_is_hex(void **state)
{
	(void)state;
	uint64_t v = 0x9e3779b97f4a7c15ull;
	for (int i = 0; i < 20000; i++) {
		v ^= v << 13, v ^= v >> 7, v ^= v << 17;
		uint64_t id = i < 16 ? (uint64_t)i * 0x1111111111111111ull : v >> (i % 64);
		char want[17], got[17];
		snprintf(want, sizeof(want), "%016llx", (unsigned long long)id);
		for (size_t len = 8; len <= 16; len++) {
			memset(got, 'X', sizeof(got));
			bench_id_format(got, len, id);
			if (memcmp(got, want + 16 - len, len) != 0 || got[len] != 'X') {
				print_error("id %016llx len %zu: got %.*s\n",
					    (unsigned long long)id, len, (int)len, got);
				fail();
			}
		}
	}
}

/* Counting up by 1 << shift in text agrees with formatting each number. */
static void test_id_next_counts(void **state)
{
	(void)state;
	for (unsigned shift = 0; shift < 70; shift += 3) {
		for (size_t len = 8; len <= 16; len += 8) {
			uint64_t id = shift < 64 ? 0xfffffff0ull << (shift % 32) : 0;
			id |= 5; /* low bits, as thread/slot bits, never change */
			char txt[16], want[16];
			bench_id_format(txt, len, id);
			for (int i = 0; i < 3000; i++) {
				bench_id_next(txt, len, shift);
				if (shift < 64)
					id += 1ull << shift;
				bench_id_format(want, len, id);
				if (memcmp(txt, want, len) != 0) {
					print_error("shift %u len %zu step %d: %.*s != %.*s\n",
						    shift, len, i, (int)len, txt, (int)len, want);
					fail();
				}
			}
		}
	}
}

static void test_template_and_match(void **state)
{
	(void)state;
	struct bench_tmpl tm;
	assert_int_equal(bench_tmpl_init(&tm, 40, 1, "Received: ", 10), 0);
	assert_int_equal(tm.id_len, 16);
	assert_int_equal(tm.reply_len, 50);
	assert_int_equal(tm.msg[39], '\n');
	assert_null(memchr(tm.msg, '\n', 39)); /* one line per request */

	char id[16], req[40], reply[50];
	bench_id_format(id, tm.id_len, 0xabcdef0123456789ull);
	memcpy(req, tm.msg, 40);
	memcpy(req, id, 16);
	memcpy(reply, "Received: ", 10);
	memcpy(reply + 10, req, 40);

	assert_true(bench_reply_match(&tm, id, 0, reply, 50));
	/* any split into chunks matches */
	for (size_t cut = 1; cut < 50; cut++) {
		assert_true(bench_reply_match(&tm, id, 0, reply, cut));
		assert_true(bench_reply_match(&tm, id, cut, reply + cut, 50 - cut));
	}
	/* any single changed byte is caught, whole or in chunks */
	for (size_t i = 0; i < 50; i++) {
		reply[i] ^= 0x20;
		assert_false(bench_reply_match(&tm, id, 0, reply, 50));
		size_t cut = i / 2;
		assert_false(bench_reply_match(&tm, id, 0, reply, cut) &&
			     bench_reply_match(&tm, id, cut, reply + cut, 50 - cut));
		reply[i] ^= 0x20;
	}
	/* another request's id is a mismatch */
	char other[16];
	bench_id_format(other, tm.id_len, 0xabcdef0123456788ull);
	assert_false(bench_reply_match(&tm, other, 0, reply, 50));
	bench_tmpl_free(&tm);

	/* echo: no prefix; a short request has a shorter id */
	assert_int_equal(bench_tmpl_init(&tm, 9, 1, "", 0), 0);
	assert_int_equal(tm.id_len, 8);
	assert_int_equal(tm.reply_len, 9);
	bench_tmpl_free(&tm);
}

/* The pure checker: verified (reply_len, extra bytes left to the caller),
 * incomplete (-2) for every proper prefix, mismatch (-1) for any change. */
static void test_reply_check_verdicts(void **state)
{
	(void)state;
	struct bench_tmpl tm;
	assert_int_equal(bench_tmpl_init(&tm, 20, 0, "OK ", 3), 0);
	char id[16], reply[40];
	bench_id_format(id, tm.id_len, 0x1234);
	assert_int_equal(bench_reply_expected(&tm, id, 0, reply, sizeof(reply)), 23);
	assert_memory_equal(reply, "OK ", 3);
	assert_memory_equal(reply + 3, id, 16);
	reply[23] = 'x'; /* a byte past the reply */

	assert_int_equal(bench_reply_check(&tm, id, reply, 23), 23);
	assert_int_equal(bench_reply_check(&tm, id, reply, 24), 23);
	for (size_t n = 0; n < 23; n++)
		assert_int_equal(bench_reply_check(&tm, id, reply, n), -2);
	for (size_t i = 0; i < 23; i++) {
		reply[i] ^= 1;
		assert_int_equal(bench_reply_check(&tm, id, reply, 23), -1);
		assert_int_equal(bench_reply_check(&tm, id, reply, i + 1), -1);
		assert_int_equal(bench_reply_diff(&tm, id, 0, reply, 23), i);
		reply[i] ^= 1;
	}
	assert_int_equal(bench_reply_diff(&tm, id, 0, reply, 23), 23);
	assert_int_equal(bench_reply_diff(&tm, id, 0, reply, 24), 23); /* past the end */
	assert_int_equal(bench_reply_diff(&tm, id, 5, reply + 5, 18), 18);
	char tail[8];
	assert_int_equal(bench_reply_expected(&tm, id, 20, tail, sizeof(tail)), 3);
	assert_int_equal(bench_reply_expected(&tm, id, 23, tail, sizeof(tail)), 0);
	bench_tmpl_free(&tm);
}

/* What a fuzzer will do: random bytes, random lengths; the verdict must
 * agree with a plain comparison and nothing may be read out of bounds. */
static void test_reply_check_random(void **state)
{
	(void)state;
	struct bench_tmpl tm;
	assert_int_equal(bench_tmpl_init(&tm, 12, 1, "Received: ", 10), 0);
	char id[16], want[22];
	bench_id_format(id, tm.id_len, 0xfeedbeefull);
	bench_reply_expected(&tm, id, 0, want, sizeof(want));
	uint64_t v = 88172645463325252ull;
	for (int i = 0; i < 20000; i++) {
		v ^= v << 13, v ^= v >> 7, v ^= v << 17;
		size_t n = v % 30;
		char *got = malloc(n ? n : 1);
		if (got == NULL)
			abort(); /* out of memory: nothing left to test */
		memcpy(got, want, n < 22 ? n : 22);
		for (size_t j = 22; j < n; j++)
			got[j] = 'z';
		if (n > 0 && (v >> 8) % 3 == 0)
			got[(v >> 16) % n] = (char)(v >> 24);
		size_t k = n < 22 ? n : 22;
		long expect = memcmp(got, want, k) != 0 ? -1 : n < 22 ? -2 : 22;
		long rc = bench_reply_check(&tm, id, got, n);
		if (rc != expect) {
			print_error("n %zu: got %ld, want %ld\n", n, rc, expect);
			fail();
		}
		free(got);
	}
	bench_tmpl_free(&tm);
}

static void test_id_parse(void **state)
{
	(void)state;
	uint64_t id = 0;
	assert_int_equal(bench_id_parse("00ff10ab", 8, &id), 0);
	assert_int_equal(id, 0xff10ab);
	assert_int_equal(bench_id_parse("00fF10ab", 8, &id), -1); /* lowercase only */
	assert_int_equal(bench_id_parse("0g", 2, &id), -1);
}

static void test_escape_is_bounded(void **state)
{
	(void)state;
	char out[32];
	assert_int_equal(bench_escape(out, sizeof(out), "ab\n\"\\\x01\xff", 7), 7);
	assert_string_equal(out, "ab\\n\\\"\\\\\\x01\\xff");
	assert_int_equal(bench_escape(out, sizeof(out), "a\0b", 3), 3);
	assert_string_equal(out, "a\\x00b");
	/* never cuts an escape in half */
	assert_int_equal(bench_escape(out, 4, "a\x01", 2), 1);
	assert_string_equal(out, "a");
	assert_int_equal(bench_escape(out, 1, "abc", 3), 0);
	assert_string_equal(out, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_id_format_is_hex),
		cmocka_unit_test(test_id_next_counts),
		cmocka_unit_test(test_template_and_match),
		cmocka_unit_test(test_reply_check_verdicts),
		cmocka_unit_test(test_reply_check_random),
		cmocka_unit_test(test_id_parse),
		cmocka_unit_test(test_escape_is_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
