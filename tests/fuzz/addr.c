/* addr.c -- fuzz sockit_addr_parse, sockit_hostport_split, sockit_addr_format, Unix names.
 *
 * Properties: an accepted address formats (into SOCKIT_ADDRSTRLEN) and
 * parses back to the same endpoint; a buffer one byte short is -ENOSPC with
 * no byte written past it; the numeric part agrees with inet_pton (accepted
 * exactly when inet_pton takes it, with the same bytes); a Unix name formats
 * back to the very string; hostport_split's pieces rebuild a string that
 * splits the same way, and never overrun the host buffer it is given.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	fuzz_quiet();
	return 0;
}

static int looks_unix(const char *s)
{
	return s[0] == '/' || s[0] == '@' || strncmp(s, "./", 2) == 0 || strncmp(s, "../", 3) == 0;
}

/* Formats a into exact-size buffers: every length up to the text's is
 * -ENOSPC, the text's length + 1 gives the text. */
static void check_format_edges(const sockit_addr *a, const char *text, int n)
{
	for (int len = 0; len <= n + 1; len++) {
		char *buf = malloc(len > 0 ? (size_t)len : 1);
		int rc = sockit_addr_format(a, buf, (size_t)len);
		if (len <= n) {
			FUZZ_CHECK(rc == -ENOSPC);
		} else {
			FUZZ_CHECK(rc == n && strcmp(buf, text) == 0);
		}
		free(buf);
	}
}

/* The numeric part against inet_pton: accepted exactly when it takes the
 * host (the part before a '%scope'), with the same bytes. */
static void check_against_pton(const char *s, int rc, const sockit_addr *a)
{
	char host[128];
	int port;
	if (sockit_hostport_split(s, host, sizeof(host), &port, -1) < 0) {
		FUZZ_CHECK(rc < 0);
		return;
	}
	char *pct = strchr(host, '%');
	int scoped = pct != NULL;
	if (scoped)
		*pct = '\0';
	unsigned char b4[4], b6[16];
	int v4 = !scoped && inet_pton(AF_INET, host, b4) == 1;
	int v6 = inet_pton(AF_INET6, host, b6) == 1;
	if (rc < 0) {
		/* A scope may be refused (unknown interface); a bare IP may not. */
		FUZZ_CHECK(scoped || (!v4 && !v6));
		FUZZ_CHECK(!v4);
		return;
	}
	FUZZ_CHECK(sockit_addr_port(a) == port);
	if (a->ss.ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->ss;
		FUZZ_CHECK(v4 && memcmp(&sin->sin_addr, b4, 4) == 0);
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->ss;
		FUZZ_CHECK(a->ss.ss_family == AF_INET6 && !v4 && v6);
		FUZZ_CHECK(memcmp(&sin6->sin6_addr, b6, 16) == 0);
		FUZZ_CHECK(scoped || sin6->sin6_scope_id == 0);
	}
}

static void check_parse(const char *s)
{
	sockit_addr a, b;
	int rc = sockit_addr_parse(s, &a);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENAMETOOLONG);
	if (looks_unix(s)) {
		size_t n = strlen(s), max = s[0] == '@' ? 108 : 107;
		FUZZ_CHECK((rc == 0) == (n <= max && strcmp(s, "@") != 0));
		FUZZ_CHECK(rc != -ENAMETOOLONG || n > max);
	} else {
		FUZZ_CHECK(rc != -ENAMETOOLONG);
		check_against_pton(s, rc, &a);
	}
	if (rc < 0)
		return;
	char text[SOCKIT_ADDRSTRLEN];
	int n = sockit_addr_format(&a, text, sizeof(text));
	FUZZ_CHECK(n > 0 && (size_t)n == strlen(text));
	if (looks_unix(s))
		FUZZ_CHECK(strcmp(text, s) == 0);
	FUZZ_CHECK(sockit_addr_parse(text, &b) == 0);
	FUZZ_CHECK(fuzz_addr_same(&a, &b));
	check_format_edges(&a, text, n);
}

/* hostport_split with a host buffer of hostlen bytes (exact size). */
static void check_split(const char *s, size_t hostlen, int dflt)
{
	char *host = malloc(hostlen > 0 ? hostlen : 1);
	int port = -7;
	int rc = sockit_hostport_split(s, host, hostlen, &port, dflt);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL);
	if (rc == 0) {
		size_t n = strlen(host);
		FUZZ_CHECK(n < hostlen && strstr(s, host) != NULL);
		FUZZ_CHECK(port >= 0 && port <= 65535);
		if (strchr(s, ':') == NULL)
			FUZZ_CHECK(port == dflt && strcmp(host, s) == 0);
		/* Rebuilt as the canonical form, it splits the same way. */
		char again[512], host2[512];
		int port2 = -7;
		snprintf(again, sizeof(again), strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
		FUZZ_CHECK(sockit_hostport_split(again, host2, sizeof(host2), &port2, -1) == 0);
		FUZZ_CHECK(strcmp(host2, host) == 0 && port2 == port);
	} else {
		FUZZ_CHECK(port == -7);
	}
	free(host);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 400)
		return 0;
	/* Byte 0 picks the host buffer's size and the default port for the
	 * split; the rest is the string. */
	size_t hostlen = data[0] & 0x7f;
	int dflt = data[0] & 0x80 ? 80 : -1;
	char *s = fuzz_cstr(data + 1, size - 1);
	check_parse(s);
	check_split(s, hostlen, dflt);
	free(s);
	return 0;
}
