/* sockit_tls.h -- TLS for sockit, as Python's ssl is to its socket: libsockit_tls (OpenSSL 3). */
#ifndef SOCKIT_TLS_H
#define SOCKIT_TLS_H

#include <stddef.h>
#include <sys/types.h>

#include "sockit.h"
#include "sockit_loop.h" /* SOCKIT_READABLE, SOCKIT_WRITABLE */

#ifdef __cplusplus
extern "C" {
#endif

/* What libsockit_tls.so exports: only declarations marked SOCKIT_TLS_API. */
#if defined(__GNUC__)
#define SOCKIT_TLS_API __attribute__((visibility("default")))
#else
#define SOCKIT_TLS_API
#endif

/*
 * Link with `pkg-config --cflags --libs sockit-tls`.  The conventions are
 * sockit.h's: results >= 0 or a negative code; timeout_ms -1 waits forever,
 * 0 makes one attempt and returns -EAGAIN when it would block (then
 * sockit_tls_want() says which readiness to wait for), > 0 is a deadline
 * that gives -ETIMEDOUT; no SIGPIPE; nothing to initialize (OpenSSL 3 sets
 * itself up).  A context may be shared by any number of threads; one
 * connection is used by one thread at a time.  Descriptors may be blocking
 * or not: every read and write is non-blocking (MSG_DONTWAIT) and waits,
 * when it must, with poll.
 */

/* ---- Errors: SOCKIT_TLS_BASE - n, explained by sockit_strerror() ---------- */

#define SOCKIT_TLS_BASE (-20000)
#define SOCKIT_IS_TLS(code) ((code) <= SOCKIT_TLS_BASE - 1 && (code) > SOCKIT_TLS_BASE - 1000)

enum {
	SOCKIT_TLS_EPROTO = SOCKIT_TLS_BASE - 1, /* TLS protocol error */
	SOCKIT_TLS_EHOSTNAME =
		SOCKIT_TLS_BASE - 2, /* certificate verify failed: hostname mismatch */
	SOCKIT_TLS_EEXPIRED = SOCKIT_TLS_BASE - 3,     /* ...: certificate has expired */
	SOCKIT_TLS_ENOTYETVALID = SOCKIT_TLS_BASE - 4, /* ...: certificate is not yet valid */
	SOCKIT_TLS_EUNKNOWNCA = SOCKIT_TLS_BASE - 5,   /* ...: unknown CA */
	SOCKIT_TLS_EVERIFY = SOCKIT_TLS_BASE - 6, /* certificate verify failed (other reasons) */
	SOCKIT_TLS_ENOPEERCERT = SOCKIT_TLS_BASE - 7,	/* peer did not send a certificate */
	SOCKIT_TLS_ECERTREQUIRED = SOCKIT_TLS_BASE - 8, /* peer requires a client certificate */
	SOCKIT_TLS_ECERTREJECTED = SOCKIT_TLS_BASE - 9, /* peer rejected our certificate */
	SOCKIT_TLS_ENOTTLS = SOCKIT_TLS_BASE - 10,	/* not a TLS handshake (plaintext peer) */
	SOCKIT_TLS_EVERSION = SOCKIT_TLS_BASE - 11,	/* protocol version too old */
	SOCKIT_TLS_EHANDSHAKE = SOCKIT_TLS_BASE - 12, /* handshake failed (no common cipher, ...) */
	SOCKIT_TLS_ETRUNCATED =
		SOCKIT_TLS_BASE - 13, /* TLS connection truncated (no close_notify) */
	SOCKIT_TLS_ECERTFILE = SOCKIT_TLS_BASE - 14,	/* cannot load certificate (file) */
	SOCKIT_TLS_EKEYFILE = SOCKIT_TLS_BASE - 15,	/* cannot load private key (file) */
	SOCKIT_TLS_EKEYMISMATCH = SOCKIT_TLS_BASE - 16, /* private key does not match certificate */
	SOCKIT_TLS_ECAFILE = SOCKIT_TLS_BASE - 17,	/* cannot load CA certificates (file) */
	SOCKIT_TLS_ESESSION = SOCKIT_TLS_BASE - 18,	/* saved session unusable */
};

/* ---- Contexts: shared settings, one per role ----------------------------- */

typedef struct sockit_tls_ctx sockit_tls_ctx;

/* Client flag: no certificate check at all (like Python's CERT_NONE with
 * check_hostname off).  For tests and for the user who asked for it. */
#define SOCKIT_TLS_INSECURE 0x1

/* File names are PEM.  key_file NULL means the key is in cert_file. */
typedef struct sockit_tls_config {
	const char *cert_file; /* server: its chain (required); client: optional */
	const char *key_file;  /* the private key of cert_file */
	const char *ca_file;   /* client: trust these CAs instead of the system's;
				  server: require client certificates they signed */
	int flags;	       /* SOCKIT_TLS_INSECURE (client only) */
} sockit_tls_config;

/* A client context: TLS 1.2 minimum; peers verified against the system
 * trust store (or cfg->ca_file) and the name given to sockit_tls_client().
 * cfg may be NULL (the defaults).  On success *out is the new context;
 * errors: SOCKIT_TLS_ECAFILE / ECERTFILE / EKEYFILE / EKEYMISMATCH,
 * -ENOMEM, -EINVAL. */
SOCKIT_TLS_API int sockit_tls_client_ctx_new(const sockit_tls_config *cfg, sockit_tls_ctx **out);

/* A server context from cfg->cert_file and its key; with cfg->ca_file,
 * clients must present a certificate signed by one of those CAs.  Session
 * tickets are on (resumption); idle connections hold no I/O buffers. */
SOCKIT_TLS_API int sockit_tls_server_ctx_new(const sockit_tls_config *cfg, sockit_tls_ctx **out);

/* Replaces the certificate and key for connections wrapped from now on
 * (e.g. on SIGHUP); connections already wrapped keep the old pair.
 * Atomic: when a file is bad or the key does not match, it returns the
 * error and the context is unchanged.  Safe while other threads wrap
 * connections.  Session tickets issued before stay valid. */
SOCKIT_TLS_API int sockit_tls_ctx_reload(sockit_tls_ctx *ctx, const char *cert_file,
					 const char *key_file);

/* Frees the context.  Connections wrapped from it stay usable until they
 * are freed. */
SOCKIT_TLS_API void sockit_tls_ctx_free(sockit_tls_ctx *ctx);

/* ---- Connections ---------------------------------------------------------- */

typedef struct sockit_tls sockit_tls;

/* Wraps a connected stream fd, without I/O: the handshake happens in
 * sockit_tls_handshake() or in the first send/recv.  servername is the name
 * the certificate must match (a host name, or an IPv4/IPv6 literal, which is
 * checked against the certificate's IP addresses) and is sent as SNI unless
 * it is an IP literal; NULL only with SOCKIT_TLS_INSECURE.  The fd stays
 * the caller's until sockit_tls_close().  *out is set on success. */
SOCKIT_TLS_API int sockit_tls_client(sockit_tls_ctx *ctx, int fd, const char *servername,
				     sockit_tls **out);
SOCKIT_TLS_API int sockit_tls_server(sockit_tls_ctx *ctx, int fd, sockit_tls **out);

/* Runs the handshake to its end.  Returns 0, -EAGAIN (timeout 0: call again
 * when sockit_tls_want() is ready), -ETIMEDOUT, a TLS code (verification,
 * SOCKIT_TLS_ENOTTLS, ...) or -errno.  After a failure the connection is
 * unusable: free or close it. */
SOCKIT_TLS_API int sockit_tls_handshake(sockit_tls *t, int timeout_ms);

/* Encrypts and sends up to len bytes (at least one record's worth when
 * the socket takes it).  Returns the bytes taken (> 0), or a negative code.
 * After -EAGAIN, call again with the same bytes (the buffer may move, its
 * contents may not: OpenSSL has encrypted them). */
SOCKIT_TLS_API ssize_t sockit_tls_send(sockit_tls *t, const void *buf, size_t len, int timeout_ms);

/* Sends all len bytes before one deadline.  *sent (may be NULL) gets the
 * bytes taken, also on failure.  Returns 0 or a negative code. */
SOCKIT_TLS_API int sockit_tls_sendall(sockit_tls *t, const void *buf, size_t len, int timeout_ms,
				      size_t *sent);

/* Receives and decrypts up to len bytes.  Returns the bytes (> 0); 0 when
 * the peer closed cleanly (close_notify); SOCKIT_TLS_ETRUNCATED when the
 * connection ended without close_notify (data may have been cut off);
 * -EAGAIN, -ETIMEDOUT, -ECONNRESET, a TLS code (an alert from the peer). */
SOCKIT_TLS_API ssize_t sockit_tls_recv(sockit_tls *t, void *buf, size_t len, int timeout_ms);

/* Decrypted bytes already buffered: a recv returns them without waiting
 * for the fd (an event loop must not wait for readability while > 0). */
SOCKIT_TLS_API size_t sockit_tls_pending(const sockit_tls *t);

/* After -EAGAIN: SOCKIT_READABLE or SOCKIT_WRITABLE, the readiness the last
 * call waits for (a TLS read may need to write, and a write to read). */
SOCKIT_TLS_API unsigned sockit_tls_want(const sockit_tls *t);

/* Sends close_notify (the TLS half-close); the connection can still
 * receive until the peer's.  Returns 0, -EAGAIN, -ETIMEDOUT or a code. */
SOCKIT_TLS_API int sockit_tls_shutdown(sockit_tls *t, int timeout_ms);

/* Sends close_notify (within timeout_ms, unless the handshake never
 * completed or the connection failed), closes the fd and frees t.  Input
 * already received is dropped first, so that the kernel closes with FIN,
 * not with a RST that could destroy the close_notify or alert in flight;
 * after a failure it sends FIN and waits up to timeout_ms for the peer's
 * (a lingering close: the peer then reads the alert that says why).
 * Returns 0 or the close_notify's error; t is gone either way. */
SOCKIT_TLS_API int sockit_tls_close(sockit_tls *t, int timeout_ms);

/* Frees t without any I/O; the fd stays open and the caller's.  NULL is a
 * no-op. */
SOCKIT_TLS_API void sockit_tls_free(sockit_tls *t);

SOCKIT_TLS_API int sockit_tls_fd(const sockit_tls *t);

/* ---- After the handshake -------------------------------------------------- */

/* "TLSv1.3", "TLSv1.2"; the cipher suite ("TLS_AES_256_GCM_SHA384"); NULL
 * before the handshake.  Valid until t is freed. */
SOCKIT_TLS_API const char *sockit_tls_protocol(const sockit_tls *t);
SOCKIT_TLS_API const char *sockit_tls_cipher(const sockit_tls *t);

/* The peer certificate's subject, one line in RFC 2253 form
 * ("CN=localhost,O=example"), into buf.  Returns its length, -ENODATA when
 * the peer sent no certificate, -ENOSPC when buf is too small. */
SOCKIT_TLS_API int sockit_tls_peer_subject(const sockit_tls *t, char *buf, size_t len);

/* 1 if the handshake resumed a session, else 0. */
SOCKIT_TLS_API int sockit_tls_resumed(const sockit_tls *t);

/* Client resumption.  session_get copies the session into buf as bytes to
 * give a later connection's session_set (before its handshake), and returns
 * their number (buf NULL: only the number), -ENOSPC, or -ENODATA when there
 * is none to resume yet: with TLS 1.3 the server sends its ticket after the
 * handshake, so call it after a recv has returned data.  session_set
 * returns 0 or SOCKIT_TLS_ESESSION; a session the server refuses just
 * makes a full handshake. */
SOCKIT_TLS_API int sockit_tls_session_get(const sockit_tls *t, void *buf, size_t len);
SOCKIT_TLS_API int sockit_tls_session_set(sockit_tls *t, const void *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* SOCKIT_TLS_H */
