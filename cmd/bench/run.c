/* run.c -- `sockit bench`'s run: resolves the target, starts one worker per thread, waits
 * for them (or a signal), and merges their results. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "cli.h"
#include "codec.h"
#include "internal.h"
#include "sockit.h"
#include "sockit_tls.h"

/* A name (not an address) with TCP: a first connection, racing the
 * addresses as RFC 8305 says, picks the one the run uses; it resolves the
 * name, the run's connections do not.  Returns 0 with cfg->addr set, or
 * -1 when no address took a connection (the run then shows why). */
static int probe_target(struct bench_config *cfg)
{
	sockit_connect_opts opts = SOCKIT_CONNECT_OPTS_INIT;
	opts.family = cfg->family;
	opts.timeout_ms = (int)cfg->timeout_ms;
	opts.attempt_delay_ms = cfg->attempt_delay_ms;
	int fd = sockit_create_connection_opts(cfg->host, cfg->port, &opts, NULL, 0, NULL,
					       &cfg->addr);
	if (fd < 0)
		return -1;
	sockit_close(fd);
	return 0;
}

/* The target: -U's address (parsed already); an address as given; a
 * name's address by probe_target, or else its first (so that the run
 * reports what goes wrong).  Returns 0, or fills o->error and returns -1. */
static int resolve_target(struct bench_config *cfg, struct bench_outcome *o)
{
	int type = cfg->mode == BENCH_UDP ? SOCK_DGRAM : SOCK_STREAM;
	if (cfg->unix_path != NULL)
		return 0;
	if (sockit_addr_from_ip(cfg->host, cfg->port, &cfg->addr) == 0 &&
	    (cfg->family == AF_UNSPEC || cfg->family == cfg->addr.ss.ss_family))
		return 0;
	if (type == SOCK_STREAM && probe_target(cfg) == 0)
		return 0;
	int n = sockit_resolve(cfg->host, cfg->port, cfg->family, type, 0, &cfg->addr, 1);
	if (n < 0) {
		snprintf(o->error, sizeof(o->error), "cannot resolve '%s': %s", cfg->host_arg,
			 sockit_strerror(n));
		return -1;
	}
	return 0;
}

/* With --tls: the client context every thread shares. */
int bench_tls_init(struct bench_config *cfg)
{
	if (!cfg->tls)
		return 0;
	sockit_tls_config tc = {
		.cert_file = cfg->tls_cert,
		.key_file = cfg->tls_key,
		.ca_file = cfg->tls_insecure ? NULL : cfg->tls_ca,
		.flags = cfg->tls_insecure ? SOCKIT_TLS_INSECURE : 0,
	};
	int rc = sockit_tls_client_ctx_new(&tc, &cfg->tls_ctx);
	if (rc == 0)
		return 0;
	/* which file: the code says, or else (-ENOENT, -EACCES) the one we cannot read */
	static const char *const opts[3] = {"--tls-ca", "--tls-cert", "--tls-key"};
	const char *files[3] = {tc.ca_file, cfg->tls_cert, cfg->tls_key};
	int i = rc == SOCKIT_TLS_ECAFILE				     ? 0
		: rc == SOCKIT_TLS_ECERTFILE				     ? 1
		: rc == SOCKIT_TLS_EKEYFILE || rc == SOCKIT_TLS_EKEYMISMATCH ? 2
									     : -1;
	for (int k = 0; i < 0 && k < 3; k++)
		if (files[k] != NULL && access(files[k], R_OK) != 0)
			i = k;
	if (i >= 0 && files[i] != NULL)
		return cli_usage("bench", "cannot use '%s' for %s: %s", files[i], opts[i],
				 sockit_strerror(rc));
	return cli_usage("bench", "cannot set up TLS: %s", sockit_strerror(rc));
}

void bench_tls_free(struct bench_config *cfg)
{
	sockit_tls_ctx_free(cfg->tls_ctx);
	cfg->tls_ctx = NULL;
}

/* Room for every connection's descriptor: raise the soft limit if needed. */
static int check_fd_limit(const struct bench_config *cfg, struct bench_outcome *o)
{
	if (cfg->mode == BENCH_UDP)
		return 0;
	struct rlimit rl;
	rlim_t need = (rlim_t)cfg->conns + 16 + 4 * cfg->threads;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= need)
		return 0;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur >= need)
		return 0;
	snprintf(o->error, sizeof(o->error),
		 "-c %u needs %llu descriptors; the limit is %llu: raise it with ulimit -n",
		 cfg->conns, (unsigned long long)need, (unsigned long long)rl.rlim_max);
	return -1;
}

/* A worker tells the main thread it has finished. */
static void worker_done(void *arg)
{
	pthread_kill(*(pthread_t *)arg, SIGUSR1);
}

static void progress(struct bench_worker **ws, unsigned n, const struct bench_clock *clk)
{
	uint64_t req = 0, err = 0, now = sk_clock_ns();
	for (unsigned i = 0; i < n; i++) {
		uint64_t a, b;
		bench_worker_progress(ws[i], &a, &b);
		req += a;
		err += b;
	}
	if (now < clk->measure) {
		fprintf(stderr, "\rsockit bench: warming up, %.1f s left, %llu errors\033[K",
			(double)(clk->measure - now) / 1e9, (unsigned long long)err);
	} else {
		double s = (double)(now - clk->measure) / 1e9;
		fprintf(stderr,
			"\rsockit bench: %.1f s, %llu requests, %.0f req/s, %llu errors\033[K", s,
			(unsigned long long)req, s > 0 ? (double)req / s : 0.0,
			(unsigned long long)err);
	}
	fflush(stderr);
}

/* Waits for the workers to finish, or a signal to stop them; returns the
 * signal's number, or 0. */
static int wait_workers(struct bench_worker **ws, unsigned n, const struct bench_clock *clk,
			const sigset_t *sigs)
{
	int tty = isatty(STDERR_FILENO), signo = 0;
	for (;;) {
		unsigned done = 0;
		for (unsigned i = 0; i < n; i++)
			done += (unsigned)bench_worker_finished(ws[i]);
		if (done == n)
			break;
		struct timespec ts = {.tv_sec = 1};
		int sig = sigtimedwait(sigs, NULL, &ts);
		if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
			signo = sig;
			for (unsigned i = 0; i < n; i++)
				bench_worker_stop(ws[i]);
			break;
		}
		if (tty && sig < 0)
			progress(ws, n, clk);
	}
	if (tty)
		fprintf(stderr, "\r\033[K");
	return signo;
}

/* floor(n * part / whole) without overflow (n < 2^50, whole < 2^20). */
static uint64_t share(uint64_t n, unsigned part, unsigned whole)
{
	return (uint64_t)((unsigned __int128)n * part / whole);
}

/* Starts the threads, each with its share of the connections and the same
 * share of the rate and of -n (so that all finish together).  Returns how
 * many started; on a failure o->error says why. */
static unsigned start_workers(const struct bench_config *cfg, const struct bench_tmpl *tm,
			      const struct bench_clock *clk, struct bench_worker **ws,
			      pthread_t *self, struct bench_outcome *o)
{
	unsigned conns_before = 0;
	for (unsigned i = 0; i < cfg->threads; i++) {
		unsigned conns = cfg->conns / cfg->threads + (i < cfg->conns % cfg->threads);
		uint64_t quota = UINT64_MAX;
		if (cfg->requests)
			quota = share(cfg->requests, conns_before + conns, cfg->conns) -
				share(cfg->requests, conns_before, cfg->conns);
		conns_before += conns;
		double rate = cfg->rate * conns / cfg->conns;
		int rc = bench_worker_new(cfg, tm, clk, i, conns, quota, rate, &ws[i]);
		if (rc < 0) {
			snprintf(o->error, sizeof(o->error), "cannot set up thread %u: %s", i,
				 sockit_strerror(rc));
			return i;
		}
		int e = bench_worker_start(ws[i], worker_done, self);
		if (e < 0) {
			snprintf(o->error, sizeof(o->error), "cannot start thread %u: %s", i,
				 sockit_strerror(e));
			return i;
		}
	}
	return cfg->threads;
}

static void merge(struct bench_outcome *o, const struct bench_result *r)
{
	o->r.requests += r->requests;
	for (int k = 0; k < ERR_KINDS; k++)
		o->r.errors[k] += r->errors[k];
	o->r.late += r->late;
	o->r.over_100ms += r->over_100ms;
	o->r.rate_behind += r->rate_behind;
	o->r.bytes_out += r->bytes_out;
	o->r.bytes_in += r->bytes_in;
	o->r.unfinished += r->unfinished;
	if (r->oldest_wait_ns > o->r.oldest_wait_ns)
		o->r.oldest_wait_ns = r->oldest_wait_ns;
	o->r.tls_resumed += r->tls_resumed;
	if (o->r.tls_error == 0)
		o->r.tls_error = r->tls_error;
	o->r.answered |= r->answered;
	o->r.dead |= r->dead;
	if (r->stop_ns > o->r.stop_ns)
		o->r.stop_ns = r->stop_ns;
	if (r->mismatch.set && !o->r.mismatch.set)
		o->r.mismatch = r->mismatch;
	hist_merge(&o->r.latency, &r->latency);
	hist_merge(&o->r.connect, &r->connect);
	hist_merge(&o->r.send_lag, &r->send_lag);
	hist_merge(&o->r.hs_full, &r->hs_full);
	hist_merge(&o->r.hs_resumed, &r->hs_resumed);
}

/* Runs the workers with the run's signals blocked in every thread: this
 * one takes them with sigtimedwait. */
static void run_workers(const struct bench_config *cfg, const struct bench_tmpl *tm,
			struct bench_outcome *o)
{
	struct bench_clock clk;
	sigset_t sigs, old;
	struct bench_worker **ws = calloc(cfg->threads, sizeof(*ws));
	if (ws == NULL) {
		snprintf(o->error, sizeof(o->error), "out of memory");
		return;
	}
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &sigs, &old);
	pthread_t self = pthread_self();
	clk.start = sk_clock_ns();
	clk.measure = clk.start + cfg->warmup_ms * 1000000ull;
	clk.end = cfg->requests ? UINT64_MAX : clk.measure + cfg->duration_ms * 1000000ull;
	unsigned started = start_workers(cfg, tm, &clk, ws, &self, o);
	if (started < cfg->threads)
		for (unsigned i = 0; i < started; i++)
			bench_worker_stop(ws[i]);
	else
		o->signo = wait_workers(ws, cfg->threads, &clk, &sigs);
	o->r.stop_ns = clk.measure;
	for (unsigned i = 0; i < cfg->threads && ws[i] != NULL; i++)
		merge(o, bench_worker_join(ws[i]));
	if (started == cfg->threads) {
		o->started = 1;
		o->elapsed_s = (double)(o->r.stop_ns - clk.measure) / 1e9;
	}
	for (unsigned i = 0; i < cfg->threads; i++)
		bench_worker_free(ws[i]);
	free(ws);
	/* Signals still pending must not outlive the mask: a worker's SIGUSR1,
	 * or a stop that came while the results were being merged. */
	struct timespec zero = {0};
	int sig;
	while ((sig = sigtimedwait(&sigs, NULL, &zero)) > 0)
		if (sig != SIGUSR1 && o->signo == 0)
			o->signo = sig;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void bench_run(struct bench_config *cfg, struct bench_outcome *o)
{
	struct bench_tmpl tm;
	memset(o, 0, sizeof(*o));
	hist_init(&o->r.latency);
	hist_init(&o->r.connect);
	hist_init(&o->r.send_lag);
	hist_init(&o->r.hs_full);
	hist_init(&o->r.hs_resumed);
	o->exit = 1;
	if (resolve_target(cfg, o) < 0 || check_fd_limit(cfg, o) < 0)
		return;
	if (bench_tmpl_init(&tm, cfg->size, cfg->lined, cfg->prefix, cfg->prefix_len) < 0) {
		snprintf(o->error, sizeof(o->error), "out of memory");
		return;
	}
	run_workers(cfg, &tm, o);
	bench_tmpl_free(&tm);
	if (o->started)
		bench_judge(cfg, o);
}
