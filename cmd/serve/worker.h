/* worker.h -- a worker: one thread, one loop, its listeners, connections and counters.
 *
 * Calls go one way: run.c owns the workers and calls worker.c; a worker
 * calls its engines (accept.c, which starts once.c or stream.c on each
 * connection; conn.c under both; udp.c).  An engine reports back only
 * through the worker's own state, which the owner reads: the counters
 * (relaxed atomics), `done` (set when the loop ended), and a wake of the
 * owner's loop (sh->main_loop).
 */
#ifndef SOCKIT_SERVE_WORKER_H
#define SOCKIT_SERVE_WORKER_H

#include <pthread.h>

#include "metrics.h"
#include "serve.h"

struct conn;

/* A doubly linked list of connections, oldest activity first. */
struct conn_list {
	struct conn *head, *tail;
};

/* What every worker shares, owned by run.c. */
struct serve_shared {
	struct worker *workers;
	int nworkers;
	struct ip_table *ips;	    /* or NULL */
	struct sockit_tls_ctx *tls; /* --tls-cert: the server context (tls.c), or NULL */
	int check_refused;	/* --proxy-protocol, draining: a worker refused a health check */
	int handed_over;	/* an upgrade's new process has the listeners (run.c) */
	sockit_loop *main_loop; /* woken when a worker's loop ends */
	struct unix_files *ux;	/* socket files to remove at exit (unix.c), or NULL */
	int draining;		/* set (atomic) by run.c when the drain begins */
	int metrics_fd;		/* a --metrics listener handed over by an upgrade, or -1 */
};

/* --log-level debug: who a connection is from, for its close line. */
struct peer_note {
	sockit_addr addr;
	struct peer_cred cred;
	int has_cred;
};

/* Sent from the main thread to a worker (worker_command). */
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
	int done;	    /* set (atomic) when the worker's loop has ended: 1 ok, 2 failed */
	int draining;
	int deregistering; /* --proxy-protocol, draining: failing health checks first */
	sockit_timer dereg_timer;
	uint64_t dereg_at; /* ... when it fires (loop time) */
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
	struct conn_list header; /* --proxy-protocol: waiting for the header, bounded */
	sockit_timer sweep;	 /* fires at the earliest deadline of both lists */
	uint64_t sweep_at;	 /* when it is armed for */
	sockit_timer accept_timer;
	struct conn *free_conns;
	void *conn_chunks;
	struct peer_note *peers; /* --log-level debug: each fd's peer, for the close line */
	size_t npeers;
	uint64_t *born; /* --metrics: each fd's accept time (loop ns, 0: none) */
	size_t nborn;

	void *udp;			 /* struct udp_state, udp.c */
	struct rate_table *rate;	 /* --udp-rate, or NULL */
	struct log_ratelimit rl_accept;	 /* accept errors */
	struct log_ratelimit rl_udp;	 /* UDP errors */
	struct log_ratelimit rl_refused; /* refused clients */
	struct log_ratelimit rl_hello;	 /* failed TLS handshakes, bad PROXY headers */
	int emfile_episode;
	int accept_one, accept_busy; /* see accept_adapt() */
	uint64_t accept_ms;

	struct serve_counters ctr __attribute__((aligned(64)));
	struct dur_hist dur; /* --metrics: connection durations (duration.c) */
	/* The CPU this worker ran on when it last went to sleep (-1: not
	 * yet), read by the others: see sibling_on_my_cpu(). */
	int cpu __attribute__((aligned(64)));
} __attribute__((aligned(64)));

/* ---- worker.c: what the owner calls ---------------------------------------- */

/* Fills in a zeroed worker. */
void worker_prepare(struct worker *w, int id, const struct serve_config *cfg,
		    struct serve_shared *sh, const struct serve_log *log);
/* Creates w's loop on the configured backend.  Returns 0 or a negative code. */
int worker_loop_new(struct worker *w);
/* After the listeners are open: buffers, accepting, UDP.  0 or negative. */
int worker_start(struct worker *w);
/* The thread's body: runs the loop, then sets w->done and wakes the owner. */
void *worker_main(void *w);
/* WORKER_DRAIN (stop accepting, end when the last connection has) or
 * WORKER_FORCE (close every connection now); from any thread. */
void worker_command(struct worker *w, int cmd);
/* 0 while the loop runs, 1 when it ended, 2 when it failed (any thread). */
int worker_done(const struct worker *w);
/* Frees what worker_loop_new and worker_start made, and the listeners. */
void worker_free(struct worker *w);

/* ---- listen.c: the owner opens every worker's listeners before they start -- */

/* Opens one TCP and/or UDP listener per worker on one port (-p 0: the
 * kernel picks it).  0, or a negative code (the message printed). */
int listeners_open(struct serve_shared *sh, const struct serve_config *cfg,
		   const struct serve_log *lg);
/* Prints the "listening on ..." lines, which tell a waiting client that
 * startup is over. */
void listeners_announce(const struct serve_shared *sh, const struct serve_config *cfg,
			const struct serve_log *lg);

/* ---- unix.c: -U PATH, and listeners shared by every worker ------------------ */

/* Opens -U PATH's stream socket and/or PATH.dgram, shared by the workers.
 * 0, or a negative code (the message printed). */
int unix_listeners_open(struct serve_shared *sh, const struct serve_config *cfg,
			const struct serve_log *lg);
/* Gives worker 0 the listeners (-1: none) and every other worker a dup of
 * them.  0 or a negative code; worker_free closes what was given. */
int listeners_share(struct serve_shared *sh, int stream_fd, int dgram_fd);
/* Removes the socket files this server made, if they are still those. */
/* The socket files of -U whose sockets an upgrading parent handed over:
 * ours to remove at exit now.  0 or -ENOMEM. */
int unix_files_adopt(struct serve_shared *sh, const struct serve_config *cfg);
void unix_files_remove(struct serve_shared *sh);
void unix_files_free(struct serve_shared *sh);

/* ---- sd.c: the listeners systemd passed (socket activation) ----------------- */

/* Shares cfg->sd's sockets with the workers.  0 or negative (printed). */
int sd_listeners_open(struct serve_shared *sh, const struct serve_config *cfg,
		      const struct serve_log *lg);

/* The readiness protocol on the owner's loop (NOTIFY_SOCKET): READY=1 and
 * the first STATUS= at notify_start (once listening), STATUS= while the
 * counts (sum()) change, WATCHDOG=1 pings, STOPPING=1 at the drain. */
struct serve_notify {
	sockit_loop *loop;
	sockit_timer status, watchdog;
	void (*sum)(void *arg, struct serve_counters *out);
	void *arg;
	uint64_t last_active, last_accepted;
	int on, stopping;
};
void notify_start(struct serve_notify *n, sockit_loop *loop,
		  void (*sum)(void *arg, struct serve_counters *out), void *arg);
void notify_stopping(struct serve_notify *n);
/* Stops the timers (before the loop is freed). */
void notify_stop(struct serve_notify *n);

/* ---- The engines, called by worker.c -------------------------------------- */

/* accept.c: watch the listener (or arm the multishot accept); stop. */
int accept_start(struct worker *w);
void accept_drain(struct worker *w);

/* conn.c: the buffers, the pool, the timers; every connection closed
 * (count_as_timeout: the drain timed out); stopping the loop once a
 * draining worker has no connection left. */
int conn_worker_init(struct worker *w);
void conn_close_all(struct worker *w, int count_as_timeout);
void conn_worker_free(struct worker *w);
void conn_check_drained(struct worker *w);

/* tls.c: the context from --tls-cert/--tls-key/--tls-client-ca, or NULL
 * without them.  0, or 2 after the usage error naming the bad file. */
int serve_tls_setup(const struct serve_config *cfg, struct sockit_tls_ctx **out);
/* SIGHUP: loads the files again for new connections; on failure the
 * context keeps the pair it has, and the log says why. */
void serve_tls_reload(const struct serve_config *cfg, struct sockit_tls_ctx *ctx,
		      const struct serve_log *lg);

/* proxy.c: on a drain, with --proxy-protocol, the listeners stay open
 * while the balancer's health checks are refused, until one was and the
 * balancer had time to take this server out (or no check came for a
 * while).  proxy_deregister returns 1 if it took the drain over. */
int proxy_deregister(struct worker *w);
void proxy_dereg_check(struct worker *w, int force);
void proxy_on_dereg(sockit_loop *loop, sockit_timer *t);

/* udp.c */
int udp_start(struct worker *w);
void udp_drain(struct worker *w);
void udp_free(struct worker *w);

#endif /* SOCKIT_SERVE_WORKER_H */
