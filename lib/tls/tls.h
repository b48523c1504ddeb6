/* tls.h -- what the files of libsockit_tls share: the two structs, the BIO, the error map. */
#ifndef SOCKIT_TLS_INTERNAL_H
#define SOCKIT_TLS_INTERNAL_H

#include <openssl/ssl.h>
#include <pthread.h>

#include "sockit_tls.h"
#include "tls/cork.h"

/* The SSL_CTX is swapped whole by sockit_tls_ctx_reload: a connection
 * takes its own reference (SSL_new) under the lock, so a swap never pulls
 * a context from under a live connection. */
struct sockit_tls_ctx {
	pthread_mutex_t lock;
	SSL_CTX *ssl_ctx; /* guarded by lock */
	int server;
	char *ca_file; /* what a reload keeps: the CA file (owned) and the flags */
	int flags;
};

struct sockit_tls {
	SSL *ssl;
	int fd;
	int sys_err;	/* the last -errno the BIO met, for SSL_ERROR_SYSCALL */
	int eof;	/* the BIO read end of file (what BIO_eof tells OpenSSL) */
	unsigned want;	/* SOCKIT_READABLE / SOCKIT_WRITABLE after -EAGAIN */
	int close_sent; /* our close_notify went out */
	int failed;	/* the fatal error that ended it (then every call returns
			   it, and close sends no close_notify), else 0 */
	int cork;	/* what OpenSSL writes is kept (sk_tls_cork, cork.h) */
	char *kept;	/* bytes OpenSSL wrote that have not gone yet: klen of kcap */
	size_t klen, kcap;
};

/* ---- ctx.c ---------------------------------------------------------------- */

/* A new SSL for ctx's current SSL_CTX, or NULL. */
SSL *sk_tls_ctx_ssl(sockit_tls_ctx *ctx);

/* ---- io.c ----------------------------------------------------------------- */

/* Reads and drops input until the peer's FIN, an error, timeout_ms (0: only
 * what is queued now) or 256 KiB, whichever comes first. */
void sk_tls_drain(int fd, int timeout_ms);

/* ---- bio.c: the descriptor BIO -------------------------------------------- */

/* A BIO over t->fd that reads and writes with sockit_try_recv/send
 * (MSG_DONTWAIT | MSG_NOSIGNAL: never blocks, never raises SIGPIPE) and
 * records system errors in t->sys_err.  NULL when out of memory. */
BIO *sk_tls_bio_new(struct sockit_tls *t);

/* Sends what t keeps (flags: MSG_MORE or 0), as much as the socket takes:
 * 0 once it all went (the buffer is freed), -EAGAIN, or -errno (also in
 * t->sys_err). */
int sk_tls_kept_send(struct sockit_tls *t, int flags);

/* ---- errmap.c: OpenSSL's answers as sockit codes -------------------------- */

/* The code for a failed SSL_* call that returned ret: -EAGAIN with t->want
 * set, 0 for a clean close (SSL_ERROR_ZERO_RETURN), or a negative code,
 * which a fatal error also leaves in t->failed.  Empties this thread's
 * OpenSSL error queue. */
int sk_tls_result(struct sockit_tls *t, int ret);

/* The code for the error at the top of the queue after a failed
 * certificate/key/CA load (fallback when the queue says nothing); empties
 * the queue. */
int sk_tls_load_error(int fallback);

#endif /* SOCKIT_TLS_INTERNAL_H */
