/* error.c -- one sockit_strerror() for every range: -errno, resolver and TLS codes. */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "sockit.h"
#include "sockit_tls.h" /* the TLS codes only: libsockit stays libc-only */

/* Linux errno values with a message are below 256 (EHWPOISON is 133);
 * EAI_* codes are -1..-105 (glibc). */
#define ERRNO_TABLE 256
#define EAI_MAX 128
#define MSG_MAX 64

/* Built once (pthread_once), then read-only: the system's messages with a
 * lowercase first letter ("connection refused"), so callers can write
 * "cannot listen on X: %s".  NULL where the system knows no message. */
static char errno_msg[ERRNO_TABLE][MSG_MAX];
static char eai_msg[EAI_MAX][MSG_MAX];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void copy_lowered(char *dst, const char *src)
{
	snprintf(dst, MSG_MAX, "%s", src);
	/* "Connection refused" -> "connection refused", but keep "RFS ..." */
	if (dst[0] >= 'A' && dst[0] <= 'Z' && !(dst[1] >= 'A' && dst[1] <= 'Z'))
		dst[0] = (char)(dst[0] - 'A' + 'a');
}

static void build_tables(void)
{
	for (int e = 1; e < ERRNO_TABLE; e++) {
		const char *s = strerrordesc_np(e);
		if (s != NULL)
			copy_lowered(errno_msg[e], s);
	}
	for (int e = 1; e < EAI_MAX; e++) {
		/* glibc answers unknown codes with "Unknown error"; skip those. */
		const char *s = gai_strerror(-e);
		if (s != NULL && strncmp(s, "Unknown error", 13) != 0)
			copy_lowered(eai_msg[e], s);
	}
}

/* libsockit_tls's codes, explained here so that one sockit_strerror()
 * covers them with no OpenSSL in this library: lib/tls/ maps OpenSSL's
 * errors to these codes, this table maps the codes to words. */
static const char *const tls_msg[] = {
	[SOCKIT_TLS_BASE - SOCKIT_TLS_EPROTO] = "TLS protocol error",
	[SOCKIT_TLS_BASE - SOCKIT_TLS_EHOSTNAME] = "certificate verify failed: hostname mismatch",
	[SOCKIT_TLS_BASE - SOCKIT_TLS_EEXPIRED] =
		"certificate verify failed: certificate has expired",
	[SOCKIT_TLS_BASE - SOCKIT_TLS_ENOTYETVALID] =
		"certificate verify failed: certificate is not yet valid",
	[SOCKIT_TLS_BASE - SOCKIT_TLS_EUNKNOWNCA] = "certificate verify failed: unknown CA",
	[SOCKIT_TLS_BASE - SOCKIT_TLS_EVERIFY] = "certificate verify failed",
	[SOCKIT_TLS_BASE - SOCKIT_TLS_ENOPEERCERT] = "peer did not send a certificate",
	[SOCKIT_TLS_BASE - SOCKIT_TLS_ECERTREQUIRED] = "peer requires a client certificate",
	[SOCKIT_TLS_BASE - SOCKIT_TLS_ECERTREJECTED] = "peer rejected our certificate",
	[SOCKIT_TLS_BASE - SOCKIT_TLS_ENOTTLS] = "not a TLS handshake",
	[SOCKIT_TLS_BASE - SOCKIT_TLS_EVERSION] = "protocol version too old",
	[SOCKIT_TLS_BASE - SOCKIT_TLS_EHANDSHAKE] = "TLS handshake failed",
	[SOCKIT_TLS_BASE - SOCKIT_TLS_ETRUNCATED] = "TLS connection truncated (no close_notify)",
	[SOCKIT_TLS_BASE - SOCKIT_TLS_ECERTFILE] = "no certificate in the file (PEM expected)",
	[SOCKIT_TLS_BASE - SOCKIT_TLS_EKEYFILE] = "no private key in the file (PEM expected)",
	[SOCKIT_TLS_BASE - SOCKIT_TLS_EKEYMISMATCH] = "private key does not match the certificate",
	[SOCKIT_TLS_BASE - SOCKIT_TLS_ECAFILE] = "no CA certificate in the file (PEM expected)",
	[SOCKIT_TLS_BASE - SOCKIT_TLS_ESESSION] = "saved TLS session unusable",
};

const char *sockit_strerror(int code)
{
	/* Unknown codes are formatted per thread: valid until this thread's
	 * next call with an unknown code. */
	static __thread char unknown[40];

	pthread_once(&tables_once, build_tables);
	if (code == 0)
		return "success";
	if (code < 0 && code > -ERRNO_TABLE && errno_msg[-code][0] != '\0')
		return errno_msg[-code];
	if (SOCKIT_IS_EAI(code)) {
		int eai = SOCKIT_EAI_BASE - code; /* 1.. */
		if (eai < EAI_MAX && eai_msg[eai][0] != '\0')
			return eai_msg[eai];
	}
	if (SOCKIT_IS_TLS(code)) {
		unsigned i = (unsigned)(SOCKIT_TLS_BASE - code); /* 1.. */
		if (i < sizeof(tls_msg) / sizeof(tls_msg[0]) && tls_msg[i] != NULL)
			return tls_msg[i];
	}
	snprintf(unknown, sizeof(unknown), "unknown error %d", code);
	return unknown;
}

const char *sockit_version(void)
{
	return SOCKIT_VERSION;
}
