/* tls.c -- the TLS layer of bench's TCP engine (--tls): per connection, connect ->
 * [PROXY header in the clear] -> handshake -> requests and replies -> close_notify, all
 * non-blocking (timeout 0, then the readiness sockit_tls_want names).
 *
 * Costs: one SSL per connection (OpenSSL allocates it; nothing else is
 * allocated per connection or request); requests are encrypted from the
 * connection's output buffer and replies decrypted into the thread's one
 * read buffer.  A read repeats until the socket is dry (a TLS record at a
 * time), so no decrypted byte waits for an event that will not come.
 * --tls-resume: the thread keeps the session of its first full handshake
 * (read once its reply has arrived: TLS 1.3 sends tickets after the
 * handshake) and offers it on every later connection.
 */
#include <errno.h>
#include <string.h>

#include "sockit.h"
#include "sockit_tls.h"
#include "tcp.h"

static void on_tls(sockit_loop *loop, int fd, unsigned events, void *arg);

/* What a failure of c with code rc counts as, in c's current phase. */
static enum bench_err tls_kind(const struct conn *c, long rc)
{
	switch (rc) {
	case SOCKIT_TLS_EHOSTNAME:
	case SOCKIT_TLS_EEXPIRED:
	case SOCKIT_TLS_ENOTYETVALID:
	case SOCKIT_TLS_EUNKNOWNCA:
	case SOCKIT_TLS_EVERIFY:
		return ERR_TLS_VERIFY;
	}
	if (SOCKIT_IS_TLS(rc)) {
		if (c->state != C_OPEN)
			return ERR_TLS_HANDSHAKE;
		return rc == SOCKIT_TLS_ETRUNCATED ? ERR_TLS_TRUNCATED : ERR_TLS_ALERT;
	}
	return bench_classify(rc, c->state == C_CONNECTING);
}

/* c failed with rc: counted by kind; the run keeps the first TLS error. */
static void tls_fail(struct conn *c, long rc)
{
	struct bench_worker *w = c->w;
	if (SOCKIT_IS_TLS(rc) && w->res.tls_error == 0)
		w->res.tls_error = (int)rc;
	bench_tcp_fail(c, tls_kind(c, rc));
}

int bench_tls_wrap(struct bench_worker *w, struct conn *c)
{
	struct tcp_engine *e = w->engine;
	sockit_tls *t;
	int rc = sockit_tls_client(w->cfg->tls_ctx, c->fd, w->cfg->tls_servername, &t);
	if (rc < 0)
		return rc;
	if (e->sess_len > 0)
		sockit_tls_session_set(t, e->sess, e->sess_len); /* refused: a full handshake */
	c->tls = t;
	c->tls_fresh = 0;
	return 0;
}

/* The handshake is over: it counts in its histogram (when measured). */
static void handshake_done(struct bench_worker *w, struct conn *c)
{
	int resumed = sockit_tls_resumed(c->tls);
	c->state = C_OPEN;
	c->tls_fresh = w->cfg->tls_resume && !resumed;
	if (c->conn_t0 < w->clk->measure)
		return;
	hist_record(resumed ? &w->res.hs_resumed : &w->res.hs_full, now_ns() - c->hs_t0);
	w->res.tls_resumed += (uint64_t)resumed;
}

/* The handshake's next step.  Returns 0 when it is over, 1 while it waits
 * for *want, -1 if c failed. */
static int handshake_step(struct bench_worker *w, struct conn *c, unsigned *want)
{
	if (c->state == C_CONNECTING)
		c->hs_t0 = now_ns(); /* the ClientHello may leave now */
	int rc = sockit_tls_handshake(c->tls, 0);
	if (rc == -EAGAIN) {
		*want = sockit_tls_want(c->tls);
		/* waiting to read: the ClientHello left, so the socket is connected */
		if (c->state == C_CONNECTING && *want == SOCKIT_READABLE)
			bench_tcp_connected(w, c, c->hs_t0);
		return 1;
	}
	if (rc < 0) {
		tls_fail(c, rc);
		return -1;
	}
	if (c->state == C_CONNECTING) /* all in one go */
		bench_tcp_connected(w, c, c->hs_t0);
	handshake_done(w, c);
	return 0;
}

/* Sends the PROXY header (in the clear).  Returns 0 when it is all out, 1
 * while the socket is not writable, -1 if c failed. */
static int send_raw(struct bench_worker *w, struct conn *c)
{
	ssize_t n = sockit_try_send(c->fd, c->out + c->out_off, c->raw_len - c->out_off, 0);
	if (n == -EAGAIN)
		return 1;
	if (n < 0) {
		tls_fail(c, n);
		return -1;
	}
	if (c->state == C_CONNECTING)
		bench_tcp_connected(w, c, now_ns());
	c->out_off += (size_t)n;
	return c->out_off < c->raw_len;
}

/* Encrypts and sends the unsent requests.  Returns the readiness it waits
 * for beyond READABLE, or -1 if c failed. */
static int send_requests(struct bench_worker *w, struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n =
			sockit_tls_send(c->tls, c->out + c->out_off, c->out_len - c->out_off, 0);
		if (n == -EAGAIN)
			return (int)sockit_tls_want(c->tls);
		if (n < 0) {
			tls_fail(c, n);
			return -1;
		}
		if (w->now_cache >= w->clk->measure)
			w->res.bytes_out += (uint64_t)n;
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
	c->raw_len = 0;
	return 0;
}

int bench_tls_flush(struct conn *c)
{
	struct bench_worker *w = c->w;
	unsigned want = SOCKIT_READABLE;
	int rc = 0;
	if (c->out_off < c->raw_len)
		rc = send_raw(w, c);
	if (rc == 1)
		want = SOCKIT_WRITABLE;
	else if (rc == 0 && c->state != C_OPEN)
		rc = handshake_step(w, c, &want);
	if (rc == 0) {
		rc = send_requests(w, c);
		want |= rc > 0 ? (unsigned)rc : 0;
	}
	return rc < 0 ? -1 : bench_tcp_arm(c, want, on_tls);
}

/* --tls-resume: keeps the session of c's full handshake for the thread's
 * later connections (the latest such session wins). */
static void keep_session(struct bench_worker *w, struct conn *c)
{
	struct tcp_engine *e = w->engine;
	int n = sockit_tls_session_get(c->tls, e->sess, e->sess_cap);
	if (n == -ENODATA)
		return; /* no ticket yet: try after the next read */
	c->tls_fresh = 0;
	if (n > 0)
		e->sess_len = (size_t)n;
}

/* Reads and checks what has arrived, until the socket is dry.  Returns 0,
 * or -1 if c was closed. */
static int tls_read(struct bench_worker *w, struct conn *c)
{
	char *rbuf = ((struct tcp_engine *)w->engine)->rbuf;
	for (;;) {
		ssize_t n = sockit_tls_recv(c->tls, rbuf, RBUF_SIZE, 0);
		uint64_t now = now_ns();
		w->now_cache = now;
		if (n > 0) {
			if (now >= w->clk->measure)
				w->res.bytes_in += (uint64_t)n;
			if (c->tls_fresh)
				keep_session(w, c);
			if (bench_tcp_consume(w, c, rbuf, (size_t)n, now) < 0) {
				bench_tcp_fail(c, ERR_MISMATCH);
				return -1;
			}
			continue;
		}
		if (n == 0) { /* close_notify */
			bench_tcp_eof(w, c, now);
			return -1;
		}
		if (n == -EAGAIN)
			return 0;
		tls_fail(c, n);
		return -1;
	}
}

static void on_tls(sockit_loop *loop, int fd, unsigned events, void *arg)
{
	struct conn *c = arg;
	struct bench_worker *w = c->w;
	(void)loop;
	if (c->state == C_OPEN && (events & (SOCKIT_READABLE | SOCKIT_HANGUP)) &&
	    tls_read(w, c) < 0) {
		check_done(w);
		return;
	}
	if (c->fd == fd && c->state != C_IDLE)
		bench_tls_flush(c);
	check_done(w);
}

void bench_tls_close(struct conn *c)
{
	struct bench_worker *w = c->w;
	if (c->state == C_OPEN && c->count == 0) {
		/* done: close_notify, and no epoll_ctl for a closing fd */
		sockit_tls_shutdown(c->tls, 0);
		sockit_tls_free(c->tls);
		sockit_loop_close(w->loop, c->fd);
	} else {
		/* failed: FIN before close, so the server reads our alert, not a RST */
		sockit_loop_unwatch(w->loop, c->fd);
		sockit_tls_close(c->tls, 0);
	}
	c->tls = NULL;
}
