/* json.c -- fuzz the JSON escaper json_escape / json_put_str (cmd/common/json.c).
 *
 * Byte 0 is the output buffer's size (an exact-size block), the rest the
 * string.  Properties: the result is the whole escaped length; a buffer
 * that fits gets all of it, one that does not gets a NUL-terminated
 * prefix of it cut between escapes; the output has no raw control byte
 * and no unescaped quote, and unescaping it (\" \\ \n \r \t \u00XX) gives
 * the input back; json_put_str writes the same between quotes.
 */
#include "json.h"
#include "fuzz.h"

/* Undoes the escapes into out (as big as s); its length, or -1. */
static long unescape(const char *s, char *out)
{
	size_t o = 0;
	for (const char *p = s; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		FUZZ_CHECK(c >= 0x20 && c != 0x7f && c != '"');
		if (c != '\\') {
			out[o++] = (char)c;
			continue;
		}
		switch (*++p) {
		case '"':
		case '\\':
			out[o++] = *p;
			break;
		case 'n':
			out[o++] = '\n';
			break;
		case 'r':
			out[o++] = '\r';
			break;
		case 't':
			out[o++] = '\t';
			break;
		case 'u': {
			unsigned v;
			if (sscanf(p + 1, "%4x", &v) != 1 || strncmp(p + 1, "00", 2) != 0)
				return -1;
			out[o++] = (char)v;
			p += 4;
			break;
		}
		default:
			return -1;
		}
	}
	return (long)o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 2000)
		return 0;
	size_t cap = data[0];
	char *s = fuzz_cstr(data + 1, size - 1);
	size_t n = strlen(s);
	char *full = malloc(6 * n + 1), *cut = malloc(cap > 0 ? cap : 1);
	size_t need = json_escape(full, 6 * n + 1, s);
	FUZZ_CHECK(need == strlen(full) && need <= 6 * n);
	char *back = malloc(n + 1);
	FUZZ_CHECK(unescape(full, back) == (long)n && memcmp(back, s, n) == 0);

	FUZZ_CHECK(json_escape(cut, cap, s) == need);
	if (cap > 0) {
		size_t got = strlen(cut);
		FUZZ_CHECK(got < cap && strncmp(cut, full, got) == 0);
		FUZZ_CHECK(need < cap ? got == need : unescape(cut, back) >= 0);
		FUZZ_CHECK(need < cap || got + 6 >= cap); /* cut only for want of room */
	}

	char *mem = NULL;
	size_t memlen = 0;
	FILE *f = open_memstream(&mem, &memlen);
	json_put_str(f, s);
	fclose(f);
	FUZZ_CHECK(memlen == need + 2 && mem[0] == '"' && mem[need + 1] == '"');
	FUZZ_CHECK(memcmp(mem + 1, full, need) == 0);
	free(mem);
	free(back);
	free(cut);
	free(full);
	free(s);
	return 0;
}
