/* frame.c -- fuzz serve's line framer line_frame (cmd/serve/frame.c).
 *
 * Bytes 0-1 are max_line (0..4095), the rest the stream.  Properties: the
 * frames taken one after the other, then the rest, rebuild the input; each
 * frame ends in its only '\n' and holds at most max_line bytes before it;
 * -2 only when no '\n' is left and the rest fits in max_line; -1 only when
 * max_line + 1 bytes pass without a '\n'; and the framer reads at most
 * max_line + 1 bytes (each call gets a block of exactly that many).
 */
#include <sys/types.h>

#include "fuzz.h"
#include "serve.h"

/* line_frame on a copy of at most max_line + 1 bytes of p, but told len:
 * a read past what the contract allows is an ASan report. */
static ssize_t frame_bounded(const char *p, size_t len, size_t max_line)
{
	size_t keep = len < max_line + 1 ? len : max_line + 1;
	char *copy = fuzz_dup((const uint8_t *)p, keep);
	ssize_t r = line_frame(copy, len, max_line);
	free(copy);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t max_line = (size_t)(data[0] | data[1] << 8) % 4096;
	size_t len = size - 2;
	const char *in = fuzz_dup(data + 2, len);
	char *out = malloc(len + 1);
	size_t p = 0, o = 0;
	for (;;) {
		ssize_t r = line_frame(in + p, len - p, max_line);
		FUZZ_CHECK(r == frame_bounded(in + p, len - p, max_line));
		if (r > 0) {
			size_t n = (size_t)r;
			FUZZ_CHECK(n <= len - p && n <= max_line + 1);
			FUZZ_CHECK(in[p + n - 1] == '\n' && memchr(in + p, '\n', n - 1) == NULL);
			memcpy(out + o, in + p, n);
			o += n, p += n;
			continue;
		}
		FUZZ_CHECK(r == -1 || r == -2);
		size_t rest = len - p, seen = rest < max_line + 1 ? rest : max_line + 1;
		FUZZ_CHECK(memchr(in + p, '\n', seen) == NULL);
		if (r == -2)
			FUZZ_CHECK(rest <= max_line);
		else
			FUZZ_CHECK(rest > max_line);
		memcpy(out + o, in + p, rest);
		o += rest;
		break;
	}
	FUZZ_CHECK(o == len && memcmp(out, in, len) == 0);
	free(out);
	free((void *)in);
	return 0;
}
