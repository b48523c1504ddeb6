/* stream.c -- line and echo modes: persistent connections, a reply per line or every byte.
 *
 * Costs: one read per wake; the replies of that read go out in one send,
 * which on io_uring the ring makes inside the loop's next wait.  On
 * io_uring the read is a multishot receive into the loop's buffers, armed
 * once per connection: a request costs no system call of its own, only its
 * share of the loop's io_uring_enter.  Output the client does not take
 * waits in the connection's backlog; at --max-pending its input pauses.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"

#define HOLD_MAX (64 * 1024)  /* ring receive: output held for the next chunk, at most */
#define KEPT_PIECE (8 * 1024) /* kept input is parsed this much at a time */

static const char line_too_long_msg[] = "error: line too long\n";

static void stream_settle(struct worker *w, struct conn *c);
static void on_stream_sent(sockit_loop *loop, void *arg, int res, int more, size_t len);

/* ---- Output ------------------------------------------------------------ */

/* Sends what the kernel takes now and queues the rest on c->out.  On
 * io_uring the send goes into the ring instead, to run inside the loop's
 * next wait: one system call fewer per reply.  Its bytes count as sent
 * now (a client that read them sees them counted); its completion takes
 * back what did not go.  Not for a connection that ends after this reply
 * (EOF, or a line too long): the loop's wait does not end for a send's
 * completion alone, and the close would wait with it. */
static int send_or_queue(struct worker *w, struct conn *c, const char *p, size_t n)
{
	if (c->send_op != NULL)
		return iobuf_append(&c->out, p, n); /* behind the one in the ring */
	if (w->ops && !io_tls(c) && n <= LOOP_SEND_MAX && !(c->flags & (F_EOF | F_LIMIT)) &&
	    sk_loop_send(w->loop, c->fd, p, n, 0, on_stream_sent, c, &c->send_op) == 0) {
		CTR_ADD(w, bytes_out, n);
		return 0;
	}
	ssize_t s = io_send(c, c->fd, p, n);
	if (s == -EAGAIN)
		s = 0;
	if (s < 0)
		return (int)s;
	CTR_ADD(w, bytes_out, s);
	if ((size_t)s < n)
		return iobuf_append(&c->out, p + s, n - (size_t)s);
	return 0;
}

static int wbuf_flush(struct worker *w, struct conn *c)
{
	if (w->wbuf_len == 0)
		return 0;
	size_t n = w->wbuf_len;
	w->wbuf_len = 0;
	return send_or_queue(w, c, w->wbuf, n);
}

/* Queues output: into the worker's per-wake batch while the connection has
 * no backlog, else behind its backlog. */
static int out_put(struct worker *w, struct conn *c, const char *p, size_t n)
{
	if (c->out != NULL)
		return iobuf_append(&c->out, p, n);
	if (w->wbuf_len + n <= w->wbuf_size) {
		memcpy(w->wbuf + w->wbuf_len, p, n);
		w->wbuf_len += n;
		return 0;
	}
	int rc = wbuf_flush(w, c);
	if (rc < 0)
		return rc;
	if (c->out != NULL)
		return iobuf_append(&c->out, p, n);
	if (n <= w->wbuf_size) {
		memcpy(w->wbuf, p, n);
		w->wbuf_len = n;
		return 0;
	}
	return send_or_queue(w, c, p, n);
}

/* A connection's ring send completed: what did not go (a full socket
 * buffer) goes back in front of its backlog, which then waits for room.
 * What did not go is no longer counted as sent. */
static void on_stream_sent(sockit_loop *loop, void *arg, int res, int more, size_t len)
{
	(void)loop;
	(void)more;
	struct conn *c = arg;
	struct worker *w = c->w;
	const char *data = sk_loop_op_data(c->send_op);
	c->send_op = NULL;
	size_t sent = res > 0 ? (size_t)res : 0;
	if (sent < len)
		CTR_SUB(w, bytes_out, len - sent);
	if (res < 0 && res != -EAGAIN) {
		conn_close(w, c, R_RESET);
		return;
	}
	if (sent < len) {
		if (iobuf_prepend(&c->out, data + sent, len - sent) < 0) {
			conn_close(w, c, R_LIMIT);
			return;
		}
		if (sent > 0)
			conn_touch(w, c);
		else
			conn_note_outq(c);
	}
	stream_settle(w, c);
}

/* ---- Input: lines and echo ------------------------------------------------- */

static int line_too_long(struct worker *w, struct conn *c)
{
	free(c->in);
	c->in = NULL;
	c->flags |= F_LIMIT;
	return out_put(w, c, line_too_long_msg, sizeof(line_too_long_msg) - 1);
}

/* Feeds n bytes of input: each complete line gets prefix + line.  The
 * unterminated line so far waits in c->in (at most --max-line bytes). */
static int line_feed(struct worker *w, struct conn *c, const char *p, size_t n)
{
	const struct serve_config *cfg = w->cfg;
	int rc;
	while (n > 0) {
		size_t have = c->in != NULL ? c->in->len : 0;
		ssize_t framed = line_frame(p, n, cfg->max_line - have);
		if (framed == -1)
			return line_too_long(w, c);
		if (framed == -2)
			return iobuf_append(&c->in, p, n);
		size_t len = (size_t)framed;
		if ((rc = out_put(w, c, cfg->prefix, cfg->prefix_len)) < 0)
			return rc;
		if (have > 0) {
			rc = out_put(w, c, c->in->data, have);
			free(c->in);
			c->in = NULL;
			if (rc < 0)
				return rc;
		}
		if ((rc = out_put(w, c, p, len)) < 0)
			return rc;
		p += len;
		n -= len;
	}
	return 0;
}

/* At EOF: the unterminated last line gets its reply too. */
static int line_eof(struct worker *w, struct conn *c)
{
	if (c->in == NULL || c->in->len == 0)
		return 0;
	int rc = out_put(w, c, w->cfg->prefix, w->cfg->prefix_len);
	if (rc == 0)
		rc = out_put(w, c, c->in->data, c->in->len);
	free(c->in);
	c->in = NULL;
	return rc;
}

/* n bytes of input: echoed, or fed to the line parser.  Echo goes through
 * the per-wake batch only when output is held there (see on_stream_recv). */
static int stream_input(struct worker *w, struct conn *c, const char *buf, size_t n, int hold)
{
	CTR_ADD(w, bytes_in, n);
	if (w->cfg->mode == MODE_LINE)
		return line_feed(w, c, buf, n);
	if (c->out != NULL)
		return iobuf_append(&c->out, buf, n);
	return hold || w->wbuf_len > 0 ? out_put(w, c, buf, n) : send_or_queue(w, c, buf, n);
}

/* Output backlog at which a connection's input pauses. */
static int input_paused(const struct worker *w, const struct conn *c)
{
	return c->out != NULL && c->out->len - c->out->off >= w->cfg->max_pending;
}

/* Within one wake, the replies batched for c (not sent yet, so not in its
 * backlog) count too: reading on while the batch grows would hold up to
 * READS_PER_WAKE reads' replies, past the bound README states. */
static int read_more(const struct worker *w, const struct conn *c)
{
	return !input_paused(w, c) && w->wbuf_len < w->cfg->max_pending;
}

/* A connection's I/O failed (rc < 0): its batched output is dropped and it
 * is closed; out of memory counts as a limit. */
static void stream_failed(struct worker *w, struct conn *c, int rc)
{
	w->wbuf_len = 0;
	conn_close(w, c, rc == -ENOMEM ? R_LIMIT : R_RESET);
}

/* The per-wake batch may hold another connection's output between two of
 * its chunks (on_stream_recv): that goes out before c uses the batch. */
static void wbuf_take(struct worker *w, struct conn *c)
{
	struct conn *o = w->wbuf_owner;
	w->wbuf_owner = NULL;
	if (o == NULL || o == c)
		return;
	int rc = wbuf_flush(w, o);
	if (rc < 0) {
		stream_failed(w, o, rc);
		return;
	}
	stream_settle(w, o);
}

/* The client's EOF: the unterminated last line is answered. */
static int stream_eof(struct worker *w, struct conn *c)
{
	c->flags |= F_EOF;
	return w->cfg->mode == MODE_LINE ? line_eof(w, c) : 0;
}

static int stream_read(struct worker *w, struct conn *c)
{
	const struct serve_config *cfg = w->cfg;
	wbuf_take(w, c);
	char *buf = w->rbuf + cfg->prefix_len;
	int rc = 0;
	for (int i = 0; i < READS_PER_WAKE; i++) {
		ssize_t n = io_recv(c, c->fd, buf, w->rbuf_size);
		if (n == -EAGAIN)
			break;
		if (n < 0) {
			rc = (int)n;
			break;
		}
		if (n == 0) {
			rc = stream_eof(w, c);
			break;
		}
		rc = stream_input(w, c, buf, (size_t)n, 0);
		if (rc < 0 || (c->flags & F_LIMIT))
			break;
		if (!read_more(w, c))
			break;
		if ((size_t)n < w->rbuf_size && !(io_tls(c) && sockit_tls_pending(c->tls) > 0))
			break; /* the receive queue is empty: no EAGAIN round trip */
	}
	int frc = wbuf_flush(w, c);
	if (rc == 0)
		rc = frc;
	conn_touch(w, c);
	return rc;
}

/* Input received while output is backlogged is kept unparsed (see
 * on_stream_recv).  The parser's unterminated line, if any, heads it, to
 * be parsed again with what follows.  Kept input counts as input once
 * parsed, so that line's bytes leave bytes_in until then. */
static int keep_input(struct worker *w, struct conn *c, const char *p, size_t n)
{
	if (!(c->flags & F_KEPT) && c->in != NULL)
		CTR_SUB(w, bytes_in, c->in->len - c->in->off);
	c->flags |= F_KEPT;
	return iobuf_append(&c->in, p, n);
}

/* Parses the input kept while output was backlogged (see on_stream_recv),
 * a piece at a time while the backlog has room; the rest stays kept.  It
 * counts as input as it is parsed. */
static int kept_feed(struct worker *w, struct conn *c)
{
	struct iobuf *k = c->in;
	size_t off = k->off;
	int rc = 0;

	c->in = NULL;
	c->flags &= (uint8_t)~F_KEPT;
	wbuf_take(w, c);
	while (rc == 0 && off < k->len && !(c->flags & F_LIMIT) && !input_paused(w, c)) {
		size_t n = k->len - off < KEPT_PIECE ? k->len - off : KEPT_PIECE;
		rc = stream_input(w, c, k->data + off, n, 0);
		off += n;
	}
	if (rc == 0 && off < k->len && !(c->flags & F_LIMIT))
		rc = keep_input(w, c, k->data + off, k->len - off);
	free(k);
	if (rc == 0 && !(c->flags & F_KEPT) && (c->flags & F_KEPT_EOF)) {
		c->flags &= (uint8_t)~F_KEPT_EOF;
		rc = stream_eof(w, c);
	}
	if (rc == 0)
		rc = wbuf_flush(w, c);
	return rc;
}

/* ---- Settling: finish, or set what the connection waits for ---------------- */

static void on_stream_recv(sockit_loop *loop, void *arg, int res, int more, size_t len);

/* What c waits for next: input (readiness, or on io_uring the multishot
 * receive), room for its backlog, or nothing. */
static void stream_want(struct worker *w, struct conn *c)
{
	unsigned want = 0;
	if (c->state == ST_STREAM && !(c->flags & (F_EOF | F_LIMIT | F_KEPT)) &&
	    !input_paused(w, c))
		want |= SOCKIT_READABLE;
	if (c->out != NULL && c->send_op == NULL)
		want |= SOCKIT_WRITABLE;
	if ((want & SOCKIT_READABLE) && io_tls(c)) {
		/* TLS reads by readiness, of what the session asks for. */
		want = (want & ~SOCKIT_READABLE) | conn_read_events(c);
	} else if ((want & SOCKIT_READABLE) && w->ops) {
		/* io_uring: input comes by a multishot receive (one system call
		 * fewer per request); readiness only if it cannot be had. */
		if (c->recv_op == NULL)
			(void)sk_loop_recv_multi(w->loop, c->fd, on_stream_recv, c, &c->recv_op);
		if (c->recv_op != NULL)
			want &= ~SOCKIT_READABLE;
	} else if (c->recv_op != NULL) {
		/* Input paused: chunks already on their way still come, and
		 * the last one settles the connection again. */
		sk_loop_op_cancel(w->loop, c->recv_op);
	}
	conn_set_events(w, c, want);
}

/* After I/O on a connection: finish it or set what it waits for. */
static void stream_settle(struct worker *w, struct conn *c)
{
	/* Input kept while the backlog was full: parsed once it has room. */
	if ((c->flags & F_KEPT) && !input_paused(w, c)) {
		int rc = kept_feed(w, c);
		if (rc < 0) {
			stream_failed(w, c, rc);
			return;
		}
	}
	/* A send in the ring: its completion settles the connection again. */
	if (c->out == NULL && c->send_op == NULL) {
		if (c->flags & F_LIMIT) {
			conn_linger(w, c, c->fd, c->ip, R_LIMIT);
			return;
		}
		if (c->flags & F_EOF) {
			conn_close(w, c, R_EOF);
			return;
		}
	}
	stream_want(w, c);
}

/* Input by the ring's multishot receive (see stream_want). */
static void on_stream_recv(sockit_loop *loop, void *arg, int res, int more, size_t len)
{
	(void)loop;
	(void)len;
	struct conn *c = arg;
	struct worker *w = c->w;
	const char *data = sk_loop_op_data(c->recv_op);
	/* More input waits in the socket, its chunk comes next: this chunk's
	 * output waits in the per-wake batch to go with it, up to HOLD_MAX, so
	 * a burst costs one send per HOLD_MAX, as a read of that size would (a
	 * 64 KiB echo comes in 8 chunks).  Not behind a backlog, which waits
	 * for room anyway.  Whatever ends the receive still calls back, and
	 * that call sends. */
	wbuf_take(w, c);
	int hold = more && res > 0 && sk_loop_op_more_input(c->recv_op) && c->out == NULL &&
		   w->wbuf_len < HOLD_MAX;
	int rc = 0;
	if (!more)
		c->recv_op = NULL; /* ended: stream_want starts another if input is wanted */
	if (res > 0 && (c->flags & (F_EOF | F_LIMIT))) {
		CTR_ADD(w, bytes_in, res); /* after a line too long: discarded */
	} else if (res > 0 && ((c->flags & F_KEPT) || input_paused(w, c))) {
		/* Input is paused, but what the kernel received before the
		 * cancel still comes.  Parsed now, it would grow the backlog
		 * past --max-pending (a line's reply is larger than the line),
		 * so it is kept as it is until the backlog has room. */
		rc = keep_input(w, c, data, (size_t)res);
	} else if (res > 0) {
		rc = stream_input(w, c, data, (size_t)res, hold);
	} else if (res == 0 && (c->flags & F_KEPT)) {
		c->flags |= F_KEPT_EOF; /* after the kept input */
	} else if (res == 0) {
		rc = stream_eof(w, c);
	} else if (res != -ENOBUFS && res != -ECANCELED) {
		rc = res; /* ENOBUFS: the input waits in the socket for the next one */
	}
	if (rc == 0 && hold && c->out == NULL && w->wbuf_len > 0 && !(c->flags & F_LIMIT))
		w->wbuf_owner = c; /* (a line too long: the connection ends now) */
	else if (rc == 0)
		rc = wbuf_flush(w, c);
	if (rc < 0) {
		stream_failed(w, c, rc);
		return;
	}
	if (res >= 0)
		conn_touch(w, c);
	stream_settle(w, c);
}

void stream_event(sockit_loop *loop, int fd, unsigned events, void *arg)
{
	(void)loop;
	(void)fd;
	struct conn *c = arg;
	struct worker *w = c->w;
	int rc = 0;
	if (c->state == ST_LINGER) {
		conn_linger_event(w, c);
		return;
	}
	if (c->out != NULL && c->send_op == NULL && (events & (SOCKIT_WRITABLE | SOCKIT_HANGUP)))
		rc = conn_flush_out(w, c);
	if (rc == 0 && (c->events & SOCKIT_READABLE) &&
	    (events & (SOCKIT_READABLE | SOCKIT_HANGUP)))
		rc = stream_read(w, c);
	else if (rc == 0 && io_tls(c) && c->state == ST_STREAM && c->out == NULL &&
		 (events & SOCKIT_WRITABLE))
		rc = stream_read(w, c); /* a TLS read that waited for room */
	if (rc < 0) {
		stream_failed(w, c, rc);
		return;
	}
	stream_settle(w, c);
}

void stream_start(struct worker *w, int fd, struct ip_entry *ip)
{
	struct conn *c = conn_new(w, fd, ip);
	if (c == NULL) {
		conn_close_bare(w, fd, ip, R_LIMIT, 0);
		return;
	}
	sockit_set_nodelay(fd, 1); /* replies are batched already; don't let Nagle wait */
	c->state = ST_STREAM;
	conn_touch(w, c);
	/* On io_uring the fd is known to the loop but not polled: input comes
	 * by the receive that stream_want starts. */
	if (conn_watch(w, c, w->ops ? 0 : SOCKIT_READABLE, stream_event) == 0 && w->ops)
		stream_settle(w, c);
}

void stream_begin(struct worker *w, struct conn *c, int fd, struct ip_entry *ip, const char *data,
		  size_t n)
{
	int fresh = c == NULL;
	if (fresh && (c = conn_new(w, fd, ip)) == NULL) {
		conn_close_bare(w, fd, ip, R_LIMIT, 0);
		return;
	}
	sockit_set_nodelay(c->fd, 1);
	c->state = ST_STREAM;
	conn_touch(w, c);
	if (fresh && conn_watch(w, c, w->ops ? 0 : SOCKIT_READABLE, stream_event) < 0)
		return;
	int rc = 0;
	if (n > 0) {
		wbuf_take(w, c);
		rc = stream_input(w, c, data, n, 0);
		if (rc == 0)
			rc = wbuf_flush(w, c);
	} else if (io_tls(c)) {
		rc = stream_read(w, c); /* the handshake's last read may have brought input */
	}
	if (rc < 0) {
		stream_failed(w, c, rc);
		return;
	}
	stream_settle(w, c);
}
