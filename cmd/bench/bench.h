/* bench.h -- `sockit bench`: the configuration, the per-thread engine, its results. */
#ifndef SOCKIT_BENCH_H
#define SOCKIT_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "hist.h"
#include "sockit.h"

enum bench_mode { BENCH_ONCE, BENCH_LINE, BENCH_ECHO, BENCH_UDP };

/* Errors by kind; the JSON keys are bench_err_name(). */
enum bench_err {
	ERR_MISMATCH,  /* a reply byte differs from the expected one, or extra bytes */
	ERR_TRUNCATED, /* the server closed before the whole reply arrived */
	ERR_RESET,     /* ECONNRESET / EPIPE */
	ERR_REFUSED,   /* ECONNREFUSED (TCP RST to a SYN, or ICMP port unreachable) */
	ERR_TIMEOUT,   /* no (complete) reply within --timeout */
	ERR_CONNECT,   /* any other failure to connect (no route, no ports, ...) */
	ERR_OTHER,     /* anything else (e.g. out of descriptors) */
	ERR_KINDS
};

const char *bench_err_name(enum bench_err e);

struct bench_config {
	enum bench_mode mode;
	const char *host;
	int port;
	unsigned conns;	  /* TCP connections / outstanding datagrams, in all */
	unsigned threads; /* each with its own loop and share of conns */
	unsigned depth;	  /* requests in flight per connection (line, echo) */
	size_t size;	  /* bytes per request, '\n' included in line/echo */
	uint64_t duration_ms;
	uint64_t requests; /* -n: exactly this many measured requests; 0 = by time */
	double rate;	   /* -R: requests/s in all; 0 = closed loop */
	uint64_t warmup_ms;
	uint64_t timeout_ms;
	const char *prefix;
	size_t prefix_len; /* 0 in echo mode */
	int json;
	sockit_addr addr; /* resolved target */
};

/* The request template, built once, read by every thread.  A request is
 * msg with its first id_len bytes replaced by the request's id in hex; its
 * expected reply is expect (= prefix + msg) with the same replacement at
 * id_off = prefix_len. */
struct bench_tmpl {
	char *msg;
	size_t size;
	char *expect;
	size_t reply_len;
	size_t id_off;
	size_t id_len; /* 8..16 hex digits */
};

/* Clock points shared by all threads (CLOCK_MONOTONIC ns), fixed before
 * the threads start. */
struct bench_clock {
	uint64_t start;	  /* the run begins */
	uint64_t measure; /* warm-up ends: requests started from here are measured */
	uint64_t end;	  /* -d: the run ends; UINT64_MAX with -n */
};

/* One thread's results (and, merged, the run's). */
struct bench_result {
	uint64_t requests; /* measured, completed, verified */
	uint64_t errors[ERR_KINDS];
	uint64_t late; /* udp: replies to requests no longer outstanding */
	uint64_t over_100ms;
	uint64_t bytes_out, bytes_in; /* in the measured window */
	uint64_t stop_ns;	      /* when this thread's measuring ended */
	uint64_t rate_behind;	      /* -R: requests still unsent when due at the end */
	struct hist latency;	      /* ns, from send (or scheduled) time to verified reply */
	struct hist connect;	      /* ns, once mode: connect() to connected */
	struct hist send_lag;	      /* ns, -R: how late requests started versus schedule */
};

/* ---- The engine (bench_worker.c) ---------------------------------------- */

struct bench_worker;

/* A thread's share: conns connections (or datagram slots), quota measured
 * requests (-n; UINT64_MAX = by time), rate requests/s (0 = closed loop).
 * Returns NULL when out of memory or descriptors. */
struct bench_worker *bench_worker_new(const struct bench_config *cfg, const struct bench_tmpl *tm,
				      const struct bench_clock *clk, unsigned index, unsigned conns,
				      uint64_t quota, double rate);

/* Starts the thread; done_cb(arg) is called from it when it has finished
 * (time is up, its quota is done, or it was stopped).  Returns 0 or a
 * negative code. */
int bench_worker_start(struct bench_worker *w, void (*done_cb)(void *arg), void *arg);

/* Thread-safe: asks the thread to stop now (Ctrl-C). */
void bench_worker_stop(struct bench_worker *w);

/* Thread-safe progress figures: verified requests and errors so far. */
void bench_worker_progress(const struct bench_worker *w, uint64_t *requests, uint64_t *errors);

/* 1 once the thread has finished. */
int bench_worker_finished(const struct bench_worker *w);

/* Joins the thread; then the results are final. */
const struct bench_result *bench_worker_join(struct bench_worker *w);

void bench_worker_free(struct bench_worker *w);

/* Builds the template; returns 0 or -ENOMEM.  bench_tmpl_free releases it. */
int bench_tmpl_init(struct bench_tmpl *tm, const struct bench_config *cfg);
void bench_tmpl_free(struct bench_tmpl *tm);

/* Writes id as id_len lowercase hex digits (the low 4 * id_len bits). */
void bench_id_format(char *dst, size_t id_len, uint64_t id);

/* Adds 1 << shift to the id_len hex digits at txt (wrapping like the
 * number's low 4 * id_len bits): the text of the next id, without
 * formatting it anew. */
void bench_id_next(char *txt, size_t id_len, unsigned shift);

/* 1 if data[0..n) equals bytes off..off+n of the expected reply to the
 * request whose id is idtxt (id_len hex digits, as bench_id_format wrote). */
int bench_reply_match(const struct bench_tmpl *tm, const char *idtxt, size_t off, const char *data,
		      size_t n);

#endif /* SOCKIT_BENCH_H */
