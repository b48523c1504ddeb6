/* fuzz.c -- the helpers every fuzz target links (see fuzz.h). */
#include <netinet/in.h>
#include <sys/un.h>

#include "fuzz.h"

FILE *fuzz_report;

void fuzz_quiet(void)
{
	FILE *null = fopen("/dev/null", "w");
	if (null == NULL) {
		perror("fuzz: /dev/null");
		abort();
	}
	fuzz_report = stderr;
	stdout = null;
	stderr = null;
}

/* Before fuzz_quiet (or without it), reports go to stderr. */
__attribute__((constructor)) static void fuzz_report_init(void)
{
	if (fuzz_report == NULL)
		fuzz_report = stderr;
}

char *fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (s == NULL)
		abort();
	if (size > 0)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

void *fuzz_dup(const uint8_t *data, size_t size)
{
	void *p = malloc(size > 0 ? size : 1);
	if (p == NULL)
		abort();
	if (size > 0)
		memcpy(p, data, size);
	return p;
}

void fuzz_argv_make(struct fuzz_argv *a, const char *name, const uint8_t *data, size_t size)
{
	a->argv = calloc(FUZZ_MAX_WORDS + 2, sizeof(char *));
	a->words = calloc(FUZZ_MAX_WORDS + 2, sizeof(char *));
	if (a->argv == NULL || a->words == NULL)
		abort();
	a->argc = 0;
	a->words[a->argc++] = fuzz_cstr((const uint8_t *)name, strlen(name));
	size_t i = 0;
	while (i < size && a->argc < FUZZ_MAX_WORDS + 1) {
		const uint8_t *nul = memchr(data + i, '\0', size - i);
		size_t n = nul != NULL ? (size_t)(nul - (data + i)) : size - i;
		a->words[a->argc++] = fuzz_cstr(data + i, n);
		i += n + 1;
	}
	memcpy(a->argv, a->words, (size_t)a->argc * sizeof(char *));
}

void fuzz_argv_free(struct fuzz_argv *a)
{
	for (int i = 0; i < a->argc; i++)
		free(a->words[i]);
	free(a->words);
	free(a->argv);
	a->words = a->argv = NULL;
}

/* family, 16 address bytes (IPv4 in the last 4) and port of an IP address. */
static int ip_key(const sockit_addr *a, uint8_t key[16], uint16_t *port, uint32_t *scope)
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	memset(key, 0, 16);
	*scope = 0;
	if (a->ss.ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)&a->ss;
		memcpy(key + 12, &s->sin_addr, 4);
		*port = s->sin_port;
		return AF_INET;
	}
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a->ss;
	*port = s6->sin6_port;
	if (memcmp(&s6->sin6_addr, mapped, 12) == 0) {
		memcpy(key + 12, s6->sin6_addr.s6_addr + 12, 4);
		return AF_INET;
	}
	memcpy(key, &s6->sin6_addr, 16);
	*scope = s6->sin6_scope_id;
	return AF_INET6;
}

int fuzz_addr_same(const sockit_addr *a, const sockit_addr *b)
{
	int fa = a->ss.ss_family, fb = b->ss.ss_family;
	if (fa == AF_UNIX || fb == AF_UNIX)
		return fa == fb && a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
	if ((fa != AF_INET && fa != AF_INET6) || (fb != AF_INET && fb != AF_INET6))
		return 0;
	uint8_t ka[16], kb[16];
	uint16_t pa, pb;
	uint32_t sa, sb;
	return ip_key(a, ka, &pa, &sa) == ip_key(b, kb, &pb, &sb) && memcmp(ka, kb, 16) == 0 &&
	       pa == pb && sa == sb;
}
