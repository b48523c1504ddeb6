/* run.c -- the server's life: descriptor budget, workers, signals, drain, the counters, exit. */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli.h"
#include "sockit_tls.h"
#include "upgrade.h"
#include "worker.h"

#define FD_RESERVE_BASE 32	/* stdio, the main loop, slack */
#define FD_RESERVE_PER_WORKER 4 /* its loop (2), its listeners (1 or 2) */
#define MIN_CONNS_PER_WORKER 8	/* fewer: warn that the fd limit starves the workers */
#define MAX_DEFAULT_WORKERS 64	/* the default (online CPUs) at most */
#define WORKERS_PER_CPU_WARN 4	/* more workers than this many per CPU: warn */

/* The main thread's state: it only waits for signals and workers. */
struct run_ctx {
	struct serve_config *cfg;
	struct serve_log log;
	struct serve_shared sh;
	sockit_loop *loop;
	sockit_timer drain_timer;
	sockit_timer trim_timer;
	struct serve_notify notify; /* systemd's NOTIFY_SOCKET, if set */
	struct metrics *metrics;    /* --metrics, or NULL */
	struct upgrade upgrade;
	int stopping;
	int failed;
};

/* ---- Counters: each worker's, summed with relaxed loads ------------------ */

static void counters_sum(const struct serve_shared *sh, struct serve_counters *out)
{
	memset(out, 0, sizeof(*out));
	for (int i = 0; i < sh->nworkers; i++) {
		const struct serve_counters *c = &sh->workers[i].ctr;
#define SERVE_COUNTER_SUM(name) out->name += __atomic_load_n(&c->name, __ATOMIC_RELAXED);
		SERVE_COUNTERS(SERVE_COUNTER_SUM)
#undef SERVE_COUNTER_SUM
	}
}

static void sum_of(void *arg, struct serve_counters *out)
{
	counters_sum(&((struct run_ctx *)arg)->sh, out);
}

static void print_counters(struct run_ctx *x)
{
	struct serve_counters sum;
	counters_sum(&x->sh, &sum);
	serve_log_counters(&x->log, &sum);
}

static void tell_workers(struct run_ctx *x, int cmd)
{
	for (int i = 0; i < x->sh.nworkers; i++)
		worker_command(&x->sh.workers[i], cmd);
}

/* ---- Signals and the drain --------------------------------------------- */

static void on_drain_timer(sockit_loop *loop, sockit_timer *t)
{
	(void)loop;
	struct run_ctx *x = t->data;
	serve_log(&x->log, LOG_INFO, "drain timeout: closing the remaining connections");
	tell_workers(x, WORKER_FORCE);
}

static void begin_stop(struct run_ctx *x)
{
	x->stopping = 1;
	notify_stopping(&x->notify);
	__atomic_store_n(&x->sh.draining, 1, __ATOMIC_RELAXED); /* /healthz: 503 */
	if (x->cfg->drain_timeout_ms == 0) {
		tell_workers(x, WORKER_FORCE);
		return;
	}
	tell_workers(x, WORKER_DRAIN);
	sockit_timer_start(x->loop, &x->drain_timer, x->cfg->drain_timeout_ms, 0);
}

static void drain_log(struct run_ctx *x, const char *why)
{
	struct serve_counters sum;
	counters_sum(&x->sh, &sum);
	char dur[32];
	cli_format_duration(dur, sizeof(dur), x->cfg->drain_timeout_ms);
	serve_log(&x->log, LOG_INFO, "%s: draining %llu connection(s), up to %s", why,
		  (unsigned long long)sum.active, dur);
}

/* The new process serves: it takes the place of this one, which drains. */
static void on_upgraded(void *arg, pid_t pid)
{
	struct run_ctx *x = arg;
	char why[64];
	serve_notify_mainpid(pid);
	metrics_handover(x->metrics);
	unix_files_free(&x->sh); /* the new process serves on them: not ours to remove */
	__atomic_store_n(&x->sh.handed_over, 1, __ATOMIC_RELEASE);
	snprintf(why, sizeof(why), "upgrade: process %d is ready", (int)pid);
	if (!x->stopping) {
		drain_log(x, why);
		begin_stop(x);
	}
}

static void on_signal(sockit_loop *loop, int signo, void *arg)
{
	(void)loop;
	struct run_ctx *x = arg;
	if (signo == SIGUSR1) {
		print_counters(x);
		return;
	}
	if (signo == SIGUSR2) {
		if (x->stopping)
			serve_log(&x->log, LOG_WARN, "SIGUSR2: draining already, no upgrade");
		else
			(void)upgrade_start(&x->upgrade, x->cfg, &x->sh,
					    metrics_listener(x->metrics), on_upgraded, x);
		return;
	}
	if (signo == SIGHUP) {
		serve_tls_reload(x->cfg, x->sh.tls, &x->log);
		return;
	}
	if (x->stopping) {
		serve_log(&x->log, LOG_WARN, "second %s: exiting now", strsignal(signo));
		print_counters(x);
		unix_files_remove(&x->sh);
		_exit(1);
	}
	drain_log(x, strsignal(signo));
	begin_stop(x);
}

/* A worker's loop ended (worker_main woke us): a failure stops the rest;
 * when all have ended, so does the main loop. */
static void main_on_wake(sockit_loop *loop, void *arg)
{
	struct run_ctx *x = arg;
	int all = 1;
	for (int i = 0; i < x->sh.nworkers; i++) {
		int done = worker_done(&x->sh.workers[i]);
		if (done == 2 && !x->failed) {
			x->failed = 1;
			if (!x->stopping)
				begin_stop(x);
		}
		if (done == 0)
			all = 0;
	}
	if (all)
		sockit_loop_stop(loop);
}

/* ---- The descriptor budget ----------------------------------------------- */

/* Raises the soft descriptor limit to the hard one; returns the limit. */
static uint64_t raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit want = {rl.rlim_max, rl.rlim_max};
		if (setrlimit(RLIMIT_NOFILE, &want) == 0)
			rl.rlim_cur = rl.rlim_max;
	}
	return rl.rlim_cur == RLIM_INFINITY ? (1u << 20) : (uint64_t)rl.rlim_cur;
}

/* Workers (default: the online CPUs) and --max-conns (default: what the
 * descriptor limit leaves after the workers' own).  Returns 0, or -1 when
 * the workers would leave no descriptor for connections (printed). */
static int plan_fds(struct run_ctx *x)
{
	struct serve_config *cfg = x->cfg;
	uint64_t nofile = raise_nofile();
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 1)
		ncpu = 1;
	if (cfg->workers == 0)
		cfg->workers = ncpu > MAX_DEFAULT_WORKERS ? MAX_DEFAULT_WORKERS : (int)ncpu;
	else if (cfg->workers > WORKERS_PER_CPU_WARN * ncpu)
		serve_log(&x->log, LOG_WARN,
			  "--workers %d is more than %dx the %ld CPU(s): the extra workers only "
			  "take turns on them, and each costs descriptors",
			  cfg->workers, WORKERS_PER_CPU_WARN, ncpu);
	uint64_t workers = (uint64_t)cfg->workers;
	uint64_t reserve = FD_RESERVE_BASE + FD_RESERVE_PER_WORKER * workers;
	uint64_t fit = nofile > reserve ? nofile - reserve : 0;
	if (fit < workers) {
		serve_log_fail(
			&x->log,
			"%d workers need about %llu descriptors (%d each, plus %d), and the fd "
			"limit is %llu, leaving %llu for connections: use fewer --workers, "
			"or raise the limit with ulimit -n",
			cfg->workers, (unsigned long long)reserve, FD_RESERVE_PER_WORKER,
			FD_RESERVE_BASE, (unsigned long long)nofile, (unsigned long long)fit);
		return -1;
	}
	if (fit < MIN_CONNS_PER_WORKER * workers)
		serve_log(&x->log, LOG_WARN,
			  "the fd limit (%llu) leaves only %llu connections for %d workers "
			  "(each costs %d descriptors): use fewer --workers, or raise the limit "
			  "with ulimit -n",
			  (unsigned long long)nofile, (unsigned long long)fit, cfg->workers,
			  FD_RESERVE_PER_WORKER);
	if (cfg->max_conns == 0)
		cfg->max_conns = fit;
	else if (cfg->max_conns > fit)
		serve_log(&x->log, LOG_WARN,
			  "--max-conns %llu is more than the descriptor limit allows (%llu); "
			  "accepts will pause when descriptors run out (raise it with ulimit -n)",
			  (unsigned long long)cfg->max_conns, (unsigned long long)fit);
	return 0;
}

/* ---- Setup and teardown -------------------------------------------------- */

static const char *emfile_hint(int err)
{
	return err == -EMFILE || err == -ENFILE ? ": raise the limit with ulimit -n" : "";
}

/* The loops first: the line naming their backend comes before the
 * listening lines, which tell a waiting client that startup is over. */
static int loops_setup(struct run_ctx *x)
{
	static const char *const names[] = {"io_uring", "io_uring", "epoll"};
	for (int i = 0; i < x->sh.nworkers; i++) {
		int rc = worker_loop_new(&x->sh.workers[i]);
		if (rc < 0) {
			serve_log_fail(&x->log, "cannot create an event loop (%s): %s%s",
				       names[x->cfg->backend], sockit_strerror(rc),
				       emfile_hint(rc));
			return -1;
		}
	}
	char co[32] = "off";
	if (x->cfg->coalesce_us > 0)
		cli_format_duration_us(co, sizeof(co), (uint64_t)x->cfg->coalesce_us);
	serve_log(&x->log, LOG_INFO, "event loop: %s, coalescing %s",
		  sockit_loop_backend(x->sh.workers[0].loop), co);
	return 0;
}

static int workers_setup(struct run_ctx *x)
{
	if (listeners_open(&x->sh, x->cfg, &x->log) < 0)
		return -1;
	if (x->cfg->metrics_host != NULL) {
		int fd = x->sh.metrics_fd;
		x->sh.metrics_fd = -1; /* metrics_start owns it now */
		if (metrics_start(&x->metrics, x->cfg, &x->sh, &x->log, fd) < 0)
			return -1;
	}
	serve_log(&x->log, LOG_INFO, "%d worker(s), max-conns %llu", x->sh.nworkers,
		  (unsigned long long)x->cfg->max_conns);
	listeners_announce(&x->sh, x->cfg, &x->log);
	for (int i = 0; i < x->sh.nworkers; i++) {
		int rc = worker_start(&x->sh.workers[i]);
		if (rc < 0) {
			serve_log_fail(&x->log, "cannot start worker %d: %s%s", i,
				       sockit_strerror(rc), emfile_hint(rc));
			return -1;
		}
	}
	return 0;
}

/* Starts the threads, waits for the signals and the workers' ends. */
static int run(struct run_ctx *x)
{
	int started = 0;
	if (loops_setup(x) < 0 || workers_setup(x) < 0)
		return 1;
	for (; started < x->sh.nworkers; started++) {
		struct worker *w = &x->sh.workers[started];
		int err = pthread_create(&w->thread, NULL, worker_main, w);
		if (err != 0) {
			serve_log_fail(&x->log, "cannot start a worker thread: %s",
				       sockit_strerror(-err));
			x->failed = 1;
			break;
		}
	}
	if (started < x->sh.nworkers) {
		x->sh.nworkers = started; /* only the started ones are waited for */
		begin_stop(x);
	} else {
		notify_start(&x->notify, x->loop, sum_of, x);
	}
	if (started == x->sh.nworkers)
		upgrade_notify_parent(&x->upgrade);
	if (started > 0) {
		int lrc = sockit_loop_run(x->loop);
		if (lrc < 0) {
			serve_log(&x->log, LOG_ERROR, "main loop failed: %s", sockit_strerror(lrc));
			x->failed = 1;
		}
	}
	for (int i = 0; i < started; i++)
		pthread_join(x->sh.workers[i].thread, NULL);
	metrics_stop(x->metrics);
	x->metrics = NULL;
	print_counters(x);
	return x->failed ? 1 : 0;
}

static int workers_new(struct run_ctx *x)
{
	void *mem = NULL;
	size_t bytes = sizeof(struct worker) * (size_t)x->cfg->workers;
	if (posix_memalign(&mem, 64, bytes) != 0)
		return -1;
	memset(mem, 0, bytes);
	x->sh.workers = mem;
	x->sh.nworkers = x->cfg->workers;
	for (int i = 0; i < x->sh.nworkers; i++)
		worker_prepare(&x->sh.workers[i], i, x->cfg, &x->sh, &x->log);
	return 0;
}

static void workers_free(struct run_ctx *x)
{
	/* The ones never started too: nworkers may have been cut. */
	for (int i = 0; i < x->cfg->workers && x->sh.workers != NULL; i++)
		worker_free(&x->sh.workers[i]);
	free(x->sh.workers);
	ip_table_free(x->sh.ips);
}

/* ---- Memory ----------------------------------------------------------------- */

/* glibc keeps what connections free in each worker's arena, and bursts of
 * buffered clients leave holes it does not give back by itself: in a
 * 3-minute soak on io_uring, RSS crept 6.5% while the memory in use stayed
 * the same (malloc_stats).  So the main thread hands the free pages back
 * every TRIM_MS; a trim of a small heap takes microseconds. */
#define TRIM_MS 10000

static void on_trim_timer(sockit_loop *loop, sockit_timer *t)
{
	(void)loop;
	(void)t;
	malloc_trim(0);
}

/* The main loop: the signals (before any thread exists, so every worker
 * inherits the blocked mask) and the workers' wakes. */
static int main_loop_new(struct run_ctx *x)
{
	int err = sockit_loop_new(&x->loop);
	x->sh.main_loop = x->loop;
	if (err < 0) {
		serve_log_fail(&x->log, "cannot create an event loop: %s%s", sockit_strerror(err),
			       emfile_hint(err));
		return -1;
	}
	sockit_timer_init(&x->drain_timer, on_drain_timer, x);
	sockit_timer_init(&x->trim_timer, on_trim_timer, x);
	if (sockit_timer_start(x->loop, &x->trim_timer, TRIM_MS, TRIM_MS) < 0) {
		serve_log_fail(&x->log, "out of memory");
		return -1;
	}
	sockit_loop_on_wake(x->loop, main_on_wake, x);
	static const int sigs[] = {SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGHUP};
	size_t nsigs = sizeof(sigs) / sizeof(sigs[0]);
	if (x->sh.tls == NULL)
		nsigs--; /* SIGHUP reloads the certificate; without one it keeps its default */
	for (size_t i = 0; i < nsigs; i++) {
		int src = sockit_loop_signal(x->loop, sigs[i], on_signal, x);
		if (src < 0) {
			serve_log_fail(&x->log, "cannot watch signals: %s", sockit_strerror(src));
			return -1;
		}
	}
	return 0;
}

int serve_run(struct serve_config *cfg)
{
	struct run_ctx x;
	memset(&x, 0, sizeof(x));
	x.cfg = cfg;
	x.log.level = cfg->log_level;
	x.log.format = cfg->log_format;
	x.sh.metrics_fd = -1;
	/* Bad certificate files are a usage error, before anything listens. */
	if (serve_tls_setup(cfg, &x.sh.tls) != 0)
		return 2;
	if (x.sh.tls != NULL && cfg->udp)
		serve_log(&x.log, LOG_WARN, "TLS is for TCP only: UDP is served in plaintext");
	if (cfg->proxy && cfg->udp)
		serve_log(&x.log, LOG_WARN,
			  "--proxy-protocol is for TCP only: UDP sources are taken as they are");
	if (plan_fds(&x) < 0) {
		sockit_tls_ctx_free(x.sh.tls);
		return 1;
	}
	int rc = 1;
	if (workers_new(&x) < 0 ||
	    (cfg->max_conns_per_ip > 0 && (x.sh.ips = ip_table_new(cfg->max_conns_per_ip)) == NULL))
		serve_log_fail(&x.log, "out of memory");
	else if (main_loop_new(&x) == 0) {
		upgrade_init(&x.upgrade, &x.log, x.loop);
		rc = run(&x);
		upgrade_free(&x.upgrade);
	}
	metrics_stop(x.metrics);
	if (x.sh.metrics_fd >= 0)
		sockit_close(x.sh.metrics_fd);
	workers_free(&x);
	unix_files_remove(&x.sh);
	unix_files_free(&x.sh);
	sockit_tls_ctx_free(x.sh.tls);
	if (x.loop != NULL) {
		notify_stop(&x.notify);
		sockit_timer_stop(x.loop, &x.drain_timer);
		sockit_timer_stop(x.loop, &x.trim_timer);
		sockit_loop_free(x.loop);
	}
	return rc;
}
