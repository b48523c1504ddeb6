/* ctx.c -- TLS contexts: client and server settings, loaded files, reload by swap. */
#include <errno.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>

#include "tls.h"

/* The session ID context a server needs for resumption with client
 * certificates; any constant will do for one application. */
static const unsigned char SESSION_ID_CTX[] = "sockit";

/* What every context has: TLS 1.2 at least, partial writes (a send returns
 * after a record, as send(2) after a segment), the buffer the caller may
 * move between retries, and no read/write buffers while idle. */
static SSL_CTX *ssl_ctx_base(int server)
{
	SSL_CTX *c = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (c == NULL)
		return NULL;
	if (!SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION)) {
		SSL_CTX_free(c);
		return NULL;
	}
	SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				    SSL_MODE_RELEASE_BUFFERS);
	return c;
}

/* Loads cert_file's chain and key_file's key (NULL: cert_file's). */
static int load_pair(SSL_CTX *c, const char *cert_file, const char *key_file)
{
	if (cert_file == NULL)
		return -EINVAL;
	if (key_file == NULL)
		key_file = cert_file;
	if (SSL_CTX_use_certificate_chain_file(c, cert_file) != 1)
		return sk_tls_load_error(SOCKIT_TLS_ECERTFILE);
	if (SSL_CTX_use_PrivateKey_file(c, key_file, SSL_FILETYPE_PEM) != 1)
		return sk_tls_load_error(SOCKIT_TLS_EKEYFILE);
	if (SSL_CTX_check_private_key(c) != 1)
		return sk_tls_load_error(SOCKIT_TLS_EKEYMISMATCH);
	return 0;
}

static int setup_client(SSL_CTX *c, const sockit_tls_config *cfg)
{
	if (cfg->flags & SOCKIT_TLS_INSECURE) {
		SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
	} else {
		SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
		int ok = cfg->ca_file != NULL ? SSL_CTX_load_verify_locations(c, cfg->ca_file, NULL)
					      : SSL_CTX_set_default_verify_paths(c);
		if (ok != 1)
			return sk_tls_load_error(SOCKIT_TLS_ECAFILE);
	}
	if (cfg->cert_file == NULL)
		return cfg->key_file != NULL ? -EINVAL : 0;
	return load_pair(c, cfg->cert_file, cfg->key_file);
}

static int setup_server(SSL_CTX *c, const sockit_tls_config *cfg)
{
	int rc = load_pair(c, cfg->cert_file, cfg->key_file);
	if (rc < 0)
		return rc;
	if (!SSL_CTX_set_session_id_context(c, SESSION_ID_CTX, sizeof(SESSION_ID_CTX) - 1))
		return -ENOMEM;
	/* One TLS 1.3 ticket per handshake, not OpenSSL's two: a client that
	 * reconnects resumes with it and gets the next one then; the second
	 * cost 6% of a full handshake's instructions (callgrind). */
	if (!SSL_CTX_set_num_tickets(c, 1))
		return -ENOMEM;
	if (cfg->ca_file != NULL) {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->ca_file);
		if (names == NULL || SSL_CTX_load_verify_locations(c, cfg->ca_file, NULL) != 1) {
			sk_X509_NAME_pop_free(names, X509_NAME_free);
			return sk_tls_load_error(SOCKIT_TLS_ECAFILE);
		}
		SSL_CTX_set_client_CA_list(c, names); /* takes names */
		SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	return 0;
}

/* A complete SSL_CTX for cfg, or a negative code and nothing allocated. */
static int build(int server, const sockit_tls_config *cfg, SSL_CTX **out)
{
	ERR_clear_error();
	SSL_CTX *c = ssl_ctx_base(server);
	if (c == NULL) {
		ERR_clear_error();
		return -ENOMEM;
	}
	int rc = server ? setup_server(c, cfg) : setup_client(c, cfg);
	if (rc < 0) {
		SSL_CTX_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

static int ctx_new(int server, const sockit_tls_config *cfg, sockit_tls_ctx **out)
{
	static const sockit_tls_config defaults;
	if (cfg == NULL && !server)
		cfg = &defaults;
	if (out == NULL || cfg == NULL || (cfg->flags & ~SOCKIT_TLS_INSECURE) ||
	    (server && cfg->flags != 0))
		return -EINVAL;
	sockit_tls_ctx *ctx = calloc(1, sizeof(*ctx));
	if (ctx == NULL)
		return -ENOMEM;
	ctx->server = server;
	ctx->flags = cfg->flags;
	int rc = 0;
	if (cfg->ca_file != NULL && (ctx->ca_file = strdup(cfg->ca_file)) == NULL)
		rc = -ENOMEM;
	if (rc == 0)
		rc = build(server, cfg, &ctx->ssl_ctx);
	if (rc == 0 && (rc = -pthread_mutex_init(&ctx->lock, NULL)) < 0)
		SSL_CTX_free(ctx->ssl_ctx);
	if (rc < 0) {
		free(ctx->ca_file);
		free(ctx);
		return rc;
	}
	*out = ctx;
	return 0;
}

int sockit_tls_client_ctx_new(const sockit_tls_config *cfg, sockit_tls_ctx **out)
{
	return ctx_new(0, cfg, out);
}

int sockit_tls_server_ctx_new(const sockit_tls_config *cfg, sockit_tls_ctx **out)
{
	return ctx_new(1, cfg, out);
}

int sockit_tls_ctx_reload(sockit_tls_ctx *ctx, const char *cert_file, const char *key_file)
{
	if (ctx == NULL || cert_file == NULL)
		return -EINVAL;
	sockit_tls_config cfg = {cert_file, key_file, ctx->ca_file, ctx->flags};
	SSL_CTX *fresh = NULL;
	int rc = build(ctx->server, &cfg, &fresh);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&ctx->lock);
	SSL_CTX *old = ctx->ssl_ctx;
	/* The ticket keys move along, so tickets issued before still resume. */
	unsigned char keys[80];
	if (SSL_CTX_get_tlsext_ticket_keys(old, keys, sizeof(keys)) == 1)
		SSL_CTX_set_tlsext_ticket_keys(fresh, keys, sizeof(keys));
	OPENSSL_cleanse(keys, sizeof(keys));
	ctx->ssl_ctx = fresh;
	pthread_mutex_unlock(&ctx->lock);
	SSL_CTX_free(old); /* live connections hold their own references */
	return 0;
}

void sockit_tls_ctx_free(sockit_tls_ctx *ctx)
{
	if (ctx == NULL)
		return;
	SSL_CTX_free(ctx->ssl_ctx);
	pthread_mutex_destroy(&ctx->lock);
	free(ctx->ca_file);
	free(ctx);
}

SSL *sk_tls_ctx_ssl(sockit_tls_ctx *ctx)
{
	pthread_mutex_lock(&ctx->lock);
	SSL *ssl = SSL_new(ctx->ssl_ctx);
	pthread_mutex_unlock(&ctx->lock);
	return ssl;
}
