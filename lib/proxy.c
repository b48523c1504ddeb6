/* proxy.c -- the PROXY protocol, v1 and v2: a parser and a writer, no I/O. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "sockit_proxy.h"

static const unsigned char v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
					 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
static const char v1_sig[6] = "PROXY ";

#define V1_MAX 107 /* the whole line, CRLF included */
#define V2_FIXED 16

/* 1 if the len bytes at p are a prefix of sig (of length n). */
static int prefix_of(const unsigned char *p, size_t len, const void *sig, size_t n)
{
	return memcmp(p, sig, len < n ? len : n) == 0;
}

/* ---- v1: "PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n" ---------------------- */

/* Cuts the next space-separated field of line (NUL-terminated) at *pos
 * into f; 0, or -1 if empty or too long. */
static int v1_field(const char *line, size_t *pos, char *f, size_t flen)
{
	size_t i = *pos, n = 0;
	while (line[i] != '\0' && line[i] != ' ') {
		if (n + 1 >= flen)
			return -1;
		f[n++] = line[i++];
	}
	if (n == 0)
		return -1;
	f[n] = '\0';
	if (line[i] == ' ')
		i++;
	*pos = i;
	return 0;
}

static int v1_port(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 5)
		return -1;
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v <= 65535 ? v : -1;
}

static int v1_addr(int family, const char *ip, const char *port, sockit_addr *out)
{
	int p = v1_port(port);
	if (p < 0)
		return -1;
	memset(out, 0, sizeof(*out));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
		if (inet_pton(AF_INET, ip, &sin->sin_addr) != 1)
			return -1;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)p);
		out->len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;
		if (inet_pton(AF_INET6, ip, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)p);
		out->len = sizeof(*sin6);
	}
	return 0;
}

static int parse_v1(const unsigned char *p, size_t len, sockit_proxy_hdr *out)
{
	const unsigned char *crlf = memmem(p, len < V1_MAX ? len : V1_MAX, "\r\n", 2);
	if (crlf == NULL)
		return len >= V1_MAX ? SOCKIT_PROXY_BAD : SOCKIT_PROXY_INCOMPLETE;
	size_t end = (size_t)(crlf - p);
	char line[V1_MAX];
	memcpy(line, p, end);
	line[end] = '\0';
	if (memchr(line, '\0', end) != NULL)
		return SOCKIT_PROXY_BAD;
	size_t pos = sizeof(v1_sig);
	char proto[8], src[48], dst[48], sport[8], dport[8];
	if (v1_field(line, &pos, proto, sizeof(proto)) < 0)
		return SOCKIT_PROXY_BAD;
	sockit_proxy_hdr h = {.version = 1};
	if (strcmp(proto, "UNKNOWN") == 0) {
		/* The rest of the line says nothing the receiver may use. */
		h.local = 1;
	} else {
		int family = strcmp(proto, "TCP4") == 0	  ? AF_INET
			     : strcmp(proto, "TCP6") == 0 ? AF_INET6
							  : -1;
		if (family < 0 || v1_field(line, &pos, src, sizeof(src)) < 0 ||
		    v1_field(line, &pos, dst, sizeof(dst)) < 0 ||
		    v1_field(line, &pos, sport, sizeof(sport)) < 0 ||
		    v1_field(line, &pos, dport, sizeof(dport)) < 0 || line[pos] != '\0' ||
		    line[end - 1] == ' ' || v1_addr(family, src, sport, &h.src) < 0 ||
		    v1_addr(family, dst, dport, &h.dst) < 0)
			return SOCKIT_PROXY_BAD;
		h.transport = SOCK_STREAM;
	}
	if (out != NULL)
		*out = h;
	return (int)end + 2;
}

/* ---- v2: signature, ver_cmd, fam, len, addresses, TLVs --------------------- */

static uint16_t get16(const unsigned char *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* Reads the addresses of family fam (high nibble of the fam byte) from a,
 * which holds n bytes; 0, or -1 if they do not fit. */
static int v2_addrs(unsigned fam, const unsigned char *a, size_t n, sockit_proxy_hdr *h)
{
	memset(&h->src, 0, sizeof(h->src));
	memset(&h->dst, 0, sizeof(h->dst));
	if (fam == 1) { /* AF_INET: 4 + 4 + 2 + 2 */
		if (n < 12)
			return -1;
		struct sockaddr_in *s = (struct sockaddr_in *)&h->src.ss;
		struct sockaddr_in *d = (struct sockaddr_in *)&h->dst.ss;
		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, a, 4);
		memcpy(&d->sin_addr, a + 4, 4);
		memcpy(&s->sin_port, a + 8, 2);
		memcpy(&d->sin_port, a + 10, 2);
		h->src.len = h->dst.len = sizeof(struct sockaddr_in);
	} else if (fam == 2) { /* AF_INET6: 16 + 16 + 2 + 2 */
		if (n < 36)
			return -1;
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&h->src.ss;
		struct sockaddr_in6 *d = (struct sockaddr_in6 *)&h->dst.ss;
		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, a, 16);
		memcpy(&d->sin6_addr, a + 16, 16);
		memcpy(&s->sin6_port, a + 32, 2);
		memcpy(&d->sin6_port, a + 34, 2);
		h->src.len = h->dst.len = sizeof(struct sockaddr_in6);
	} else { /* AF_UNIX: 108 + 108, NUL-padded paths (a leading NUL: abstract) */
		struct sockaddr_un *s = (struct sockaddr_un *)&h->src.ss;
		struct sockaddr_un *d = (struct sockaddr_un *)&h->dst.ss;
		if (n < 216 || sizeof(s->sun_path) < 108)
			return -1;
		s->sun_family = d->sun_family = AF_UNIX;
		memcpy(s->sun_path, a, 108);
		memcpy(d->sun_path, a + 108, 108);
		h->src.len = h->dst.len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 108);
	}
	return 0;
}

/* The TLVs in t[0..n) must tile it exactly: type (1), length (2), value. */
static int v2_tlvs_ok(const unsigned char *t, size_t n)
{
	size_t i = 0;
	while (i < n) {
		if (n - i < 3)
			return 0;
		size_t vlen = get16(t + i + 1);
		if (vlen > n - i - 3)
			return 0;
		i += 3 + vlen;
	}
	return 1;
}

static int parse_v2(const unsigned char *p, size_t len, sockit_proxy_hdr *out)
{
	if (len < V2_FIXED)
		return SOCKIT_PROXY_INCOMPLETE;
	unsigned ver = p[12] >> 4, cmd = p[12] & 0xf, fam = p[13] >> 4, proto = p[13] & 0xf;
	size_t total = V2_FIXED + (size_t)get16(p + 14);
	if (ver != 2 || cmd > 1 || fam > 3 || proto > 2 || total > SOCKIT_PROXY_MAX)
		return SOCKIT_PROXY_BAD;
	if (len < total)
		return SOCKIT_PROXY_INCOMPLETE;
	sockit_proxy_hdr h = {.version = 2};
	static const size_t addr_len[4] = {0, 12, 36, 216};
	const unsigned char *body = p + V2_FIXED;
	size_t blen = total - V2_FIXED;
	if (cmd == 0 || fam == 0 || proto == 0) {
		/* LOCAL (health checks), or a family or transport the sender
		 * could not name: the connection's own addresses stand. */
		h.local = 1;
	} else {
		if (v2_addrs(fam, body, blen, &h) < 0)
			return SOCKIT_PROXY_BAD;
		h.transport = proto == 1 ? SOCK_STREAM : SOCK_DGRAM;
	}
	/* With LOCAL the block may still carry addresses (ignored); TLVs
	 * follow the addresses the family implies, whatever the command. */
	size_t skip = addr_len[fam];
	if (skip > blen || !v2_tlvs_ok(body + skip, blen - skip))
		return SOCKIT_PROXY_BAD;
	if (out != NULL)
		*out = h;
	return (int)total;
}

int sockit_proxy_parse(const void *buf, size_t len, sockit_proxy_hdr *out)
{
	const unsigned char *p = buf;
	if (p == NULL || len == 0)
		return p == NULL && len > 0 ? SOCKIT_PROXY_BAD : SOCKIT_PROXY_INCOMPLETE;
	if (p[0] == v1_sig[0]) {
		if (!prefix_of(p, len, v1_sig, sizeof(v1_sig)))
			return SOCKIT_PROXY_BAD;
		return len < sizeof(v1_sig) ? SOCKIT_PROXY_INCOMPLETE : parse_v1(p, len, out);
	}
	if (!prefix_of(p, len, v2_sig, sizeof(v2_sig)))
		return SOCKIT_PROXY_BAD;
	return parse_v2(p, len, out);
}

/* ---- Writing ---------------------------------------------------------------- */

/* a as IPv4 if it is AF_INET or IPv4-mapped IPv6: the address in *v4 (network
 * order) and the port; 1 if so, else 0. */
static int as_v4(const sockit_addr *a, struct in_addr *v4, uint16_t *port)
{
	if (a->ss.ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)&a->ss;
		*v4 = s->sin_addr;
		*port = s->sin_port;
		return 1;
	}
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a->ss;
	if (a->ss.ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		memcpy(v4, &s6->sin6_addr.s6_addr[12], 4);
		*port = s6->sin6_port;
		return 1;
	}
	return 0;
}

/* The family both share for the header: AF_INET (also mapped), AF_INET6,
 * AF_UNIX; -1 if they differ or are none of these. */
static int common_family(const sockit_addr *src, const sockit_addr *dst)
{
	struct in_addr x;
	uint16_t port;
	int s4 = as_v4(src, &x, &port), d4 = as_v4(dst, &x, &port);
	if (s4 && d4)
		return AF_INET;
	if (s4 || d4 || src->ss.ss_family != dst->ss.ss_family)
		return -1;
	int f = src->ss.ss_family;
	return f == AF_INET6 || f == AF_UNIX ? f : -1;
}

/* a's IP as text and its port, as announced for family (AF_INET: also
 * an IPv4-mapped IPv6 address). */
static void ip_and_port(int family, const sockit_addr *a, char ip[INET6_ADDRSTRLEN], int *port)
{
	struct in_addr v4 = {0};
	uint16_t p = 0;
	if (family == AF_INET && as_v4(a, &v4, &p)) {
		inet_ntop(AF_INET, &v4, ip, INET6_ADDRSTRLEN);
	} else {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a->ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, ip, INET6_ADDRSTRLEN);
		p = s6->sin6_port;
	}
	*port = ntohs(p);
}

static int format_v1(int family, const sockit_addr *src, const sockit_addr *dst, char *buf,
		     size_t len)
{
	int n;
	if (src == NULL) {
		n = snprintf(buf, len, "PROXY UNKNOWN\r\n");
	} else if (family == AF_INET || family == AF_INET6) {
		char sip[INET6_ADDRSTRLEN], dip[INET6_ADDRSTRLEN];
		int sport, dport;
		ip_and_port(family, src, sip, &sport);
		ip_and_port(family, dst, dip, &dport);
		n = snprintf(buf, len, "PROXY %s %s %s %d %d\r\n",
			     family == AF_INET ? "TCP4" : "TCP6", sip, dip, sport, dport);
	} else {
		return -EINVAL;
	}
	return n < 0 || (size_t)n >= len ? -ENOSPC : n;
}

static int format_v2(int family, const sockit_addr *src, const sockit_addr *dst, unsigned char *buf,
		     size_t len)
{
	size_t alen = src == NULL ? 0 : family == AF_INET ? 12 : family == AF_INET6 ? 36 : 216;
	if (len < V2_FIXED + alen)
		return -ENOSPC;
	memcpy(buf, v2_sig, sizeof(v2_sig));
	buf[12] = src == NULL ? 0x20 : 0x21;
	buf[13] = src == NULL ? 0x00 : family == AF_INET ? 0x11 : family == AF_INET6 ? 0x21 : 0x31;
	buf[14] = (unsigned char)(alen >> 8);
	buf[15] = (unsigned char)alen;
	unsigned char *a = buf + V2_FIXED;
	if (family == AF_INET && src != NULL) {
		struct in_addr s = {0}, d = {0};
		uint16_t sp = 0, dp = 0;
		as_v4(src, &s, &sp);
		as_v4(dst, &d, &dp);
		memcpy(a, &s, 4);
		memcpy(a + 4, &d, 4);
		memcpy(a + 8, &sp, 2);
		memcpy(a + 10, &dp, 2);
	} else if (family == AF_INET6 && src != NULL) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&src->ss;
		const struct sockaddr_in6 *d = (const struct sockaddr_in6 *)&dst->ss;
		memcpy(a, &s->sin6_addr, 16);
		memcpy(a + 16, &d->sin6_addr, 16);
		memcpy(a + 32, &s->sin6_port, 2);
		memcpy(a + 34, &d->sin6_port, 2);
	} else if (src != NULL) {
		const struct sockaddr_un *s = (const struct sockaddr_un *)&src->ss;
		const struct sockaddr_un *d = (const struct sockaddr_un *)&dst->ss;
		size_t off = offsetof(struct sockaddr_un, sun_path);
		size_t sl = src->len > off ? src->len - off : 0,
		       dl = dst->len > off ? dst->len - off : 0;
		memset(a, 0, 216);
		memcpy(a, s->sun_path, sl < 108 ? sl : 108);
		memcpy(a + 108, d->sun_path, dl < 108 ? dl : 108);
	}
	return (int)(V2_FIXED + alen);
}

int sockit_proxy_format(int version, const sockit_addr *src, const sockit_addr *dst, void *buf,
			size_t len)
{
	if ((version != 1 && version != 2) || buf == NULL || (src != NULL && dst == NULL))
		return -EINVAL;
	int family = 0;
	if (src != NULL) {
		if (src->len == 0 || src->len > sizeof(src->ss) || dst->len == 0 ||
		    dst->len > sizeof(dst->ss))
			return -EINVAL;
		family = common_family(src, dst);
		if (family < 0)
			return -EINVAL;
	}
	return version == 1 ? format_v1(family, src, dst, buf, len)
			    : format_v2(family, src, dst, buf, len);
}
