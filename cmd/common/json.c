/* json.c -- JSON strings, escaped one way for every command's output. */
#include <stdio.h>
#include <string.h>

#include "json.h"

/* The escape of byte c into out (at most 7 bytes, no NUL); its length. */
static size_t escape_byte(unsigned char c, char out[8])
{
	switch (c) {
	case '"':
		return memcpy(out, "\\\"", 2), 2;
	case '\\':
		return memcpy(out, "\\\\", 2), 2;
	case '\n':
		return memcpy(out, "\\n", 2), 2;
	case '\r':
		return memcpy(out, "\\r", 2), 2;
	case '\t':
		return memcpy(out, "\\t", 2), 2;
	default:
		if (c < 0x20 || c == 0x7f)
			return (size_t)snprintf(out, 8, "\\u%04x", c);
		out[0] = (char)c;
		return 1;
	}
}

size_t json_escape(char *dst, size_t cap, const char *s)
{
	size_t need = 0, used = 0;
	int full = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		char e[8];
		size_t n = escape_byte(*p, e);
		if (!full && used + n < cap) {
			memcpy(dst + used, e, n);
			used += n;
		} else {
			full = 1; /* never half an escape */
		}
		need += n;
	}
	if (cap > 0)
		dst[used] = '\0';
	return need;
}

void json_put_str(FILE *f, const char *s)
{
	if (s == NULL) {
		fputs("null", f);
		return;
	}
	putc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		char e[8];
		fwrite(e, 1, escape_byte(*p, e), f);
	}
	putc('"', f);
}
