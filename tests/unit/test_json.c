/* test_json.c -- the one JSON string escaper of every command. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"

static void test_escape(void **state)
{
	(void)state;
	char b[64];
	assert_int_equal(json_escape(b, sizeof(b), "plain"), 5);
	assert_string_equal(b, "plain");
	json_escape(b, sizeof(b), "a\"b\\c\nd\re\tf\x01g\x7f");
	assert_string_equal(b, "a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u007f");
	json_escape(b, sizeof(b), "h\xc3\xa9");
	assert_string_equal(b, "h\xc3\xa9"); /* UTF-8 passes */
}

static void test_cut_never_inside_an_escape(void **state)
{
	(void)state;
	char b[4];
	/* "ab" fits, the \n's two bytes would need 5 with the NUL: cut before it. */
	assert_int_equal(json_escape(b, sizeof(b), "ab\n"), 4);
	assert_string_equal(b, "ab");
	assert_int_equal(json_escape(b, 0, "x"), 1);
}

static void test_put_str(void **state)
{
	(void)state;
	char out[64] = {0};
	FILE *f = fmemopen(out, sizeof(out) - 1, "w");
	assert_non_null(f);
	json_put_str(f, "q\"\n");
	fputc(' ', f);
	json_put_str(f, NULL);
	fclose(f);
	assert_string_equal(out, "\"q\\\"\\n\" null");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_cut_never_inside_an_escape),
		cmocka_unit_test(test_put_str),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
