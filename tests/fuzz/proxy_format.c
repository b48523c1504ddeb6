/* proxy_format.c -- fuzz sockit_proxy_format (lib/proxy.c) with addresses built from the input.
 *
 * Byte 0 picks the version, the families and the buffer's size; the next
 * bytes fill the two addresses (IPv4, IPv6, IPv4-mapped IPv6 or Unix, with
 * any length the struct allows).  Properties: the result is a length
 * within the buffer (an exact-size block: no byte past it), -ENOSPC or
 * -EINVAL; -EINVAL exactly when the families differ (mapped counts as
 * IPv4) or v1 is asked for Unix; a header written parses back (same
 * length, PROXY command, stream) to the same addresses; Unix paths come
 * back as 108 NUL-padded bytes.
 */
#include <errno.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "fuzz.h"
#include "sockit_proxy.h"

#define SUN_OFF offsetof(struct sockaddr_un, sun_path)

/* One address from the input: kind 0 IPv4, 1 IPv6, 2 IPv4-mapped, 3 Unix. */
static int make_addr(unsigned kind, const uint8_t *p, size_t n, sockit_addr *a)
{
	uint8_t raw[128] = {0};
	memcpy(raw, p, n < sizeof(raw) ? n : sizeof(raw));
	memset(a, 0, sizeof(*a));
	if (kind == 0) {
		struct sockaddr_in *s = (struct sockaddr_in *)&a->ss;
		s->sin_family = AF_INET;
		memcpy(&s->sin_addr, raw, 4);
		memcpy(&s->sin_port, raw + 4, 2);
		a->len = sizeof(*s);
		return AF_INET;
	}
	if (kind == 1 || kind == 2) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&a->ss;
		s->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, raw, 16);
		if (kind == 2) {
			memset(&s->sin6_addr, 0, 10);
			memset(s->sin6_addr.s6_addr + 10, 0xff, 2);
		}
		memcpy(&s->sin6_port, raw + 16, 2);
		a->len = sizeof(*s);
		return IN6_IS_ADDR_V4MAPPED(&s->sin6_addr) ? AF_INET : AF_INET6;
	}
	struct sockaddr_un *s = (struct sockaddr_un *)&a->ss;
	s->sun_family = AF_UNIX;
	size_t len = SUN_OFF + raw[0] % (sizeof(s->sun_path) + 1);
	memcpy(s->sun_path, raw + 1, len - SUN_OFF);
	a->len = (socklen_t)len;
	return AF_UNIX;
}

/* a and the Unix address parsed back from a header: the same path bytes,
 * NUL-padded to 108. */
static int same_unix(const sockit_addr *a, const sockit_addr *back)
{
	const struct sockaddr_un *x = (const struct sockaddr_un *)&a->ss;
	const struct sockaddr_un *y = (const struct sockaddr_un *)&back->ss;
	char want[108] = {0};
	memcpy(want, x->sun_path, a->len - SUN_OFF < 108 ? a->len - SUN_OFF : 108);
	return back->ss.ss_family == AF_UNIX && back->len == SUN_OFF + 108 &&
	       memcmp(y->sun_path, want, 108) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 3 || size > 600)
		return 0;
	int version = data[0] & 1 ? 2 : 1, local = (data[0] & 0x30) == 0x30;
	size_t half = (size - 3) / 2;
	sockit_addr src, dst;
	int fs = make_addr(data[1] & 3, data + 3, half, &src);
	int fd = make_addr(data[1] >> 2 & 3, data + 3 + half, size - 3 - half, &dst);
	size_t cap = data[2] < SOCKIT_PROXY_FORMAT_MAX + 8 ? data[2] : SOCKIT_PROXY_FORMAT_MAX;
	unsigned char *buf = malloc(cap > 0 ? cap : 1);
	int n = local ? sockit_proxy_format(version, NULL, NULL, buf, cap)
		      : sockit_proxy_format(version, &src, &dst, buf, cap);
	int bad = !local && (fs != fd || (version == 1 && fs == AF_UNIX));
	FUZZ_CHECK(bad ? n == -EINVAL
		       : n == -ENOSPC || (n > 0 && (size_t)n < cap + (version == 2)));
	if (n == -ENOSPC) { /* the biggest buffer always has room */
		unsigned char big[SOCKIT_PROXY_FORMAT_MAX];
		FUZZ_CHECK(cap < SOCKIT_PROXY_FORMAT_MAX);
		n = local ? sockit_proxy_format(version, NULL, NULL, big, sizeof(big))
			  : sockit_proxy_format(version, &src, &dst, big, sizeof(big));
		FUZZ_CHECK(n > 0 && (size_t)n > cap - (version == 1 && cap > 0));
	} else if (n > 0) {
		sockit_proxy_hdr h;
		FUZZ_CHECK(sockit_proxy_parse(buf, (size_t)n, &h) == n);
		FUZZ_CHECK(h.version == version && h.local == local);
		if (!local) {
			FUZZ_CHECK(h.transport == SOCK_STREAM);
			if (fs == AF_UNIX)
				FUZZ_CHECK(same_unix(&src, &h.src) && same_unix(&dst, &h.dst));
			else
				FUZZ_CHECK(fuzz_addr_same(&src, &h.src) &&
					   fuzz_addr_same(&dst, &h.dst));
		}
	}
	free(buf);
	return 0;
}
