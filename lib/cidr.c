/* cidr.c -- CIDR blocks for allow/deny lists: strict parsing, v4/v6 matching. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "sockit.h"

/* The IPv4-mapped prefix ::ffff:0:0/96. */
static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int sockit_cidr_parse(const char *s, sockit_cidr *out)
{
	if (s == NULL || out == NULL)
		return -EINVAL;
	char ip[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	size_t iplen = slash != NULL ? (size_t)(slash - s) : strlen(s);
	if (iplen == 0 || iplen >= sizeof(ip))
		return -EINVAL;
	memcpy(ip, s, iplen);
	ip[iplen] = '\0';

	sockit_cidr c = {0};
	unsigned max;
	if (inet_pton(AF_INET, ip, c.addr) == 1) {
		c.family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, ip, c.addr) == 1) {
		c.family = AF_INET6;
		max = 128;
	} else {
		return -EINVAL;
	}
	c.prefix = max;
	if (slash != NULL) {
		const char *p = slash + 1;
		size_t n = strlen(p);
		if (n == 0 || n > 3 || strspn(p, "0123456789") != n)
			return -EINVAL;
		unsigned v = 0;
		for (; *p != '\0'; p++)
			v = v * 10 + (unsigned)(*p - '0');
		if (v > max)
			return -EINVAL;
		c.prefix = v;
	}
	/* Clear the host bits. */
	for (unsigned i = 0; i < 16; i++) {
		unsigned bit = i * 8;
		if (bit >= c.prefix)
			c.addr[i] = 0;
		else if (c.prefix - bit < 8)
			c.addr[i] &= (uint8_t)(0xff << (8 - (c.prefix - bit)));
	}
	*out = c;
	return 0;
}

/* 1 if the first prefix bits of x and y agree. */
static int prefix_equal(const uint8_t *x, const uint8_t *y, unsigned prefix)
{
	unsigned bytes = prefix / 8, rem = prefix % 8;
	if (memcmp(x, y, bytes) != 0)
		return 0;
	if (rem == 0)
		return 1;
	uint8_t mask = (uint8_t)(0xff << (8 - rem));
	return (x[bytes] & mask) == (y[bytes] & mask);
}

int sockit_cidr_match(const sockit_cidr *c, const sockit_addr *a)
{
	if (c == NULL || a == NULL)
		return 0;
	uint8_t v6[16];
	const uint8_t *v4 = NULL;
	if (a->ss.ss_family == AF_INET && a->len >= sizeof(struct sockaddr_in)) {
		v4 = (const uint8_t *)&((const struct sockaddr_in *)&a->ss)->sin_addr;
		memcpy(v6, v4mapped, 12);
		memcpy(v6 + 12, v4, 4);
	} else if (a->ss.ss_family == AF_INET6 && a->len >= sizeof(struct sockaddr_in6)) {
		memcpy(v6, &((const struct sockaddr_in6 *)&a->ss)->sin6_addr, 16);
		if (memcmp(v6, v4mapped, 12) == 0)
			v4 = v6 + 12;
	} else {
		return 0;
	}
	if (c->family == AF_INET)
		return v4 != NULL && c->prefix <= 32 && prefix_equal(c->addr, v4, c->prefix);
	if (c->family == AF_INET6)
		return c->prefix <= 128 && prefix_equal(c->addr, v6, c->prefix);
	return 0;
}
