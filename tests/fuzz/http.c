/* http.c -- fuzz the metrics endpoint's request reader http_request_parse (cmd/common/http.c).
 *
 * Properties: the result is -1, -2 or a length in 1..len ending in the
 * empty line; the request's method (A-Z) and path ('/'...) point inside the
 * head; every shorter prefix of an accepted head is incomplete; more bytes
 * after it change nothing; a bad head stays bad with more bytes, an
 * incomplete one was incomplete one byte earlier too; out == NULL gives the
 * same answer; nothing past len is read (the input is an exact-size block).
 */
#include "http.h"
#include "fuzz.h"

static int same_req(const struct http_req *a, const struct http_req *b)
{
	return a->method == b->method && a->method_len == b->method_len && a->path == b->path &&
	       a->path_len == b->path_len && a->minor == b->minor && a->has_body == b->has_body;
}

static void check_head(const char *buf, int r, const struct http_req *req)
{
	size_t n = (size_t)r;
	FUZZ_CHECK(n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0);
	FUZZ_CHECK(req->method == buf && req->method_len > 0 && req->method_len < n);
	for (size_t i = 0; i < req->method_len; i++)
		FUZZ_CHECK(buf[i] >= 'A' && buf[i] <= 'Z');
	FUZZ_CHECK(req->path > buf && req->path + req->path_len <= buf + n);
	FUZZ_CHECK(req->path[0] == '/' && req->path_len > 0);
	FUZZ_CHECK(memchr(req->path, '?', req->path_len) == NULL);
	FUZZ_CHECK(req->minor >= 0 && req->minor <= 9);
	FUZZ_CHECK(http_req_is(req, "GET", "/metrics") ==
		   (req->method_len == 3 && memcmp(buf, "GET", 3) == 0 && req->path_len == 8 &&
		    memcmp(req->path, "/metrics", 8) == 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 40000)
		return 0;
	char *buf = fuzz_dup(data, size);
	struct http_req req, req2;
	int r = http_request_parse(buf, size, &req);
	FUZZ_CHECK(r == HTTP_BAD || r == HTTP_INCOMPLETE || (r > 0 && (size_t)r <= size));
	FUZZ_CHECK(http_request_parse(buf, size, NULL) == r);
	/* The same bytes with more after them, in a bigger block. */
	char *more = malloc(size + 64);
	memcpy(more, buf, size);
	memset(more + size, 'A', 62);
	memcpy(more + size + 62, "\r\n", 2);
	int r2 = http_request_parse(more, size + 64, &req2);
	if (r > 0) {
		check_head(buf, r, &req);
		FUZZ_CHECK(r2 == r);
		req2.method = req2.method - more + buf;
		req2.path = req2.path - more + buf;
		FUZZ_CHECK(same_req(&req, &req2));
		size_t cuts[] = {(size_t)r - 1, (size_t)r - 2, (size_t)r / 2, 1, 0};
		for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
			if (cuts[i] < (size_t)r)
				FUZZ_CHECK(http_request_parse(buf, cuts[i], NULL) ==
					   HTTP_INCOMPLETE);
	} else if (r == HTTP_BAD) {
		FUZZ_CHECK(r2 == HTTP_BAD);
	} else if (size > 0) {
		FUZZ_CHECK(http_request_parse(buf, size - 1, NULL) == HTTP_INCOMPLETE);
	}
	free(more);
	free(buf);
	return 0;
}
