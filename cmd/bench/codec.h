/* codec.h -- bench's request template and reply checker: pure, no I/O, no allocation
 * after bench_tmpl_init.
 *
 * A request is the template's msg with its first id_len bytes replaced by
 * the request's id in lowercase hex; its expected reply is expect (= prefix
 * + msg) with the same replacement at id_off = prefix_len.  Every function
 * but bench_tmpl_init/free only reads its arguments. */
#ifndef SOCKIT_BENCH_CODEC_H
#define SOCKIT_BENCH_CODEC_H

#include <stddef.h>
#include <stdint.h>

struct bench_tmpl {
	char *msg;
	size_t size; /* bytes per request ('\n' included when lined) */
	char *expect;
	size_t reply_len;
	size_t id_off;
	size_t id_len; /* 8..16 hex digits */
};

/* Builds the template for size-byte requests (the last byte '\n' when
 * lined; size >= 8 + lined) and replies prefix + request.  Returns 0 or
 * -ENOMEM; bench_tmpl_free releases it (and is safe on a zeroed tm). */
int bench_tmpl_init(struct bench_tmpl *tm, size_t size, int lined, const char *prefix,
		    size_t prefix_len);
void bench_tmpl_free(struct bench_tmpl *tm);

/* Writes id as id_len lowercase hex digits (the low 4 * id_len bits). */
void bench_id_format(char *dst, size_t id_len, uint64_t id);

/* Adds 1 << shift to the id_len hex digits at txt (wrapping like the
 * number's low 4 * id_len bits): the text of the next id, without
 * formatting it anew. */
void bench_id_next(char *txt, size_t id_len, unsigned shift);

/* Parses len lowercase hex digits at p into *id; returns 0 or -1. */
int bench_id_parse(const char *p, size_t len, uint64_t *id);

/* The hot path: 1 if data[0..n) equals bytes off..off+n of the expected
 * reply to the request whose id text is idtxt (off + n <= reply_len). */
int bench_reply_match(const struct bench_tmpl *tm, const char *idtxt, size_t off, const char *data,
		      size_t n);

/* The reply checker (picohttpparser style), for a reply received from its
 * start: returns reply_len when data begins with the whole expected reply
 * (bytes after it are the caller's to judge), -2 when data[0..n) is a
 * proper prefix of it (incomplete), -1 on a mismatch. */
long bench_reply_check(const struct bench_tmpl *tm, const char *idtxt, const char *data, size_t n);

/* Where data[0..n), read at offset off of the reply, first departs from
 * the expected reply: an index into data, or n if it does not.  Bytes past
 * the reply's end depart. */
size_t bench_reply_diff(const struct bench_tmpl *tm, const char *idtxt, size_t off,
			const char *data, size_t n);

/* Copies up to len bytes of the expected reply from offset off into dst;
 * returns the count (0 past the end). */
size_t bench_reply_expected(const struct bench_tmpl *tm, const char *idtxt, size_t off, char *dst,
			    size_t len);

/* Writes src[0..n) into dst for a message, as C would write it: printable
 * ASCII as is, \" \\ \n \r \t, other bytes \xNN.  Stops before an escape
 * that would not fit; dst is NUL-terminated when cap > 0.  Returns the
 * bytes of src written. */
size_t bench_escape(char *dst, size_t cap, const char *src, size_t n);

#endif /* SOCKIT_BENCH_CODEC_H */
