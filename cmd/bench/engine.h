/* engine.h -- the contract between a bench worker (worker.c, pace.c) and its engines
 * (tcp.c, udp.c): the worker's state, one table of functions per mode, and the
 * bookkeeping every engine shares (static inline: no calls up into the worker).
 *
 * The worker owns the loop, the connections and the timers; it calls an
 * engine only through its bench_mode_ops, once per connection event, timer
 * or pacing pass.  Engines report through w->res and the counters here,
 * and ask for work on the kick list; after each engine call the worker
 * runs the pacer (-R) and checks whether the run is done. */
#ifndef SOCKIT_BENCH_ENGINE_H
#define SOCKIT_BENCH_ENGINE_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "bench.h"
#include "codec.h"
#include "internal.h"
#include "sockit_loop.h"

#define MS 1000000ull

/* A TCP connection: C_CONNECTING until the kernel takes its first byte;
 * with --tls then C_HANDSHAKE until the handshake is over. */
enum cstate { C_IDLE, C_CONNECTING, C_HANDSHAKE, C_OPEN };

struct req {
	uint64_t id;
	uint64_t t0;	/* latency starts here: send time, or scheduled time with -R */
	uint64_t sent;	/* handed to the connection: the timeout starts here */
	char idtxt[16]; /* the id as sent (id_len hex digits) */
};

/* A TCP connection, or a UDP slot (one outstanding datagram). */
struct conn {
	struct bench_worker *w;
	int fd; /* -1 when closed; udp: the worker's socket */
	unsigned slot;
	enum cstate state;
	unsigned interest;
	uint64_t seq;
	char nexttxt[16];	/* the next id in hex */
	uint64_t conn_t0;	/* connect() called */
	uint64_t hs_t0;		/* --tls: the connection took its first byte, the handshake began */
	struct sockit_tls *tls; /* --tls: the open connection's TLS, else NULL */
	struct req *ring;	/* depth entries */
	unsigned head, count;
	size_t rx_off;		 /* bytes of the head's reply verified */
	char *out;		 /* unsent requests; udp/once: the one request */
	size_t out_off, out_len; /* out[out_off..out_len) is unsent */
	unsigned kicked : 1;	 /* on the kick list */
	unsigned dirty : 1;	 /* on the dirty list (output to flush) */
	unsigned udp_unsent : 1; /* udp: request waits for the socket to take it */
	unsigned tls_fresh : 1;	 /* --tls-resume: a full handshake whose session to keep */
	unsigned raw_len;	 /* --tls: out[0..raw_len) is the PROXY header, in the clear */
};

/* One table per mode.  Every function runs on the worker's thread. */
struct bench_mode_ops {
	/* Per-thread resources, at bench_worker_new / _free (engine_free
	 * is safe after a failed engine_new). */
	int (*engine_new)(struct bench_worker *w);
	void (*engine_free)(struct bench_worker *w);
	/* The thread begins (e.g. the UDP socket) / ends (closes everything). */
	void (*open)(struct bench_worker *w);
	void (*close)(struct bench_worker *w);
	/* Starts one request on c at t0 (the pacer, -R). */
	void (*start)(struct bench_worker *w, struct conn *c, uint64_t t0, uint64_t now);
	/* c was put on the kick list: (re)start it (closed loop, reconnects). */
	void (*kick)(struct bench_worker *w, struct conn *c, uint64_t now);
	/* Sends what start() queued. */
	void (*flush)(struct bench_worker *w);
	/* Fails requests (and connects) older than limit ns. */
	void (*sweep)(struct bench_worker *w, uint64_t now, uint64_t limit);
};

extern const struct bench_mode_ops bench_once_ops, bench_line_ops, bench_udp_ops;

struct bench_worker {
	const struct bench_config *cfg;
	const struct bench_mode_ops *ops;
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
	void *engine;	/* the engine's own per-thread state */
	int once;	/* once mode: a connection per request */

	unsigned slot_bits, thread_bits;
	unsigned low_digits; /* hex digits that hold slot and thread */
	uint64_t quota;	     /* measured requests left to start (-n) */
	uint64_t inflight;   /* requests started and not finished */
	int stopping;

	/* -R (pace.c): request k is due at sched_base + k * interval_ns */
	uint64_t interval_ns;
	uint64_t sched_base;
	uint64_t k_issued;
	int tick_fd;	  /* the pacer's ticker (ns resolution), or -1: loop timer */
	int starved;	  /* requests are due and wait for a free token */
	unsigned *tokens; /* free capacity: a FIFO of connection indexes */
	unsigned tok_head, tok_count, tok_cap;

	unsigned *kick;	    /* connections to (re)start on the next pass */
	unsigned *kick_run; /* the list being run (kicks made meanwhile go to kick) */
	unsigned nkick;
	unsigned *dirty; /* connections with output to flush */
	unsigned ndirty;

	sockit_timer t_end, t_sweep, t_pace, t_kick;
	uint64_t sweep_ns;
	uint64_t last_done; /* last request finished (-n: the end of measuring) */
	uint64_t now_cache; /* the clock as last read */

	struct bench_result res;
	_Atomic uint64_t prog_requests, prog_errors;
	atomic_int stop_asked, finished;
};

/* ---- shared bookkeeping ---------------------------------------------------- */

static inline uint64_t now_ns(void)
{
	return sk_clock_ns();
}

static inline enum bench_err bench_classify(long rc, int connecting)
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

static inline void finish_run(struct bench_worker *w, uint64_t at)
{
	if (w->stopping)
		return;
	w->stopping = 1;
	w->res.stop_ns = at;
	sockit_loop_stop(w->loop);
}

/* -n: done when the quota is used and nothing is in flight. */
static inline void check_done(struct bench_worker *w)
{
	if (w->quota == 0 && w->inflight == 0 && w->clk->end == UINT64_MAX)
		finish_run(w, w->last_done > w->clk->measure ? w->last_done : now_ns());
}

/* May a request start at t0?  Warm-up requests always may; measured ones
 * take one from the quota (-n). */
static inline int may_start(struct bench_worker *w, uint64_t t0)
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

/* c is to be (re)started on the worker's next kick pass. */
static inline void kick_later(struct bench_worker *w, struct conn *c)
{
	if (c->kicked || w->stopping)
		return;
	c->kicked = 1;
	w->kick[w->nkick++] = c->slot;
	if (!sockit_timer_active(&w->t_kick))
		sockit_timer_start(w->loop, &w->t_kick, 0, 0);
}

static inline void token_put(struct bench_worker *w, unsigned slot)
{
	w->tokens[(w->tok_head + w->tok_count++) % w->tok_cap] = slot;
}

/* A request is over (verified, or failed): bookkeeping common to all modes.
 * With -R its capacity goes back to the pacer, which runs as soon as the
 * current event is handled if requests are waiting for it. */
static inline void request_over(struct bench_worker *w, struct conn *c, uint64_t now)
{
	w->inflight--;
	w->last_done = now;
	if (w->cfg->rate > 0) {
		token_put(w, c->slot);
		if (w->starved) {
			w->starved = 0;
			sockit_timer_start(w->loop, &w->t_pace, 0, 0);
		}
	}
}

static inline void record_ok(struct bench_worker *w, const struct req *r, uint64_t now)
{
	if (r->t0 < w->clk->measure || now > w->clk->end)
		return;
	uint64_t lat = now - r->t0;
	w->res.requests++;
	hist_record(&w->res.latency, lat);
	if (lat > 100 * MS)
		w->res.over_100ms++;
}

/* n requests failed with kind; a thread whose every connect (datagram)
 * has been refused BENCH_DEAD_AFTER times stops: nothing listens. */
static inline void count_error(struct bench_worker *w, enum bench_err kind, uint64_t n)
{
	w->res.errors[kind] += n;
	if (kind == ERR_REFUSED && !w->res.answered &&
	    w->res.errors[ERR_REFUSED] >= BENCH_DEAD_AFTER) {
		w->res.dead = 1;
		finish_run(w, now_ns());
	}
}

/* Keeps the first mismatch: data[0..n) read at offset off of the reply to
 * idtxt (NULL: no request was waiting for these bytes). */
static inline void note_mismatch(struct bench_worker *w, const char *idtxt, size_t off,
				 const char *data, size_t n)
{
	struct bench_sample *s = &w->res.mismatch;
	if (s->set)
		return;
	size_t d = idtxt != NULL ? bench_reply_diff(w->tm, idtxt, off, data, n) : 0;
	size_t from = d > 16 ? d - 16 : 0;
	s->set = 1;
	s->offset = off + from;
	s->elen = idtxt != NULL ? bench_reply_expected(w->tm, idtxt, off + from, s->expected,
						       BENCH_SAMPLE)
				: 0;
	s->rlen = n - from < BENCH_SAMPLE ? n - from : BENCH_SAMPLE;
	memcpy(s->received, data + from, s->rlen);
}

/* Gives r the next id of c, in number and text (the text is kept up to
 * date by a carry-add: no formatting per request). */
static inline void next_id(struct bench_worker *w, struct conn *c, struct req *r)
{
	unsigned shift = w->slot_bits + w->thread_bits;
	uint64_t low = (uint64_t)w->index << w->slot_bits | c->slot;
	if (c->seq == 0)
		bench_id_format(c->nexttxt, w->tm->id_len, low);
	r->id = c->seq++ << shift | low;
	memcpy(r->idtxt, c->nexttxt, sizeof(r->idtxt));
	bench_id_next(c->nexttxt, w->tm->id_len, shift);
}

/* Renders the request r into dst. */
static inline void render(const struct bench_tmpl *tm, char *dst, const struct req *r)
{
	memcpy(dst, tm->msg, tm->size);
	memcpy(dst, r->idtxt, tm->id_len);
}

/* ---- the pacer (pace.c): -R, the open loop ---------------------------------- */

/* Sets the schedule of a thread running rate requests/s and fills the
 * tokens (every connection's depth); returns nothing (rate > 0). */
void pace_init(struct bench_worker *w, double rate);

/* Starts the ticker (or falls back to the loop's timer) and the first pass. */
void pace_begin(struct bench_worker *w, uint64_t now);

/* Starts every request that is due and has a free slot; arms the pacer
 * for the next one. */
void pace_run(struct bench_worker *w, uint64_t now);

/* At the end: requests due but never sent (res.rate_behind). */
void pace_end(struct bench_worker *w);

#endif /* SOCKIT_BENCH_ENGINE_H */
