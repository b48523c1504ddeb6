/* http.h -- the smallest HTTP/1.x request reader: enough for GET /metrics and /healthz.
 *
 * A pure function in picohttpparser's style: no I/O, no allocation; the
 * caller reads into a bounded buffer and calls again with more bytes.
 * Only what a scraper or a load balancer's health check sends is taken:
 * a request line and headers ending in an empty line, no body.
 */
#ifndef SOCKIT_HTTP_H
#define SOCKIT_HTTP_H

#include <stddef.h>

#define HTTP_INCOMPLETE (-2)
#define HTTP_BAD (-1)

struct http_req {
	const char *method; /* into the caller's buffer, not NUL-terminated */
	size_t method_len;
	const char *path; /* the target without its query string */
	size_t path_len;
	int minor;    /* HTTP/1.minor */
	int has_body; /* Content-Length > 0 or Transfer-Encoding: refused by callers */
};

/* Reads the request head at buf[0..len).  Returns its length (request
 * line + headers + the empty line; > 0, <= len), HTTP_INCOMPLETE while
 * buf is a valid beginning, or HTTP_BAD (not HTTP/1.x, a control byte, a
 * bare LF line ending, a line over 8 KiB).  out is written only on > 0. */
int http_request_parse(const char *buf, size_t len, struct http_req *out);

/* 1 if the request's method is m and its path is p. */
int http_req_is(const struct http_req *r, const char *m, const char *p);

#endif /* SOCKIT_HTTP_H */
