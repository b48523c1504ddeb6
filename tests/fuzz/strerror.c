/* strerror.c -- fuzz sockit_strerror (lib/error.c) over any int.
 *
 * Properties: never NULL, never empty, short, NUL-terminated, no control
 * bytes; "success" for 0; a code outside every range says "unknown error
 * CODE".  The initialiser also sweeps every code from -25000 to 100 and
 * the ends of int, so the known ranges are all seen once per run.
 */
#include <limits.h>

#include "fuzz.h"
#include "sockit_tls.h"

static void check(int code)
{
	const char *s = sockit_strerror(code);
	FUZZ_CHECK(s != NULL);
	size_t n = strnlen(s, 128);
	FUZZ_CHECK(n > 0 && n < 128);
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK((unsigned char)s[i] >= 0x20);
	if (code == 0)
		FUZZ_CHECK(strcmp(s, "success") == 0);
	if (code > 0 || (code < -4096 && !SOCKIT_IS_EAI(code) && !SOCKIT_IS_TLS(code))) {
		char want[40];
		snprintf(want, sizeof(want), "unknown error %d", code);
		FUZZ_CHECK(strcmp(s, want) == 0);
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	for (int c = -25000; c <= 100; c++)
		check(c);
	for (int i = 0; i < 1000; i++) {
		check(INT_MIN + i);
		check(INT_MAX - i);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int code = 0;
	memcpy(&code, data, size < sizeof(code) ? size : sizeof(code));
	check(code);
	if (size > sizeof(code))
		check(-(code & 0xffff)); /* the small negative codes, often */
	return 0;
}
