/* serve.h -- `sockit serve` internals: config, counters, workers, connections. */
#ifndef SOCKIT_SERVE_H
#define SOCKIT_SERVE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sockit.h"
#include "sockit_loop.h"

enum serve_mode { MODE_ONCE, MODE_LINE, MODE_ECHO };
enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };
enum log_format { LOGF_TEXT, LOGF_JSON };
enum serve_backend { BACKEND_AUTO, BACKEND_IO_URING, BACKEND_EPOLL };

/* Everything the command line says, validated; read-only once running. */
struct serve_config {
	const char *host;
	int port;
	enum serve_mode mode;
	int tcp, udp; /* which listeners */
	int workers;
	uint64_t max_conns; /* 0 until run() derives it from RLIMIT_NOFILE */
	uint64_t max_conns_per_ip;
	uint64_t idle_timeout_ms; /* 0 = none */
	size_t max_bytes;
	size_t max_line;
	size_t max_pending;
	sockit_cidr *allow, *deny;
	size_t nallow, ndeny;
	const char *prefix;
	size_t prefix_len;
	uint64_t udp_rate; /* datagrams/s per source IP, 0 = unlimited */
	int dualstack;
	uint64_t drain_timeout_ms;
	enum log_level log_level;
	enum log_format log_format;
	enum serve_backend backend;
};

/* The counters, in the order they are printed.  One X-macro so the struct,
 * the text line, the JSON object and the sum never disagree. */
#define SERVE_COUNTERS(X)                                                                          \
	X(accepted)                                                                                \
	X(active)                                                                                  \
	X(refused_maxconns)                                                                        \
	X(refused_perip)                                                                           \
	X(refused_denied)                                                                          \
	X(closed_done)                                                                             \
	X(closed_eof)                                                                              \
	X(closed_reset)                                                                            \
	X(closed_timeout)                                                                          \
	X(closed_limit)                                                                            \
	X(bytes_in)                                                                                \
	X(bytes_out)                                                                               \
	X(dgrams_in)                                                                               \
	X(dgrams_out)                                                                              \
	X(dgrams_dropped_port)                                                                     \
	X(dgrams_dropped_rate)                                                                     \
	X(cpu_yields)

/* One worker's counters.  Written only by its own thread (plain add then a
 * relaxed store: no read-modify-write, no lock), read by any thread with
 * relaxed loads -- the one place an exporter reads. */
struct serve_counters {
#define SERVE_COUNTER_FIELD(name) uint64_t name;
	SERVE_COUNTERS(SERVE_COUNTER_FIELD)
#undef SERVE_COUNTER_FIELD
};

#define CTR_ADD(w, name, n)                                                                        \
	__atomic_store_n(&(w)->ctr.name, (w)->ctr.name + (uint64_t)(n), __ATOMIC_RELAXED)
#define CTR_SUB(w, name, n)                                                                        \
	__atomic_store_n(&(w)->ctr.name, (w)->ctr.name - (uint64_t)(n), __ATOMIC_RELAXED)

/* ---- Logging (serve_log.c) ------------------------------------------- */

struct serve_log {
	enum log_level level;
	enum log_format format;
};

/* A repeated warning, printed at most once a second per worker with the
 * count of those suppressed in between. */
struct log_ratelimit {
	uint64_t last_ms;
	uint64_t suppressed;
};

/* One line on stderr with one write(2).  Text: "sockit: [level: ]MSG";
 * JSON: {"time":..,"level":..,"msg":"MSG"}.  Thread-safe. */
void serve_log(const struct serve_log *lg, enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The same, at most once per second per rl (now_ms from the caller's loop). */
void serve_log_limited(const struct serve_log *lg, struct log_ratelimit *rl, uint64_t now_ms,
		       enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* A runtime failure, printed at every level: text "sockit serve: MSG" (as
 * the other subcommands' errors), JSON an object at level "error". */
void serve_log_fail(const struct serve_log *lg, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The listening line, printed at every level. */
void serve_log_listening(const struct serve_log *lg, const char *proto, const char *addr,
			 const char *mode);
/* The counters line, printed at every level. */
void serve_log_counters(const struct serve_log *lg, const struct serve_counters *c);

/* ---- Limits (serve_limit.c): pure, no I/O ------------------------------ */

/* 1 if the address may connect: no --deny matches, and some --allow
 * matches when any is given. */
int serve_acl_allows(const struct serve_config *cfg, const sockit_addr *a);

/* Per-IP connection counts shared by all workers, behind one mutex; only
 * touched when --max-conns-per-ip is set. */
struct ip_entry;
struct ip_table;
struct ip_table *ip_table_new(uint64_t limit);
void ip_table_free(struct ip_table *t);
/* Counts one more connection from a; returns its entry, or NULL when a is
 * at the limit (or out of memory). */
struct ip_entry *ip_table_acquire(struct ip_table *t, const sockit_addr *a);
void ip_table_release(struct ip_table *t, struct ip_entry *e);

/* Per-source datagram rate limit (token bucket, burst = rate), one table
 * per worker, fixed size: a source that finds no slot evicts the least
 * recently seen of its probe window. */
struct rate_table;
struct rate_table *rate_table_new(uint64_t per_second);
void rate_table_free(struct rate_table *t);
/* 1 if a datagram from a may pass at now_ms (and takes a token), else 0. */
int rate_table_allow(struct rate_table *t, const sockit_addr *a, uint64_t now_ms);

/* ---- Workers (serve_tcp.c, serve_udp.c, serve_run.c) ------------------- */

struct conn;

/* A doubly linked list of connections, oldest activity first. */
struct conn_list {
	struct conn *head, *tail;
};

struct serve_shared;

/* Sent from the main thread to a worker with sockit_loop_wake(). */
enum { WORKER_RUN = 0, WORKER_DRAIN = 1, WORKER_FORCE = 2 };

struct worker {
	int id;
	const struct serve_config *cfg;
	struct serve_shared *sh;
	const struct serve_log *log;
	sockit_loop *loop;
	pthread_t thread;
	int tcp_fd, udp_fd; /* -1 when none / closed */
	int cmd;	    /* WORKER_*, written by main (atomic) */
	int done;	    /* set (atomic) when the worker's loop has ended */
	int draining;
	int accept_paused;
	int ops;		   /* the loop takes completion operations (io_uring) */
	int accept_multi;	   /* accepting through accept_op, not readiness */
	struct loop_op *accept_op; /* the multishot accept, when armed */
	uint64_t others;	   /* the other workers' active count, as last read */
	uint64_t others_ms;	   /* ... at this loop time */
	uint64_t defer_ms;

	char *rbuf; /* prefix + read buffer: rbuf + prefix_len is where reads go */
	size_t rbuf_size;
	char *wbuf; /* line/echo: replies of one wake, sent in one write */
	size_t wbuf_size, wbuf_len;
	struct conn *wbuf_owner; /* io_uring: whose output wbuf holds between chunks */

	struct conn_list idle;	 /* every open connection but lingering ones */
	struct conn_list linger; /* after the reply: discarding input, bounded */
	sockit_timer sweep;	 /* fires at the earliest deadline of both lists */
	uint64_t sweep_at;	 /* when it is armed for */
	sockit_timer accept_timer;
	struct conn *free_conns;
	void *conn_chunks;

	void *udp;			 /* struct udp_state, serve_udp.c */
	struct rate_table *rate;	 /* --udp-rate, or NULL */
	struct log_ratelimit rl_accept;	 /* accept errors */
	struct log_ratelimit rl_udp;	 /* UDP errors */
	struct log_ratelimit rl_refused; /* refused clients */
	int emfile_episode;
	int accept_one, accept_busy; /* see accept_adapt() */
	uint64_t accept_ms;

	struct serve_counters ctr __attribute__((aligned(64)));
	/* The CPU this worker ran on when it last went to sleep (-1: not
	 * yet), read by the others: see sibling_on_my_cpu(). */
	int cpu __attribute__((aligned(64)));
} __attribute__((aligned(64)));

struct serve_shared {
	struct worker *workers;
	int nworkers;
	struct ip_table *ips; /* or NULL */
	sockit_loop *main_loop;
};

/* serve_tcp.c */
int tcp_worker_init(struct worker *w); /* buffers, watch the listener */
void tcp_on_accept(sockit_loop *loop, int fd, unsigned events, void *arg);
void tcp_worker_drain(struct worker *w); /* stop accepting */
void tcp_worker_close_all(struct worker *w, int count_as_timeout);
void tcp_worker_free(struct worker *w);

/* serve_udp.c */
int udp_worker_init(struct worker *w);
void udp_worker_drain(struct worker *w);
void udp_worker_free(struct worker *w);

/* serve_run.c */
int serve_run(struct serve_config *cfg);
/* Sum of every worker's counters (relaxed loads). */
void serve_counters_sum(const struct serve_shared *sh, struct serve_counters *out);
/* Called by a worker when its last connection closed while draining. */
void worker_maybe_finish(struct worker *w);

#endif /* SOCKIT_SERVE_H */
