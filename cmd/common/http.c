/* http.c -- the smallest HTTP/1.x request reader, for the metrics endpoint. */
#include <string.h>
#include <strings.h>

#include "http.h"

#define LINE_MAX_BYTES 8192

/* The end of the line starting at p (the index of its '\r'), -2 if no
 * CRLF yet, -1 if a byte is not allowed in a request head. */
static long line_end(const char *buf, size_t len, size_t p)
{
	for (size_t i = p; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (i - p > LINE_MAX_BYTES)
			return HTTP_BAD;
		if (c == '\r') {
			if (i + 1 == len)
				return HTTP_INCOMPLETE;
			return buf[i + 1] == '\n' ? (long)i : HTTP_BAD;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return HTTP_BAD; /* a bare LF included */
	}
	return len - p > LINE_MAX_BYTES ? HTTP_BAD : HTTP_INCOMPLETE;
}

static int request_line(const char *l, size_t n, struct http_req *r)
{
	const char *sp1 = memchr(l, ' ', n);
	if (sp1 == NULL || sp1 == l)
		return HTTP_BAD;
	const char *t = sp1 + 1;
	const char *sp2 = memchr(t, ' ', n - (size_t)(t - l));
	if (sp2 == NULL || sp2 == t || *t != '/')
		return HTTP_BAD;
	const char *v = sp2 + 1;
	size_t vn = n - (size_t)(v - l);
	if (vn != 8 || memcmp(v, "HTTP/1.", 7) != 0 || v[7] < '0' || v[7] > '9')
		return HTTP_BAD;
	for (const char *m = l; m < sp1; m++)
		if (*m < 'A' || *m > 'Z')
			return HTTP_BAD;
	r->method = l;
	r->method_len = (size_t)(sp1 - l);
	r->path = t;
	const char *q = memchr(t, '?', (size_t)(sp2 - t));
	r->path_len = (size_t)((q != NULL ? q : sp2) - t);
	r->minor = v[7] - '0';
	return 0;
}

/* A header line: "Name: value".  Notes a body. */
static int header_line(const char *l, size_t n, struct http_req *r)
{
	const char *colon = memchr(l, ':', n);
	if (colon == NULL || colon == l)
		return HTTP_BAD;
	size_t name = (size_t)(colon - l);
	for (size_t i = 0; i < name; i++)
		if (l[i] == ' ' || l[i] == '\t')
			return HTTP_BAD;
	const char *v = colon + 1;
	while (v < l + n && (*v == ' ' || *v == '\t'))
		v++;
	size_t vn = (size_t)(l + n - v);
	if (name == 17 && strncasecmp(l, "Transfer-Encoding", 17) == 0)
		r->has_body = 1;
	if (name == 14 && strncasecmp(l, "Content-Length", 14) == 0 && !(vn == 1 && v[0] == '0'))
		r->has_body = 1;
	return 0;
}

int http_request_parse(const char *buf, size_t len, struct http_req *out)
{
	struct http_req r = {0};
	size_t p = 0;
	for (int first = 1;; first = 0) {
		long e = line_end(buf, len, p);
		if (e < 0)
			return (int)e;
		size_t n = (size_t)e - p;
		if (n == 0) {
			if (first)
				return HTTP_BAD; /* no request line */
			if (out != NULL)
				*out = r;
			return (int)(e + 2);
		}
		int rc = first ? request_line(buf + p, n, &r) : header_line(buf + p, n, &r);
		if (rc < 0)
			return rc;
		p = (size_t)e + 2;
		if (p > 4 * LINE_MAX_BYTES)
			return HTTP_BAD;
	}
}

int http_req_is(const struct http_req *r, const char *m, const char *p)
{
	size_t mn = strlen(m), pn = strlen(p);
	return r->method_len == mn && memcmp(r->method, m, mn) == 0 && r->path_len == pn &&
	       memcmp(r->path, p, pn) == 0;
}
