/* loop.c -- the event loop: fd table, timer heap, signals, wake-ups, dispatch. */

/*
 * The backends sit behind backend.h: this file calls them only through its
 * loop_backend_*() switches.
 *
 * Stale events: every table entry carries a generation, bumped whenever
 * the fd is forgotten.  An event whose generation is not the entry's
 * current one belongs to an earlier owner and is dropped; the current mask
 * is re-tested before each callback (as ae.c re-tests fe->mask).
 *
 * Time is read once per wake-up (after the poll), and timers started from
 * callbacks count from that cached time.  A timer started outside the loop
 * (between iterations) reads the clock first, so it never fires early.
 */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "backend.h"
#include "internal.h"
#include "sockit_loop.h"

/* ---- fd table ----------------------------------------------------------- */

/* Makes fds[fd] exist.  fd beyond the table is checked with fcntl first, so
 * a wild number (say INT_MAX) fails with -EBADF instead of allocating. */
static int table_reserve(sockit_loop *loop, int fd)
{
	size_t want = (size_t)fd + 1, n = loop->nfds ? loop->nfds : 64;
	struct fd_entry *fds;

	if (want <= loop->nfds)
		return 0;
	if (fcntl(fd, F_GETFD) < 0)
		return -errno;
	while (n < want)
		n *= 2;
	fds = realloc(loop->fds, n * sizeof(*fds));
	if (!fds)
		return -ENOMEM;
	memset(fds + loop->nfds, 0, (n - loop->nfds) * sizeof(*fds));
	loop->fds = fds;
	loop->nfds = n;
	return 0;
}

static struct fd_entry *table_get(const sockit_loop *loop, int fd)
{
	if (fd < 0 || (size_t)fd >= loop->nfds || !(loop->fds[fd].flags & FD_KNOWN))
		return NULL;
	return &loop->fds[fd];
}

static void table_forget(struct fd_entry *e)
{
	e->gen++;
	e->mask = 0;
	e->flags = 0;
	e->cb = NULL;
	e->arg = NULL;
}

static int watch_fd(sockit_loop *loop, int fd, unsigned events, sockit_io_cb cb, void *arg,
		    unsigned flags)
{
	struct fd_entry *e;
	int rc;

	if (!loop || fd < 0 || !cb || (events & ~(SOCKIT_READABLE | SOCKIT_WRITABLE)))
		return -EINVAL;
	rc = table_reserve(loop, fd);
	if (rc < 0)
		return rc;
	e = &loop->fds[fd];
	if (!(e->flags & FD_KNOWN))
		e->mask = 0;
	if (e->mask != events) {
		rc = loop_backend_set(&loop->be, fd, e->gen, e->mask, events);
		if (rc < 0)
			return rc;
	}
	e->mask = (uint8_t)events;
	e->flags = (uint8_t)(FD_KNOWN | flags);
	e->cb = cb;
	e->arg = arg;
	return 0;
}

int sockit_loop_watch(sockit_loop *loop, int fd, unsigned events, sockit_io_cb cb, void *arg)
{
	return watch_fd(loop, fd, events, cb, arg, 0);
}

int sockit_loop_modify(sockit_loop *loop, int fd, unsigned events)
{
	struct fd_entry *e;
	int rc;

	if (!loop || (events & ~(SOCKIT_READABLE | SOCKIT_WRITABLE)))
		return -EINVAL;
	e = table_get(loop, fd);
	if (!e)
		return -ENOENT;
	if (e->mask == events)
		return 0;
	rc = loop_backend_set(&loop->be, fd, e->gen, e->mask, events);
	if (rc < 0)
		return rc;
	e->mask = (uint8_t)events;
	return 0;
}

int sockit_loop_unwatch(sockit_loop *loop, int fd)
{
	struct fd_entry *e = loop ? table_get(loop, fd) : NULL;

	if (!e)
		return -ENOENT;
	if (e->mask)
		loop_backend_set(&loop->be, fd, e->gen, e->mask,
				 0); /* fails only if closed: fine */
	table_forget(e);
	return 0;
}

int sockit_loop_close(sockit_loop *loop, int fd)
{
	struct fd_entry *e = loop ? table_get(loop, fd) : NULL;

	if (e) {
		loop_backend_forget(&loop->be, fd);
		table_forget(e);
	}
	if (fd >= 0)
		close(fd);
	return 0;
}

/* ---- timer heap --------------------------------------------------------- */

static int timer_before(const sockit_timer *a, const sockit_timer *b)
{
	return a->when_ns < b->when_ns || (a->when_ns == b->when_ns && a->seq < b->seq);
}

static void heap_place(sockit_loop *loop, size_t i, sockit_timer *t)
{
	loop->heap[i] = t;
	t->index = i;
}

static void heap_up(sockit_loop *loop, size_t i)
{
	sockit_timer *t = loop->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!timer_before(t, loop->heap[parent]))
			break;
		heap_place(loop, i, loop->heap[parent]);
		i = parent;
	}
	heap_place(loop, i, t);
}

static void heap_down(sockit_loop *loop, size_t i)
{
	sockit_timer *t = loop->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= loop->nheap)
			break;
		if (c + 1 < loop->nheap && timer_before(loop->heap[c + 1], loop->heap[c]))
			c++;
		if (!timer_before(loop->heap[c], t))
			break;
		heap_place(loop, i, loop->heap[c]);
		i = c;
	}
	heap_place(loop, i, t);
}

static void heap_remove(sockit_loop *loop, sockit_timer *t)
{
	size_t i = t->index;
	sockit_timer *last = loop->heap[--loop->nheap];

	t->index = SIZE_MAX;
	if (i == loop->nheap)
		return;
	heap_place(loop, i, last);
	if (i > 0 && timer_before(last, loop->heap[(i - 1) / 2]))
		heap_up(loop, i);
	else
		heap_down(loop, i);
}

static uint64_t ms_to_ns(uint64_t ms)
{
	return ms > UINT64_MAX / 1000000u ? UINT64_MAX : ms * 1000000u;
}

/* Puts t (idle) into the heap with a deadline of now + delay_ns. */
static void timer_arm(sockit_loop *loop, sockit_timer *t, uint64_t delay_ns)
{
	uint64_t when = loop->now_ns + delay_ns;

	if (when < loop->now_ns)
		when = UINT64_MAX;
	/* A timer armed by a timer callback waits for the next pass, so one that
	 * restarts itself with 0 cannot keep the loop in this pass forever. */
	if (loop->in_timers && when <= loop->now_ns)
		when = loop->now_ns + 1;
	t->when_ns = when;
	t->seq = loop->timer_seq++;
	loop->heap[loop->nheap] = t;
	heap_up(loop, loop->nheap++);
}

void sockit_timer_init(sockit_timer *t, sockit_timer_cb cb, void *data)
{
	memset(t, 0, sizeof(*t));
	t->index = SIZE_MAX;
	t->cb = cb;
	t->data = data;
}

int sockit_timer_start(sockit_loop *loop, sockit_timer *t, uint64_t timeout_ms, uint64_t repeat_ms)
{
	if (!loop || !t || !t->cb)
		return -EINVAL;
	if (!loop->in_iteration)
		loop->now_ns = sk_clock_ns();
	if (t->index != SIZE_MAX)
		heap_remove(loop, t);
	if (loop->nheap == loop->heap_cap) {
		size_t n = loop->heap_cap ? loop->heap_cap * 2 : 16;
		sockit_timer **heap = realloc(loop->heap, n * sizeof(*heap));

		if (!heap)
			return -ENOMEM;
		loop->heap = heap;
		loop->heap_cap = n;
	}
	t->repeat_ns = ms_to_ns(repeat_ms);
	timer_arm(loop, t, ms_to_ns(timeout_ms));
	return 0;
}

void sockit_timer_stop(sockit_loop *loop, sockit_timer *t)
{
	if (loop && t && t->index != SIZE_MAX && t->index < loop->nheap &&
	    loop->heap[t->index] == t)
		heap_remove(loop, t);
}

int sockit_timer_active(const sockit_timer *t)
{
	return t->index != SIZE_MAX;
}

/* Runs the timers due at the cached time, in deadline order.  A repeating
 * timer is re-armed before its callback, so the callback may stop it. */
static void run_timers(sockit_loop *loop)
{
	loop->in_timers = 1;
	while (loop->nheap > 0 && loop->heap[0]->when_ns <= loop->now_ns) {
		sockit_timer *t = loop->heap[0];

		heap_remove(loop, t);
		if (t->repeat_ns)
			timer_arm(loop, t, t->repeat_ns); /* into the slot it just left */
		loop->ncalls++;
		t->cb(loop, t);
	}
	loop->in_timers = 0;
}

/* Milliseconds until the first deadline, rounded up (never 0 early). */
static int timers_timeout(const sockit_loop *loop)
{
	uint64_t when, ms;

	if (loop->nheap == 0)
		return -1;
	when = loop->heap[0]->when_ns;
	if (when <= loop->now_ns)
		return 0;
	ms = (when - loop->now_ns + 999999) / 1000000;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* ---- wake-ups and signals ------------------------------------------------ */

static void wake_io(sockit_loop *loop, int fd, unsigned events, void *arg)
{
	uint64_t count;

	(void)events;
	(void)arg;
	while (read(fd, &count, sizeof(count)) < 0 && errno == EINTR)
		;
	if (loop->on_wake) {
		loop->ncalls++;
		loop->on_wake(loop, loop->on_wake_arg);
	}
}

int sockit_loop_wake(sockit_loop *loop)
{
	uint64_t one = 1;

	for (;;) {
		if (write(loop->wakefd, &one, sizeof(one)) == (ssize_t)sizeof(one))
			return 0;
		if (errno == EAGAIN)
			return 0; /* the counter is full: a wake-up is pending anyway */
		if (errno != EINTR)
			return -errno;
	}
}

void sockit_loop_on_wake(sockit_loop *loop, sockit_loop_cb cb, void *arg)
{
	loop->on_wake = cb;
	loop->on_wake_arg = arg;
}

static void signal_io(sockit_loop *loop, int fd, unsigned events, void *arg)
{
	struct signalfd_siginfo si[8];

	(void)events;
	(void)arg;
	for (;;) {
		ssize_t n = read(fd, si, sizeof(si));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		for (size_t i = 0; i < (size_t)n / sizeof(si[0]); i++) {
			int signo = (int)si[i].ssi_signo;

			if (signo > 0 && signo < _NSIG && loop->sig[signo].cb) {
				loop->ncalls++;
				loop->sig[signo].cb(loop, signo, loop->sig[signo].arg);
			}
		}
		if ((size_t)n < sizeof(si))
			return;
	}
}

int sockit_loop_signal(sockit_loop *loop, int signo, sockit_signal_cb cb, void *arg)
{
	sigset_t one, mask;
	int fd, rc;

	if (!loop || !cb || signo <= 0 || signo >= _NSIG || signo == SIGKILL || signo == SIGSTOP)
		return -EINVAL;
	sigemptyset(&one);
	if (sigaddset(&one, signo) < 0)
		return -errno; /* e.g. a signal glibc reserves for itself */
	mask = loop->sigmask;
	sigaddset(&mask, signo);
	rc = pthread_sigmask(SIG_BLOCK, &one, NULL);
	if (rc != 0)
		return -rc;
	fd = signalfd(loop->sigfd, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (loop->sigfd < 0) {
		rc = watch_fd(loop, fd, SOCKIT_READABLE, signal_io, NULL, FD_INTERNAL);
		if (rc < 0) {
			close(fd);
			return rc;
		}
		loop->sigfd = fd;
	}
	loop->sigmask = mask;
	loop->sig[signo].cb = cb;
	loop->sig[signo].arg = arg;
	return 0;
}

/* ---- the loop ------------------------------------------------------------ */

int sockit_loop_new(sockit_loop **out)
{
	return sockit_loop_new_backend(out, NULL);
}

/* The backend named name (NULL: the default); 0 or -EINVAL. */
static int backend_kind(const char *name, enum loop_backend_kind *kind)
{
	if (!name || strcmp(name, "epoll") == 0)
		*kind = LOOP_EPOLL;
	else if (strcmp(name, "io_uring") == 0)
		*kind = LOOP_URING;
	else
		return -EINVAL;
	return 0;
}

int sockit_loop_new_backend(sockit_loop **out, const char *name)
{
	enum loop_backend_kind kind;
	sockit_loop *loop;
	int rc;

	if (!out)
		return -EINVAL;
	*out = NULL;
	rc = backend_kind(name, &kind);
	if (rc < 0)
		return rc;
	loop = calloc(1, sizeof(*loop));
	if (!loop)
		return -ENOMEM;
	loop->wakefd = -1;
	loop->sigfd = -1;
	sigemptyset(&loop->sigmask);
	loop->now_ns = sk_clock_ns();
	rc = loop_backend_init(&loop->be, kind);
	if (rc < 0) {
		free(loop);
		return rc;
	}
	loop->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	rc = loop->wakefd < 0
		     ? -errno
		     : watch_fd(loop, loop->wakefd, SOCKIT_READABLE, wake_io, NULL, FD_INTERNAL);
	if (rc < 0) {
		sockit_loop_free(loop);
		return rc;
	}
	*out = loop;
	return 0;
}

void sockit_loop_free(sockit_loop *loop)
{
	if (!loop)
		return;
	for (size_t i = 0; i < loop->nheap; i++)
		loop->heap[i]->index = SIZE_MAX; /* the caller's timers are idle again */
	if (loop->wakefd >= 0)
		close(loop->wakefd);
	if (loop->sigfd >= 0)
		close(loop->sigfd);
	loop_backend_free(loop);
	free(loop->heap);
	free(loop->fds);
	free(loop);
}

static void dispatch(sockit_loop *loop, int n)
{
	for (int i = 0; i < n; i++) {
		struct loop_fired *f = &loop->fired[i];
		if (f->fd < 0) {
			loop->ncalls += loop_backend_complete(loop, f);
			continue;
		}
		struct fd_entry *e = table_get(loop, f->fd);
		unsigned events = f->events;

		/* Forgotten, or forgotten and watched anew, since the poll. */
		if (!e || e->gen != f->gen)
			continue;
		if (events & SOCKIT_HANGUP)
			events |= e->mask;
		events &= e->mask | SOCKIT_HANGUP;
		if (!(events & e->mask))
			continue; /* interest dropped by an earlier callback */
		if (!(e->flags & FD_INTERNAL))
			loop->ncalls++;
		e->cb(loop, f->fd, events, e->arg);
	}
}

int sockit_loop_run_once(sockit_loop *loop, int timeout_ms)
{
	int t, n;

	loop->ncalls = 0;
	loop->in_iteration = 1;
	if (loop->before_sleep)
		loop->before_sleep(loop, loop->before_sleep_arg);
	t = timers_timeout(loop);
	if (timeout_ms >= 0 && (t < 0 || timeout_ms < t))
		t = timeout_ms;
	if (loop->stop)
		t = 0;
	n = sk_loop_coalesced_poll(loop, t);
	loop->co.last_n = n;
	loop->now_ns = sk_clock_ns();
	if (n > 0)
		dispatch(loop, n);
	if (n >= 0 && loop->nheap > 0 && loop->heap[0]->when_ns <= loop->now_ns)
		run_timers(loop);
	loop->in_iteration = 0;
	return n < 0 ? n : loop->ncalls;
}

int sockit_loop_run(sockit_loop *loop)
{
	int rc = 0;

	while (!loop->stop) {
		rc = sockit_loop_run_once(loop, -1);
		if (rc < 0)
			break;
	}
	loop->stop = 0;
	return rc < 0 ? rc : 0;
}

void sockit_loop_stop(sockit_loop *loop)
{
	loop->stop = 1;
}

void sockit_loop_before_sleep(sockit_loop *loop, sockit_loop_cb cb, void *arg)
{
	loop->before_sleep = cb;
	loop->before_sleep_arg = arg;
}

uint64_t sockit_loop_now_ms(const sockit_loop *loop)
{
	return loop->now_ns / 1000000u;
}

uint64_t sockit_loop_now_ns(const sockit_loop *loop)
{
	return loop->now_ns;
}

const char *sockit_loop_backend(const sockit_loop *loop)
{
	return loop->be.kind == LOOP_URING ? "io_uring" : "epoll";
}
