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
 * The target may be a Unix socket (-U): the same calls, another family.
 * --proxy-header costs one getsockname per connection and travels in the
 * request's send; --tls connections are tls.c's from their connect on.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sockit.h"
#include "sockit_proxy.h"
#include "tcp.h"

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
	if (c->tls != NULL)
		bench_tls_close(c);
	else if (c->fd >= 0)
		sockit_loop_close(c->w->loop, c->fd);
	c->fd = -1;
	c->state = C_IDLE;
	c->interest = 0;
	c->head = c->count = 0;
	c->rx_off = 0;
	c->out_off = c->out_len = 0;
	c->raw_len = 0;
}

/* The connection failed: every request on it fails with kind (at least
 * one error is counted), it is closed, and restarted on the next pass
 * (with -R, once mode waits for the pacer instead). */
void bench_tcp_fail(struct conn *c, enum bench_err kind)
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

/* --proxy-header: the header announcing fd's local address, appended to
 * c's output (TLS: to be sent before the handshake).  Returns 0 or a
 * negative code. */
static int proxy_header(struct bench_worker *w, struct conn *c, int fd)
{
	sockit_addr local;
	int n = sockit_getsockname(fd, &local);
	if (n == 0)
		n = sockit_proxy_format(w->cfg->proxy_header, &local, &w->cfg->addr,
					c->out + c->out_len, SOCKIT_PROXY_FORMAT_MAX);
	if (n < 0)
		return n;
	c->out_len += (size_t)n;
	if (w->cfg->tls)
		c->raw_len = (unsigned)c->out_len;
	return 0;
}

/* Starts connecting c (its output empty).  Returns 0, or a negative code
 * (c stays closed). */
static int tcp_open(struct conn *c)
{
	struct bench_worker *w = c->w;
	const struct bench_config *cfg = w->cfg;
	int fd = sockit_socket(cfg->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK);
	if (fd < 0)
		return fd;
	c->conn_t0 = now_ns();
	int rc = sockit_try_connect(fd, &cfg->addr);
	if (rc == -EINPROGRESS)
		rc = 0;
	if (rc == 0 && cfg->proxy_header)
		rc = proxy_header(w, c, fd);
	c->fd = fd;
	if (rc == 0 && cfg->tls)
		rc = bench_tls_wrap(w, c);
	if (rc < 0) {
		sockit_close(fd);
		c->fd = -1;
		c->out_len = c->raw_len = 0;
		return rc;
	}
	c->state = C_CONNECTING;
	c->interest = 0;
	/* line/echo (and TLS's records): small writes must not wait for
	 * delayed ACKs */
	if ((!w->once || cfg->tls) && cfg->unix_path == NULL)
		sockit_set_nodelay(fd, 1);
	return 0;
}

void bench_tcp_connected(struct bench_worker *w, struct conn *c, uint64_t at)
{
	c->state = c->tls != NULL ? C_HANDSHAKE : C_OPEN;
	c->hs_t0 = at; /* TLS: the handshake's first byte went with the first write */
	w->res.answered = 1;
	if (w->once && c->conn_t0 >= w->clk->measure)
		hist_record(&w->res.connect, at - c->conn_t0);
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
				bench_tcp_connected(w, c, now_ns());
			if (w->now_cache >= w->clk->measure) /* close enough for a count */
				w->res.bytes_out += (uint64_t)n;
			c->out_off += (size_t)n;
		} else if (n != -EAGAIN) {
			bench_tcp_fail(c, bench_classify(n, c->state == C_CONNECTING));
			return -1;
		}
		if (c->out_off == c->out_len)
			c->out_off = c->out_len = 0;
		else
			want |= SOCKIT_WRITABLE;
	} else if (c->state == C_CONNECTING) {
		want = SOCKIT_WRITABLE;
	}
	return bench_tcp_arm(c, want, on_tcp);
}

int bench_tcp_arm(struct conn *c, unsigned want, sockit_io_cb cb)
{
	if (c->interest != 0) {
		set_interest(c, want);
		return 0;
	}
	c->interest = want;
	if (sockit_loop_watch(c->w->loop, c->fd, want, cb, c) < 0) {
		bench_tcp_fail(c, ERR_OTHER);
		return -1;
	}
	return 0;
}

/* Sends what c has to send, in the clear or through TLS. */
static int conn_flush(struct conn *c)
{
	return c->tls != NULL ? bench_tls_flush(c) : tcp_flush(c);
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
		c->raw_len = c->raw_len > c->out_off ? c->raw_len - (unsigned)c->out_off : 0;
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
		bench_tcp_fail(c, bench_classify(rc, 1));
		return;
	}
	if (w->cfg->rate == 0)
		while (c->count < w->cfg->depth && may_start(w, now))
			line_push(w, c, now, now);
	conn_flush(c); /* optimistic: on loopback the connect is usually done */
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
	c->out_off = c->out_len = 0;
	int rc = tcp_open(c);
	if (rc < 0) {
		bench_tcp_fail(c, bench_classify(rc, 1));
		return;
	}
	render(w->tm, c->out + c->out_len, r); /* after the PROXY header, if any */
	c->out_len += w->tm->size;
	conn_flush(c);
}

/* Verifies n received bytes; completes line/echo replies.  Returns 0 or -1
 * on a mismatch (the first one kept as the run's example). */
int bench_tcp_consume(struct bench_worker *w, struct conn *c, const char *p, size_t n, uint64_t now)
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
void bench_tcp_eof(struct bench_worker *w, struct conn *c, uint64_t now)
{
	if (w->once && c->rx_off == w->tm->reply_len) {
		once_done(w, c, now);
	} else if (c->count > 0) {
		bench_tcp_fail(c, ERR_TRUNCATED);
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
	char *rbuf = ((struct tcp_engine *)w->engine)->rbuf;
	for (;;) {
		ssize_t n = sockit_try_recv(fd, rbuf, RBUF_SIZE);
		uint64_t now = now_ns();
		w->now_cache = now;
		if (n > 0) {
			if (now >= w->clk->measure)
				w->res.bytes_in += (uint64_t)n;
			if (bench_tcp_consume(w, c, rbuf, (size_t)n, now) < 0) {
				bench_tcp_fail(c, ERR_MISMATCH);
				return -1;
			}
			if ((size_t)n < RBUF_SIZE)
				return 0; /* drained: the loop tells us of more */
			continue;
		}
		if (n == 0) {
			bench_tcp_eof(w, c, now);
			return -1;
		}
		if (n == -EAGAIN)
			return 0;
		bench_tcp_fail(c, bench_classify(n, c->state == C_CONNECTING));
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
			char b;
			ssize_t n = sockit_try_recv(fd, &b, 1);
			bench_tcp_fail(c, n < 0 ? bench_classify(n, 1) : ERR_TRUNCATED);
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
	struct tcp_engine *e = calloc(1, sizeof(*e));
	w->engine = e;
	if (e == NULL)
		return -ENOMEM;
	if (w->cfg->tls_resume) {
		e->sess_cap = 16 * 1024;
		if ((e->sess = malloc(e->sess_cap)) == NULL)
			return -ENOMEM;
	}
	return 0;
}

static void tcp_engine_free(struct bench_worker *w)
{
	struct tcp_engine *e = w->engine;
	if (e != NULL)
		free(e->sess);
	free(e);
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
			conn_flush(c);
	}
	w->ndirty = 0;
}

static void tcp_sweep(struct bench_worker *w, uint64_t now, uint64_t limit)
{
	for (unsigned i = 0; i < w->nconns && !w->stopping; i++) {
		struct conn *c = &w->conns[i];
		if (c->fd < 0 || (c->state == C_OPEN && c->count == 0))
			continue; /* closed, or idle and open: no deadline */
		uint64_t since = c->count ? c->ring[c->head].sent : c->conn_t0;
		if (now - since > limit)
			bench_tcp_fail(c, ERR_TIMEOUT);
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
