/* metrics.h -- --metrics: Prometheus text on GET /metrics, GET /healthz, on a thread of its own.
 *
 * The endpoint (metrics.c) runs its own loop on its own thread, so a slow
 * or hostile scraper costs the workers nothing: it only reads their
 * counters with relaxed loads.  It is bounded: METRICS_MAX_CONNS scrapers
 * at once (more are closed at accept), a METRICS_REQ_MAX request head, a
 * METRICS_TIMEOUT_MS deadline to send it and another to take the reply.
 *
 * The workers' side (duration.c) is a histogram of connection durations:
 * the accept time of each descriptor in a per-worker array, and at close
 * one index computation and two relaxed stores.  Only with --metrics.
 */
#ifndef SOCKIT_SERVE_METRICS_H
#define SOCKIT_SERVE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "serve.h"

#define METRICS_MAX_CONNS 16
#define METRICS_REQ_MAX 4096
#define METRICS_TIMEOUT_MS 5000

/* Connection durations: bucket k (k < DUR_FINITE) counts those under
 * DUR_BASE_US << k microseconds (250us, 500us, 1ms, ... 524.288s); the
 * last one the rest.  Not cumulative: the exposition sums them. */
#define DUR_BASE_US 250
#define DUR_FINITE 22
#define DUR_BUCKETS (DUR_FINITE + 1)

struct dur_hist {
	uint64_t bucket[DUR_BUCKETS];
	uint64_t sum_us;
};

/* The bucket of a duration in microseconds. */
static inline unsigned dur_bucket(uint64_t us)
{
	uint64_t q = us / DUR_BASE_US;
	unsigned k = q == 0 ? 0 : 64u - (unsigned)__builtin_clzll(q);
	return k < DUR_FINITE ? k : DUR_FINITE;
}

struct worker;
struct serve_shared;
struct serve_log;

/* ---- duration.c: the workers' side (only when cfg->metrics_host is set) -- */

/* fd was accepted now (the worker loop's time). */
void duration_open(struct worker *w, int fd);
/* fd's connection ends now: one sample into w->dur. */
void duration_close(struct worker *w, int fd);
void duration_free(struct worker *w);

/* ---- exposition.c: the text, into a growing buffer ---------------------- */

struct mbuf {
	char *p;
	size_t len, cap;
	int oom; /* an append failed: the text is incomplete */
};

void mbuf_printf(struct mbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mbuf_free(struct mbuf *b);
/* Appends the whole exposition (version 0.0.4) of sh's workers and of
 * this process.  Reads the workers' state with relaxed loads only. */
void metrics_render(struct mbuf *b, const struct serve_shared *sh);

/* ---- metrics.c: the endpoint, owned by run.c ---------------------------- */

struct metrics;

/* Listens on cfg's --metrics address (or takes fd, when >= 0: a listener
 * handed over by an upgrade), prints "metrics on http://ADDR/metrics" and
 * starts the thread.  0, or a negative code (printed). */
int metrics_start(struct metrics **out, const struct serve_config *cfg, struct serve_shared *sh,
		  const struct serve_log *lg, int fd);
/* The listening descriptor (to hand over), or -1. */
int metrics_listener(const struct metrics *m);
/* Stops accepting (the listener now belongs to a new process); the
 * scrapes in progress finish.  Any thread. */
void metrics_handover(struct metrics *m);
/* Stops the thread, closes everything.  m may be NULL. */
void metrics_stop(struct metrics *m);

#endif /* SOCKIT_SERVE_METRICS_H */
