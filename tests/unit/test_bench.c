/* test_bench.c -- the bench's request template: id formatting and in-place reply checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "bench.h"

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
	struct bench_config cfg = {.mode = BENCH_LINE, .size = 40, .prefix = "Received: "};
	cfg.prefix_len = strlen(cfg.prefix);
	struct bench_tmpl tm;
	assert_int_equal(bench_tmpl_init(&tm, &cfg), 0);
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
	cfg.mode = BENCH_ECHO;
	cfg.prefix_len = 0;
	cfg.size = 9;
	assert_int_equal(bench_tmpl_init(&tm, &cfg), 0);
	assert_int_equal(tm.id_len, 8);
	assert_int_equal(tm.reply_len, 9);
	bench_tmpl_free(&tm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_id_format_is_hex),
		cmocka_unit_test(test_id_next_counts),
		cmocka_unit_test(test_template_and_match),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
