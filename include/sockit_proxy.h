/* sockit_proxy.h -- the PROXY protocol (v1 text, v2 binary): who the client really is.
 *
 * A load balancer (HAProxy's send-proxy/send-proxy-v2, AWS NLB, nginx)
 * starts each connection it forwards with a header naming the client's
 * address, so the server behind it sees the client instead of the
 * balancer.  The format is HAProxy's doc/proxy-protocol.txt.
 *
 * Both functions are pure: no I/O, no allocation, no global state; safe
 * from any thread.  Part of libsockit (pkg-config sockit).
 */
#ifndef SOCKIT_PROXY_H
#define SOCKIT_PROXY_H

#include <stddef.h>

#include "sockit.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The longest header sockit_proxy_parse() takes: v1 is at most 107 bytes;
 * v2 is 16 bytes plus a length of up to 65535 (addresses and TLVs), but
 * a header longer than this is refused as oversized.  A server that reads
 * the header into a buffer of this size never needs a larger one. */
#define SOCKIT_PROXY_MAX 1024

/* The longest header sockit_proxy_format() writes (v2 with two Unix paths). */
#define SOCKIT_PROXY_FORMAT_MAX 232

/* Results of sockit_proxy_parse() besides the bytes consumed. */
#define SOCKIT_PROXY_BAD (-1)	     /* not a valid header: close the connection */
#define SOCKIT_PROXY_INCOMPLETE (-2) /* valid so far: read more, call again */

typedef struct sockit_proxy_hdr {
	int version;	      /* 1 or 2 */
	int local;	      /* 1: no client address to take (v2 LOCAL, as HAProxy's health
				 checks send, v2 UNSPEC, v1 UNKNOWN): use the socket's own */
	int transport;	      /* SOCK_STREAM, SOCK_DGRAM, or 0 when local */
	sockit_addr src, dst; /* the client and the address it connected to,
				 unless local; AF_INET, AF_INET6 or AF_UNIX */
} sockit_proxy_hdr;

/* Parses the header at the start of buf[0..len).  Returns the header's
 * length in bytes (> 0, never more than len; the payload starts there),
 * SOCKIT_PROXY_INCOMPLETE while buf is a valid beginning of a header, or
 * SOCKIT_PROXY_BAD: anything else (no signature, a malformed or truncated
 * field, a v1 line without CRLF within 107 bytes, an unknown version,
 * command or family, addresses longer than the header says, TLVs that run
 * past the header's end, a header longer than SOCKIT_PROXY_MAX).  v2 TLVs
 * are checked and skipped.  The version is detected from the first bytes:
 * "PROXY " is v1, the 12-byte v2 signature is v2.  out is written only
 * when the result is > 0 (out may be NULL to just measure). */
SOCKIT_API int sockit_proxy_parse(const void *buf, size_t len, sockit_proxy_hdr *out);

/* Writes a header announcing a stream connection from src to dst:
 * version 1 ("PROXY TCP4 ...\r\n", IPv4 or IPv6 only) or 2 (PROXY command;
 * IPv4, IPv6 or Unix).  src and dst must be of one family (an IPv4-mapped
 * IPv6 address counts as IPv4).  src NULL writes a LOCAL (v2) or UNKNOWN
 * (v1) header.  Returns the length written, -ENOSPC if len is too small,
 * or -EINVAL. */
SOCKIT_API int sockit_proxy_format(int version, const sockit_addr *src, const sockit_addr *dst,
				   void *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* SOCKIT_PROXY_H */
