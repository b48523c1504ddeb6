/* conn.c -- a TLS connection: wrapping an fd, closing it, what the handshake agreed. */
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "tls.h"

static int wrap(sockit_tls_ctx *ctx, int fd, sockit_tls **out)
{
	sockit_tls *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return -ENOMEM;
	t->fd = fd;
	BIO *bio = NULL;
	if ((t->ssl = sk_tls_ctx_ssl(ctx)) == NULL || (bio = sk_tls_bio_new(t)) == NULL) {
		SSL_free(t->ssl);
		free(t);
		ERR_clear_error();
		return -ENOMEM;
	}
	SSL_set_bio(t->ssl, bio, bio); /* t->ssl owns bio */
	*out = t;
	return 0;
}

/* The name to check and to send: an IP literal is checked against the
 * certificate's IP addresses and not sent (SNI carries host names only). */
static int set_servername(SSL *ssl, const char *name)
{
	unsigned char ip[16];
	if (inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1)
		return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1 ? 0 : -EINVAL;
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (SSL_set_tlsext_host_name(ssl, name) != 1 || SSL_set1_host(ssl, name) != 1)
		return -EINVAL;
	return 0;
}

int sockit_tls_client(sockit_tls_ctx *ctx, int fd, const char *servername, sockit_tls **out)
{
	if (ctx == NULL || ctx->server || fd < 0 || out == NULL ||
	    (servername == NULL && !(ctx->flags & SOCKIT_TLS_INSECURE)) ||
	    (servername != NULL && servername[0] == '\0'))
		return -EINVAL;
	sockit_tls *t;
	int rc = wrap(ctx, fd, &t);
	if (rc < 0)
		return rc;
	if (servername != NULL && (rc = set_servername(t->ssl, servername)) < 0) {
		ERR_clear_error();
		sockit_tls_free(t);
		return rc;
	}
	SSL_set_connect_state(t->ssl);
	*out = t;
	return 0;
}

int sockit_tls_server(sockit_tls_ctx *ctx, int fd, sockit_tls **out)
{
	if (ctx == NULL || !ctx->server || fd < 0 || out == NULL)
		return -EINVAL;
	sockit_tls *t;
	int rc = wrap(ctx, fd, &t);
	if (rc < 0)
		return rc;
	SSL_set_accept_state(t->ssl);
	*out = t;
	return 0;
}

void sockit_tls_free(sockit_tls *t)
{
	if (t == NULL)
		return;
	SSL_free(t->ssl);
	free(t->kept);
	free(t);
}

void sk_tls_cork(sockit_tls *t)
{
	if (t->klen == 0)
		t->cork = 1;
}

int sk_tls_uncork(sockit_tls *t, int flags)
{
	t->cork = 0;
	int rc = sk_tls_kept_send(t, flags);
	if (rc == -EAGAIN)
		t->want = SOCKIT_WRITABLE;
	return rc;
}

void sk_tls_read_ahead(sockit_tls *t)
{
	SSL_set_read_ahead(t->ssl, 1);
}

int sk_tls_may_keep_while_reading(const sockit_tls *t)
{
	return SSL_is_init_finished(t->ssl) && SSL_version(t->ssl) >= TLS1_3_VERSION;
}

const char *sk_tls_kept(const sockit_tls *t, size_t *len)
{
	*len = t->klen;
	return t->kept;
}

/* Closing a socket with unread input makes the kernel send RST, and a
 * peer that receives RST drops what it has not read yet: our close_notify,
 * or the alert that says why its handshake failed.  So input already
 * queued is dropped first, and after a failure (when no close_notify is
 * owed) close sends FIN and lingers up to timeout_ms for the peer's, since
 * a failed peer usually still has its request in flight. */
int sockit_tls_close(sockit_tls *t, int timeout_ms)
{
	if (t == NULL)
		return -EINVAL;
	int rc = 0, fd = t->fd, failed = t->failed != 0;
	if (!failed && SSL_is_init_finished(t->ssl))
		rc = sockit_tls_shutdown(t, timeout_ms);
	sockit_tls_free(t);
	if (failed)
		sockit_shutdown(fd, SHUT_WR);
	sk_tls_drain(fd, failed ? timeout_ms : 0);
	int crc = sockit_close(fd);
	return rc < 0 ? rc : crc;
}

int sockit_tls_fd(const sockit_tls *t)
{
	return t == NULL ? -EINVAL : t->fd;
}

unsigned sockit_tls_want(const sockit_tls *t)
{
	return t == NULL ? 0 : t->want;
}

size_t sockit_tls_pending(const sockit_tls *t)
{
	int n = t == NULL ? 0 : SSL_pending(t->ssl);
	return n > 0 ? (size_t)n : 0;
}

/* ---- After the handshake -------------------------------------------------- */

const char *sockit_tls_protocol(const sockit_tls *t)
{
	if (t == NULL || !SSL_is_init_finished(t->ssl))
		return NULL;
	return SSL_get_version(t->ssl);
}

const char *sockit_tls_cipher(const sockit_tls *t)
{
	if (t == NULL || !SSL_is_init_finished(t->ssl))
		return NULL;
	return SSL_CIPHER_get_name(SSL_get_current_cipher(t->ssl));
}

int sockit_tls_peer_subject(const sockit_tls *t, char *buf, size_t len)
{
	if (t == NULL || buf == NULL || len == 0)
		return -EINVAL;
	X509 *peer = SSL_get0_peer_certificate(t->ssl);
	if (peer == NULL)
		return -ENODATA;
	BIO *mem = BIO_new(BIO_s_mem());
	if (mem == NULL)
		return -ENOMEM;
	int rc = -ENOMEM;
	if (X509_NAME_print_ex(mem, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253) >= 0) {
		char *p;
		long n = BIO_get_mem_data(mem, &p);
		if ((size_t)n >= len) {
			rc = -ENOSPC;
		} else {
			memcpy(buf, p, (size_t)n);
			buf[n] = '\0';
			rc = (int)n;
		}
	}
	BIO_free(mem);
	ERR_clear_error();
	return rc;
}

int sockit_tls_resumed(const sockit_tls *t)
{
	return t != NULL && SSL_session_reused(t->ssl) == 1;
}

int sockit_tls_session_get(const sockit_tls *t, void *buf, size_t len)
{
	if (t == NULL || SSL_is_server(t->ssl))
		return -EINVAL;
	SSL_SESSION *s = SSL_get_session(t->ssl);
	if (s == NULL || !SSL_SESSION_is_resumable(s))
		return -ENODATA;
	int n = i2d_SSL_SESSION(s, NULL);
	if (n <= 0)
		return -ENOMEM;
	if (buf == NULL)
		return n;
	if ((size_t)n > len)
		return -ENOSPC;
	unsigned char *p = buf;
	return i2d_SSL_SESSION(s, &p);
}

int sockit_tls_session_set(sockit_tls *t, const void *buf, size_t len)
{
	if (t == NULL || buf == NULL || len == 0 || len > INT32_MAX || SSL_is_server(t->ssl) ||
	    SSL_in_before(t->ssl) != 1)
		return -EINVAL;
	const unsigned char *p = buf;
	SSL_SESSION *s = d2i_SSL_SESSION(NULL, &p, (long)len);
	int ok = s != NULL && SSL_set_session(t->ssl, s) == 1;
	SSL_SESSION_free(s); /* the SSL holds its own reference */
	ERR_clear_error();
	return ok ? 0 : SOCKIT_TLS_ESESSION;
}
