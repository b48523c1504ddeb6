/* bio.c -- the descriptor BIO: OpenSSL's reads and writes through sockit_try_recv/send. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tls.h"

/* OpenSSL's own socket BIO writes with write(2), which raises SIGPIPE on a
 * closed peer; sockit never does.  This one sends with MSG_NOSIGNAL and
 * never blocks (MSG_DONTWAIT), so one code path serves blocking and
 * non-blocking descriptors: the caller's loop waits with poll.  Corked
 * (cork.h), its writes are kept in the session and go out together. */

static BIO_METHOD *method;
static pthread_once_t method_once = PTHREAD_ONCE_INIT;

int sk_tls_kept_send(struct sockit_tls *t, int flags)
{
	while (t->klen > 0) {
		ssize_t n = sockit_try_send(t->fd, t->kept, t->klen, flags);
		if (n < 0) {
			if (n != -EAGAIN)
				t->sys_err = (int)n;
			return (int)n;
		}
		memmove(t->kept, t->kept + n, t->klen - (size_t)n);
		t->klen -= (size_t)n;
	}
	free(t->kept);
	t->kept = NULL;
	t->kcap = 0;
	return 0;
}

/* Keeps len bytes (corked): 0, or -1 out of memory. */
static int keep(struct sockit_tls *t, const char *buf, size_t len)
{
	if (t->klen + len > t->kcap) {
		size_t cap = t->kcap ? t->kcap : 256; /* a TLS 1.3 ticket: about 250 */
		while (cap < t->klen + len)
			cap *= 2;
		char *k = realloc(t->kept, cap);
		if (k == NULL)
			return -1;
		t->kept = k;
		t->kcap = cap;
	}
	memcpy(t->kept + t->klen, buf, len);
	t->klen += len;
	return 0;
}

/* Before anything else goes or comes: what is kept from an uncork that
 * did not finish.  1 when it is all out, else 0 with the BIO's retry flag
 * (the caller's write or read then fails as "wants to write"). */
static int kept_out(BIO *b, struct sockit_tls *t)
{
	if (t->klen == 0 || t->cork)
		return 1;
	int rc = sk_tls_kept_send(t, 0);
	if (rc == -EAGAIN)
		BIO_set_retry_write(b);
	return rc == 0;
}

static int bio_write(BIO *b, const char *buf, int len)
{
	struct sockit_tls *t = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	if (t->cork && t->klen + (size_t)len <= SK_TLS_CORK_MAX) {
		if (keep(t, buf, (size_t)len) == 0)
			return len;
		t->sys_err = -ENOMEM;
		return -1;
	}
	/* What is kept goes first: too much to keep together, or the rest of
	 * an uncork that did not finish. */
	if (t->klen > 0) {
		int rc = sk_tls_kept_send(t, 0);
		if (rc == -EAGAIN)
			BIO_set_retry_write(b);
		if (rc < 0)
			return -1;
	}
	ssize_t n = sockit_try_send(t->fd, buf, (size_t)len, 0);
	if (n >= 0)
		return (int)n;
	if (n == -EAGAIN)
		BIO_set_retry_write(b);
	else
		t->sys_err = (int)n;
	return -1;
}

static int bio_read(BIO *b, char *buf, int len)
{
	struct sockit_tls *t = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	if (!kept_out(b, t))
		return -1;
	ssize_t n = sockit_try_recv(t->fd, buf, (size_t)len);
	if (n > 0)
		return (int)n;
	if (n == 0)
		t->eof = 1; /* OpenSSL asks BIO_eof to tell truncation from error */
	else if (n == -EAGAIN)
		BIO_set_retry_read(b);
	else
		t->sys_err = (int)n;
	return n == 0 ? 0 : -1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct sockit_tls *t = BIO_get_data(b);
	(void)num;
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		/* Nothing is buffered here but what is kept, and corked it stays. */
		BIO_clear_retry_flags(b);
		return kept_out(b, t);
	case BIO_CTRL_WPENDING:
		return (long)t->klen;
	case BIO_CTRL_EOF:
		return t->eof;
	case BIO_C_GET_FD:
		if (ptr != NULL)
			*(int *)ptr = t->fd;
		return t->fd;
	default:
		return 0;
	}
}

static void method_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sockit fd");
	if (m == NULL)
		return;
	if (!BIO_meth_set_write(m, bio_write) || !BIO_meth_set_read(m, bio_read) ||
	    !BIO_meth_set_ctrl(m, bio_ctrl)) {
		BIO_meth_free(m);
		return;
	}
	method = m; /* kept for the life of the process, like OpenSSL's own methods */
}

BIO *sk_tls_bio_new(struct sockit_tls *t)
{
	pthread_once(&method_once, method_init);
	if (method == NULL)
		return NULL;
	BIO *b = BIO_new(method);
	if (b == NULL)
		return NULL;
	BIO_set_data(b, t);
	BIO_set_init(b, 1);
	return b;
}
