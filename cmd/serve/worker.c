/* worker.c -- a worker's life: its loop, its engines, its commands from the owner, its end. */
#include <errno.h>
#include <sched.h>
#include <string.h>

#include "../../lib/loop/ops.h"
#include "worker.h"

void worker_prepare(struct worker *w, int id, const struct serve_config *cfg,
		    struct serve_shared *sh, const struct serve_log *log)
{
	w->id = id;
	w->cfg = cfg;
	w->sh = sh;
	w->log = log;
	w->tcp_fd = w->udp_fd = -1;
	w->cpu = -1;
	sockit_timer_init(&w->dereg_timer, proxy_on_dereg, w);
}

/* Whether another worker that last went to sleep on the CPU this one
 * runs on now has completions in its loop (sk_loop_work_pending: new ones,
 * or, if it sleeps, those of the replies it sent last -- so this says
 * "it has served something", not "it is runnable").  Then this one gives
 * the CPU up once before it sleeps (sk_loop_yield_before_wait).  With more
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

static void worker_on_wake(sockit_loop *loop, void *arg)
{
	(void)loop;
	struct worker *w = arg;
	int cmd = __atomic_load_n(&w->cmd, __ATOMIC_ACQUIRE);
	if (cmd >= WORKER_DRAIN && !w->draining) {
		w->draining = 1;
		if (cmd >= WORKER_FORCE || !proxy_deregister(w))
			accept_drain(w);
		udp_drain(w);
	}
	if (w->deregistering)
		proxy_dereg_check(w, cmd >= WORKER_FORCE);
	if (cmd >= WORKER_FORCE)
		conn_close_all(w, 1);
	conn_check_drained(w);
}

/* auto: for TCP, io_uring, which measures better (bench/README.md), where
 * the kernel allows it (it may be disabled by sysctl or a seccomp filter),
 * else epoll; for Unix sockets epoll, which measures better there: their
 * system calls are cheap, and the ring's own work per operation is not. */
int worker_loop_new(struct worker *w)
{
	static const char *const names[] = {"io_uring", "io_uring", "epoll"};
	enum serve_backend b = w->cfg->backend;
	if (b == BACKEND_AUTO && w->cfg->unix_path != NULL)
		b = BACKEND_EPOLL;
	int rc = sockit_loop_new_backend(&w->loop, names[b]);
	if (rc < 0 && b == BACKEND_AUTO)
		rc = sockit_loop_new_backend(&w->loop, "epoll");
	if (rc < 0)
		return rc;
	sockit_loop_on_wake(w->loop, worker_on_wake, w);
	if (w->cfg->coalesce_us > 0)
		(void)sockit_loop_coalesce(w->loop, (uint64_t)w->cfg->coalesce_us);
	if (w->sh->nworkers > 1 && w->cfg->mode != MODE_ONCE) /* epoll declines */
		(void)sk_loop_yield_before_wait(w->loop, sibling_on_my_cpu, w, &w->ctr.cpu_yields);
	log_ratelimit_init(&w->rl_accept, w->log, w->loop, "accept warnings");
	log_ratelimit_init(&w->rl_udp, w->log, w->loop, "UDP warnings");
	log_ratelimit_init(&w->rl_refused, w->log, w->loop, "refused clients");
	log_ratelimit_init(&w->rl_hello, w->log, w->loop, "TLS/PROXY failures");
	return 0;
}

int worker_start(struct worker *w)
{
	w->ops = sk_loop_ops_available(w->loop);
	int rc = conn_worker_init(w);
	if (rc >= 0)
		rc = accept_start(w);
	if (rc >= 0)
		rc = udp_start(w);
	return rc;
}

void *worker_main(void *arg)
{
	struct worker *w = arg;
	int rc = sockit_loop_run(w->loop);
	log_ratelimit_flush(&w->rl_accept);
	log_ratelimit_flush(&w->rl_udp);
	log_ratelimit_flush(&w->rl_refused);
	log_ratelimit_flush(&w->rl_hello);
	sk_loop_ops_finish(w->loop); /* io_uring: only this thread may */
	if (rc < 0)
		serve_log(w->log, LOG_ERROR, "worker %d: event loop failed: %s", w->id,
			  sockit_strerror(rc));
	__atomic_store_n(&w->done, rc < 0 ? 2 : 1, __ATOMIC_RELEASE);
	sockit_loop_wake(w->sh->main_loop);
	return NULL;
}

void worker_command(struct worker *w, int cmd)
{
	__atomic_store_n(&w->cmd, cmd, __ATOMIC_RELEASE);
	sockit_loop_wake(w->loop);
}

int worker_done(const struct worker *w)
{
	return __atomic_load_n(&w->done, __ATOMIC_ACQUIRE);
}

void worker_free(struct worker *w)
{
	if (w->loop != NULL) {
		sockit_timer_stop(w->loop, &w->accept_timer);
		sockit_timer_stop(w->loop, &w->dereg_timer);
	}
	conn_worker_free(w);
	udp_free(w);
	duration_free(w);
	if (w->tcp_fd >= 0)
		sockit_close(w->tcp_fd);
	if (w->udp_fd >= 0)
		sockit_close(w->udp_fd);
	w->tcp_fd = w->udp_fd = -1;
	if (w->loop != NULL) {
		log_ratelimit_flush(&w->rl_accept);
		log_ratelimit_flush(&w->rl_udp);
		log_ratelimit_flush(&w->rl_refused);
		log_ratelimit_flush(&w->rl_hello);
		sockit_loop_free(w->loop);
		w->loop = NULL;
	}
}
