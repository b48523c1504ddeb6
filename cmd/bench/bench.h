/* bench.h -- `sockit bench`: its configuration, results, and the parts main.c strings together:
 * parse (argv -> config), run (threads, owns the workers, merges), report (text, JSON). */
#ifndef SOCKIT_BENCH_H
#define SOCKIT_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "hist.h"
#include "sockit.h"

enum bench_mode { BENCH_ONCE, BENCH_LINE, BENCH_ECHO, BENCH_UDP, BENCH_MODES };

struct sockit_tls_ctx;

/* Errors by kind; the JSON keys are bench_err_name(). */
enum bench_err {
	ERR_MISMATCH,  /* a reply byte differs from the expected one, or extra bytes */
	ERR_TRUNCATED, /* the server closed before the whole reply arrived */
	ERR_RESET,     /* ECONNRESET / EPIPE */
	ERR_REFUSED,   /* ECONNREFUSED (TCP RST to a SYN, or ICMP port unreachable) */
	ERR_TIMEOUT,   /* no (complete) reply within --timeout */
	ERR_CONNECT,   /* any other failure to connect (no route, no ports, ...) */
	ERR_OTHER,     /* anything else (e.g. out of descriptors) */
	/* --tls */
	ERR_TLS_VERIFY,	   /* the server's certificate did not verify */
	ERR_TLS_HANDSHAKE, /* any other handshake failure (not TLS, version, cipher, ...) */
	ERR_TLS_TRUNCATED, /* the connection ended without close_notify */
	ERR_TLS_ALERT,	   /* a TLS error after the handshake (an alert from the server) */
	ERR_KINDS
};

const char *bench_err_name(enum bench_err e);

/* "once", "line", "echo", "udp". */
const char *bench_mode_name(enum bench_mode m);

struct bench_config {
	enum bench_mode mode; /* BENCH_UDP with echo set: datagrams come back verbatim */
	int echo;	      /* replies are the requests (-m echo, or -u -m echo) */
	int lined;	      /* a request is a line ('\n' last): line and echo over TCP */
	int family;	      /* AF_UNSPEC, or AF_INET / AF_INET6 (-4 / -6) */
	const char *host_arg; /* HOST as given ("[::1]") */
	const char *host;     /* HOST as resolved ("::1") */
	char host_buf[64];
	int port;
	unsigned conns;	  /* TCP connections / outstanding datagrams, in all */
	unsigned threads; /* each with its own loop and share of conns */
	unsigned depth;	  /* requests in flight per connection (line, echo) */
	size_t size;	  /* bytes per request, '\n' included when lined */
	uint64_t duration_ms;
	uint64_t requests; /* -n: exactly this many measured requests; 0 = by time */
	double rate;	   /* -R: requests/s in all; 0 = closed loop */
	uint64_t warmup_ms;
	uint64_t timeout_ms;
	const char *prefix; /* "" when echo */
	size_t prefix_len;
	int json;
	const char *unix_path;	    /* -U: PATH or @name instead of HOST PORT, else NULL */
	int proxy_header;	    /* --proxy-header: 1 or 2, 0 = none */
	int attempt_delay_ms;	    /* --attempt-delay (Happy Eyeballs); -1: one after another */
	int tls;		    /* --tls */
	int tls_insecure;	    /* --tls-insecure */
	int tls_resume;		    /* --tls-resume */
	const char *tls_ca;	    /* --tls-ca FILE, or NULL (the system's trust store) */
	const char *tls_cert;	    /* --tls-cert FILE (with --tls-key), or NULL */
	const char *tls_key;	    /* --tls-key FILE */
	const char *tls_servername; /* the name to verify and send: --tls-servername or HOST */
	struct sockit_tls_ctx *tls_ctx; /* bench_tls_init: one client context for every thread */
	sockit_addr addr;		/* resolved target */
};

/* Returns 0 to run, 2 after a usage error (printed), -1 after --help or
 * --version (printed on stdout). */
int bench_parse(int argc, char **argv, struct bench_config *cfg);

/* With --tls, makes cfg->tls_ctx from the --tls-* files.  Returns 0, or 2
 * after a usage error naming the file and the reason (printed). */
int bench_tls_init(struct bench_config *cfg);
void bench_tls_free(struct bench_config *cfg);

/* Clock points shared by all threads (CLOCK_MONOTONIC ns), fixed before
 * the threads start. */
struct bench_clock {
	uint64_t start;	  /* the run begins */
	uint64_t measure; /* warm-up ends: requests started from here are measured */
	uint64_t end;	  /* -d: the run ends; UINT64_MAX with -n */
};

/* The first mismatch seen: a window of the reply around where it departs. */
#define BENCH_SAMPLE 48
struct bench_sample {
	int set;
	size_t offset; /* of expected[0] in the reply */
	size_t elen, rlen;
	char expected[BENCH_SAMPLE];
	char received[BENCH_SAMPLE];
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
	uint64_t unfinished;	      /* requests waiting for their reply at the end */
	uint64_t oldest_wait_ns;      /* ... the longest of them had waited this long */
	uint64_t tls_resumed;	      /* --tls: measured handshakes that resumed a session */
	int tls_error;		      /* the first TLS error's code (sockit_strerror), or 0 */
	int answered;		      /* a connect succeeded, or a datagram came back */
	int dead;		      /* stopped early: every connect (datagram) refused */
	struct bench_sample mismatch;
	struct hist latency;	/* ns, from send (or scheduled) time to verified reply */
	struct hist connect;	/* ns, once mode: connect() to connected */
	struct hist send_lag;	/* ns, -R: how late requests started versus schedule */
	struct hist hs_full;	/* ns, --tls: a full handshake, from the connection's first byte
				   out to the handshake's end */
	struct hist hs_resumed; /* ns, --tls: the same for handshakes that resumed */
};

/* This many refused connects (or datagrams) in a thread before any
 * succeeds: nothing listens, the run stops. */
#define BENCH_DEAD_AFTER 100

/* ---- the worker: one thread, its loop and its share (worker.c) ---------- */

struct bench_tmpl;
struct bench_worker;

/* A thread's share: conns connections (or datagram slots), quota measured
 * requests (-n; UINT64_MAX = by time), rate requests/s (0 = closed loop).
 * Returns 0 with *out set, or a negative code (-ENOMEM, -EMFILE, ...)
 * with *out NULL. */
int bench_worker_new(const struct bench_config *cfg, const struct bench_tmpl *tm,
		     const struct bench_clock *clk, unsigned index, unsigned conns, uint64_t quota,
		     double rate, struct bench_worker **out);

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

/* Joins the thread; then the results are final (valid until _free). */
const struct bench_result *bench_worker_join(struct bench_worker *w);

void bench_worker_free(struct bench_worker *w);

/* ---- the run (run.c) and its report (report.c) ---------------------------- */

struct bench_outcome {
	struct bench_result r; /* merged */
	double elapsed_s;
	uint64_t errors_total;
	int started;	  /* the workers ran: r and elapsed_s mean something */
	int signo;	  /* stopped by this signal (0: not) */
	char error[256];  /* why the run failed, "" if it did not */
	const char *hint; /* the next step, or NULL */
	char hint_buf[256];
	int exit; /* 0 or 1 */
};

/* Resolves the target, runs the workers until done or a signal, merges
 * their results, and judges the run (o->error, o->exit). */
void bench_run(struct bench_config *cfg, struct bench_outcome *o);

/* Fills o->error, o->hint and o->exit from the merged results. */
void bench_judge(const struct bench_config *cfg, struct bench_outcome *o);

/* The result on stdout: text, or one JSON object (also when the run could
 * not start: then with "error" and "exit"). */
void bench_report_text(const struct bench_config *cfg, const struct bench_outcome *o);
void bench_report_json(const struct bench_config *cfg, const struct bench_outcome *o);

#endif /* SOCKIT_BENCH_H */
