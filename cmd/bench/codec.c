/* codec.c -- bench's request template and reply checker: pure, no I/O. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

int bench_tmpl_init(struct bench_tmpl *tm, size_t size, int lined, const char *prefix,
		    size_t prefix_len)
{
	size_t nl = lined ? 1 : 0;
	memset(tm, 0, sizeof(*tm));
	tm->size = size;
	tm->id_off = prefix_len;
	tm->id_len = size - nl < 16 ? size - nl : 16;
	tm->reply_len = prefix_len + size;
	tm->msg = malloc(size);
	tm->expect = malloc(tm->reply_len);
	if (tm->msg == NULL || tm->expect == NULL) {
		bench_tmpl_free(tm);
		return -ENOMEM;
	}
	/* id digits (zeros here), then a-z repeating, then the newline */
	memset(tm->msg, '0', tm->id_len);
	for (size_t i = tm->id_len; i < size; i++)
		tm->msg[i] = (char)('a' + (i - tm->id_len) % 26);
	if (nl)
		tm->msg[size - 1] = '\n';
	memcpy(tm->expect, prefix, prefix_len);
	memcpy(tm->expect + prefix_len, tm->msg, size);
	return 0;
}

void bench_tmpl_free(struct bench_tmpl *tm)
{
	free(tm->msg);
	free(tm->expect);
	tm->msg = tm->expect = NULL;
}

/* 8 nibbles (the low 32 bits of v) as 8 hex digits, most significant first,
 * without a loop: spread a nibble per byte, add '0' or 'a' - 10. */
static uint64_t hex8(uint64_t v)
{
	uint64_t x = v & 0xffffffffu;
	x = ((x & 0xffff0000u) << 16) | (x & 0xffffu);
	x = ((x & 0x0000ff000000ff00ull) << 8) | (x & 0x000000ff000000ffull);
	x = ((x & 0x00f000f000f000f0ull) << 4) | (x & 0x000f000f000f000full);
	uint64_t letters = ((x + 0x0606060606060606ull) >> 4) & 0x0101010101010101ull;
	x += 0x3030303030303030ull + 0x27 * letters;
	return __builtin_bswap64(x); /* byte 0 = the most significant digit */
}

void bench_id_format(char *dst, size_t id_len, uint64_t id)
{
	char buf[16];
	uint64_t hi = hex8(id >> 32), lo = hex8(id);
	memcpy(buf, &hi, 8);
	memcpy(buf + 8, &lo, 8);
	memcpy(dst, buf + 16 - id_len, id_len);
}

void bench_id_next(char *txt, size_t id_len, unsigned shift)
{
	static const char hex[] = "0123456789abcdef";
	unsigned add = 1u << (shift % 4);
	for (size_t d = shift / 4; d < id_len; d++) {
		char *ch = &txt[id_len - 1 - d];
		unsigned v =
			(*ch <= '9' ? (unsigned)(*ch - '0') : (unsigned)(*ch - 'a') + 10) + add;
		*ch = hex[v & 15];
		if (v < 16)
			return;
		add = 1; /* carry */
	}
}

int bench_id_parse(const char *p, size_t len, uint64_t *id)
{
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)p[i];
		unsigned d = 16;
		if (ch >= '0' && ch <= '9')
			d = (unsigned)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			d = (unsigned)(ch - 'a') + 10;
		if (d > 15)
			return -1;
		v = v << 4 | d;
	}
	*id = v;
	return 0;
}

int bench_reply_match(const struct bench_tmpl *tm, const char *idtxt, size_t off, const char *data,
		      size_t n)
{
	const size_t a = tm->id_off, b = tm->id_off + tm->id_len;
	if (off == 0 && n == tm->reply_len) { /* the usual case: the whole reply at once */
		if (tm->id_len == 16) {
			uint64_t x[2], y[2];
			memcpy(x, data + a, 16);
			memcpy(y, idtxt, 16);
			if (((x[0] ^ y[0]) | (x[1] ^ y[1])) != 0)
				return 0;
		} else if (memcmp(data + a, idtxt, tm->id_len) != 0) {
			return 0;
		}
		return memcmp(data, tm->expect, a) == 0 &&
		       (n == b || memcmp(data + b, tm->expect + b, n - b) == 0);
	}
	if (off < a) {
		size_t k = n < a - off ? n : a - off;
		if (memcmp(data, tm->expect + off, k) != 0)
			return 0;
		off += k, data += k, n -= k;
	}
	if (n > 0 && off < b) {
		size_t k = n < b - off ? n : b - off;
		if (memcmp(data, idtxt + (off - a), k) != 0)
			return 0;
		off += k, data += k, n -= k;
	}
	return n == 0 || memcmp(data, tm->expect + off, n) == 0;
}

/* Byte i of the expected reply (i < reply_len). */
static char expected_at(const struct bench_tmpl *tm, const char *idtxt, size_t i)
{
	if (i >= tm->id_off && i < tm->id_off + tm->id_len)
		return idtxt[i - tm->id_off];
	return tm->expect[i];
}

size_t bench_reply_diff(const struct bench_tmpl *tm, const char *idtxt, size_t off,
			const char *data, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (off + i >= tm->reply_len || data[i] != expected_at(tm, idtxt, off + i))
			return i;
	return n;
}

long bench_reply_check(const struct bench_tmpl *tm, const char *idtxt, const char *data, size_t n)
{
	size_t k = n < tm->reply_len ? n : tm->reply_len;
	if (!bench_reply_match(tm, idtxt, 0, data, k))
		return -1;
	return n < tm->reply_len ? -2 : (long)tm->reply_len;
}

size_t bench_reply_expected(const struct bench_tmpl *tm, const char *idtxt, size_t off, char *dst,
			    size_t len)
{
	size_t k = 0;
	for (; k < len && off + k < tm->reply_len; k++)
		dst[k] = expected_at(tm, idtxt, off + k);
	return k;
}

size_t bench_escape(char *dst, size_t cap, const char *src, size_t n)
{
	size_t o = 0, i = 0;
	if (cap == 0)
		return 0;
	for (; i < n; i++) {
		unsigned char ch = (unsigned char)src[i];
		char esc[8];
		const char *e = strchr("\"\\\n\r\t", ch);
		if (ch != 0 && e != NULL)
			snprintf(esc, sizeof(esc), "\\%c", "\"\\nrt"[e - "\"\\\n\r\t"]);
		else if (ch < 0x20 || ch >= 0x7f)
			snprintf(esc, sizeof(esc), "\\x%02x", ch);
		else
			esc[0] = (char)ch, esc[1] = '\0';
		size_t len = strlen(esc);
		if (o + len >= cap)
			break;
		memcpy(dst + o, esc, len);
		o += len;
	}
	dst[o] = '\0';
	return i;
}
