/* pace.c -- bench's open loop (-R): a fixed schedule of request start times, kept by a
 * nanosecond ticker, with latency measured from when each request was due.
 *
 * Request k of a thread is due at sched_base + k * interval_ns (integers:
 * the ticker's period is an exact multiple, so it never drifts early).  A
 * request starts when it is due and a connection (slot) has capacity: the
 * tokens, a FIFO of connection indexes, one per request that may be in
 * flight.  With none free the pacer is starved until a request finishes
 * (request_over restarts it); what is still unsent at the end is
 * res.rate_behind.
 */

#include "engine.h"

/* The pacer wakes at most this often (it sends all that is due). */
#define PACE_MIN_NS 100000ull

static unsigned token_get(struct bench_worker *w)
{
	unsigned s = w->tokens[w->tok_head];
	w->tok_head = (w->tok_head + 1) % w->tok_cap;
	w->tok_count--;
	return s;
}

void pace_init(struct bench_worker *w, double rate)
{
	double ns = 1e9 / rate;
	w->interval_ns = ns < 1 ? 1 : (uint64_t)(ns + 0.5);
	/* threads start their schedules staggered across one interval */
	w->sched_base = w->clk->start + w->interval_ns * w->index / w->cfg->threads;
	for (unsigned d = 0; d < w->cfg->depth; d++)
		for (unsigned i = 0; i < w->nconns; i++)
			token_put(w, i);
}

/* Without a ticker, the loop's millisecond timer wakes the pacer when the
 * next request is due (up to 1 ms late: the send lag shows it). */
static void arm_pacer(struct bench_worker *w, uint64_t due, uint64_t now)
{
	if (w->tick_fd < 0)
		sockit_timer_start(w->loop, &w->t_pace, (due - now + MS - 1) / MS, 0);
}

void pace_run(struct bench_worker *w, uint64_t now)
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
		if (w->tok_count == 0) {
			w->starved = 1; /* behind: the next completion continues */
			break;
		}
		if (!may_start(w, due)) {
			check_done(w);
			break;
		}
		w->k_issued++;
		if (due >= w->clk->measure)
			hist_record(&w->res.send_lag, now - due);
		w->ops->start(w, &w->conns[token_get(w)], due, now);
		if (w->stopping)
			break;
	}
	w->ops->flush(w);
	check_done(w);
}

static void on_pace(sockit_loop *loop, sockit_timer *t)
{
	(void)loop;
	pace_run(t->data, now_ns());
}

static void on_tick(sockit_loop *loop, int fd, unsigned events, void *arg)
{
	(void)loop;
	(void)events;
	if (sk_ticker_ack(fd) > 0)
		pace_run(arg, now_ns());
}

/* The ticker fires at every due time, or every PACE_MIN_NS when requests
 * are due more often (the pacer sends all that is due). */
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

void pace_begin(struct bench_worker *w, uint64_t now)
{
	sockit_timer_init(&w->t_pace, on_pace, w);
	if (w->cfg->rate <= 0)
		return;
	start_ticker(w); /* without it, the loop's timer paces */
	if (!w->stopping)
		pace_run(w, now);
}

void pace_end(struct bench_worker *w)
{
	sockit_timer_stop(w->loop, &w->t_pace);
	if (w->tick_fd >= 0)
		sockit_loop_close(w->loop, w->tick_fd);
	w->tick_fd = -1;
	if (w->cfg->rate <= 0 || w->res.stop_ns <= w->sched_base)
		return;
	/* how far behind schedule the tool (or the server) was */
	uint64_t due = (w->res.stop_ns - w->sched_base + w->interval_ns - 1) / w->interval_ns;
	w->res.rate_behind = due > w->k_issued ? due - w->k_issued : 0;
	if (w->clk->end == UINT64_MAX && w->quota == 0)
		w->res.rate_behind = 0; /* -n: every request was sent */
}
