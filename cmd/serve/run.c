/* serve_run.c -- the server's life: limits, listeners, worker threads, signals, drain. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../lib/loop/ops.h"
#include "serve.h"

#define DEFER_ACCEPT_S 1 /* once mode: the kernel holds silent clients this long */
#define FD_RESERVE_BASE 32
#define FD_RESERVE_PER_WORKER 4
#define BIND_RETRIES 8 /* -p 0 with --udp: the TCP port may be taken for UDP */

static const char *const mode_names[] = {"once", "line", "echo"};

/* The main thread's state: it only waits for signals and workers. */
struct run_ctx {
	struct serve_config *cfg;
	struct serve_log log;
	struct serve_shared sh;
	sockit_loop *loop;
	sockit_timer drain_timer;
	int stopping;
	int failed;
};

void serve_counters_sum(const struct serve_shared *sh, struct serve_counters *out)
{
	memset(out, 0, sizeof(*out));
	for (int i = 0; i < sh->nworkers; i++) {
		const struct serve_counters *c = &sh->workers[i].ctr;
#define SERVE_COUNTER_SUM(name) out->name += __atomic_load_n(&c->name, __ATOMIC_RELAXED);
		SERVE_COUNTERS(SERVE_COUNTER_SUM)
#undef SERVE_COUNTER_SUM
	}
}

static void print_counters(struct run_ctx *x)
{
	struct serve_counters sum;
	serve_counters_sum(&x->sh, &sum);
	serve_log_counters(&x->log, &sum);
}

/* ---- Workers ----------------------------------------------------------- */

void worker_maybe_finish(struct worker *w)
{
	if (w->draining && w->ctr.active == 0 && w->linger.head == NULL)
		sockit_loop_stop(w->loop);
}

static void worker_on_wake(sockit_loop *loop, void *arg)
{
	(void)loop;
	struct worker *w = arg;
	int cmd = __atomic_load_n(&w->cmd, __ATOMIC_ACQUIRE);
	if (cmd >= WORKER_DRAIN && !w->draining) {
		w->draining = 1;
		tcp_worker_drain(w);
		udp_worker_drain(w);
	}
	if (cmd >= WORKER_FORCE)
		tcp_worker_close_all(w, 1);
	worker_maybe_finish(w);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int rc = sockit_loop_run(w->loop);
	sk_loop_ops_finish(w->loop); /* io_uring: only this thread may */
	if (rc < 0)
		serve_log(w->log, LOG_ERROR, "worker %d: event loop failed: %s", w->id,
			  sockit_strerror(rc));
	__atomic_store_n(&w->done, rc < 0 ? 2 : 1, __ATOMIC_RELEASE);
	sockit_loop_wake(w->sh->main_loop);
	return NULL;
}

static void tell_workers(struct run_ctx *x, int cmd)
{
	for (int i = 0; i < x->sh.nworkers; i++) {
		struct worker *w = &x->sh.workers[i];
		__atomic_store_n(&w->cmd, cmd, __ATOMIC_RELEASE);
		sockit_loop_wake(w->loop);
	}
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
	if (x->cfg->drain_timeout_ms == 0) {
		tell_workers(x, WORKER_FORCE);
		return;
	}
	tell_workers(x, WORKER_DRAIN);
	sockit_timer_start(x->loop, &x->drain_timer, x->cfg->drain_timeout_ms, 0);
}

static void on_signal(sockit_loop *loop, int signo, void *arg)
{
	(void)loop;
	struct run_ctx *x = arg;
	if (signo == SIGUSR1) {
		print_counters(x);
		return;
	}
	if (x->stopping) {
		serve_log(&x->log, LOG_WARN, "second %s: exiting now", strsignal(signo));
		print_counters(x);
		_exit(1);
	}
	struct serve_counters sum;
	serve_counters_sum(&x->sh, &sum);
	serve_log(&x->log, LOG_INFO, "%s: draining %llu connection(s), up to %llu ms",
		  strsignal(signo), (unsigned long long)sum.active,
		  (unsigned long long)x->cfg->drain_timeout_ms);
	begin_stop(x);
}

static void main_on_wake(sockit_loop *loop, void *arg)
{
	struct run_ctx *x = arg;
	int all = 1;
	for (int i = 0; i < x->sh.nworkers; i++) {
		int done = __atomic_load_n(&x->sh.workers[i].done, __ATOMIC_ACQUIRE);
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

/* ---- Listeners ----------------------------------------------------------- */

static void format_hostport(const char *host, int port, char *buf, size_t len)
{
	snprintf(buf, len, strchr(host, ':') != NULL ? "[%s]:%d" : "%s:%d", host, port);
}

static int cannot_listen(const struct serve_log *lg, const char *host, int port, const char *proto,
			 int err)
{
	char hp[300];
	format_hostport(host, port, hp, sizeof(hp));
	serve_log_fail(lg, "cannot listen on %s%s: %s", hp, proto, sockit_strerror(err));
	return err;
}

/* Is host:port free?  Our listeners share the port with SO_REUSEPORT, which
 * would let us join another process's group silently; a plain bind first
 * tells "in use" apart. */
static int probe_port(const struct serve_config *cfg, int port, int type, int flags)
{
	int fd = sockit_create_server(cfg->host, port, type, 0, flags & ~SOCKIT_REUSEPORT);
	if (fd < 0)
		return fd;
	sockit_close(fd);
	return 0;
}

static void close_listeners(struct run_ctx *x)
{
	for (int i = 0; i < x->sh.nworkers; i++) {
		struct worker *w = &x->sh.workers[i];
		if (w->tcp_fd >= 0)
			sockit_close(w->tcp_fd);
		if (w->udp_fd >= 0)
			sockit_close(w->udp_fd);
		w->tcp_fd = w->udp_fd = -1;
	}
}

/* Opens one listener per worker for type on port (0: the first picks).
 * Returns the port, or a negative code (message printed). */
static int open_group(struct run_ctx *x, int type, int port, int quiet_inuse)
{
	const struct serve_config *cfg = x->cfg;
	int flags = SOCKIT_REUSEPORT | SOCKIT_NONBLOCK |
		    (cfg->dualstack ? SOCKIT_DUALSTACK : SOCKIT_V6ONLY);
	const char *proto = type == SOCK_STREAM ? "" : " (udp)";
	char ip[SOCKIT_ADDRSTRLEN];
	const char *host = cfg->host;
	if (port != 0) {
		int rc = probe_port(cfg, port, type, flags);
		if (rc < 0)
			return quiet_inuse && rc == -EADDRINUSE
				       ? rc
				       : cannot_listen(&x->log, host, port, proto, rc);
	}
	for (int i = 0; i < x->sh.nworkers; i++) {
		int fd = sockit_create_server(host, port, type, 0, flags);
		if (fd < 0)
			return quiet_inuse && fd == -EADDRINUSE
				       ? fd
				       : cannot_listen(&x->log, host, port, proto, fd);
		struct worker *w = &x->sh.workers[i];
		if (type == SOCK_STREAM)
			w->tcp_fd = fd;
		else
			w->udp_fd = fd;
		if (i == 0) {
			sockit_addr a;
			int rc = sockit_getsockname(fd, &a);
			if (rc >= 0)
				rc = sockit_addr_format_ip(&a, ip, sizeof(ip));
			if (rc < 0)
				return cannot_listen(&x->log, host, port, proto, rc);
			port = sockit_addr_port(&a);
			host = ip; /* the others bind exactly where the first did */
		}
		if (type == SOCK_STREAM && cfg->mode == MODE_ONCE) {
			if (sockit_set_defer_accept(fd, DEFER_ACCEPT_S) == 0)
				w->defer_ms = DEFER_ACCEPT_S * 1000;
		}
	}
	return port;
}

static int open_listeners(struct run_ctx *x)
{
	const struct serve_config *cfg = x->cfg;
	for (int attempt = 0;; attempt++) {
		int port = cfg->port, rc = 0;
		if (cfg->tcp)
			rc = port = open_group(x, SOCK_STREAM, port, 0);
		if (rc >= 0 && cfg->udp) {
			int retry = cfg->port == 0 && cfg->tcp && attempt < BIND_RETRIES;
			rc = open_group(x, SOCK_DGRAM, port, retry);
			if (rc == -EADDRINUSE && retry) {
				close_listeners(x);
				continue;
			}
		}
		if (rc < 0)
			return rc;
		break;
	}
	struct worker *w0 = &x->sh.workers[0];
	const char *mode = mode_names[cfg->mode];
	serve_log(&x->log, LOG_INFO, "%d worker(s), max-conns %llu", x->sh.nworkers,
		  (unsigned long long)cfg->max_conns);
	char addr[SOCKIT_ADDRSTRLEN];
	if (w0->tcp_fd >= 0 && sockit_sockname_str(w0->tcp_fd, addr, sizeof(addr)) >= 0)
		serve_log_listening(&x->log, "tcp", addr, mode);
	if (w0->udp_fd >= 0 && sockit_sockname_str(w0->udp_fd, addr, sizeof(addr)) >= 0)
		serve_log_listening(&x->log, "udp", addr, mode);
	return 0;
}

/* ---- Setup and teardown -------------------------------------------------- */

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

static void workers_free(struct run_ctx *x)
{
	for (int i = 0; i < x->sh.nworkers; i++) {
		struct worker *w = &x->sh.workers[i];
		tcp_worker_free(w);
		udp_worker_free(w);
		if (w->tcp_fd >= 0)
			sockit_close(w->tcp_fd);
		if (w->udp_fd >= 0)
			sockit_close(w->udp_fd);
		if (w->loop != NULL)
			sockit_loop_free(w->loop);
	}
	free(x->sh.workers);
	ip_table_free(x->sh.ips);
}

/* A worker's loop on the configured backend.  auto: io_uring, which
 * measures better (bench/README.md), where the kernel allows it (it may be
 * disabled by sysctl or a seccomp filter), else epoll. */
static sockit_loop *worker_loop_new(struct run_ctx *x)
{
	static const char *const names[] = {"io_uring", "io_uring", "epoll"};
	enum serve_backend b = x->cfg->backend;
	sockit_loop *loop;
	int rc = sockit_loop_new_backend(&loop, names[b]);
	if (rc < 0 && b == BACKEND_AUTO)
		rc = sockit_loop_new_backend(&loop, "epoll");
	if (rc < 0)
		serve_log_fail(&x->log, "cannot create an event loop (%s): %s", names[b],
			       sockit_strerror(rc));
	return loop;
}

/* Whether another worker that last went to sleep on the CPU this one
 * runs on now has completions in its loop (loop_work_pending: new ones,
 * or, if it sleeps, those of the replies it sent last -- so this says
 * "it has served something", not "it is runnable").  Then this one gives
 * the CPU up once before it sleeps (loop_yield_before_wait).  With more
 * workers than CPUs to run them, or all of them pinned to one, a worker
 * that sleeps has to be woken from another CPU for its next request, and
 * that wake can preempt the worker it shares the CPU with in the middle
 * of its batch; yielding lets the other run now, and this one finds its
 * input waiting when it comes back.  Measured with 2 workers pinned to
 * one CPU, as CPU per request against 1 worker: line mode, 16
 * connections, 1.12-1.16x without, 1.01-1.03x with.  In once mode it
 * measured dearer (1.06-1.10x without, 1.29-1.32x with), so it is used
 * for line and echo only. */
static int sibling_on_my_cpu(void *arg)
{
	struct worker *w = arg;
	int cpu = sched_getcpu();
	if (cpu < 0)
		return 0;
	__atomic_store_n(&w->cpu, cpu, __ATOMIC_RELAXED);
	for (int i = 0; i < w->sh->nworkers; i++) {
		const struct worker *o = &w->sh->workers[i];
		if (o != w && __atomic_load_n(&o->cpu, __ATOMIC_RELAXED) == cpu &&
		    sk_loop_work_pending(o->loop))
			return 1;
	}
	return 0;
}

/* The loops first: the line naming their backend comes before the
 * listening lines, which tell a waiting client that startup is over. */
static int loops_setup(struct run_ctx *x)
{
	for (int i = 0; i < x->sh.nworkers; i++) {
		struct worker *w = &x->sh.workers[i];
		w->loop = worker_loop_new(x);
		if (w->loop == NULL)
			return -1;
		sockit_loop_on_wake(w->loop, worker_on_wake, w);
		if (x->sh.nworkers > 1 && x->cfg->mode != MODE_ONCE) /* epoll declines */
			(void)sk_loop_yield_before_wait(w->loop, sibling_on_my_cpu, w,
							&w->ctr.cpu_yields);
	}
	serve_log(&x->log, LOG_INFO, "event loop: %s", sockit_loop_backend(x->sh.workers[0].loop));
	return 0;
}

static int workers_setup(struct run_ctx *x)
{
	for (int i = 0; i < x->sh.nworkers; i++) {
		struct worker *w = &x->sh.workers[i];
		int rc = tcp_worker_init(w);
		if (rc >= 0)
			rc = udp_worker_init(w);
		if (rc < 0) {
			serve_log_fail(&x->log, "cannot start worker %d: %s", i,
				       sockit_strerror(rc));
			return -1;
		}
	}
	return 0;
}

static int run(struct run_ctx *x)
{
	int started = 0, rc = 1;
	if (loops_setup(x) < 0 || open_listeners(x) < 0 || workers_setup(x) < 0)
		goto out;
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
	}
	if (started > 0) {
		int lrc = sockit_loop_run(x->loop);
		if (lrc < 0) {
			serve_log(&x->log, LOG_ERROR, "main loop failed: %s", sockit_strerror(lrc));
			x->failed = 1;
		}
	}
	for (int i = 0; i < started; i++)
		pthread_join(x->sh.workers[i].thread, NULL);
	print_counters(x);
	rc = x->failed ? 1 : 0;
out:
	return rc;
}

int serve_run(struct serve_config *cfg)
{
	struct run_ctx x;
	memset(&x, 0, sizeof(x));
	x.cfg = cfg;
	x.log.level = cfg->log_level;
	x.log.format = cfg->log_format;

	uint64_t nofile = raise_nofile();
	if (cfg->workers == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		cfg->workers = n < 1 ? 1 : n > 64 ? 64 : (int)n;
	}
	uint64_t reserve = FD_RESERVE_BASE + FD_RESERVE_PER_WORKER * (uint64_t)cfg->workers;
	uint64_t fit = nofile > reserve + 1 ? nofile - reserve : 1;
	if (cfg->max_conns == 0)
		cfg->max_conns = fit;
	else if (cfg->max_conns > fit)
		serve_log(&x.log, LOG_WARN,
			  "--max-conns %llu is more than the descriptor limit allows (%llu); "
			  "accepts will pause when descriptors run out",
			  (unsigned long long)cfg->max_conns, (unsigned long long)fit);

	void *mem = NULL;
	size_t bytes = sizeof(struct worker) * (size_t)cfg->workers;
	if (posix_memalign(&mem, 64, bytes) != 0) {
		serve_log_fail(&x.log, "out of memory");
		return 1;
	}
	memset(mem, 0, bytes);
	x.sh.workers = mem;
	x.sh.nworkers = cfg->workers;
	for (int i = 0; i < cfg->workers; i++) {
		struct worker *w = &x.sh.workers[i];
		w->id = i;
		w->cfg = cfg;
		w->sh = &x.sh;
		w->log = &x.log;
		w->tcp_fd = w->udp_fd = -1;
		w->cpu = -1;
	}
	int rc = 1;
	if (cfg->max_conns_per_ip > 0 && (x.sh.ips = ip_table_new(cfg->max_conns_per_ip)) == NULL) {
		serve_log_fail(&x.log, "out of memory");
		goto out;
	}
	int lrc = sockit_loop_new(&x.loop);
	x.sh.main_loop = x.loop;
	if (lrc < 0) {
		serve_log_fail(&x.log, "cannot create an event loop: %s", sockit_strerror(lrc));
		goto out;
	}
	sockit_timer_init(&x.drain_timer, on_drain_timer, &x);
	sockit_loop_on_wake(x.loop, main_on_wake, &x);
	/* Before any thread exists, so every worker inherits the blocked mask. */
	static const int sigs[] = {SIGTERM, SIGINT, SIGUSR1};
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		int src = sockit_loop_signal(x.loop, sigs[i], on_signal, &x);
		if (src < 0) {
			serve_log_fail(&x.log, "cannot watch signals: %s", sockit_strerror(src));
			goto out;
		}
	}
	rc = run(&x);
out:
	workers_free(&x);
	if (x.loop != NULL) {
		sockit_timer_stop(x.loop, &x.drain_timer);
		sockit_loop_free(x.loop);
	}
	return rc;
}
