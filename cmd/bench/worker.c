/* worker.c -- one load-generating thread: its loop, connections, timers and results; the
 * mode's engine (tcp.c, udp.c) is reached through its table only.
 *
 * Timers: the end of the run (-d), one sweep per thread for timeouts (not
 * one timer per request), the kick pass that (re)starts connections, and
 * the pacer's (pace.c).  Request ids: id = seq << (slot_bits + thread_bits)
 * | thread << slot_bits | slot, so ids are unique in the run and a UDP
 * reply names its slot.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "sockit.h"
#include "sockit_proxy.h"

static const struct bench_mode_ops *const mode_ops[BENCH_MODES] = {
	[BENCH_ONCE] = &bench_once_ops,
	[BENCH_LINE] = &bench_line_ops,
	[BENCH_ECHO] = &bench_line_ops, /* line mode with no prefix: the template differs */
	[BENCH_UDP] = &bench_udp_ops,
};

/* Runs the connections put on the kick list since the last pass. */
static void on_kick(sockit_loop *loop, sockit_timer *t)
{
	struct bench_worker *w = t->data;
	unsigned n = w->nkick;
	uint64_t now = now_ns();
	(void)loop;
	w->now_cache = now;
	unsigned *run = w->kick;
	w->kick = w->kick_run;
	w->kick_run = run;
	w->nkick = 0;
	for (unsigned i = 0; i < n && !w->stopping; i++) {
		struct conn *c = &w->conns[run[i]];
		c->kicked = 0;
		w->ops->kick(w, c, now);
	}
	w->ops->flush(w);
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

static void publish_progress(struct bench_worker *w)
{
	uint64_t errs = 0;
	for (int k = 0; k < ERR_KINDS; k++)
		errs += w->res.errors[k];
	atomic_store_explicit(&w->prog_requests, w->res.requests, memory_order_relaxed);
	atomic_store_explicit(&w->prog_errors, errs, memory_order_relaxed);
}

/* Fails requests past their deadline; publishes progress. */
static void on_sweep(sockit_loop *loop, sockit_timer *t)
{
	struct bench_worker *w = t->data;
	(void)loop;
	if (!w->stopping)
		w->ops->sweep(w, now_ns(), w->cfg->timeout_ms * MS);
	publish_progress(w);
}

static void on_wake(sockit_loop *loop, void *arg)
{
	struct bench_worker *w = arg;
	(void)loop;
	if (atomic_load(&w->stop_asked))
		finish_run(w, now_ns());
}

/* The requests still waiting for a reply when the run ended. */
static void count_unfinished(struct bench_worker *w, uint64_t now)
{
	for (unsigned i = 0; i < w->nconns; i++) {
		const struct conn *c = &w->conns[i];
		if (c->count == 0)
			continue;
		w->res.unfinished += c->count;
		uint64_t sent = c->ring[c->head].sent;
		if (now > sent && now - sent > w->res.oldest_wait_ns)
			w->res.oldest_wait_ns = now - sent;
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
	sockit_timer_init(&w->t_kick, on_kick, w);
	if (clk->end != UINT64_MAX)
		sockit_timer_start(w->loop, &w->t_end,
				   clk->end > now ? (clk->end - now + MS - 1) / MS : 0, 0);
	sockit_timer_start(w->loop, &w->t_sweep, w->sweep_ns / MS, w->sweep_ns / MS);
	w->ops->open(w);
	pace_begin(w, now);
	if (!w->stopping && w->cfg->rate <= 0)
		for (unsigned i = 0; i < w->nconns; i++)
			kick_later(w, &w->conns[i]);
	check_done(w);
	if (atomic_load(&w->stop_asked))
		finish_run(w, now);
	if (!w->stopping)
		sockit_loop_run(w->loop);
	pace_end(w);
	count_unfinished(w, w->res.stop_ns > clk->start ? w->res.stop_ns : now_ns());
	w->ops->close(w);
	sockit_timer_stop(w->loop, &w->t_end);
	sockit_timer_stop(w->loop, &w->t_sweep);
	sockit_timer_stop(w->loop, &w->t_kick);
	publish_progress(w); /* the final figures */
	atomic_store(&w->finished, 1);
	if (w->done_cb)
		w->done_cb(w->done_arg);
	return NULL;
}

static unsigned bits_for(unsigned n)
{
	unsigned b = 0;
	while (b < 32 && (1ull << b) < n)
		b++;
	return b;
}

/* The arrays of a thread's share; returns 0 or -ENOMEM. */
static int worker_alloc(struct bench_worker *w, unsigned conns, unsigned depth)
{
	w->out_cap = w->cfg->lined ? depth * w->tm->size : w->tm->size;
	if (w->cfg->proxy_header) /* the header goes first, in the same buffer */
		w->out_cap += SOCKIT_PROXY_FORMAT_MAX;
	w->tok_cap = conns * depth;
	w->conns = calloc(conns, sizeof(*w->conns));
	w->reqs = calloc((size_t)conns * depth, sizeof(*w->reqs));
	w->outs = malloc((size_t)conns * w->out_cap);
	w->kick = calloc(conns, sizeof(*w->kick));
	w->kick_run = calloc(conns, sizeof(*w->kick_run));
	w->dirty = calloc(conns, sizeof(*w->dirty));
	w->tokens = calloc(w->tok_cap, sizeof(*w->tokens));
	if (!w->conns || !w->reqs || !w->outs || !w->kick || !w->kick_run || !w->dirty ||
	    !w->tokens)
		return -ENOMEM;
	int rc = sockit_loop_new(&w->loop);
	if (rc < 0)
		return rc;
	return w->ops->engine_new(w);
}

int bench_worker_new(const struct bench_config *cfg, const struct bench_tmpl *tm,
		     const struct bench_clock *clk, unsigned index, unsigned conns, uint64_t quota,
		     double rate, struct bench_worker **out)
{
	struct bench_worker *w = calloc(1, sizeof(*w));
	*out = NULL;
	if (w == NULL)
		return -ENOMEM;
	w->cfg = cfg;
	w->ops = mode_ops[cfg->mode];
	w->tm = tm;
	w->clk = clk;
	w->index = index;
	w->nconns = conns;
	w->quota = quota;
	w->once = cfg->mode == BENCH_ONCE;
	w->tick_fd = -1;
	unsigned depth = cfg->depth;
	int rc = worker_alloc(w, conns, depth);
	if (rc < 0) {
		bench_worker_free(w);
		return rc;
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
	if (rate > 0)
		pace_init(w, rate);
	w->res.stop_ns = clk->start;
	hist_init(&w->res.latency);
	hist_init(&w->res.connect);
	hist_init(&w->res.send_lag);
	hist_init(&w->res.hs_full);
	hist_init(&w->res.hs_resumed);
	uint64_t sweep = cfg->timeout_ms * MS / 8;
	w->sweep_ns = sweep < MS ? MS : sweep > 100 * MS ? 100 * MS : sweep;
	*out = w;
	return 0;
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
	w->ops->engine_free(w);
	sockit_loop_free(w->loop);
	free(w->conns);
	free(w->reqs);
	free(w->outs);
	free(w->kick);
	free(w->kick_run);
	free(w->dirty);
	free(w->tokens);
	free(w);
}
