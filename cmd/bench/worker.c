/* bench_worker.c -- one load-generating thread: its loop, connections, clocks and histograms.
 *
 * Costs, per request, on the hot path: exactly the system calls needed
 * (lib/nbio: one attempt each, without the clock read and poll of
 * sockit_send/recv with timeout 0; lib/dgram: up to 64 datagrams a call);
 * no allocation; a request is the template copied with its id patched in;
 * replies are compared in place against the template.  TCP reads go into
 * one scratch buffer per thread; a read shorter than the buffer ends the
 * batch (level-triggered epoll reports the rest), so a would-block read is
 * rare.  Pipelined requests of a connection leave in one send per wake-up.
 * Timeouts are checked by one sweep timer per thread, not one timer per
 * request.
 *
 * Request ids: id = seq << (slot_bits + thread_bits) | thread << slot_bits
 * | slot, so ids are unique in the run and a UDP reply names its slot.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "internal.h"
#include "sockit.h"
#include "sockit_loop.h"

#define RBUF_SIZE (64 * 1024) /* TCP reads */
#define MS 1000000ull
/* -R: the pacer wakes at most this often (it sends all that is due). */
#define PACE_MIN_NS 100000ull

enum cstate { C_IDLE, C_CONNECTING, C_OPEN };

struct req {
	uint64_t id;
	uint64_t t0;	/* latency starts here: send time, or scheduled time with -R */
	uint64_t sent;	/* handed to the connection: the timeout starts here */
	char idtxt[16]; /* the id as sent (id_len hex digits) */
};

struct conn {
	struct bench_worker *w;
	int fd; /* -1 when closed; udp: the worker's socket */
	unsigned slot;
	enum cstate state;
	unsigned interest;
	uint64_t seq;
	char nexttxt[16]; /* the next id in hex */
	uint64_t conn_t0; /* connect() called */
	struct req *ring; /* depth entries */
	unsigned head, count;
	size_t rx_off;		 /* bytes of the head's reply verified */
	char *out;		 /* unsent requests; udp/once: the one request */
	size_t out_off, out_len; /* out[out_off..out_len) is unsent */
	unsigned kicked : 1;	 /* on the kick list */
	unsigned dirty : 1;	 /* on the dirty list (output to flush) */
	unsigned udp_unsent : 1; /* udp: request waits for the socket to take it */
};

#define UDP_BATCH 64

/* UDP mode: the batches for recvmmsg/sendmmsg. */
struct udp_io {
	struct mmsghdr in[UDP_BATCH];
	struct iovec in_iov[UDP_BATCH];
	struct mmsghdr out[UDP_BATCH];
	struct iovec out_iov[UDP_BATCH];
	unsigned batch; /* datagrams per receive: UDP_BATCH, fewer for big ones */
	int flushing;
	char *bufs; /* batch buffers of reply_len + 1 bytes (to see oversize replies) */
};

struct bench_worker {
	const struct bench_config *cfg;
	const struct bench_tmpl *tm;
	const struct bench_clock *clk;
	unsigned index;
	sockit_loop *loop;
	pthread_t tid;
	int started;
	void (*done_cb)(void *arg);
	void *done_arg;

	struct conn *conns;
	unsigned nconns;
	struct req *reqs;
	char *outs;
	size_t out_cap; /* per connection */
	char *rbuf;
	int ufd;	    /* udp socket */
	struct udp_io *udp; /* udp mode only */

	unsigned slot_bits, thread_bits;
	unsigned low_digits; /* hex digits that hold slot and thread */
	uint64_t quota;	     /* measured requests left to start (-n) */
	uint64_t inflight;   /* requests started and not finished */
	int stopping;

	/* -R: request k is due at sched_base + k * interval_ns (integers: the
	 * ticker's period is exactly a multiple, so it never drifts early) */
	uint64_t interval_ns;
	uint64_t sched_base;
	uint64_t k_issued;
	int tick_fd;	  /* the pacer's ticker (ns resolution), or -1: loop timer */
	unsigned *tokens; /* free capacity: a FIFO of connection indexes */
	unsigned tok_head, tok_count, tok_cap;

	unsigned *kick;	    /* connections to (re)start on the next pass */
	unsigned *kick_run; /* the list being run (kicks made meanwhile go to kick) */
	unsigned nkick;
	unsigned *dirty; /* connections with output to flush */
	unsigned ndirty;
	unsigned *udp_q; /* udp: slots whose datagram waits for the socket */
	unsigned nudp_q;

	sockit_timer t_end, t_sweep, t_pace, t_kick;
	uint64_t sweep_ns;
	uint64_t last_done; /* last request finished (-n: the end of measuring) */
	uint64_t now_cache; /* the clock as last read */

	struct bench_result res;
	_Atomic uint64_t prog_requests, prog_errors;
	atomic_int stop_asked, finished;
};

/* ---- small helpers --------------------------------------------------------- */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int would_block(ssize_t rc)
{
	return rc == -EAGAIN; /* nbio and dgram say "not now" so, and only so */
}

static enum bench_err classify(ssize_t rc, int connecting)
{
	switch (-rc) {
	case ECONNREFUSED:
		return ERR_REFUSED;
	case ECONNRESET:
	case EPIPE:
		return ERR_RESET;
	case ETIMEDOUT:
		return ERR_TIMEOUT;
	case EMFILE:
	case ENFILE:
	case ENOMEM:
	case ENOBUFS:
		return ERR_OTHER;
	default:
		return connecting ? ERR_CONNECT : ERR_OTHER;
	}
}

const char *bench_err_name(enum bench_err e)
{
	static const char *const names[ERR_KINDS] = {
		"mismatch", "truncated", "reset", "refused", "timeout", "connect", "other",
	};
	return (unsigned)e < ERR_KINDS ? names[e] : "other";
}

/* 8 nibbles (the low 32 bits of v) as 8 hex digits, most significant first,
 * without a loop: spread a nibble per byte, add '0' or 'a' - 10. */
static uint64_t hex8(uint64_t v)
{
	uint64_t x = v & 0xffffffffu;
	x = ((x & 0xffff0000u) << 16) | (x & 0xffffu);
	x = ((x & 0x0000ff000000ff00ull) << 8) | (x & 0x000000ff000000ffull);
	x = ((x & 0x00f000f000f000f0ull) << 4) | (x & 0x000f000f000f000full);
	uint64_t letters = ((x + 0x0606060606060606ull) >> 4) & 0x0101010101010101ull;
	x += 0x3030303030303030ull + 0x27 * letters;
	return __builtin_bswap64(x); /* byte 0 = the most significant digit */
}

void bench_id_format(char *dst, size_t id_len, uint64_t id)
{
	char buf[16];
	uint64_t hi = hex8(id >> 32), lo = hex8(id);
	memcpy(buf, &hi, 8);
	memcpy(buf + 8, &lo, 8);
	memcpy(dst, buf + 16 - id_len, id_len);
}

int bench_reply_match(const struct bench_tmpl *tm, const char *idtxt, size_t off, const char *data,
		      size_t n)
{
	const size_t a = tm->id_off, b = tm->id_off + tm->id_len;
	if (off == 0 && n == tm->reply_len) { /* the usual case: the whole reply at once */
		if (tm->id_len == 16) {
			uint64_t x[2], y[2];
			memcpy(x, data + a, 16);
			memcpy(y, idtxt, 16);
			if (((x[0] ^ y[0]) | (x[1] ^ y[1])) != 0)
				return 0;
		} else if (memcmp(data + a, idtxt, tm->id_len) != 0) {
			return 0;
		}
		return memcmp(data, tm->expect, a) == 0 &&
		       (n == b || memcmp(data + b, tm->expect + b, n - b) == 0);
	}
	if (off < a) {
		size_t k = n < a - off ? n : a - off;
		if (memcmp(data, tm->expect + off, k) != 0)
			return 0;
		off += k, data += k, n -= k;
	}
	if (n > 0 && off < b) {
		size_t k = n < b - off ? n : b - off;
		if (memcmp(data, idtxt + (off - a), k) != 0)
			return 0;
		off += k, data += k, n -= k;
	}
	return n == 0 || memcmp(data, tm->expect + off, n) == 0;
}

int bench_tmpl_init(struct bench_tmpl *tm, const struct bench_config *cfg)
{
	size_t nl = cfg->mode == BENCH_LINE || cfg->mode == BENCH_ECHO;
	memset(tm, 0, sizeof(*tm));
	tm->size = cfg->size;
	tm->id_off = cfg->prefix_len;
	tm->id_len = cfg->size - nl < 16 ? cfg->size - nl : 16;
	tm->reply_len = cfg->prefix_len + cfg->size;
	tm->msg = malloc(cfg->size);
	tm->expect = malloc(tm->reply_len);
	if (tm->msg == NULL || tm->expect == NULL) {
		bench_tmpl_free(tm);
		return -ENOMEM;
	}
	/* id digits (zeros here), then a-z repeating, then the newline */
	memset(tm->msg, '0', tm->id_len);
	for (size_t i = tm->id_len; i < cfg->size; i++)
		tm->msg[i] = (char)('a' + (i - tm->id_len) % 26);
	if (nl)
		tm->msg[cfg->size - 1] = '\n';
	memcpy(tm->expect, cfg->prefix, cfg->prefix_len);
	memcpy(tm->expect + cfg->prefix_len, tm->msg, cfg->size);
	return 0;
}

void bench_tmpl_free(struct bench_tmpl *tm)
{
	free(tm->msg);
	free(tm->expect);
	tm->msg = tm->expect = NULL;
}

static unsigned bits_for(unsigned n)
{
	unsigned b = 0;
	while (b < 32 && (1ull << b) < n)
		b++;
	return b;
}

void bench_id_next(char *txt, size_t id_len, unsigned shift)
{
	static const char hex[] = "0123456789abcdef";
	unsigned add = 1u << (shift % 4);
	for (size_t d = shift / 4; d < id_len; d++) {
		char *ch = &txt[id_len - 1 - d];
		unsigned v =
			(*ch <= '9' ? (unsigned)(*ch - '0') : (unsigned)(*ch - 'a') + 10) + add;
		*ch = hex[v & 15];
		if (v < 16)
			return;
		add = 1; /* carry */
	}
}

/* Gives r the next id of c, in number and text (the text is kept up to
 * date by a carry-add: no formatting per request). */
static void next_id(struct bench_worker *w, struct conn *c, struct req *r)
{
	unsigned shift = w->slot_bits + w->thread_bits;
	uint64_t low = (uint64_t)w->index << w->slot_bits | c->slot;
	if (c->seq == 0)
		bench_id_format(c->nexttxt, w->tm->id_len, low);
	r->id = c->seq++ << shift | low;
	memcpy(r->idtxt, c->nexttxt, sizeof(r->idtxt));
	bench_id_next(c->nexttxt, w->tm->id_len, shift);
}

/* Renders the request with this id into dst. */
static void render(const struct bench_tmpl *tm, char *dst, const struct req *r)
{
	memcpy(dst, tm->msg, tm->size);
	memcpy(dst, r->idtxt, tm->id_len);
}

/* May a request start at t0?  Warm-up requests always may; measured ones
 * take one from the quota (-n). */
static int may_start(struct bench_worker *w, uint64_t t0)
{
	if (w->stopping)
		return 0;
	if (t0 < w->clk->measure)
		return 1;
	if (t0 >= w->clk->end || w->quota == 0)
		return 0;
	w->quota--;
	return 1;
}

static void finish_run(struct bench_worker *w, uint64_t at)
{
	if (w->stopping)
		return;
	w->stopping = 1;
	w->res.stop_ns = at;
	sockit_loop_stop(w->loop);
}

/* -n: done when the quota is used and nothing is in flight. */
static void check_done(struct bench_worker *w)
{
	if (w->quota == 0 && w->inflight == 0 && w->clk->end == UINT64_MAX)
		finish_run(w, w->last_done > w->clk->measure ? w->last_done : now_ns());
}

static void push_list(unsigned *list, unsigned *n, unsigned v)
{
	list[(*n)++] = v;
}

static void kick_later(struct bench_worker *w, struct conn *c)
{
	if (c->kicked || w->stopping)
		return;
	c->kicked = 1;
	push_list(w->kick, &w->nkick, c->slot);
	if (!sockit_timer_active(&w->t_kick))
		sockit_timer_start(w->loop, &w->t_kick, 0, 0);
}

static void token_put(struct bench_worker *w, unsigned slot)
{
	w->tokens[(w->tok_head + w->tok_count++) % w->tok_cap] = slot;
}

static unsigned token_get(struct bench_worker *w)
{
	unsigned s = w->tokens[w->tok_head];
	w->tok_head = (w->tok_head + 1) % w->tok_cap;
	w->tok_count--;
	return s;
}

static void pace(struct bench_worker *w, uint64_t now);

/* A request is over (verified, or failed): bookkeeping common to all modes. */
static void request_over(struct bench_worker *w, struct conn *c, uint64_t now)
{
	w->inflight--;
	w->last_done = now;
	if (w->cfg->rate > 0)
		token_put(w, c->slot);
}

static void record_ok(struct bench_worker *w, const struct req *r, uint64_t now)
{
	if (r->t0 < w->clk->measure || now > w->clk->end)
		return;
	uint64_t lat = now - r->t0;
	w->res.requests++;
	hist_record(&w->res.latency, lat);
	if (lat > 100 * MS)
		w->res.over_100ms++;
}

static void count_error(struct bench_worker *w, enum bench_err kind, uint64_t n)
{
	w->res.errors[kind] += n;
}

static void set_interest(struct conn *c, unsigned ev)
{
	if (c->interest == ev)
		return;
	c->interest = ev;
	sockit_loop_modify(c->w->loop, c->fd, ev);
}

/* ---- TCP: once, line and echo ---------------------------------------------- */

static void on_tcp(sockit_loop *loop, int fd, unsigned events, void *arg);

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
 * one error is counted), it is closed, and restarted on the next pass. */
static void tcp_fail(struct conn *c, enum bench_err kind)
{
	struct bench_worker *w = c->w;
	uint64_t now = now_ns();
	count_error(w, kind, c->count ? c->count : 1);
	for (unsigned i = 0; i < c->count; i++)
		request_over(w, c, now);
	tcp_close(c);
	if (w->cfg->mode != BENCH_ONCE || w->cfg->rate == 0)
		kick_later(w, c);
	if (w->cfg->rate > 0)
		pace(w, now);
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
	if (w->cfg->mode != BENCH_ONCE) {
		/* line/echo: small requests must not wait for delayed ACKs */
		sockit_set_nodelay(fd, 1);
	}
	return 0;
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
			uint64_t now = w->now_cache; /* close enough for the byte count */
			if (c->state == C_CONNECTING) {
				now = now_ns(); /* the connect time needs the real one */
				c->state = C_OPEN;
				if (w->cfg->mode == BENCH_ONCE && c->conn_t0 >= w->clk->measure)
					hist_record(&w->res.connect, now - c->conn_t0);
			}
			if (now >= w->clk->measure)
				w->res.bytes_out += (uint64_t)n;
			c->out_off += (size_t)n;
		} else if (!would_block(n)) {
			tcp_fail(c, classify(n, c->state == C_CONNECTING));
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
		int rc = sockit_loop_watch(c->w->loop, c->fd, want, on_tcp, c);
		if (rc < 0) {
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

static void udp_flush(struct bench_worker *w);

static void flush_dirty(struct bench_worker *w)
{
	if (w->udp != NULL) {
		udp_flush(w);
		return;
	}
	for (unsigned i = 0; i < w->ndirty; i++) {
		struct conn *c = &w->conns[w->dirty[i]];
		c->dirty = 0;
		if (c->fd >= 0)
			tcp_flush(c);
	}
	w->ndirty = 0;
}

/* Opens a line/echo connection and, in a closed loop, fills its pipeline. */
static void line_start(struct conn *c, uint64_t now)
{
	struct bench_worker *w = c->w;
	int rc = tcp_open(c);
	if (rc < 0) {
		tcp_fail(c, classify(rc, 1));
		return;
	}
	if (w->cfg->rate == 0)
		while (c->count < w->cfg->depth && may_start(w, now))
			line_push(w, c, now, now);
	tcp_flush(c); /* optimistic: on loopback the connect is usually done */
}

/* Starts one once-mode request on c: connect, send at once (on loopback
 * the handshake is usually done when connect returns). */
static void once_start(struct conn *c, uint64_t t0, uint64_t now)
{
	struct bench_worker *w = c->w;
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
		tcp_fail(c, classify(rc, 1));
		return;
	}
	tcp_flush(c);
}

/* Verifies n received bytes; completes line/echo replies.  Returns 0 or -1
 * on a mismatch. */
static int tcp_consume(struct bench_worker *w, struct conn *c, const char *p, size_t n,
		       uint64_t now)
{
	const size_t rlen = w->tm->reply_len;
	const int once = w->cfg->mode == BENCH_ONCE;
	while (n > 0) {
		if (c->count == 0 || c->rx_off == rlen)
			return -1; /* bytes nobody asked for */
		struct req *r = &c->ring[c->head];
		size_t k = n < rlen - c->rx_off ? n : rlen - c->rx_off;
		if (!bench_reply_match(w->tm, r->idtxt, c->rx_off, p, k))
			return -1;
		c->rx_off += k;
		p += k;
		n -= k;
		if (c->rx_off < rlen || once)
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
static void once_done(struct conn *c, uint64_t now)
{
	struct bench_worker *w = c->w;
	record_ok(w, &c->ring[0], now);
	c->count = 0;
	request_over(w, c, now);
	tcp_close(c);
	if (w->cfg->rate == 0) {
		if (may_start(w, now))
			once_start(c, now, now);
	} else {
		pace(w, now);
	}
	check_done(w);
}

static void on_tcp(sockit_loop *loop, int fd, unsigned events, void *arg)
{
	struct conn *c = arg;
	struct bench_worker *w = c->w;
	(void)loop;
	if (c->state == C_CONNECTING && c->out_off == c->out_len) {
		/* connected with nothing to send (yet): see how it went */
		if (events & SOCKIT_HANGUP) {
			ssize_t n = sockit_try_recv(fd, w->rbuf, 1);
			tcp_fail(c, n < 0 ? classify(n, 1) : ERR_TRUNCATED);
			return;
		}
		c->state = C_OPEN;
	}
	if (events & SOCKIT_READABLE) {
		const int once = w->cfg->mode == BENCH_ONCE;
		for (;;) {
			ssize_t n = sockit_try_recv(fd, w->rbuf, RBUF_SIZE);
			uint64_t now = now_ns();
			w->now_cache = now;
			if (n > 0) {
				if (now >= w->clk->measure)
					w->res.bytes_in += (uint64_t)n;
				if (tcp_consume(w, c, w->rbuf, (size_t)n, now) < 0) {
					tcp_fail(c, ERR_MISMATCH);
					return;
				}
				if ((size_t)n < RBUF_SIZE)
					break; /* drained: epoll tells us of more */
				continue;
			}
			if (n == 0) {
				if (once && c->rx_off == w->tm->reply_len) {
					once_done(c, now);
				} else if (c->count > 0) {
					tcp_fail(c, ERR_TRUNCATED);
				} else {
					/* closed while idle (e.g. the server's idle timeout):
					 * reconnect, not an error */
					tcp_close(c);
					kick_later(w, c);
				}
				return;
			}
			if (would_block(n))
				break;
			tcp_fail(c, classify(n, c->state == C_CONNECTING));
			return;
		}
	}
	if (w->cfg->rate > 0)
		pace(w, now_ns()); /* completions freed slots for due requests */
	if (c->fd == fd && c->state != C_IDLE)
		tcp_flush(c);
	check_done(w);
}

/* ---- UDP ------------------------------------------------------------------- */

static void on_udp(sockit_loop *loop, int fd, unsigned events, void *arg);

static void udp_watch(struct bench_worker *w)
{
	unsigned want = SOCKIT_READABLE | (w->nudp_q ? SOCKIT_WRITABLE : 0);
	struct conn *c0 = &w->conns[0];
	set_interest(c0, want);
}

static void udp_fail(struct bench_worker *w, struct conn *c, enum bench_err kind, uint64_t now)
{
	count_error(w, kind, 1);
	c->count = 0;
	request_over(w, c, now);
	if (w->cfg->rate == 0)
		kick_later(w, c);
	else
		pace(w, now);
	check_done(w);
}

/* Sends the queued datagrams, UDP_BATCH per system call; what the socket
 * does not take waits for writability.  Not re-entered: datagrams queued by
 * a failure's restart go out in the same pass. */
static void udp_flush(struct bench_worker *w)
{
	struct udp_io *io = w->udp;
	if (io->flushing)
		return;
	io->flushing = 1;
	while (w->nudp_q > 0 && !w->stopping) {
		/* drop datagrams whose request failed (timed out) before leaving */
		unsigned j = 0;
		for (unsigned i = 0; i < w->nudp_q; i++) {
			struct conn *c = &w->conns[w->udp_q[i]];
			if (c->count)
				w->udp_q[j++] = w->udp_q[i];
			else
				c->udp_unsent = 0;
		}
		w->nudp_q = j;
		if (j == 0)
			break;
		unsigned n = w->nudp_q < UDP_BATCH ? w->nudp_q : UDP_BATCH;
		for (unsigned i = 0; i < n; i++) {
			io->out_iov[i].iov_base = w->conns[w->udp_q[i]].out;
			io->out_iov[i].iov_len = w->tm->size;
		}
		int r = sk_send_batch(w->ufd, io->out, n);
		uint64_t now = now_ns();
		if (r == -EAGAIN || r == -ENOBUFS)
			break; /* the rest when writable */
		unsigned done = r > 0 ? (unsigned)r : 1;
		for (unsigned i = 0; i < done; i++) {
			struct conn *c = &w->conns[w->udp_q[i]];
			c->udp_unsent = 0;
			if (r > 0 && now >= w->clk->measure)
				w->res.bytes_out += w->tm->size;
		}
		struct conn *failed = r < 0 ? &w->conns[w->udp_q[0]] : NULL;
		w->nudp_q -= done;
		memmove(w->udp_q, w->udp_q + done, w->nudp_q * sizeof(*w->udp_q));
		if (failed != NULL)
			udp_fail(w, failed, classify(r, 0), now);
	}
	io->flushing = 0;
	udp_watch(w);
}

static void udp_start(struct bench_worker *w, struct conn *c, uint64_t t0, uint64_t now)
{
	struct req *r = &c->ring[0];
	next_id(w, c, r);
	r->t0 = t0;
	r->sent = now;
	c->count = 1;
	w->inflight++;
	render(w->tm, c->out, r);
	if (!c->udp_unsent) {
		c->udp_unsent = 1;
		push_list(w->udp_q, &w->nudp_q, c->slot);
	}
}

/* Parses the id_len hex digits at p; returns 0 or -1. */
static int parse_id(const char *p, size_t len, uint64_t *id)
{
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)p[i];
		unsigned d = 16;
		if (ch >= '0' && ch <= '9')
			d = (unsigned)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			d = (unsigned)(ch - 'a') + 10;
		if (d > 15)
			return -1;
		v = v << 4 | d;
	}
	*id = v;
	return 0;
}

/* c's request got its verified reply. */
static void udp_complete(struct bench_worker *w, struct conn *c, uint64_t now)
{
	record_ok(w, &c->ring[0], now);
	c->count = 0;
	request_over(w, c, now);
	if (w->cfg->rate == 0) {
		if (may_start(w, now))
			udp_start(w, c, now, now);
	} else {
		pace(w, now);
	}
}

/* Checks one reply datagram: the fast path finds its slot from the id's
 * last digits; anything else is sorted out slowly (late, truncated,
 * mismatch). */
static void udp_reply(struct bench_worker *w, const char *p, size_t n, uint64_t now)
{
	const struct bench_tmpl *tm = w->tm;
	struct conn *c = NULL;
	int ours = 0; /* the id names one of our slots */
	uint64_t id = 0;
	const char *idtxt = "????????????????"; /* no id: matches no reply */
	const size_t id_end = tm->id_off + tm->id_len;
	if (n == tm->reply_len && parse_id(p + id_end - w->low_digits, w->low_digits, &id) == 0) {
		/* Fast path: the last few digits name the slot; the whole id
		 * must then be the one outstanding there. */
		unsigned slot = (unsigned)(id & ((1ull << w->slot_bits) - 1));
		unsigned thread = (unsigned)((id >> w->slot_bits) & ((1ull << w->thread_bits) - 1));
		if (slot < w->nconns && thread == w->index && w->conns[slot].count &&
		    memcmp(p + tm->id_off, w->conns[slot].ring[0].idtxt, tm->id_len) == 0) {
			c = &w->conns[slot];
			if (memcmp(p, tm->expect, tm->id_off) != 0 ||
			    memcmp(p + id_end, tm->expect + id_end, n - id_end) != 0) {
				udp_fail(w, c, ERR_MISMATCH, now);
				return;
			}
			udp_complete(w, c, now);
			return;
		}
	}
	if (c == NULL && n >= id_end && parse_id(p + tm->id_off, tm->id_len, &id) == 0) {
		idtxt = p + tm->id_off; /* the reply must be the one to its own id */
		uint64_t mask = tm->id_len >= 16 ? UINT64_MAX : (1ull << (4 * tm->id_len)) - 1;
		unsigned slot = (unsigned)(id & ((1ull << w->slot_bits) - 1));
		unsigned thread = (unsigned)((id >> w->slot_bits) & ((1ull << w->thread_bits) - 1));
		ours = slot < w->nconns && thread == w->index;
		if (ours && w->conns[slot].count && (w->conns[slot].ring[0].id & mask) == id) {
			c = &w->conns[slot];
		}
	}
	/* The bytes must be the expected reply to the id they carry. */
	size_t k = n < tm->reply_len ? n : tm->reply_len;
	enum bench_err kind = ERR_KINDS;
	if (!bench_reply_match(tm, idtxt, 0, p, k) || n > tm->reply_len)
		kind = ERR_MISMATCH;
	else if (n < tm->reply_len)
		kind = ERR_TRUNCATED;
	else if (!ours)
		kind = ERR_MISMATCH; /* someone else's id */
	if (kind != ERR_KINDS) {
		if (c != NULL)
			udp_fail(w, c, kind, now);
		else
			count_error(w, kind, 1);
		return;
	}
	if (c == NULL) {
		w->res.late++; /* its request timed out (or it came twice) */
		return;
	}
	udp_complete(w, c, now);
}

/* An ICMP error (e.g. port unreachable) fails the oldest outstanding datagram. */
static void udp_async_error(struct bench_worker *w, ssize_t rc, uint64_t now)
{
	struct conn *oldest = NULL;
	for (unsigned i = 0; i < w->nconns; i++) {
		struct conn *c = &w->conns[i];
		if (c->count && !c->udp_unsent &&
		    (!oldest || c->ring[0].sent < oldest->ring[0].sent))
			oldest = c;
	}
	if (oldest != NULL)
		udp_fail(w, oldest, classify(rc, 0), now);
	else
		count_error(w, classify(rc, 0), 1);
}

static void on_udp(sockit_loop *loop, int fd, unsigned events, void *arg)
{
	struct bench_worker *w = arg;
	struct udp_io *io = w->udp;
	(void)loop;
	if (events & SOCKIT_READABLE) {
		/* At most about one window of replies per wake-up, so a flood
		 * cannot starve the timers. */
		for (unsigned got = 0; got < w->nconns + UDP_BATCH && !w->stopping;) {
			int r = sk_recv_batch(fd, io->in, io->batch);
			uint64_t now = now_ns();
			if (r == -EAGAIN)
				break;
			if (r < 0) {
				udp_async_error(w, r, now);
				continue;
			}
			for (int i = 0; i < r; i++) {
				size_t n = io->in[i].msg_len;
				if (now >= w->clk->measure)
					w->res.bytes_in += n;
				udp_reply(w, io->in_iov[i].iov_base, n, now);
			}
			got += (unsigned)r;
			if ((unsigned)r < io->batch || w->inflight == 0)
				break; /* drained, or nothing more to expect */
		}
	}
	udp_flush(w);
	check_done(w);
}

/* ---- timers ------------------------------------------------------------------ */

/* Starts one request on slot s at t0 (-R and the kick list). */
static void start_on(struct bench_worker *w, struct conn *c, uint64_t t0, uint64_t now)
{
	switch (w->cfg->mode) {
	case BENCH_ONCE:
		once_start(c, t0, now);
		break;
	case BENCH_UDP:
		udp_start(w, c, t0, now);
		break;
	default:
		if (c->fd < 0) {
			int rc = tcp_open(c);
			if (rc < 0) {
				count_error(w, classify(rc, 1), 1);
				w->inflight++; /* balanced by request_over */
				request_over(w, c, now);
				kick_later(w, c);
				return;
			}
		}
		line_push(w, c, t0, now);
		if (!c->dirty) {
			c->dirty = 1;
			push_list(w->dirty, &w->ndirty, c->slot);
		}
	}
}

/* Without a ticker, the loop's millisecond timer wakes pace() when the next
 * request is due (up to 1 ms late: the send lag shows it). */
static void arm_pacer(struct bench_worker *w, uint64_t due, uint64_t now)
{
	if (w->tick_fd < 0)
		sockit_timer_start(w->loop, &w->t_pace, (due - now + MS - 1) / MS, 0);
}

static void on_tick(sockit_loop *loop, int fd, unsigned events, void *arg);

/* The ticker fires at every due time, or every PACE_MIN_NS when requests
 * are due more often (pace sends all that is due). */
static int start_ticker(struct bench_worker *w)
{
	int fd = sk_ticker_new();
	if (fd < 0)
		return fd;
	uint64_t period = w->interval_ns;
	if (period < PACE_MIN_NS)
		period = (PACE_MIN_NS + w->interval_ns - 1) / w->interval_ns * w->interval_ns;
	int rc = sk_ticker_arm(fd, w->sched_base, period);
	if (rc == 0)
		rc = sockit_loop_watch(w->loop, fd, SOCKIT_READABLE, on_tick, w);
	if (rc < 0) {
		sockit_close(fd);
		return rc;
	}
	w->tick_fd = fd;
	return 0;
}

static void on_tick(sockit_loop *loop, int fd, unsigned events, void *arg)
{
	struct bench_worker *w = arg;
	(void)loop;
	(void)events;
	if (sk_ticker_ack(fd) > 0)
		pace(w, now_ns());
}

/* -R: starts every request that is due and has a free slot; arms the pacer
 * for the next one. */
static void pace(struct bench_worker *w, uint64_t now)
{
	if (w->stopping)
		return;
	w->now_cache = now;
	for (;;) {
		uint64_t due = w->sched_base + w->k_issued * w->interval_ns;
		if (due > now) {
			arm_pacer(w, due, now);
			break;
		}
		if (w->tok_count == 0)
			break; /* behind: the next completion continues */
		if (!may_start(w, due)) {
			check_done(w);
			break;
		}
		w->k_issued++;
		if (due >= w->clk->measure)
			hist_record(&w->res.send_lag, now - due);
		start_on(w, &w->conns[token_get(w)], due, now);
		if (w->stopping)
			break;
	}
	flush_dirty(w);
}

static void on_pace(sockit_loop *loop, sockit_timer *t)
{
	(void)loop;
	pace(t->data, now_ns());
}

static void on_kick(sockit_loop *loop, sockit_timer *t)
{
	struct bench_worker *w = t->data;
	unsigned n = w->nkick;
	uint64_t now = now_ns();
	w->now_cache = now;
	(void)loop;
	unsigned *run = w->kick;
	w->kick = w->kick_run;
	w->kick_run = run;
	w->nkick = 0;
	for (unsigned i = 0; i < n && !w->stopping; i++) {
		struct conn *c = &w->conns[run[i]];
		c->kicked = 0;
		switch (w->cfg->mode) {
		case BENCH_ONCE:
			if (may_start(w, now))
				once_start(c, now, now);
			break;
		case BENCH_UDP:
			if (may_start(w, now))
				udp_start(w, c, now, now);
			break;
		default:
			if (c->fd < 0 && (w->cfg->rate > 0 || w->quota > 0 ||
					  w->clk->end != UINT64_MAX || now < w->clk->measure))
				line_start(c, now);
		}
	}
	flush_dirty(w);
	check_done(w);
}

static void on_end(sockit_loop *loop, sockit_timer *t)
{
	struct bench_worker *w = t->data;
	uint64_t now = now_ns();
	(void)loop;
	if (now < w->clk->end) { /* early by rounding: wait the rest */
		sockit_timer_start(w->loop, &w->t_end, (w->clk->end - now + MS - 1) / MS, 0);
		return;
	}
	finish_run(w, w->clk->end);
}

/* Fails requests past their deadline; publishes progress. */
static void on_sweep(sockit_loop *loop, sockit_timer *t)
{
	struct bench_worker *w = t->data;
	uint64_t now = now_ns(), limit = w->cfg->timeout_ms * MS;
	(void)loop;
	for (unsigned i = 0; i < w->nconns && !w->stopping; i++) {
		struct conn *c = &w->conns[i];
		if (w->cfg->mode == BENCH_UDP) {
			if (c->count && now - c->ring[0].sent > limit)
				udp_fail(w, c, ERR_TIMEOUT, now);
			continue;
		}
		if (c->fd < 0)
			continue;
		uint64_t since = c->count ? c->ring[c->head].sent : c->conn_t0;
		if (c->state != C_CONNECTING && c->count == 0)
			continue; /* idle and open: no deadline */
		if (now - since > limit)
			tcp_fail(c, ERR_TIMEOUT);
	}
	uint64_t errs = 0;
	for (int k = 0; k < ERR_KINDS; k++)
		errs += w->res.errors[k];
	atomic_store_explicit(&w->prog_requests, w->res.requests, memory_order_relaxed);
	atomic_store_explicit(&w->prog_errors, errs, memory_order_relaxed);
}

static void on_wake(sockit_loop *loop, void *arg)
{
	struct bench_worker *w = arg;
	(void)loop;
	if (atomic_load(&w->stop_asked))
		finish_run(w, now_ns());
}

/* ---- the thread -------------------------------------------------------------- */

static void udp_open(struct bench_worker *w)
{
	int fd = sockit_socket(w->cfg->addr.ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK);
	int rc = fd < 0 ? fd : sockit_connect(fd, &w->cfg->addr, 0);
	if (rc == 0) {
		/* room for the whole window of datagrams both ways */
		size_t want = (size_t)w->nconns * (w->tm->reply_len + 64) * 2;
		if (want > 4u << 20)
			want = 4u << 20;
		if (want > 212992) {
			sockit_set_rcvbuf(fd, (int)want);
			sockit_set_sndbuf(fd, (int)want);
		}
		rc = sockit_loop_watch(w->loop, fd, SOCKIT_READABLE, on_udp, w);
	}
	if (rc < 0) {
		if (fd >= 0)
			sockit_close(fd);
		count_error(w, classify(rc, 1), 1);
		finish_run(w, now_ns());
		return;
	}
	w->ufd = fd;
	for (unsigned i = 0; i < w->nconns; i++) {
		w->conns[i].fd = fd;
		w->conns[i].interest = SOCKIT_READABLE;
	}
}

static void *worker_main(void *arg)
{
	struct bench_worker *w = arg;
	const struct bench_clock *clk = w->clk;
	uint64_t now = now_ns();
	sockit_loop_on_wake(w->loop, on_wake, w);
	sockit_timer_init(&w->t_end, on_end, w);
	sockit_timer_init(&w->t_sweep, on_sweep, w);
	sockit_timer_init(&w->t_pace, on_pace, w);
	sockit_timer_init(&w->t_kick, on_kick, w);
	if (clk->end != UINT64_MAX)
		sockit_timer_start(w->loop, &w->t_end,
				   clk->end > now ? (clk->end - now + MS - 1) / MS : 0, 0);
	sockit_timer_start(w->loop, &w->t_sweep, w->sweep_ns / MS, w->sweep_ns / MS);
	if (w->cfg->mode == BENCH_UDP)
		udp_open(w);
	if (w->cfg->rate > 0)
		start_ticker(w); /* without it, the loop's timer paces */
	if (!w->stopping) {
		if (w->cfg->rate > 0) {
			pace(w, now);
		} else {
			for (unsigned i = 0; i < w->nconns; i++)
				kick_later(w, &w->conns[i]);
		}
		check_done(w);
	}
	if (atomic_load(&w->stop_asked))
		finish_run(w, now);
	if (!w->stopping)
		sockit_loop_run(w->loop);
	/* -R: how far behind schedule the tool (or the server) was */
	if (w->cfg->rate > 0 && w->res.stop_ns > w->sched_base) {
		uint64_t due =
			(w->res.stop_ns - w->sched_base + w->interval_ns - 1) / w->interval_ns;
		w->res.rate_behind = due > w->k_issued ? due - w->k_issued : 0;
		if (w->clk->end == UINT64_MAX && w->quota == 0)
			w->res.rate_behind = 0; /* -n: every request was sent */
	}
	for (unsigned i = 0; i < w->nconns; i++)
		if (w->cfg->mode != BENCH_UDP && w->conns[i].fd >= 0)
			tcp_close(&w->conns[i]);
	if (w->ufd >= 0)
		sockit_loop_close(w->loop, w->ufd);
	w->ufd = -1;
	if (w->tick_fd >= 0)
		sockit_loop_close(w->loop, w->tick_fd);
	w->tick_fd = -1;
	sockit_timer_stop(w->loop, &w->t_end);
	sockit_timer_stop(w->loop, &w->t_sweep);
	sockit_timer_stop(w->loop, &w->t_pace);
	sockit_timer_stop(w->loop, &w->t_kick);
	on_sweep(w->loop, &w->t_sweep); /* final progress figures */
	atomic_store(&w->finished, 1);
	if (w->done_cb)
		w->done_cb(w->done_arg);
	return NULL;
}

static int udp_io_new(struct bench_worker *w)
{
	size_t len = w->tm->reply_len + 1;
	struct udp_io *io = calloc(1, sizeof(*io));
	if (io == NULL)
		return -ENOMEM;
	w->udp = io;
	io->batch = (unsigned)((256u << 10) / len);
	io->batch = io->batch < 1 ? 1 : io->batch > UDP_BATCH ? UDP_BATCH : io->batch;
	io->bufs = malloc(io->batch * len);
	if (io->bufs == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < io->batch; i++) {
		io->in_iov[i] = (struct iovec){.iov_base = io->bufs + i * len, .iov_len = len};
		io->in[i].msg_hdr = (struct msghdr){.msg_iov = &io->in_iov[i], .msg_iovlen = 1};
	}
	for (unsigned i = 0; i < UDP_BATCH; i++) {
		io->out[i].msg_hdr = (struct msghdr){.msg_iov = &io->out_iov[i], .msg_iovlen = 1};
	}
	return 0;
}

struct bench_worker *bench_worker_new(const struct bench_config *cfg, const struct bench_tmpl *tm,
				      const struct bench_clock *clk, unsigned index, unsigned conns,
				      uint64_t quota, double rate)
{
	struct bench_worker *w = calloc(1, sizeof(*w));
	if (w == NULL)
		return NULL;
	w->cfg = cfg;
	w->tm = tm;
	w->clk = clk;
	w->index = index;
	w->nconns = conns;
	w->quota = quota;
	w->ufd = -1;
	w->tick_fd = -1;
	unsigned depth = cfg->depth;
	w->out_cap =
		cfg->mode == BENCH_LINE || cfg->mode == BENCH_ECHO ? depth * tm->size : tm->size;
	w->tok_cap = conns * depth;
	w->conns = calloc(conns, sizeof(*w->conns));
	w->reqs = calloc((size_t)conns * depth, sizeof(*w->reqs));
	w->outs = malloc((size_t)conns * w->out_cap);
	w->rbuf = malloc(RBUF_SIZE);
	w->kick = calloc(conns, sizeof(*w->kick));
	w->kick_run = calloc(conns, sizeof(*w->kick_run));
	w->dirty = calloc(conns, sizeof(*w->dirty));
	w->udp_q = calloc(conns, sizeof(*w->udp_q));
	w->tokens = calloc(w->tok_cap, sizeof(*w->tokens));
	(void)sockit_loop_new(&w->loop); /* NULL on failure: checked below */
	if (!w->conns || !w->reqs || !w->outs || !w->rbuf || !w->kick || !w->kick_run ||
	    !w->dirty || !w->udp_q || !w->tokens || !w->loop) {
		bench_worker_free(w);
		return NULL;
	}
	if (cfg->mode == BENCH_UDP && udp_io_new(w) < 0) {
		bench_worker_free(w);
		return NULL;
	}
	w->slot_bits = bits_for(conns);
	w->thread_bits = bits_for(cfg->threads);
	w->low_digits = (w->slot_bits + w->thread_bits + 3) / 4;
	if (w->low_digits < 1)
		w->low_digits = 1;
	if (w->low_digits > tm->id_len)
		w->low_digits = (unsigned)tm->id_len;
	for (unsigned i = 0; i < conns; i++) {
		struct conn *c = &w->conns[i];
		c->w = w;
		c->fd = -1;
		c->slot = i;
		c->ring = &w->reqs[(size_t)i * depth];
		c->out = &w->outs[(size_t)i * w->out_cap];
	}
	if (rate > 0) {
		double ns = 1e9 / rate;
		w->interval_ns = ns < 1 ? 1 : (uint64_t)(ns + 0.5);
		/* threads start their schedules staggered across one interval */
		w->sched_base = clk->start + w->interval_ns * index / cfg->threads;
		for (unsigned d = 0; d < depth; d++)
			for (unsigned i = 0; i < conns; i++)
				token_put(w, i);
	}
	w->res.stop_ns = clk->start;
	hist_init(&w->res.latency);
	hist_init(&w->res.connect);
	hist_init(&w->res.send_lag);
	uint64_t sweep = cfg->timeout_ms * MS / 8;
	w->sweep_ns = sweep < MS ? MS : sweep > 100 * MS ? 100 * MS : sweep;
	return w;
}

int bench_worker_start(struct bench_worker *w, void (*done_cb)(void *arg), void *arg)
{
	w->done_cb = done_cb;
	w->done_arg = arg;
	int rc = pthread_create(&w->tid, NULL, worker_main, w);
	if (rc != 0)
		return -rc;
	w->started = 1;
	return 0;
}

void bench_worker_stop(struct bench_worker *w)
{
	atomic_store(&w->stop_asked, 1);
	sockit_loop_wake(w->loop);
}

void bench_worker_progress(const struct bench_worker *w, uint64_t *requests, uint64_t *errors)
{
	*requests = atomic_load_explicit(&w->prog_requests, memory_order_relaxed);
	*errors = atomic_load_explicit(&w->prog_errors, memory_order_relaxed);
}

int bench_worker_finished(const struct bench_worker *w)
{
	return atomic_load(&w->finished);
}

const struct bench_result *bench_worker_join(struct bench_worker *w)
{
	if (w->started) {
		pthread_join(w->tid, NULL);
		w->started = 0;
	}
	return &w->res;
}

void bench_worker_free(struct bench_worker *w)
{
	if (w == NULL)
		return;
	bench_worker_join(w);
	sockit_loop_free(w->loop);
	free(w->conns);
	free(w->reqs);
	free(w->outs);
	free(w->rbuf);
	free(w->kick);
	free(w->kick_run);
	free(w->dirty);
	free(w->udp_q);
	free(w->tokens);
	if (w->udp != NULL)
		free(w->udp->bufs);
	free(w->udp);
	free(w);
}
