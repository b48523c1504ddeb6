/* error.c -- one sockit_strerror() for both ranges: -errno and resolver codes. */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "sockit.h"

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
	snprintf(unknown, sizeof(unknown), "unknown error %d", code);
	return unknown;
}

const char *sockit_version(void)
{
	return SOCKIT_VERSION;
}
