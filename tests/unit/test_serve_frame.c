/* test_serve_frame.c -- line_frame(): serve's line framer, pure, at its edges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "serve.h"
#include "testutil.h"

static void want_frame(const char *buf, size_t len, size_t max_line, ssize_t want)
{
	ssize_t got = line_frame(buf, len, max_line);
	if (got != want)
		fail_msg("line_frame(\"%.*s\", %zu, %zu) = %zd, want %zd", (int)len,
			 buf != NULL ? buf : "", len, max_line, got, want);
}

static void test_pipelined_lines(void **state)
{
	(void)state;
	const char *in = "one\ntwo\nthree\npart";
	size_t len = strlen(in), off = 0;
	const ssize_t want[] = {4, 4, 6};
	for (size_t i = 0; i < 3; i++) {
		want_frame(in + off, len - off, 100, want[i]);
		off += (size_t)want[i];
	}
	want_frame(in + off, len - off, 100, -2); /* "part": incomplete */
}

static void test_crlf_is_kept(void **state)
{
	(void)state;
	want_frame("hi\r\nnext", 8, 100, 4);
	want_frame("\r\n", 2, 100, 2);
	want_frame("\n", 1, 100, 1); /* an empty line */
}

static void test_max_line_edges(void **state)
{
	(void)state;
	char buf[16];
	memset(buf, 'x', sizeof(buf));
	buf[8] = '\n';
	want_frame(buf, 9, 8, 9);  /* exactly max_line bytes, then '\n' */
	want_frame(buf, 9, 7, -1); /* max_line + 1 bytes before the '\n' */
	want_frame(buf, 8, 8, -2); /* max_line bytes, no '\n' yet: may still fit */
	want_frame(buf, 8, 7, -1); /* max_line + 1 bytes, no '\n': too long already */
	want_frame(buf, 16, 8, 9);
	want_frame("\n", 1, 0, 1); /* max_line 0: only an empty line fits */
	want_frame("x\n", 2, 0, -1);
}

static void test_no_newline_and_empty(void **state)
{
	(void)state;
	want_frame("abc", 3, 100, -2);
	want_frame("", 0, 100, -2);
	want_frame(NULL, 0, 100, -2);
	want_frame("", 0, 0, -2);
}

/* The framer reads no byte past max_line + 1 or len: a buffer that ends
 * at a guard page (ASan and UBSan catch the rest). */
static void test_guard_page(void **state)
{
	(void)state;
	long page = sysconf(_SC_PAGESIZE);
	char *map = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(map != MAP_FAILED);
	assert_int_equal(mprotect(map + page, (size_t)page, PROT_NONE), 0);
	char *end = map + page;
	memset(map, 'y', (size_t)page);
	for (size_t n = 0; n <= 64; n++) {
		want_frame(end - n, n, 1000, -2);
		want_frame(end - n, n, n > 0 ? n - 1 : 0, n > 0 ? -1 : -2);
	}
	end[-1] = '\n';
	want_frame(end - 10, 10, 1000, 10);
	munmap(map, (size_t)page * 2);
}

/* Framing a random buffer, then putting the frames and the incomplete
 * rest back together, gives the input; every frame ends with its only
 * '\n' and is at most max_line + 1 bytes. */
static void test_frames_concatenate_to_input(void **state)
{
	(void)state;
	unsigned seed = 19;
	char in[512], out[512];
	for (int round = 0; round < 2000; round++) {
		size_t len = (size_t)(rand_r(&seed) % sizeof(in));
		size_t max_line = (size_t)(rand_r(&seed) % 40);
		for (size_t i = 0; i < len; i++)
			in[i] = rand_r(&seed) % 8 == 0 ? '\n' : (char)('a' + rand_r(&seed) % 26);
		size_t off = 0, outlen = 0;
		for (;;) {
			ssize_t n = line_frame(in + off, len - off, max_line);
			if (n < 0) {
				assert_true(n == -2 || n == -1);
				if (n == -2)
					assert_true(len - off <= max_line);
				/* -1: the rest is kept whole (a caller refuses it) */
				memcpy(out + outlen, in + off, len - off);
				outlen += len - off;
				break;
			}
			assert_true(n >= 1 && (size_t)n <= max_line + 1);
			if (n == 0 || (size_t)n > len - off) { /* not a frame of the rest */
				fail_msg("line_frame gave %zd for %zu bytes", n, len - off);
				break;
			}
			assert_true(in[off + (size_t)n - 1] == '\n');
			assert_null(memchr(in + off, '\n', (size_t)n - 1));
			memcpy(out + outlen, in + off, (size_t)n);
			outlen += (size_t)n;
			off += (size_t)n;
		}
		assert_int_equal(outlen, len);
		assert_memory_equal(out, in, len);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pipelined_lines),
		cmocka_unit_test(test_crlf_is_kept),
		cmocka_unit_test(test_max_line_edges),
		cmocka_unit_test(test_no_newline_and_empty),
		cmocka_unit_test(test_guard_page),
		cmocka_unit_test(test_frames_concatenate_to_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
