/* bio.c -- the descriptor BIO: OpenSSL's reads and writes through sockit_try_recv/send. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>

#include "tls.h"

/* OpenSSL's own socket BIO writes with write(2), which raises SIGPIPE on a
 * closed peer; sockit never does.  This one sends with MSG_NOSIGNAL and
 * never blocks (MSG_DONTWAIT), so one code path serves blocking and
 * non-blocking descriptors: the caller's loop waits with poll. */

static BIO_METHOD *method;
static pthread_once_t method_once = PTHREAD_ONCE_INIT;

static int bio_write(BIO *b, const char *buf, int len)
{
	struct sockit_tls *t = BIO_get_data(b);
	BIO_clear_retry_flags(b);
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
		return 1; /* nothing is buffered here */
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
