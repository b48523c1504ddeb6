/* once.c -- once mode, the tutorial: one read, one reply (prefix + data), close.
 *
 * Costs, per connection whose request is already there at accept
 * (TCP_DEFER_ACCEPT makes that the rule): accept4, recv, send, shutdown,
 * close -- no epoll registration, no allocation.  The one read and the
 * reply share the worker's buffer (the prefix sits just before the read
 * area, so the reply is one send).  On io_uring the accept (multishot),
 * the send and the close run in the ring: recv is the only system call of
 * its own.  A client that has not sent yet, or a reply that did not go at
 * once, gets a struct conn (conn.c).
 */
#include <errno.h>

#include "conn.h"

/* The kernel's report on a reply handed over with sk_loop_send_close().
 * The connection was counted as finished (done or eof), and its bytes as
 * sent, when it was queued: a client that has read the reply finds the
 * counters saying so.  A short or failed send takes back what did not
 * go; a failed one also moves the connection to the resets. */
static void reply_sent(struct worker *w, int res, size_t len, int reason)
{
	if (res >= 0) {
		if ((size_t)res < len)
			CTR_SUB(w, bytes_out, len - (size_t)res);
		return;
	}
	CTR_SUB(w, bytes_out, len);
	if (reason == R_DONE)
		CTR_SUB(w, closed_done, 1);
	else
		CTR_SUB(w, closed_eof, 1);
	CTR_ADD(w, closed_reset, 1);
}

static void on_reply_done(sockit_loop *loop, void *arg, int res, int more, size_t len)
{
	(void)loop;
	(void)more;
	reply_sent(arg, res, len, R_DONE);
}

static void on_reply_eof(sockit_loop *loop, void *arg, int res, int more, size_t len)
{
	(void)loop;
	(void)more;
	reply_sent(arg, res, len, R_EOF);
}

/* Whether the write side is shut before the close (see reply_out): over
 * TCP, so that the FIN is queued before any RST that extra bytes from the
 * client provoke.  A Unix socket gains nothing from it: a peer whose
 * extra bytes were unread at the close reads the reset before the end of
 * file either way (the kernel checks the error first), so it costs a
 * system call for nothing. */
static int fin_first(const struct worker *w, ssize_t n)
{
	return n > 0 && w->cfg->unix_path == NULL;
}

/* io_uring: reply, FIN and close as one chain that the kernel runs inside
 * the loop's next wait -- three system calls fewer per connection.  Returns
 * 0, or -1 when the caller must do it itself. */
static int reply_async(struct worker *w, int fd, struct ip_entry *ip, ssize_t n, size_t len)
{
	int reason = n == 0 ? R_EOF : R_DONE;
	if (sk_loop_send_close(w->loop, fd, w->rbuf, len, MSG_MORE, fin_first(w, n),
			       reason == R_DONE ? on_reply_done : on_reply_eof, w) < 0)
		return -1;
	CTR_ADD(w, bytes_out, len);
	conn_done(w, fd, ip, reason);
	if (w->draining)
		conn_check_drained(w);
	return 0;
}

/* Closes c, or the bare fd when there is no c. */
static void once_close(struct worker *w, struct conn *c, int fd, struct ip_entry *ip, int reason)
{
	if (c != NULL)
		conn_close(w, c, reason);
	else
		conn_close_bare(w, fd, ip, reason, 0);
}

/* The whole reply went out: close at once if the request is all here and
 * the reply is out of our hands -- quick (see once_reply), or a larger
 * reply that SIOCOUTQ says is acknowledged (a slow reader's window may
 * hold it back, and an RST would destroy the rest) -- else linger.  The
 * write side is shut first so the FIN goes with the reply: a client that
 * sends more as soon as the reply arrives then finds reply + FIN queued
 * before any RST its extra bytes provoke (in CLOSE_WAIT an RST no longer
 * hides the EOF).  After EOF a close is enough. */
static void reply_out(struct worker *w, struct conn *c, int fd, struct ip_entry *ip, ssize_t n,
		      int quick)
{
	if (io_tls(c)) {
		/* close_notify, with the ticket and the reply the session kept */
		int rc = tls_end_reply(c);
		if (rc < 0) {
			conn_close(w, c, rc == -ENOMEM ? R_LIMIT : R_RESET);
			return;
		}
		if (c->out != NULL) {
			/* what the socket did not take: as a plaintext reply's rest */
			if (n == 0)
				c->flags |= F_EOF | F_EMPTY;
			c->state = ST_FLUSH;
			conn_touch(w, c);
			conn_set_events(w, c, SOCKIT_WRITABLE);
			return;
		}
		/* The client answers our close_notify only after reading all
		 * that came before it, and that answer's ACK covers it all:
		 * an RST it provokes then loses nothing.  So close at once
		 * unless the request's record was not the last thing read, the
		 * client has sent more already, or what is in flight exceeds
		 * the smallest window (a lingering close cost a wake-up and two
		 * reads per connection). */
		int q = conn_unacked(fd);
		quick = (size_t)n < w->cfg->max_bytes && conn_unread(fd) == 0 && q >= 0 &&
			q <= SAFE_REPLY;
	}
	if (!quick && !((size_t)n < w->cfg->max_bytes && conn_unacked(fd) == 0)) {
		conn_linger(w, c, fd, ip, R_DONE);
		return;
	}
	int reason = n == 0 ? R_EOF : R_DONE;
	if (c == NULL) {
		conn_close_bare(w, fd, ip, reason, fin_first(w, n));
		return;
	}
	conn_done(w, fd, c->ip, reason);
	c->flags |= F_COUNTED;
	if (fin_first(w, n))
		sockit_shutdown(fd, SHUT_WR);
	conn_close(w, c, reason);
}

/* Answers the one read (n bytes at rbuf + prefix_len, or n < 0 an error). */
static void once_reply(struct worker *w, struct conn *c, int fd, struct ip_entry *ip, ssize_t n)
{
	const struct serve_config *cfg = w->cfg;
	if (n < 0) {
		once_close(w, c, fd, ip, R_RESET);
		return;
	}
	CTR_ADD(w, bytes_in, n);
	size_t len = cfg->prefix_len + (size_t)n;
	/* The request is all here (the read returned less than asked, so it
	 * emptied the receive queue, or saw EOF) and the reply fits Linux's
	 * smallest receive window (so send() hands it all to the client at
	 * once): we close right after it, and its FIN rides with it. */
	int quick = (size_t)n < cfg->max_bytes && len <= SAFE_REPLY && !io_tls(c);
	if (io_tls(c))
		sk_tls_cork(c->tls); /* the reply's record waits for the close_notify */
	if (quick && c == NULL && w->ops && reply_async(w, fd, ip, n, len) == 0)
		return;
	ssize_t s = quick ? io_send_more(c, fd, w->rbuf, len) : io_send(c, fd, w->rbuf, len);
	/* A reply that waits for room: nothing is kept meanwhile. */
	if (io_tls(c) && s != (ssize_t)len)
		(void)sk_tls_uncork(c->tls, 0);
	if (s == -EAGAIN)
		s = 0;
	if (s < 0) {
		once_close(w, c, fd, ip, n == 0 ? R_EOF : R_RESET);
		return;
	}
	CTR_ADD(w, bytes_out, s);
	if ((size_t)s == len) {
		reply_out(w, c, fd, ip, n, quick);
		return;
	}
	/* Partial write: keep the rest, finish when it drains. */
	int fresh = c == NULL;
	if (fresh && (c = conn_new(w, fd, ip)) == NULL) {
		conn_close_bare(w, fd, ip, R_LIMIT, 0);
		return;
	}
	if (n == 0)
		c->flags |= F_EOF | F_EMPTY;
	if (iobuf_append(&c->out, w->rbuf + s, len - (size_t)s) < 0) {
		conn_close(w, c, R_LIMIT);
		return;
	}
	c->state = ST_FLUSH;
	conn_touch(w, c);
	if (fresh)
		conn_watch(w, c, SOCKIT_WRITABLE, once_event);
	else
		conn_set_events(w, c, SOCKIT_WRITABLE);
}

/* ST_FLUSH: one write of the rest of the reply, then finish or wait. */
static void once_flush(struct worker *w, struct conn *c)
{
	int rc = conn_flush_out(w, c);
	if (rc < 0) {
		conn_close(w, c, rc == -ENOMEM ? R_LIMIT : R_RESET);
		return;
	}
	if (c->out != NULL) {
		conn_set_events(w, c, SOCKIT_WRITABLE);
		return;
	}
	if (c->flags & F_EOF)
		conn_close(w, c, conn_finish_reason(c));
	else
		conn_linger(w, c, c->fd, c->ip, conn_finish_reason(c));
}

void once_event(sockit_loop *loop, int fd, unsigned events, void *arg)
{
	(void)loop;
	(void)fd;
	(void)events;
	struct conn *c = arg;
	struct worker *w = c->w;
	switch (c->state) {
	case ST_WAIT: {
		ssize_t n = io_recv(c, c->fd, w->rbuf + w->cfg->prefix_len, w->cfg->max_bytes);
		if (n != -EAGAIN)
			once_reply(w, c, c->fd, c->ip, n);
		else if (io_tls(c))
			conn_set_events(w, c, conn_read_events(c));
		return;
	}
	case ST_FLUSH:
		once_flush(w, c);
		return;
	default:
		conn_linger_event(w, c);
		return;
	}
}

void once_start(struct worker *w, int fd, struct ip_entry *ip)
{
	const struct serve_config *cfg = w->cfg;
	ssize_t n = io_recv(NULL, fd, w->rbuf + cfg->prefix_len, cfg->max_bytes);
	if (n != -EAGAIN) {
		once_reply(w, NULL, fd, ip, n);
		return;
	}
	struct conn *c = conn_new(w, fd, ip);
	if (c == NULL) {
		conn_close_bare(w, fd, ip, R_LIMIT, 0);
		return;
	}
	c->state = ST_WAIT;
	conn_touch(w, c);
	/* Accepted without data under TCP_DEFER_ACCEPT: the kernel already held
	 * it for defer_ms; that counts towards the idle timeout.  (The list
	 * may then be out of order by up to defer_ms; a sweep is at most that
	 * late.) */
	uint64_t held = w->defer_ms < cfg->idle_timeout_ms ? w->defer_ms : cfg->idle_timeout_ms;
	if (held > 0 && c->last_ms > held) {
		c->last_ms -= held;
		conn_arm_deadline(w, c);
	}
	conn_watch(w, c, SOCKIT_READABLE, once_event);
}

/* After a PROXY header (plaintext: n >= 0 bytes of request read with it,
 * at rbuf + prefix_len; c may be NULL) or a TLS handshake (n < 0: nothing
 * read yet; c is watched with conn_event). */
void once_begin(struct worker *w, struct conn *c, int fd, struct ip_entry *ip, ssize_t n)
{
	if (n > 0) {
		once_reply(w, c, fd, ip, n);
		return;
	}
	int fresh = c == NULL;
	if (fresh && (c = conn_new(w, fd, ip)) == NULL) {
		conn_close_bare(w, fd, ip, R_LIMIT, 0);
		return;
	}
	c->state = ST_WAIT;
	if (io_tls(c)) {
		/* The handshake's last read may have brought the request. */
		n = io_recv(c, c->fd, w->rbuf + w->cfg->prefix_len, w->cfg->max_bytes);
		if (n != -EAGAIN) {
			once_reply(w, c, c->fd, c->ip, n);
			return;
		}
	}
	conn_touch(w, c);
	if (fresh)
		conn_watch(w, c, SOCKIT_READABLE, once_event);
	else
		conn_set_events(w, c, conn_read_events(c));
}
