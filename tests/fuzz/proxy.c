/* proxy.c -- fuzz the PROXY v1/v2 header parser sockit_proxy_parse (lib/proxy.c).
 *
 * Properties: never more consumed than given, never more than
 * SOCKIT_PROXY_MAX; every shorter prefix of an accepted header is
 * INCOMPLETE; more bytes after it change neither the length nor the
 * header; BAD stays BAD with more bytes, INCOMPLETE was INCOMPLETE a byte
 * earlier; out == NULL gives the same answer; a header is coherent
 * (version, local <=> transport 0, src and dst of one family, v1 only
 * TCP over IPv4/IPv6); what sockit_proxy_format writes for it parses back
 * to the same addresses; nothing past len is read (exact-size block).
 */
#include <netinet/in.h>
#include <sys/un.h>

#include "fuzz.h"
#include "sockit_proxy.h"

static void check_header(const sockit_proxy_hdr *h)
{
	FUZZ_CHECK(h->version == 1 || h->version == 2);
	if (h->local) {
		FUZZ_CHECK(h->transport == 0);
		return;
	}
	int f = h->src.ss.ss_family;
	FUZZ_CHECK(h->transport == SOCK_STREAM || h->transport == SOCK_DGRAM);
	FUZZ_CHECK(f == h->dst.ss.ss_family && h->src.len == h->dst.len);
	FUZZ_CHECK(f == AF_INET || f == AF_INET6 || f == AF_UNIX);
	if (h->version == 1)
		FUZZ_CHECK(f != AF_UNIX && h->transport == SOCK_STREAM);
	char text[SOCKIT_ADDRSTRLEN];
	FUZZ_CHECK(sockit_addr_format(&h->src, text, sizeof(text)) >= 0);
	FUZZ_CHECK(sockit_addr_format(&h->dst, text, sizeof(text)) >= 0);
}

static int is_mapped(const sockit_addr *a)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a->ss;
	return a->ss.ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr);
}

/* Formats h in its version and parses it back: the same addresses.  An
 * IPv6 header with one IPv4-mapped address and one not has no form that
 * sockit_proxy_format writes (mapped counts as IPv4): skipped. */
static void check_roundtrip(const sockit_proxy_hdr *h)
{
	unsigned char buf[SOCKIT_PROXY_FORMAT_MAX];
	sockit_proxy_hdr back;
	if (!h->local && is_mapped(&h->src) != is_mapped(&h->dst))
		return;
	int n = h->local ? sockit_proxy_format(h->version, NULL, NULL, buf, sizeof(buf))
			 : sockit_proxy_format(h->version, &h->src, &h->dst, buf, sizeof(buf));
	FUZZ_CHECK(n > 0 && (size_t)n <= sizeof(buf));
	FUZZ_CHECK(sockit_proxy_parse(buf, (size_t)n, &back) == n);
	FUZZ_CHECK(back.version == h->version && back.local == h->local);
	if (!h->local) {
		FUZZ_CHECK(fuzz_addr_same(&back.src, &h->src));
		FUZZ_CHECK(fuzz_addr_same(&back.dst, &h->dst));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 2 * SOCKIT_PROXY_MAX)
		return 0;
	unsigned char *buf = fuzz_dup(data, size);
	sockit_proxy_hdr h, h2;
	memset(&h, 0, sizeof(h));
	memset(&h2, 0, sizeof(h2));
	int r = sockit_proxy_parse(buf, size, &h);
	FUZZ_CHECK(r == SOCKIT_PROXY_BAD || r == SOCKIT_PROXY_INCOMPLETE ||
		   (r > 0 && (size_t)r <= size && r <= SOCKIT_PROXY_MAX));
	FUZZ_CHECK(sockit_proxy_parse(buf, size, NULL) == r);
	unsigned char *more = malloc(size + 16);
	memcpy(more, buf, size);
	memcpy(more + size, "PROXY \r\n\r\n\0\r\nQUIT", 16);
	int r2 = sockit_proxy_parse(more, size + 16, &h2);
	if (r > 0) {
		check_header(&h);
		FUZZ_CHECK(r2 == r && memcmp(&h, &h2, sizeof(h)) == 0);
		for (int k = 0; k < r; k++)
			FUZZ_CHECK(sockit_proxy_parse(buf, (size_t)k, NULL) ==
				   SOCKIT_PROXY_INCOMPLETE);
		check_roundtrip(&h);
	} else if (r == SOCKIT_PROXY_BAD) {
		FUZZ_CHECK(r2 == SOCKIT_PROXY_BAD);
	} else if (size > 0) {
		FUZZ_CHECK(sockit_proxy_parse(buf, size - 1, NULL) == SOCKIT_PROXY_INCOMPLETE);
	}
	free(more);
	free(buf);
	return 0;
}
