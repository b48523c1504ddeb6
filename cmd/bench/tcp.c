/* tcp.c -- bench's TCP engine: once (a connection per request), line and echo (persistent
 * connections, -P requests in flight each).
 *
 * Costs, per request, on the hot path: exactly the system calls needed
 * (sockit_try_*: one attempt each, no clock read or poll); no allocation;
 * a request is the template copied with its id patched in; replies are
 * compared in place against the template.  Reads go into one scratch
 * buffer per thread; a read shorter than the buffer ends the batch
 * (level-triggered, the loop reports the rest), so a would-block read is
 * rare.  Pipelined requests of a connection leave in one send per wake-up.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "sockit.h"

#define RBUF_SIZE (64 * 1024)

static void on_tcp(sockit_loop *loop, int fd, unsigned events, void *arg);

static void set_interest(struct conn *c, unsigned ev)
{
	if (c->interest == ev)
		return;
	c->interest = ev;
	sockit_loop_modify(c->w->loop, c->fd, ev);
}

static void tcp_close(struct conn *c)
{
	if (c->fd >= 0)
		sockit_loop_close(c->w->loop, c->fd);
	c->fd = -1;
	c->state = C_IDLE;
	c->interest = 0;
	c->head = c->count = 0;
	c->rx_off = 0;
	c->out_off = c->out_len = 0;
}

/* The connection failed: every request on it fails with kind (at least
 * one error is counted), it is closed, and restarted on the next pass
 * (with -R, once mode waits for the pacer instead). */
static void tcp_fail(struct conn *c, enum bench_err kind)
{
	struct bench_worker *w = c->w;
	uint64_t now = now_ns();
	unsigned n = c->count;
	for (unsigned i = 0; i < n; i++)
		request_over(w, c, now);
	tcp_close(c);
	if (!w->once || w->cfg->rate == 0)
		kick_later(w, c);
	count_error(w, kind, n ? n : 1);
	check_done(w);
}

/* Starts connecting c.  Returns 0, or a negative code (c stays closed). */
static int tcp_open(struct conn *c)
{
	struct bench_worker *w = c->w;
	int fd = sockit_socket(w->cfg->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK);
	if (fd < 0)
		return fd;
	c->conn_t0 = now_ns();
	int rc = sockit_try_connect(fd, &w->cfg->addr);
	if (rc < 0 && rc != -EINPROGRESS) {
		sockit_close(fd);
		return rc;
	}
	c->fd = fd;
	c->state = C_CONNECTING;
	c->interest = 0;
	if (!w->once) /* line/echo: small requests must not wait for delayed ACKs */
		sockit_set_nodelay(fd, 1);
	return 0;
}

/* The first bytes left: the connection is up. */
static void tcp_connected(struct bench_worker *w, struct conn *c)
{
	c->state = C_OPEN;
	w->res.answered = 1;
	if (w->once && c->conn_t0 >= w->clk->measure)
		hist_record(&w->res.connect, now_ns() - c->conn_t0);
}

/* Sends what is unsent; watches for writability if the kernel did not take
 * it all.  Returns 0, or -1 if the connection failed (and was closed). */
static int tcp_flush(struct conn *c)
{
	struct bench_worker *w = c->w;
	unsigned want = SOCKIT_READABLE;
	if (c->out_off < c->out_len) {
		ssize_t n = sockit_try_send(c->fd, c->out + c->out_off, c->out_len - c->out_off, 0);
		if (n > 0) {
			if (c->state == C_CONNECTING)
				tcp_connected(w, c);
			if (w->now_cache >= w->clk->measure) /* close enough for a count */
				w->res.bytes_out += (uint64_t)n;
			c->out_off += (size_t)n;
		} else if (n != -EAGAIN) {
			tcp_fail(c, bench_classify(n, c->state == C_CONNECTING));
			return -1;
		}
		if (c->out_off == c->out_len)
			c->out_off = c->out_len = 0;
		else
			want |= SOCKIT_WRITABLE;
	} else if (c->state == C_CONNECTING) {
		want = SOCKIT_WRITABLE;
	}
	if (c->interest == 0) {
		c->interest = want;
		if (sockit_loop_watch(w->loop, c->fd, want, on_tcp, c) < 0) {
			tcp_fail(c, ERR_OTHER);
			return -1;
		}
	} else {
		set_interest(c, want);
	}
	return 0;
}

/* Queues a new request on c (line/echo), started at t0. */
static void line_push(struct bench_worker *w, struct conn *c, uint64_t t0, uint64_t now)
{
	unsigned i = c->head + c->count++;
	struct req *r = &c->ring[i < w->cfg->depth ? i : i - w->cfg->depth];
	next_id(w, c, r);
	r->t0 = t0;
	r->sent = now;
	w->inflight++;
	if (c->out_len + w->tm->size > w->out_cap) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	render(w->tm, c->out + c->out_len, r);
	c->out_len += w->tm->size;
}

/* Opens a line/echo connection and, in a closed loop, fills its pipeline. */
static void line_open(struct conn *c, uint64_t now)
{
	struct bench_worker *w = c->w;
	int rc = tcp_open(c);
	if (rc < 0) {
		tcp_fail(c, bench_classify(rc, 1));
		return;
	}
	if (w->cfg->rate == 0)
		while (c->count < w->cfg->depth && may_start(w, now))
			line_push(w, c, now, now);
	tcp_flush(c); /* optimistic: on loopback the connect is usually done */
}

/* Starts one once-mode request on c: connect, send at once (on loopback
 * the handshake is usually done when connect returns). */
static void once_start(struct bench_worker *w, struct conn *c, uint64_t t0, uint64_t now)
{
	struct req *r = &c->ring[0];
	next_id(w, c, r);
	r->t0 = t0;
	r->sent = now;
	c->head = 0;
	c->count = 1;
	c->rx_off = 0;
	w->inflight++;
	render(w->tm, c->out, r);
	c->out_off = 0;
	c->out_len = w->tm->size;
	int rc = tcp_open(c);
	if (rc < 0) {
		tcp_fail(c, bench_classify(rc, 1));
		return;
	}
	tcp_flush(c);
}

/* Verifies n received bytes; completes line/echo replies.  Returns 0 or -1
 * on a mismatch (the first one kept as the run's example). */
static int tcp_consume(struct bench_worker *w, struct conn *c, const char *p, size_t n,
		       uint64_t now)
{
	const size_t rlen = w->tm->reply_len;
	while (n > 0) {
		if (c->count == 0 || c->rx_off == rlen) { /* bytes nobody asked for */
			note_mismatch(w, c->count ? c->ring[c->head].idtxt : NULL, c->rx_off, p, n);
			return -1;
		}
		struct req *r = &c->ring[c->head];
		size_t k = n < rlen - c->rx_off ? n : rlen - c->rx_off;
		if (!bench_reply_match(w->tm, r->idtxt, c->rx_off, p, k)) {
			note_mismatch(w, r->idtxt, c->rx_off, p, n);
			return -1;
		}
		c->rx_off += k;
		p += k;
		n -= k;
		if (c->rx_off < rlen || w->once)
			continue; /* once: complete at EOF */
		record_ok(w, r, now);
		c->head = c->head + 1 < w->cfg->depth ? c->head + 1 : 0;
		c->count--;
		c->rx_off = 0;
		request_over(w, c, now);
		if (w->cfg->rate == 0 && may_start(w, now))
			line_push(w, c, now, now);
	}
	return 0;
}

/* Once mode: EOF after the whole reply. */
static void once_done(struct bench_worker *w, struct conn *c, uint64_t now)
{
	record_ok(w, &c->ring[0], now);
	c->count = 0;
	request_over(w, c, now);
	tcp_close(c);
	if (w->cfg->rate == 0 && may_start(w, now))
		once_start(w, c, now, now);
	check_done(w);
}

/* EOF: the end of a once-mode reply, a reply cut short, or an idle close. */
static void tcp_eof(struct bench_worker *w, struct conn *c, uint64_t now)
{
	if (w->once && c->rx_off == w->tm->reply_len) {
		once_done(w, c, now);
	} else if (c->count > 0) {
		tcp_fail(c, ERR_TRUNCATED);
	} else {
		/* closed while idle (e.g. the server's idle timeout): reconnect,
		 * not an error */
		tcp_close(c);
		kick_later(w, c);
	}
}

/* Reads what has arrived.  Returns 0, or -1 if c was closed. */
static int tcp_read(struct bench_worker *w, struct conn *c, int fd)
{
	char *rbuf = w->engine;
	for (;;) {
		ssize_t n = sockit_try_recv(fd, rbuf, RBUF_SIZE);
		uint64_t now = now_ns();
		w->now_cache = now;
		if (n > 0) {
			if (now >= w->clk->measure)
				w->res.bytes_in += (uint64_t)n;
			if (tcp_consume(w, c, rbuf, (size_t)n, now) < 0) {
				tcp_fail(c, ERR_MISMATCH);
				return -1;
			}
			if ((size_t)n < RBUF_SIZE)
				return 0; /* drained: the loop tells us of more */
			continue;
		}
		if (n == 0) {
			tcp_eof(w, c, now);
			return -1;
		}
		if (n == -EAGAIN)
			return 0;
		tcp_fail(c, bench_classify(n, c->state == C_CONNECTING));
		return -1;
	}
}

static void on_tcp(sockit_loop *loop, int fd, unsigned events, void *arg)
{
	struct conn *c = arg;
	struct bench_worker *w = c->w;
	(void)loop;
	if (c->state == C_CONNECTING && c->out_off == c->out_len) {
		/* connected with nothing to send (yet): see how it went */
		if (events & SOCKIT_HANGUP) {
			ssize_t n = sockit_try_recv(fd, w->engine, 1);
			tcp_fail(c, n < 0 ? bench_classify(n, 1) : ERR_TRUNCATED);
			return;
		}
		c->state = C_OPEN;
		w->res.answered = 1;
	}
	if ((events & SOCKIT_READABLE) && tcp_read(w, c, fd) < 0)
		return;
	if (c->fd == fd && c->state != C_IDLE)
		tcp_flush(c);
	check_done(w);
}

/* ---- the table's functions ---------------------------------------------- */

static int tcp_engine_new(struct bench_worker *w)
{
	w->engine = malloc(RBUF_SIZE);
	return w->engine != NULL ? 0 : -ENOMEM;
}

static void tcp_engine_free(struct bench_worker *w)
{
	free(w->engine);
	w->engine = NULL;
}

static void tcp_open_all(struct bench_worker *w)
{
	(void)w; /* connections open as requests start */
}

static void tcp_close_all(struct bench_worker *w)
{
	for (unsigned i = 0; i < w->nconns; i++)
		if (w->conns[i].fd >= 0)
			tcp_close(&w->conns[i]);
}

static void once_kick(struct bench_worker *w, struct conn *c, uint64_t now)
{
	if (may_start(w, now))
		once_start(w, c, now, now);
}

static void line_kick(struct bench_worker *w, struct conn *c, uint64_t now)
{
	if (c->fd < 0 && (w->cfg->rate > 0 || w->quota > 0 || w->clk->end != UINT64_MAX ||
			  now < w->clk->measure))
		line_open(c, now);
}

/* -R: one more request on c (connecting first if it is closed). */
static void line_start(struct bench_worker *w, struct conn *c, uint64_t t0, uint64_t now)
{
	if (c->fd < 0) {
		int rc = tcp_open(c);
		if (rc < 0) {
			w->inflight++; /* balanced by request_over */
			request_over(w, c, now);
			kick_later(w, c);
			count_error(w, bench_classify(rc, 1), 1);
			return;
		}
	}
	line_push(w, c, t0, now);
	if (!c->dirty) {
		c->dirty = 1;
		w->dirty[w->ndirty++] = c->slot;
	}
}

static void tcp_flush_dirty(struct bench_worker *w)
{
	for (unsigned i = 0; i < w->ndirty; i++) {
		struct conn *c = &w->conns[w->dirty[i]];
		c->dirty = 0;
		if (c->fd >= 0)
			tcp_flush(c);
	}
	w->ndirty = 0;
}

static void tcp_sweep(struct bench_worker *w, uint64_t now, uint64_t limit)
{
	for (unsigned i = 0; i < w->nconns && !w->stopping; i++) {
		struct conn *c = &w->conns[i];
		if (c->fd < 0 || (c->state != C_CONNECTING && c->count == 0))
			continue; /* closed, or idle and open: no deadline */
		uint64_t since = c->count ? c->ring[c->head].sent : c->conn_t0;
		if (now - since > limit)
			tcp_fail(c, ERR_TIMEOUT);
	}
}

const struct bench_mode_ops bench_once_ops = {
	.engine_new = tcp_engine_new,
	.engine_free = tcp_engine_free,
	.open = tcp_open_all,
	.close = tcp_close_all,
	.start = once_start,
	.kick = once_kick,
	.flush = tcp_flush_dirty,
	.sweep = tcp_sweep,
};

const struct bench_mode_ops bench_line_ops = {
	.engine_new = tcp_engine_new,
	.engine_free = tcp_engine_free,
	.open = tcp_open_all,
	.close = tcp_close_all,
	.start = line_start,
	.kick = line_kick,
	.flush = tcp_flush_dirty,
	.sweep = tcp_sweep,
};
