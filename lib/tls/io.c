/* io.c -- handshake, send, recv and close_notify under sockit's timeout rules. */
#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <poll.h>

#include "internal.h"
#include "tls.h"

/* Deadlines as in net.c: -1 forever, DEADLINE_NOW one attempt, else a time
 * on CLOCK_MONOTONIC in milliseconds.  Only a positive timeout reads the
 * clock. */
#define DEADLINE_NOW 0

static int64_t deadline_of(int timeout_ms)
{
	if (timeout_ms <= 0)
		return timeout_ms < 0 ? -1 : DEADLINE_NOW;
	return (int64_t)sk_clock_ms() + timeout_ms;
}

/* Waits until fd is ready for events: 0, -ETIMEDOUT or -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int ms = -1;
		if (deadline > 0) {
			int64_t left = deadline - (int64_t)sk_clock_ms();
			if (left <= 0)
				return -ETIMEDOUT;
			ms = left > INT_MAX ? INT_MAX : (int)left;
		}
		struct pollfd p = {.fd = fd, .events = events};
		int rc = poll(&p, 1, ms);
		if (rc > 0)
			return (p.revents & POLLNVAL) ? -EBADF : 0; /* errors: the next call says */
		if (rc < 0 && errno != EINTR)
			return -errno;
	}
}

enum op { OP_HANDSHAKE, OP_READ, OP_WRITE, OP_SHUTDOWN };

/* One OpenSSL call: > 0 done (bytes for read/write), else its result. */
static int call(sockit_tls *t, enum op op, void *buf, size_t len)
{
	int n = len > INT_MAX ? INT_MAX : (int)len;
	switch (op) {
	case OP_HANDSHAKE:
		return SSL_do_handshake(t->ssl);
	case OP_READ:
		return SSL_read(t->ssl, buf, n);
	case OP_WRITE:
		return SSL_write(t->ssl, buf, n);
	case OP_SHUTDOWN:
		/* Once sent, a second SSL_shutdown would wait for the peer's. */
		if (t->close_sent)
			return 1;
		/* 0: close_notify sent, the peer's not yet read; we do not wait for it. */
		if (SSL_shutdown(t->ssl) < 0)
			return -1;
		t->close_sent = 1;
		return 1;
	}
	return -1;
}

/* Runs op until it completes, fails, or the deadline passes.  Returns
 * call()'s positive result, 0 for a clean close, or a negative code. */
static int run(sockit_tls *t, enum op op, void *buf, size_t len, int64_t deadline)
{
	if (t->failed)
		return t->failed;
	for (;;) {
		ERR_clear_error();
		t->sys_err = 0;
		int n = call(t, op, buf, len);
		if (n > 0)
			return n;
		int rc = sk_tls_result(t, n);
		if (rc != -EAGAIN)
			return rc;
		if (deadline == DEADLINE_NOW)
			return -EAGAIN;
		if ((rc = wait_fd(t->fd, t->want == SOCKIT_WRITABLE ? POLLOUT : POLLIN, deadline)) <
		    0)
			return rc;
	}
}

int sockit_tls_handshake(sockit_tls *t, int timeout_ms)
{
	if (t == NULL)
		return -EINVAL;
	int rc = run(t, OP_HANDSHAKE, NULL, 0, deadline_of(timeout_ms));
	/* The peer's close_notify in the middle of a handshake ends it too. */
	return rc > 0 ? 0 : rc == 0 ? SOCKIT_TLS_ETRUNCATED : rc;
}

ssize_t sockit_tls_send(sockit_tls *t, const void *buf, size_t len, int timeout_ms)
{
	if (t == NULL || (buf == NULL && len > 0))
		return -EINVAL;
	if (len == 0)
		return 0;
	int rc = run(t, OP_WRITE, (void *)buf, len, deadline_of(timeout_ms));
	return rc == 0 ? -EPIPE : rc;
}

int sockit_tls_sendall(sockit_tls *t, const void *buf, size_t len, int timeout_ms, size_t *sent)
{
	if (sent != NULL)
		*sent = 0;
	if (t == NULL || (buf == NULL && len > 0))
		return -EINVAL;
	int64_t deadline = deadline_of(timeout_ms);
	size_t off = 0;
	int rc = 0;
	while (off < len) {
		rc = run(t, OP_WRITE, (char *)buf + off, len - off, deadline);
		if (rc <= 0) {
			rc = rc == 0 ? -EPIPE : rc;
			break;
		}
		off += (size_t)rc;
		rc = 0;
	}
	if (sent != NULL)
		*sent = off;
	return rc;
}

ssize_t sockit_tls_recv(sockit_tls *t, void *buf, size_t len, int timeout_ms)
{
	if (t == NULL || buf == NULL || len == 0)
		return -EINVAL;
	return run(t, OP_READ, buf, len, deadline_of(timeout_ms));
}

int sockit_tls_shutdown(sockit_tls *t, int timeout_ms)
{
	if (t == NULL)
		return -EINVAL;
	if (!t->failed && !SSL_is_init_finished(t->ssl))
		return -ENOTCONN;
	int rc = run(t, OP_SHUTDOWN, NULL, 0, deadline_of(timeout_ms));
	return rc > 0 ? 0 : rc;
}

void sk_tls_drain(int fd, int timeout_ms)
{
	int64_t deadline = deadline_of(timeout_ms);
	char buf[4096];
	for (int i = 0; i < 64; i++) {
		ssize_t n = sockit_try_recv(fd, buf, sizeof(buf));
		if (n == 0 || (n < 0 && n != -EAGAIN))
			return; /* the peer's FIN (or reset): nothing more will come */
		if (n < 0 && (deadline == DEADLINE_NOW || wait_fd(fd, POLLIN, deadline) < 0))
			return;
	}
}
