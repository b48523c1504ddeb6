/* addr.c -- addresses: resolve, parse "host:port", "[v6]:port" and Unix paths, format back. */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "sockit.h"

/* The bytes of sun_path an address of length len uses. */
#define SUN_OFF offsetof(struct sockaddr_un, sun_path)
#define SUN_MAX sizeof(((struct sockaddr_un *)0)->sun_path)

static int port_ok(int port)
{
	return port >= 0 && port <= 65535;
}

/* Parses a whole decimal port "0".."65535": digits only, at most 5. */
static int parse_port(const char *s, int *port)
{
	size_t n = strlen(s);
	if (n == 0 || n > 5 || strspn(s, "0123456789") != n)
		return -EINVAL;
	int v = atoi(s);
	if (!port_ok(v))
		return -EINVAL;
	*port = v;
	return 0;
}

int sockit_resolve(const char *host, int port, int family, int type, int passive, sockit_addr *out,
		   size_t max)
{
	if (out == NULL || max == 0 || !port_ok(port) ||
	    (family != AF_UNSPEC && family != AF_INET && family != AF_INET6) ||
	    (type != 0 && type != SOCK_STREAM && type != SOCK_DGRAM))
		return -EINVAL;
	struct addrinfo hints = {
		.ai_family = family,
		.ai_socktype = type == 0 ? SOCK_STREAM : type,
		.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0),
	};
	char serv[8];
	snprintf(serv, sizeof(serv), "%d", port);
	if (host != NULL && host[0] == '\0')
		host = NULL;
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(host, serv, &hints, &res);
	if (rc == EAI_SYSTEM)
		return errno != 0 ? -errno : -EIO;
	if (rc != 0)
		return SOCKIT_EAI_BASE + rc;
	size_t n = 0;
	for (struct addrinfo *ai = res; ai != NULL && n < max; ai = ai->ai_next) {
		if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
		    ai->ai_addrlen > sizeof(out[n].ss))
			continue;
		memset(&out[n], 0, sizeof(out[n]));
		memcpy(&out[n].ss, ai->ai_addr, ai->ai_addrlen);
		out[n].len = ai->ai_addrlen;
		n++;
	}
	freeaddrinfo(res);
	return n > 0 ? (int)n : SOCKIT_EAI_BASE + EAI_NONAME;
}

int sockit_hostport_split(const char *s, char *host, size_t hostlen, int *port, int default_port)
{
	if (s == NULL || host == NULL || hostlen == 0 || port == NULL)
		return -EINVAL;
	const char *h, *rest;
	size_t hlen;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL)
			return -EINVAL;
		h = s + 1;
		hlen = (size_t)(close - h);
		rest = close + 1;
		if (hlen == 0 || memchr(h, ':', hlen) == NULL || (*rest != '\0' && *rest != ':'))
			return -EINVAL;
	} else {
		const char *colon = strchr(s, ':');
		/* An unbracketed IPv6 literal is ambiguous ("::1:80"): refuse it. */
		if (colon != NULL && strchr(colon + 1, ':') != NULL)
			return -EINVAL;
		h = s;
		hlen = colon != NULL ? (size_t)(colon - s) : strlen(s);
		rest = s + hlen;
	}
	int p = default_port;
	if (*rest == ':') {
		if (parse_port(rest + 1, &p) < 0)
			return -EINVAL;
	} else if (!port_ok(p)) {
		return -EINVAL; /* no port given and no valid default */
	}
	if (hlen >= hostlen || memchr(h, '\0', hlen) != NULL)
		return -EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	*port = p;
	return 0;
}

int sockit_addr_from_ip(const char *ip, int port, sockit_addr *out)
{
	if (ip == NULL || out == NULL || !port_ok(port))
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
	if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		out->len = sizeof(*sin);
		return 0;
	}
	/* IPv6, with an optional "%scope" (interface name or number). */
	char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
	if (strlen(ip) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, ip);
	unsigned scope = 0;
	char *pct = strchr(buf, '%');
	if (pct != NULL) {
		*pct++ = '\0';
		size_t n = strlen(pct);
		if (n == 0)
			return -EINVAL;
		if (strspn(pct, "0123456789") == n) {
			unsigned long v = strtoul(pct, NULL, 10);
			if (n > 10 || v > 0xffffffffUL)
				return -EINVAL;
			scope = (unsigned)v;
		} else if ((scope = if_nametoindex(pct)) == 0) {
			return -EINVAL;
		}
	}
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;
	if (inet_pton(AF_INET6, buf, &sin6->sin6_addr) != 1) {
		memset(out, 0, sizeof(*out));
		return -EINVAL;
	}
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons((uint16_t)port);
	sin6->sin6_scope_id = scope;
	out->len = sizeof(*sin6);
	return 0;
}

/* Filesystem paths are kept NUL-terminated inside sun_path (at most
 * SUN_MAX - 1 bytes), as getsockname reports them; an abstract name is
 * exactly its bytes after the leading NUL, with no terminator. */
int sockit_addr_from_path(const char *path, sockit_addr *out)
{
	if (path == NULL || out == NULL || path[0] == '\0' || strcmp(path, "@") == 0)
		return -EINVAL;
	size_t n = strlen(path); /* "@name": the '@' stands for the leading NUL */
	if (n > (path[0] == '@' ? SUN_MAX : SUN_MAX - 1))
		return -ENAMETOOLONG;
	memset(out, 0, sizeof(*out));
	struct sockaddr_un *sun = (struct sockaddr_un *)&out->ss;
	sun->sun_family = AF_UNIX;
	if (path[0] == '@') {
		memcpy(sun->sun_path + 1, path + 1, n - 1); /* sun_path[0] stays NUL */
		out->len = (socklen_t)(SUN_OFF + n);
	} else {
		memcpy(sun->sun_path, path, n + 1);
		out->len = (socklen_t)(SUN_OFF + n + 1);
	}
	return 0;
}

/* "/x", "./x", "../x" and "@x" name Unix sockets; no host:port starts so. */
static int looks_unix(const char *s)
{
	return s[0] == '/' || s[0] == '@' || strncmp(s, "./", 2) == 0 || strncmp(s, "../", 3) == 0;
}

int sockit_addr_parse(const char *s, sockit_addr *out)
{
	char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
	int port;
	if (s != NULL && out != NULL && looks_unix(s))
		return sockit_addr_from_path(s, out);
	if (out == NULL || sockit_hostport_split(s, host, sizeof(host), &port, -1) < 0)
		return -EINVAL;
	return sockit_addr_from_ip(host, port, out);
}

/* The address's family, after checking the struct is one we can read. */
static int addr_family(const sockit_addr *a)
{
	if (a == NULL)
		return -EINVAL;
	if (a->ss.ss_family == AF_INET && a->len >= sizeof(struct sockaddr_in))
		return AF_INET;
	if (a->ss.ss_family == AF_INET6 && a->len >= sizeof(struct sockaddr_in6))
		return AF_INET6;
	if (a->ss.ss_family == AF_UNIX && a->len >= SUN_OFF && a->len <= sizeof(struct sockaddr_un))
		return AF_UNIX;
	return -EINVAL;
}

/* A Unix address as text: the path, "@name" for an abstract name (NUL
 * bytes inside it print as '@', as ss(8) shows them), "" for an unnamed
 * socket. */
static int format_unix(const sockit_addr *a, char *buf, size_t len)
{
	const struct sockaddr_un *sun = (const struct sockaddr_un *)&a->ss;
	size_t n = a->len - SUN_OFF;
	const char *p = sun->sun_path;
	if (n > 0 && p[0] != '\0') {
		const char *nul = memchr(p, '\0', n);
		if (nul != NULL)
			n = (size_t)(nul - p);
	}
	if (n >= len) {
		if (len > 0)
			buf[0] = '\0';
		return -ENOSPC;
	}
	for (size_t i = 0; i < n; i++)
		buf[i] = p[i] == '\0' ? '@' : p[i];
	buf[n] = '\0';
	return (int)n;
}

/* Writes the IP into buf; *bracket says whether it needs [] with a port. */
static int format_ip(const sockit_addr *a, char *buf, size_t len, int *bracket)
{
	char tmp[SOCKIT_ADDRSTRLEN];
	int fam = addr_family(a);
	if (fam < 0 || buf == NULL)
		return -EINVAL;
	*bracket = 0;
	if (fam == AF_UNIX)
		return format_unix(a, buf, len);
	if (fam == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->ss;
		inet_ntop(AF_INET, &sin->sin_addr, tmp, sizeof(tmp));
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->ss;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], tmp, sizeof(tmp));
		} else {
			*bracket = 1;
			inet_ntop(AF_INET6, &sin6->sin6_addr, tmp, sizeof(tmp));
			if (sin6->sin6_scope_id != 0) {
				char ifname[IF_NAMESIZE];
				size_t n = strlen(tmp);
				if (if_indextoname(sin6->sin6_scope_id, ifname) != NULL)
					snprintf(tmp + n, sizeof(tmp) - n, "%%%s", ifname);
				else
					snprintf(tmp + n, sizeof(tmp) - n, "%%%u",
						 sin6->sin6_scope_id);
			}
		}
	}
	size_t n = strlen(tmp);
	if (n >= len)
		return -ENOSPC;
	memcpy(buf, tmp, n + 1);
	return (int)n;
}

int sockit_addr_format_ip(const sockit_addr *a, char *buf, size_t len)
{
	int bracket;
	return format_ip(a, buf, len, &bracket);
}

int sockit_addr_format(const sockit_addr *a, char *buf, size_t len)
{
	char ip[SOCKIT_ADDRSTRLEN];
	int bracket;
	if (addr_family(a) == AF_UNIX)
		return format_ip(a, buf, len, &bracket);
	int rc = format_ip(a, ip, sizeof(ip), &bracket);
	if (rc < 0)
		return rc;
	if (buf == NULL)
		return -EINVAL;
	int n = snprintf(buf, len, bracket ? "[%s]:%d" : "%s:%d", ip, sockit_addr_port(a));
	if (n < 0 || (size_t)n >= len) {
		if (len > 0)
			buf[0] = '\0';
		return -ENOSPC;
	}
	return n;
}

int sockit_addr_port(const sockit_addr *a)
{
	int fam = addr_family(a);
	if (fam < 0 || fam == AF_UNIX)
		return -EINVAL;
	if (fam == AF_INET)
		return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

int sockit_getsockname(int fd, sockit_addr *out)
{
	if (fd < 0 || out == NULL)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->len = sizeof(out->ss);
	if (getsockname(fd, (struct sockaddr *)&out->ss, &out->len) < 0)
		return -errno;
	return 0;
}

int sockit_getpeername(int fd, sockit_addr *out)
{
	if (fd < 0 || out == NULL)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->len = sizeof(out->ss);
	if (getpeername(fd, (struct sockaddr *)&out->ss, &out->len) < 0)
		return -errno;
	return 0;
}

int sockit_sockname_str(int fd, char *buf, size_t len)
{
	sockit_addr a;
	int rc = sockit_getsockname(fd, &a);
	return rc < 0 ? rc : sockit_addr_format(&a, buf, len);
}

int sockit_peername_str(int fd, char *buf, size_t len)
{
	sockit_addr a;
	int rc = sockit_getpeername(fd, &a);
	return rc < 0 ? rc : sockit_addr_format(&a, buf, len);
}
