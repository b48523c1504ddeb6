/* cidr.c -- fuzz sockit_cidr_parse and sockit_cidr_match.
 *
 * Properties: accepted exactly when a plain reading accepts (inet_pton on
 * the part before '/', a prefix of 1..3 digits within the family's width);
 * the host bits come back cleared; the block prints (inet_ntop + "/prefix")
 * and parses back to itself; its network address matches the block, as do
 * an address differing only in host bits and (for IPv4) the IPv4-mapped
 * IPv6 form; an address differing in a prefix bit does not; the address
 * given, with its host bits, matches its own block.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>

#include "fuzz.h"

/* The plain reading: 0 and *c as the parser should give, or -1. */
static int reference(const char *s, sockit_cidr *c, uint8_t raw[16])
{
	char ip[64];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	if (n == 0 || n >= 46)
		return -1;
	memcpy(ip, s, n);
	ip[n] = '\0';
	memset(c, 0, sizeof(*c));
	memset(raw, 0, 16);
	if (inet_pton(AF_INET, ip, raw) == 1)
		c->family = AF_INET;
	else if (inet_pton(AF_INET6, ip, raw) == 1)
		c->family = AF_INET6;
	else
		return -1;
	unsigned max = c->family == AF_INET ? 32 : 128;
	c->prefix = max;
	if (slash) {
		const char *p = slash + 1;
		size_t d = strlen(p);
		if (d < 1 || d > 3 || strspn(p, "0123456789") != d || (unsigned)atoi(p) > max)
			return -1;
		c->prefix = (unsigned)atoi(p);
	}
	for (unsigned bit = 0; bit < 128; bit++)
		if (bit < max && bit < c->prefix)
			c->addr[bit / 8] |= (uint8_t)(raw[bit / 8] & (0x80 >> (bit % 8)));
	return 0;
}

static void to_addr(int family, const uint8_t bytes[16], sockit_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, bytes, 4);
		a->len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;
		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, bytes, 16);
		a->len = sizeof(*sin6);
	}
}

static void check_matches(const sockit_cidr *c, const uint8_t raw[16], uint8_t pick)
{
	unsigned max = c->family == AF_INET ? 32 : 128;
	sockit_addr a;
	uint8_t b[16];
	to_addr(c->family, c->addr, &a);
	FUZZ_CHECK(sockit_cidr_match(c, &a) == 1);
	to_addr(c->family, raw, &a);
	FUZZ_CHECK(sockit_cidr_match(c, &a) == 1);
	if (c->prefix < max) { /* a host bit flipped: still inside */
		unsigned bit = c->prefix + pick % (max - c->prefix);
		memcpy(b, c->addr, 16);
		b[bit / 8] ^= (uint8_t)(0x80 >> (bit % 8));
		to_addr(c->family, b, &a);
		FUZZ_CHECK(sockit_cidr_match(c, &a) == 1);
	}
	if (c->prefix > 0) { /* a prefix bit flipped: outside */
		unsigned bit = pick % c->prefix;
		memcpy(b, c->addr, 16);
		b[bit / 8] ^= (uint8_t)(0x80 >> (bit % 8));
		to_addr(c->family, b, &a);
		FUZZ_CHECK(sockit_cidr_match(c, &a) == 0);
	}
	if (c->family == AF_INET) { /* ::ffff:a.b.c.d matches; IPv4 blocks only */
		uint8_t m[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		memcpy(m + 12, c->addr, 4);
		to_addr(AF_INET6, m, &a);
		FUZZ_CHECK(sockit_cidr_match(c, &a) == 1);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 200)
		return 0;
	char *s = fuzz_cstr(data + 1, size - 1);
	sockit_cidr c, want, back;
	uint8_t raw[16];
	memset(&c, 0x5a, sizeof(c));
	int rc = sockit_cidr_parse(s, &c);
	int ref = reference(s, &want, raw);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL);
	FUZZ_CHECK((rc == 0) == (ref == 0));
	if (rc == 0) {
		FUZZ_CHECK(c.family == want.family && c.prefix == want.prefix);
		FUZZ_CHECK(memcmp(c.addr, want.addr, 16) == 0);
		char text[80], ip[INET6_ADDRSTRLEN];
		FUZZ_CHECK(inet_ntop(c.family, c.addr, ip, sizeof(ip)) != NULL);
		snprintf(text, sizeof(text), "%s/%u", ip, c.prefix);
		FUZZ_CHECK(sockit_cidr_parse(text, &back) == 0);
		FUZZ_CHECK(memcmp(&back, &c, sizeof(c)) == 0);
		check_matches(&c, raw, data[0]);
	}
	free(s);
	return 0;
}
