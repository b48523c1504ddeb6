/* loop.c -- the event loop: fd table, timer heap, signals, wake-ups, dispatch. */

/*
 * The backend contract.  A backend is one file, lib/loop_NAME.c, #included
 * below (as Redis ae.c includes ae_epoll.c); callers never see it.  Each
 * defines its state and five functions, NAME_ prefixed:
 *
 *   struct NAME_backend { ... };          embedded in the loop
 *   static int  NAME_init(struct NAME_backend *b);     0 or -errno
 *   static void NAME_free(struct NAME_backend *b);
 *   static int  NAME_set(struct NAME_backend *b, int fd, uint32_t gen,
 *                        unsigned old_mask, unsigned new_mask);
 *       Changes the interest (SOCKIT_READABLE|SOCKIT_WRITABLE) of fd from
 *       old_mask to new_mask (they differ).  Mask 0 means "not watched":
 *       0 -> x registers, x -> 0 deregisters.  gen must come back with
 *       every event of this registration.  0 or -errno.
 *   static void NAME_forget(struct NAME_backend *b, int fd, unsigned old_mask);
 *       fd (watched with old_mask, maybe 0) is about to be closed; no
 *       syscall needed where the kernel forgets closed fds (epoll).
 *   static int  NAME_poll(struct NAME_backend *b, int timeout_ms,
 *                         struct loop_fired *fired);
 *       Waits up to timeout_ms (-1: no limit) and fills at most LOOP_BATCH
 *       entries of fired (fd, gen, SOCKIT_* events; error or hang-up as
 *       SOCKIT_HANGUP; or fd -1 for a completed operation, see
 *       loop_ops.h).  Returns their number, 0 on timeout or EINTR, or
 *       -errno.  Level-triggered: undrained fds come back next time.
 *
 * The loop picks its backend when created (sockit_loop_new_backend) and
 * calls through the small switches below: one predictable branch.
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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sockit_loop.h"

/* Events taken from the kernel per wake-up. */
#define LOOP_BATCH 256

struct loop_fired {
	int fd; /* -1: the completion of operation op */
	uint32_t gen;
	unsigned events; /* for an operation: the CQE's flags */
	int res;
	void *op;
};

#include "epoll.c"
#include "ops.h"
#include "uring.c"

enum backend_kind { BACKEND_EPOLL, BACKEND_URING };
static const char *const backend_names[] = {"epoll", "io_uring"};

struct backend {
	enum backend_kind kind;
	union {
		struct epoll_backend epoll;
		struct uring_backend uring;
	};
};

static int backend_init(struct backend *b, enum backend_kind kind)
{
	b->kind = kind;
	return kind == BACKEND_URING ? uring_init(&b->uring) : epoll_init(&b->epoll);
}

static void backend_free(struct backend *b)
{
	if (b->kind == BACKEND_URING)
		uring_free(&b->uring);
	else
		epoll_free(&b->epoll);
}

static int backend_set(struct backend *b, int fd, uint32_t gen, unsigned old_mask,
		       unsigned new_mask)
{
	if (b->kind == BACKEND_URING)
		return uring_set(&b->uring, fd, gen, old_mask, new_mask);
	return epoll_set(&b->epoll, fd, gen, old_mask, new_mask);
}

static void backend_forget(struct backend *b, int fd, unsigned old_mask)
{
	if (b->kind == BACKEND_URING)
		uring_forget(&b->uring, fd, old_mask);
	else
		epoll_forget(&b->epoll, fd, old_mask);
}

static int backend_poll(struct backend *b, int timeout_ms, struct loop_fired *fired)
{
	if (b->kind == BACKEND_URING)
		return uring_poll(&b->uring, timeout_ms, fired);
	return epoll_poll(&b->epoll, timeout_ms, fired);
}

#define FD_KNOWN 0x1u	 /* watched (maybe with mask 0) */
#define FD_INTERNAL 0x2u /* the loop's own wake/signal fd: callbacks not counted */

/* One per fd number, 24 bytes on LP64.  Nothing else is kept per fd. */
struct fd_entry {
	sockit_io_cb cb;
	void *arg;
	uint32_t gen;
	uint8_t mask;
	uint8_t flags;
};
_Static_assert(sizeof(void *) != 8 || sizeof(struct fd_entry) == 24,
	       "every fd pays for an entry: keep it at 24 bytes");

struct sig_entry {
	sockit_signal_cb cb;
	void *arg;
};

struct sockit_loop {
	struct fd_entry *fds; /* indexed by fd, grown by doubling */
	size_t nfds;

	sockit_timer **heap; /* min-heap on (when_ns, seq) */
	size_t nheap, heap_cap;
	uint64_t timer_seq;

	uint64_t now_ns;
	int stop;
	int in_iteration; /* inside run_once: now_ns is fresh enough */
	int in_timers;	  /* running expired timers: new ones wait for next pass */
	int ncalls;	  /* callbacks run in this iteration */

	sockit_loop_cb before_sleep, on_wake;
	void *before_sleep_arg, *on_wake_arg;
	int wakefd;

	int sigfd;
	sigset_t sigmask;
	struct sig_entry sig[_NSIG];

	struct loop_fired fired[LOOP_BATCH];
	struct backend be;

	struct loop_op *free_ops;	  /* operation slots (io_uring) */
	struct op_payload *free_payloads; /* the bytes of sends */
	void *op_chunks;		  /* their memory, a list */
	struct loop_op *ops;		  /* in flight */
	struct recv_bufs rb;		  /* loop_recv_multi()'s buffers */
};

static uint64_t clock_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

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
		rc = backend_set(&loop->be, fd, e->gen, e->mask, events);
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
	rc = backend_set(&loop->be, fd, e->gen, e->mask, events);
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
		backend_set(&loop->be, fd, e->gen, e->mask, 0); /* fails only if closed: fine */
	table_forget(e);
	return 0;
}

int sockit_loop_close(sockit_loop *loop, int fd)
{
	struct fd_entry *e = loop ? table_get(loop, fd) : NULL;

	if (e) {
		backend_forget(&loop->be, fd, e->mask);
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
		loop->now_ns = clock_now_ns();
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

sockit_loop *sockit_loop_new(void)
{
	return sockit_loop_new_backend(NULL);
}

sockit_loop *sockit_loop_new_backend(const char *name)
{
	enum backend_kind kind = BACKEND_EPOLL;
	sockit_loop *loop;
	int rc;

	if (name && strcmp(name, "io_uring") == 0) {
		kind = BACKEND_URING;
	} else if (name && strcmp(name, "epoll") != 0) {
		errno = EINVAL;
		return NULL;
	}
	loop = calloc(1, sizeof(*loop));
	if (!loop)
		return NULL;
	loop->wakefd = -1;
	loop->sigfd = -1;
	sigemptyset(&loop->sigmask);
	loop->now_ns = clock_now_ns();
	rc = backend_init(&loop->be, kind);
	if (rc < 0) {
		free(loop);
		errno = -rc;
		return NULL;
	}
	loop->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	rc = loop->wakefd < 0
		     ? -errno
		     : watch_fd(loop, loop->wakefd, SOCKIT_READABLE, wake_io, NULL, FD_INTERNAL);
	if (rc < 0) {
		sockit_loop_free(loop);
		errno = -rc;
		return NULL;
	}
	return loop;
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
	loop_ops_finish(loop);
	backend_free(&loop->be);
	recv_bufs_free(&loop->rb); /* the ring that wrote into them is gone */
	while (loop->op_chunks) {
		void *next = *(void **)loop->op_chunks;
		free(loop->op_chunks);
		loop->op_chunks = next;
	}
	free(loop->heap);
	free(loop->fds);
	free(loop);
}

static void op_complete(sockit_loop *loop, struct loop_fired *f);

static void dispatch(sockit_loop *loop, int n)
{
	for (int i = 0; i < n; i++) {
		struct loop_fired *f = &loop->fired[i];
		if (f->fd < 0) {
			op_complete(loop, f);
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
	n = backend_poll(&loop->be, t, loop->fired);
	loop->now_ns = clock_now_ns();
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
	return backend_names[loop->be.kind];
}

/* ---- Completion operations (loop_ops.h) --------------------------------- */

/* One slot per operation in flight, from a free list; chunks are kept
 * until the loop is freed (the peak in flight, not the total).  A slot in
 * flight is on loop->ops, so the loop can finish or cancel them all.  Slots
 * are small (a connection's armed receive holds one for its whole life);
 * the bytes and address of a send sit in a payload of their own, from a
 * second free list. */
struct op_payload {
	union {
		struct op_payload *next;    /* the free list */
		struct sockaddr_storage to; /* loop_sendto() */
	};
	char buf[LOOP_SEND_MAX];
};

struct loop_op {
	loop_op_cb cb;
	void *arg;
	struct loop_op *prev, *next; /* loop->ops, or (next only) the free list */
	struct op_payload *pay;	     /* a send's bytes, else NULL */
	const char *data;	     /* loop_op_data(): the send's bytes, the chunk received */
	uint32_t len;
	uint32_t sqe_idx; /* its SQE's place in the submission queue */
	int fd;
	uint8_t cancelled; /* 1, or OP_NEVER_RAN */
	uint8_t chain;	   /* loop_send_close(): CHAIN_SEND, then CHAIN_CLOSE; see the enum */
	uint8_t shut;
	uint8_t more_input; /* a receive: the kernel said more waits in the socket */
};
_Static_assert(sizeof(void *) != 8 || sizeof(struct loop_op) <= 64,
	       "an armed receive per connection holds a slot: keep it at 64 bytes");
#define OPS_PER_CHUNK 64
#define PAYLOADS_PER_CHUNK 8
/* chain: what the slot is.  0 is a multishot accept. */
enum { CHAIN_SEND = 1, CHAIN_CLOSE = 2, OP_SEND = 3, OP_RECV = 4 };
/* user_data of a chain's close: the op pointer with bit 0 set (slots are
 * pointer-aligned). */
#define OP_CLOSE_TAG 1u
/* cancelled: its SQE became a no-op before the kernel took it (see
 * uring_take_back()); that no-op's completion reads as -ECANCELED. */
#define OP_NEVER_RAN 2u

/* Room for n items of size bytes, kept on loop->op_chunks until the loop
 * is freed. */
static void *chunk_new(sockit_loop *loop, size_t size, size_t n)
{
	/* One pointer (the chunk list) ahead of the items, padded. */
	char *chunk = malloc(64 + n * size);
	if (!chunk)
		return NULL;
	*(void **)chunk = loop->op_chunks;
	loop->op_chunks = chunk;
	return chunk + 64;
}

static struct loop_op *op_get(sockit_loop *loop)
{
	if (!loop->free_ops) {
		struct loop_op *ops = chunk_new(loop, sizeof(struct loop_op), OPS_PER_CHUNK);
		if (!ops)
			return NULL;
		for (int i = 0; i < OPS_PER_CHUNK; i++) {
			ops[i].next = loop->free_ops;
			loop->free_ops = &ops[i];
		}
	}
	struct loop_op *op = loop->free_ops;
	loop->free_ops = op->next;
	op->cancelled = 0;
	op->chain = 0;
	op->len = 0;
	op->pay = NULL;
	op->data = NULL;
	op->prev = NULL;
	op->next = loop->ops;
	if (loop->ops)
		loop->ops->prev = op;
	loop->ops = op;
	return op;
}

static struct op_payload *payload_get(sockit_loop *loop)
{
	if (!loop->free_payloads) {
		struct op_payload *pays =
			chunk_new(loop, sizeof(struct op_payload), PAYLOADS_PER_CHUNK);
		if (!pays)
			return NULL;
		for (int i = 0; i < PAYLOADS_PER_CHUNK; i++) {
			pays[i].next = loop->free_payloads;
			loop->free_payloads = &pays[i];
		}
	}
	struct op_payload *p = loop->free_payloads;
	loop->free_payloads = p->next;
	return p;
}

static void op_put(sockit_loop *loop, struct loop_op *op)
{
	if (op->prev)
		op->prev->next = op->next;
	else
		loop->ops = op->next;
	if (op->next)
		op->next->prev = op->prev;
	if (op->pay) {
		op->pay->next = loop->free_payloads;
		loop->free_payloads = op->pay;
	}
	op->next = loop->free_ops;
	loop->free_ops = op;
}

static uint64_t ud_op(const struct loop_op *op)
{
	return UD_OP << UD_KIND_SHIFT | (uint64_t)(uintptr_t)op;
}

/* The close of a loop_send_close() completed: the slot is free.  A
 * cancelled close is done here, so the fd never outlives the chain. */
static void chain_closed(sockit_loop *loop, struct loop_op *op, int res)
{
	if (res == -ECANCELED)
		close(op->fd);
	op_put(loop, op);
}

/* The send of a loop_send_close() completed (res): the FIN, then the
 * close.  shutdown() is a direct call: io_uring always runs
 * IORING_OP_SHUTDOWN on a worker thread, a context switch per
 * connection, which measured dearer than the system call. */
static void chain_sent(sockit_loop *loop, struct loop_op *op, int res)
{
	if (op->shut && res >= 0)
		shutdown(op->fd, SHUT_WR);
	struct io_uring_sqe *sqe = uring_sqe(&loop->be.uring);
	if (!sqe) {
		close(op->fd);
		op_put(loop, op);
		return;
	}
	op->chain = CHAIN_CLOSE;
	sqe->opcode = IORING_OP_CLOSE;
	sqe->fd = op->fd;
	sqe->user_data = ud_op(op) | OP_CLOSE_TAG;
	loop->be.uring.ninline++; /* a socket's close does not block */
}

/* A chunk (or the end) of a loop_recv_multi(): the callback sees the
 * bytes in the loop's buffer, which goes back to the kernel after it.  The
 * slot goes when the operation has ended, after the callback too (which may
 * start another). */
static void recv_complete(sockit_loop *loop, struct loop_op *op, const struct loop_fired *f,
			  int more)
{
	int bid = -1;
	if (f->events & IORING_CQE_F_BUFFER) {
		bid = (int)(f->events >> IORING_CQE_BUFFER_SHIFT);
		op->data = recv_buf(&loop->rb, (unsigned)bid);
	}
	op->more_input = (f->events & IORING_CQE_F_SOCK_NONEMPTY) != 0;
	if (f->res == -ENOBUFS)
		recv_bufs_grow(&loop->rb); /* before the callback starts another */
	if (op->cb)
		op->cb(loop, op->arg, f->res, more, 0);
	op->data = NULL;
	if (bid >= 0)
		recv_buf_put(&loop->rb, (unsigned)bid);
	if (!more)
		op_put(loop, op);
}

/* The operation a completion belongs to.  The completion of a no-op
 * that stood in for it (OP_NEVER_RAN) is made to read as its cancel. */
static struct loop_op *fired_op(struct loop_fired *f)
{
	uintptr_t p = (uintptr_t)f->op;
	struct loop_op *op = (struct loop_op *)(p & ~(uintptr_t)OP_CLOSE_TAG);

	if (!(p & OP_CLOSE_TAG) && op->cancelled == OP_NEVER_RAN) {
		f->res = -ECANCELED;
		f->events = 0;
	}
	return op;
}

static void op_complete(sockit_loop *loop, struct loop_fired *f)
{
	uintptr_t p = (uintptr_t)f->op;
	struct loop_op *op = fired_op(f);
	int more = (f->events & IORING_CQE_F_MORE) != 0;

	if (p & OP_CLOSE_TAG) {
		chain_closed(loop, op, f->res); /* its callback ran at the send */
		return;
	}
	loop_op_cb cb = op->cb;
	void *arg = op->arg;
	size_t len = op->len;
	loop->ncalls++;
	if (op->chain == OP_RECV) {
		recv_complete(loop, op, f, more);
		return;
	}
	if (op->chain == OP_SEND) {
		/* The callback may still read the bytes (loop_op_data). */
		if (cb)
			cb(loop, arg, f->res, 0, len);
		op_put(loop, op);
		return;
	}
	if (op->chain)
		chain_sent(loop, op, f->res);
	else if (!more)
		op_put(loop, op); /* before the callback, which may start another */
	if (cb)
		cb(loop, arg, f->res, more, len);
}

int loop_ops_available(const sockit_loop *loop)
{
	return loop->be.kind == BACKEND_URING && loop->be.uring.ops_ok;
}

int loop_work_pending(const sockit_loop *loop)
{
	return loop->be.kind == BACKEND_URING && uring_work_pending(&loop->be.uring);
}

int loop_yield_before_wait(sockit_loop *loop, int (*should_yield)(void *arg), void *arg,
			   uint64_t *yields)
{
	if (loop->be.kind != BACKEND_URING)
		return -ENOTSUP;
	loop->be.uring.should_yield = yields ? should_yield : NULL;
	loop->be.uring.yield_arg = arg;
	loop->be.uring.yields = yields;
	return 0;
}

/* A slot and an SQE for a new operation on fd: the slot in flight with
 * cb(arg), the SQE with opcode, fd and the slot's user_data.  Returns 0,
 * or -ENOTSUP (epoll, or a kernel without the operations), -ENOMEM or
 * -EBUSY: then nothing was queued. */
static int op_start(sockit_loop *loop, int fd, uint8_t opcode, loop_op_cb cb, void *arg,
		    struct loop_op **opp, struct io_uring_sqe **sqep)
{
	if (!loop_ops_available(loop))
		return -ENOTSUP;
	struct loop_op *op = op_get(loop);
	if (!op)
		return -ENOMEM;
	struct io_uring_sqe *sqe = uring_sqe(&loop->be.uring);
	if (!sqe) {
		op_put(loop, op);
		return -EBUSY;
	}
	op->cb = cb;
	op->arg = arg;
	op->fd = fd;
	op->sqe_idx = loop->be.uring.sq_local - 1;
	sqe->opcode = opcode;
	sqe->fd = fd;
	sqe->user_data = ud_op(op);
	*opp = op;
	*sqep = sqe;
	return 0;
}

/* The send of len bytes of buf, copied into a payload of the slot's.
 * -ENOMEM: then the op is put back and the SQE turned into a no-op. */
static int op_send_bytes(sockit_loop *loop, struct loop_op *op, struct io_uring_sqe *sqe,
			 const void *buf, size_t len, int msg_flags)
{
	op->pay = payload_get(loop);
	if (!op->pay) {
		sqe->opcode = IORING_OP_NOP;
		sqe->user_data = UD_IGNORE;
		op_put(loop, op);
		return -ENOMEM;
	}
	op->len = (uint32_t)len;
	op->data = op->pay->buf;
	memcpy(op->pay->buf, buf, len);
	sqe->addr = (uint64_t)(uintptr_t)op->pay->buf;
	sqe->len = (uint32_t)len;
	sqe->msg_flags = (uint32_t)msg_flags;
	return 0;
}

int loop_send_close(sockit_loop *loop, int fd, const void *buf, size_t len, int flags, int shut,
		    loop_op_cb cb, void *arg)
{
	struct loop_op *op;
	struct io_uring_sqe *sqe;

	if (len > LOOP_SEND_MAX)
		return loop_ops_available(loop) ? -EMSGSIZE : -ENOTSUP;
	int rc = op_start(loop, fd, IORING_OP_SEND, cb, arg, &op, &sqe);
	if (rc < 0)
		return rc;
	/* The send's completion goes to cb, then chain_sent() shuts and
	 * queues the close, whose completion frees the slot (so the loop
	 * knows the fd is gone).  Not counted in ninline (uring_enter): with
	 * MSG_MORE the reply waits in the socket for the shutdown that its
	 * completion makes, so that completion must end the wait at once. */
	op->chain = CHAIN_SEND;
	op->shut = (uint8_t)shut;
	return op_send_bytes(loop, op, sqe, buf, len, MSG_NOSIGNAL | flags);
}

struct loop_op *loop_sendto(sockit_loop *loop, int fd, const void *buf, size_t len,
			    const struct sockaddr *to, socklen_t tolen, int flags, loop_op_cb cb,
			    void *arg)
{
	struct loop_op *op;
	struct io_uring_sqe *sqe;

	if (len > LOOP_SEND_MAX || (to && tolen > sizeof(struct sockaddr_storage))) {
		errno = loop_ops_available(loop) ? EMSGSIZE : ENOTSUP;
		return NULL;
	}
	int rc = op_start(loop, fd, IORING_OP_SEND, cb, arg, &op, &sqe);
	if (rc < 0) {
		errno = -rc;
		return NULL;
	}
	/* MSG_DONTWAIT: where send() would block, io_uring completes with
	 * -EAGAIN instead of waiting for room (a stuck client never pins
	 * the slot), so it always completes inside the submit. */
	op->chain = OP_SEND;
	rc = op_send_bytes(loop, op, sqe, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT | flags);
	if (rc < 0) {
		errno = -rc;
		return NULL;
	}
	if (to) {
		memcpy(&op->pay->to, to, tolen);
		sqe->addr2 = (uint64_t)(uintptr_t)&op->pay->to;
		sqe->addr_len = (uint16_t)tolen;
	}
	loop->be.uring.ninline++;
	return op;
}

struct loop_op *loop_send(sockit_loop *loop, int fd, const void *buf, size_t len, int flags,
			  loop_op_cb cb, void *arg)
{
	return loop_sendto(loop, fd, buf, len, NULL, 0, flags, cb, arg);
}

const char *loop_op_data(const struct loop_op *op)
{
	return op->data;
}

int loop_op_more_input(const struct loop_op *op)
{
	return op->more_input;
}

void loop_op_close_after(struct loop_op *op, loop_op_cb cb, void *arg)
{
	op->chain = CHAIN_SEND;
	op->shut = 0;
	op->cb = cb;
	op->arg = arg;
}

struct loop_op *loop_accept_multi(sockit_loop *loop, int lfd, int flags, loop_op_cb cb, void *arg)
{
	struct loop_op *op;
	struct io_uring_sqe *sqe;

	int rc = op_start(loop, lfd, IORING_OP_ACCEPT, cb, arg, &op, &sqe);
	if (rc < 0) {
		errno = -rc;
		return NULL;
	}
	sqe->accept_flags = (uint32_t)(SOCK_CLOEXEC | flags);
	sqe->ioprio = IORING_ACCEPT_MULTISHOT;
	return op;
}

struct loop_op *loop_recv_multi(sockit_loop *loop, int fd, loop_op_cb cb, void *arg)
{
	struct loop_op *op;
	struct io_uring_sqe *sqe;

	int rc = loop_ops_available(loop) ? recv_bufs_init(&loop->be.uring, &loop->rb) : 0;
	if (rc == 0)
		rc = op_start(loop, fd, IORING_OP_RECV, cb, arg, &op, &sqe);
	if (rc < 0) {
		errno = -rc;
		return NULL;
	}
	op->chain = OP_RECV;
	sqe->ioprio = IORING_RECV_MULTISHOT;
	sqe->flags = IOSQE_BUFFER_SELECT;
	sqe->buf_group = RECV_BGID;
	return op;
}

void loop_op_detach(sockit_loop *loop, struct loop_op *op)
{
	op->cb = NULL;
	loop_op_cancel(loop, op);
	/* Not in the kernel yet: put it there now, with its file, before the
	 * owner closes the fd (whose number a new socket may take). */
	if ((int32_t)(__atomic_load_n(loop->be.uring.sq_head, __ATOMIC_ACQUIRE) - op->sqe_idx) <= 0)
		loop_ops_submit(loop);
}

void loop_op_cancel(sockit_loop *loop, struct loop_op *op)
{
	if (loop->be.kind != BACKEND_URING || op->cancelled)
		return;
	struct io_uring_sqe *sqe = uring_sqe(&loop->be.uring);
	if (!sqe) {
		/* No room for the cancel: take the operation back now. */
		int rc = uring_take_back(&loop->be.uring, ud_op(op), ud_op(op));
		if (rc >= 0)
			op->cancelled = rc == 1 ? OP_NEVER_RAN : 1;
		return;
	}
	op->cancelled = 1;
	sqe->opcode = IORING_OP_ASYNC_CANCEL;
	sqe->addr = ud_op(op);
	sqe->user_data = UD_IGNORE;
}

static void ops_wait(sockit_loop *loop, uint64_t ms)
{
	uint64_t end = clock_now_ns() + ms * 1000000u;

	while (loop->ops && clock_now_ns() < end) {
		int n = uring_poll(&loop->be.uring, 10, loop->fired);
		if (n < 0)
			break;
		for (int i = 0; i < n; i++) {
			struct loop_fired *f = &loop->fired[i];
			if (f->fd >= 0)
				continue;
			uintptr_t p = (uintptr_t)f->op;
			struct loop_op *op = fired_op(f);
			if (p & OP_CLOSE_TAG) {
				chain_closed(loop, op, f->res);
			} else if (op->chain == OP_RECV) {
				op->cb = NULL; /* no callback runs any more */
				recv_complete(loop, op, f, (f->events & IORING_CQE_F_MORE) != 0);
			} else if (op->chain == OP_SEND) {
				op_put(loop, op);
			} else if (op->chain) {
				chain_sent(loop, op, f->res);
			} else if (!(f->events & IORING_CQE_F_MORE)) {
				op_put(loop, op);
			}
		}
	}
}

void loop_ops_submit(sockit_loop *loop)
{
	if (loop->be.kind == BACKEND_URING)
		uring_enter(&loop->be.uring, 0, 0);
}

/* Before the ring goes: what was queued (a reply, its close) is carried
 * out, not dropped with the ring.  Multishot operations are cancelled at
 * once; the rest get a second, then are cancelled too, and a reply's fd
 * whose close never ran is closed here.  No callback runs any more. */
void loop_ops_finish(sockit_loop *loop)
{
	if (loop->be.kind != BACKEND_URING)
		return;
	/* Poll removals queued by the last closes: without them the polls
	 * would hold those sockets open until the ring is torn down. */
	uring_enter(&loop->be.uring, 0, 0);
	if (!loop->ops)
		return;
	loop->be.uring.nrearm = 0; /* no new polls */
	for (struct loop_op *op = loop->ops; op; op = op->next)
		if (!op->chain || op->chain == OP_RECV)
			loop_op_cancel(loop, op); /* the multishot ones */
	ops_wait(loop, 1000);
	for (struct loop_op *op = loop->ops; op; op = op->next)
		loop_op_cancel(loop, op);
	ops_wait(loop, 100);
	while (loop->ops) {
		if (loop->ops->chain == CHAIN_SEND || loop->ops->chain == CHAIN_CLOSE)
			close(loop->ops->fd); /* the chain's: an OP_SEND's fd is its owner's */
		op_put(loop, loop->ops);
	}
}
