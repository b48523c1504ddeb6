/* tls.c -- --tls-cert: the server context, its reload, and each connection's handshake.
 *
 * Costs: nothing when TLS is off (conn.h's I/O seam tests c->tls, which is
 * NULL).  On, a connection gets a struct conn and a session
 * (libsockit_tls, OpenSSL: its buffers are released while idle) at accept,
 * and runs its handshake by readiness on either backend: the io_uring
 * completion operations (ring receives and sends) stay for plaintext.  A
 * slow handshake holds one connection slot, bounded by --idle-timeout from
 * the accept on; a failed one is closed with its reason counted
 * (closed_tls_*), after a lingering close that lets the alert saying why
 * reach the client.  The protocol inside is unchanged.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "conn.h"

/* ---- The context: startup and SIGHUP (run.c) ------------------------------ */

/* Which file a load error is about, for the message. */
static const char *failed_file(const struct serve_config *cfg, int rc, const char **opt)
{
	if (rc == SOCKIT_TLS_ECAFILE) {
		*opt = "--tls-client-ca";
		return cfg->tls_client_ca;
	}
	if (rc == SOCKIT_TLS_EKEYFILE || rc == SOCKIT_TLS_EKEYMISMATCH) {
		*opt = "--tls-key";
		return cfg->tls_key;
	}
	*opt = "--tls-cert";
	return cfg->tls_cert;
}

/* A file the user named must be readable: OpenSSL's own error would not
 * say which one is missing. */
static int check_readable(const char *opt, const char *path, char *why, size_t len)
{
	if (path == NULL)
		return 0;
	FILE *f = fopen(path, "r");
	if (f != NULL) {
		fclose(f);
		return 0;
	}
	snprintf(why, len, "%s %s: %s", opt, path, sockit_strerror(-errno));
	return -1;
}

/* Loads the files into a new context; on failure why says which file and
 * what is wrong with it.  0 or -1. */
static int tls_load(const struct serve_config *cfg, sockit_tls_ctx **out, char *why, size_t len)
{
	if (check_readable("--tls-cert", cfg->tls_cert, why, len) < 0 ||
	    check_readable("--tls-key", cfg->tls_key, why, len) < 0 ||
	    check_readable("--tls-client-ca", cfg->tls_client_ca, why, len) < 0)
		return -1;
	sockit_tls_config tc = {cfg->tls_cert, cfg->tls_key, cfg->tls_client_ca, 0};
	int rc = sockit_tls_server_ctx_new(&tc, out);
	if (rc < 0) {
		const char *opt;
		const char *file = failed_file(cfg, rc, &opt);
		snprintf(why, len, "%s %s: %s", opt, file, sockit_strerror(rc));
		return -1;
	}
	return 0;
}

int serve_tls_setup(const struct serve_config *cfg, sockit_tls_ctx **out)
{
	*out = NULL;
	if (cfg->tls_cert == NULL)
		return 0;
	char why[512];
	if (tls_load(cfg, out, why, sizeof(why)) < 0)
		return cli_usage("serve", "%s", why);
	return 0;
}

void serve_tls_reload(const struct serve_config *cfg, sockit_tls_ctx *ctx,
		      const struct serve_log *lg)
{
	char why[512];
	if (check_readable("--tls-cert", cfg->tls_cert, why, sizeof(why)) == 0 &&
	    check_readable("--tls-key", cfg->tls_key, why, sizeof(why)) == 0) {
		int rc = sockit_tls_ctx_reload(ctx, cfg->tls_cert, cfg->tls_key);
		if (rc == 0) {
			serve_log(lg, LOG_INFO, "SIGHUP: reloaded the certificate %s and key %s",
				  cfg->tls_cert, cfg->tls_key ? cfg->tls_key : cfg->tls_cert);
			return;
		}
		const char *opt;
		const char *file = failed_file(cfg, rc, &opt);
		snprintf(why, sizeof(why), "%s %s: %s", opt, file, sockit_strerror(rc));
	}
	serve_log(lg, LOG_WARN, "SIGHUP: cannot reload (%s); keeping the certificate in use", why);
}

/* ---- The seam (conn.h), and the watcher of the stages ------------------------- */

ssize_t tls_io_recv(struct conn *c, void *buf, size_t len)
{
	ssize_t n = sockit_tls_recv(c->tls, buf, len, 0);
	/* A FIN without close_notify ends the exchange as a FIN does in
	 * plaintext: an acknowledgement server loses nothing by answering
	 * what it got. */
	return n == SOCKIT_TLS_ETRUNCATED ? 0 : n;
}

ssize_t tls_io_send(struct conn *c, const void *buf, size_t len)
{
	return sockit_tls_send(c->tls, buf, len, 0);
}

/* close_notify, then what the session kept goes in one send (flags);
 * what the socket did not take is appended to c->out (keep_rest) or
 * dropped; the session is freed.  0, or -ENOMEM or the send's error. */
static int end_session(struct conn *c, int flags, int keep_rest)
{
	(void)sockit_tls_shutdown(c->tls, 0); /* -ENOTCONN before the handshake: nothing sent */
	int rc = sk_tls_uncork(c->tls, flags);
	size_t left;
	const char *rest = sk_tls_kept(c->tls, &left);
	if (rc == -EAGAIN && keep_rest)
		rc = iobuf_append(&c->out, rest, left);
	sockit_tls_free(c->tls);
	c->tls = NULL;
	c->flags |= F_WAS_TLS;
	return rc;
}

void tls_end(struct conn *c)
{
	if (c->tls != NULL)
		(void)end_session(c, 0, 0);
}

int tls_end_reply(struct conn *c)
{
	return end_session(c, MSG_MORE, 1);
}

unsigned conn_read_events(struct conn *c)
{
	if (!io_tls(c))
		return SOCKIT_READABLE;
	/* Nothing may stay kept while c waits, its peer may be waiting for
	 * it; but a once request may be waited for with a TLS 1.3 ticket kept
	 * (no client waits for tickets before it speaks, and the server never
	 * speaks first), so that the ticket leaves with the reply.  A failed
	 * send shows in the next read. */
	if (!(c->state == ST_WAIT && sk_tls_may_keep_while_reading(c->tls)))
		(void)sk_tls_uncork(c->tls, 0);
	return sockit_tls_want(c->tls) == SOCKIT_WRITABLE ? SOCKIT_WRITABLE : SOCKIT_READABLE;
}

/* The watcher of a connection that began with a PROXY header or a TLS
 * handshake: the stage it is in, then its mode. */
void conn_event(sockit_loop *loop, int fd, unsigned events, void *arg)
{
	struct conn *c = arg;
	if (c->state == ST_PROXY)
		proxy_event(c->w, c);
	else if (c->state == ST_HANDSHAKE)
		tls_event(c->w, c);
	else if (c->w->cfg->mode == MODE_ONCE)
		once_event(loop, fd, events, arg);
	else
		stream_event(loop, fd, events, arg);
}

/* ---- The handshake ------------------------------------------------------ */

/* The close reason of a failed handshake. */
static int failure_reason(int rc)
{
	switch (rc) {
	case SOCKIT_TLS_ENOTTLS:
		return R_TLS_PLAINTEXT;
	case SOCKIT_TLS_ENOPEERCERT:
	case SOCKIT_TLS_ECERTREQUIRED:
	case SOCKIT_TLS_ECERTREJECTED:
	case SOCKIT_TLS_EVERIFY:
	case SOCKIT_TLS_EUNKNOWNCA:
	case SOCKIT_TLS_EEXPIRED:
	case SOCKIT_TLS_ENOTYETVALID:
	case SOCKIT_TLS_EHOSTNAME:
		return R_TLS_CERT;
	case SOCKIT_TLS_ETRUNCATED:
		return R_TLS_RESET;
	default:
		return SOCKIT_IS_TLS(rc) ? R_TLS_HANDSHAKE : R_TLS_RESET;
	}
}

/* The client's address for a log line: the one noted at accept (debug,
 * or the PROXY header's), else the socket's peer. */
static void client_of(struct worker *w, int fd, char *buf, size_t len)
{
	sockit_addr a;
	snprintf(buf, len, "?");
	if (w->cfg->proxy || w->log->level >= LOG_DEBUG) {
		if ((size_t)fd < w->npeers && w->peers[fd].addr.len > 0)
			sockit_addr_format(&w->peers[fd].addr, buf, len);
	} else if (sockit_getpeername(fd, &a) == 0) {
		sockit_addr_format(&a, buf, len);
	}
}

static void tls_failed(struct worker *w, struct conn *c, int rc)
{
	int reason = failure_reason(rc);
	char addr[SOCKIT_ADDRSTRLEN];
	client_of(w, c->fd, addr, sizeof(addr));
	struct log_fields f = {"tls_failed", c->fd, addr, NULL, NULL};
	serve_log_limited(&w->rl_hello, LOG_WARN, &f, "TLS handshake with %s failed: %s", addr,
			  sockit_strerror(rc));
	/* The alert goes to the socket (once mode kept it: cork.h), where a
	 * lingering close lets it arrive. */
	(void)sk_tls_uncork(c->tls, 0);
	sockit_tls_free(c->tls);
	c->tls = NULL;
	c->flags |= F_WAS_TLS;
	conn_linger(w, c, c->fd, c->ip, reason);
}

static void log_established(struct worker *w, struct conn *c)
{
	char addr[SOCKIT_ADDRSTRLEN], subject[256] = "";
	client_of(w, c->fd, addr, sizeof(addr));
	memcpy(subject, ", client ", 9);
	if (sockit_tls_peer_subject(c->tls, subject + 9, sizeof(subject) - 9) < 0)
		subject[0] = '\0';
	struct log_fields f = {"tls", c->fd, addr, NULL, NULL};
	serve_log_event(w->log, LOG_DEBUG, &f, "TLS fd %d from %s: %s %s%s%s", c->fd, addr,
			sockit_tls_protocol(c->tls), sockit_tls_cipher(c->tls),
			sockit_tls_resumed(c->tls) ? ", resumed" : "", subject);
}

/* One step of the handshake; when it is done, the mode takes over.  In
 * once mode the session is corked (cork.h): a step that has to wait sends
 * what it wrote as before (conn_read_events), and what the last step
 * writes (TLS 1.3's session ticket) waits for the reply and its
 * close_notify, to go out in one segment with the FIN (tls_end_reply). */
static void tls_step(struct worker *w, struct conn *c)
{
	if (w->cfg->mode == MODE_ONCE)
		sk_tls_cork(c->tls);
	int rc = sockit_tls_handshake(c->tls, 0);
	if (rc == -EAGAIN) {
		conn_set_events(w, c, conn_read_events(c));
		return;
	}
	if (rc < 0) {
		tls_failed(w, c, rc);
		return;
	}
	if (w->log->level >= LOG_DEBUG)
		log_established(w, c);
	conn_touch(w, c);
	if (w->cfg->mode == MODE_ONCE)
		once_begin(w, c, c->fd, c->ip, -1);
	else
		stream_begin(w, c, c->fd, c->ip, NULL, 0);
}

void tls_event(struct worker *w, struct conn *c)
{
	tls_step(w, c);
}

void tls_start(struct worker *w, int fd, struct ip_entry *ip, struct conn *c)
{
	int fresh = c == NULL;
	if (fresh && (c = conn_new(w, fd, ip)) == NULL) {
		conn_close_bare(w, fd, ip, R_LIMIT, 0);
		return;
	}
	c->state = ST_HANDSHAKE;
	/* The idle timeout runs from here: a handshake must end within it. */
	conn_touch(w, c);
	if (fresh && conn_watch(w, c, SOCKIT_READABLE, conn_event) < 0)
		return;
	int rc = sockit_tls_server(w->sh->tls, c->fd, &c->tls);
	if (rc < 0) {
		struct log_fields f = {"tls_failed", c->fd, NULL, NULL, NULL};
		serve_log_limited(&w->rl_hello, LOG_WARN, &f, "TLS: %s", sockit_strerror(rc));
		conn_close(w, c, R_LIMIT);
		return;
	}
	/* once reads until -EAGAIN before it waits (once_begin, once_event):
	 * the records may come in bulk. */
	if (w->cfg->mode == MODE_ONCE)
		sk_tls_read_ahead(c->tls);
	tls_step(w, c);
}
