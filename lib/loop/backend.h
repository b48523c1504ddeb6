/* backend.h -- the loop's backend contract, and the loop's insides the backends share.
 *
 * Internal to lib/loop (not installed).  loop.c (the core) calls a backend
 * only through the loop_backend_*() switches at the end of this file; a
 * backend never calls the core.  Two backends, chosen at run time by name
 * (sockit_loop_new_backend): epoll.c, and io_uring in uring.c (readiness)
 * with uring_ops.c (its completion operations, ops.h).
 *
 * What a backend provides (NAME is epoll or uring):
 *
 *   int  sk_NAME_new(struct NAME_backend **out);       0 or -errno
 *   void sk_NAME_free(struct NAME_backend *b);
 *   int  sk_NAME_set(b, fd, gen, old_mask, new_mask);
 *       Changes the interest (SOCKIT_READABLE|SOCKIT_WRITABLE) of fd from
 *       old_mask to new_mask (they differ).  Mask 0 means "not watched":
 *       0 -> x registers, x -> 0 deregisters.  gen must come back with
 *       every event of this registration.  0 or -errno.
 *   void sk_uring_forget(b, fd);
 *       fd is about to be closed.  epoll has nothing to do (the kernel
 *       forgets closed fds); io_uring must take its poll back, which holds
 *       the file.
 *   int  sk_NAME_poll(b, timeout_ms, fired);
 *       Waits up to timeout_ms (-1: no limit) and fills at most LOOP_BATCH
 *       entries of fired: an fd's readiness (fd, gen, SOCKIT_* events; an
 *       error or hang-up as SOCKIT_HANGUP), or (io_uring) the completion
 *       of an operation (fd -1).  Returns their number, 0 on timeout or
 *       EINTR, or -errno.  Level-triggered: undrained fds come back next
 *       time.
 *
 * io_uring's operations (uring_ops.c) add sk_uring_ops_new/free for their
 * state, sk_loop_ops_finish() (ops.h) before the ring goes, and
 * sk_uring_op_complete(), which runs the callback of a completion (fired
 * fd -1) and returns the number of callbacks run (0 or 1).
 *
 * Each backend's state is an allocation of its own, opaque here (only
 * uring.h, shared by uring.c and uring_ops.c, defines io_uring's), so the
 * core cannot reach into it.  The switches are static inline: one
 * predictable branch and a direct call per poll, no indirect call per
 * event.
 */
#ifndef SOCKIT_LOOP_BACKEND_H
#define SOCKIT_LOOP_BACKEND_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "ops.h"
#include "sockit_loop.h"

/* Events taken from the kernel per wake-up. */
#define LOOP_BATCH 256

/* One event of a poll. */
struct loop_fired {
	int fd; /* -1: the completion of operation op */
	uint32_t gen;
	unsigned events; /* for an operation: the CQE's flags */
	int res;	 /* for an operation: its result */
	void *op;
};

struct epoll_backend;
struct uring_backend;
struct uring_ops;

int sk_epoll_new(struct epoll_backend **out);
void sk_epoll_free(struct epoll_backend *b);
int sk_epoll_set(struct epoll_backend *b, int fd, uint32_t gen, unsigned old_mask,
		 unsigned new_mask);
int sk_epoll_poll(struct epoll_backend *b, int timeout_ms, struct loop_fired *fired);

int sk_uring_new(struct uring_backend **out);
void sk_uring_free(struct uring_backend *u);
int sk_uring_set(struct uring_backend *u, int fd, uint32_t gen, unsigned old_mask,
		 unsigned new_mask);
void sk_uring_forget(struct uring_backend *u, int fd);
int sk_uring_poll(struct uring_backend *u, int timeout_ms, struct loop_fired *fired);

/* *out: NULL if u's kernel lacks the operations (before Linux 6.1). */
int sk_uring_ops_new(struct uring_ops **out, const struct uring_backend *u);
/* After sk_loop_ops_finish() and the ring: the operations' memory. */
void sk_uring_ops_free(struct uring_ops *ops);
int sk_uring_op_complete(sockit_loop *loop, struct loop_fired *f);

enum loop_backend_kind { LOOP_EPOLL, LOOP_URING };

struct loop_backend {
	enum loop_backend_kind kind;
	union {
		struct epoll_backend *epoll;
		struct uring_backend *uring;
	};
	struct uring_ops *ops; /* io_uring with the operations, else NULL */
};

/* ---- the loop's insides (loop.c; uring_ops.c reads be and fired) -------- */

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

/* Adaptive wake-up coalescing (sockit_loop_coalesce): after a small
 * batch, linger ns outside the kernel's wait, then take what came without
 * waiting; a linger that gathers little makes the next ones wait (skip). */
struct coalesce {
	uint64_t ns;	  /* the linger; 0: off */
	int last_n;	  /* events of the last poll */
	unsigned skip;	  /* small batches still to pass without lingering */
	unsigned penalty; /* the skip of the next fruitless linger (doubles) */
	int slack_set;	  /* this thread's timer slack is at 1 us */
	uint64_t lingers, fruitful;
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

	struct coalesce co; /* sockit_loop_coalesce() */

	struct loop_fired fired[LOOP_BATCH];
	struct loop_backend be;
};

/* coalesce.c: the poll of one iteration, lingering after small batches
 * when sockit_loop_coalesce() asked for it.  Returns as a backend's poll. */
int sk_loop_coalesced_poll(sockit_loop *loop, int t);

/* ---- the switches the core calls ----------------------------------------- */

static inline int loop_backend_init(struct loop_backend *b, enum loop_backend_kind kind)
{
	int rc;

	b->kind = kind;
	b->ops = NULL;
	if (kind == LOOP_EPOLL)
		return sk_epoll_new(&b->epoll);
	rc = sk_uring_new(&b->uring);
	if (rc < 0)
		return rc;
	rc = sk_uring_ops_new(&b->ops, b->uring);
	if (rc < 0)
		sk_uring_free(b->uring);
	return rc;
}

/* The loop's wake and signal fds are closed already. */
static inline void loop_backend_free(sockit_loop *loop)
{
	struct loop_backend *b = &loop->be;

	if (b->kind == LOOP_EPOLL) {
		sk_epoll_free(b->epoll);
		return;
	}
	sk_loop_ops_finish(loop);
	sk_uring_free(b->uring);
	sk_uring_ops_free(b->ops); /* the ring that wrote into its buffers is gone */
}

static inline int loop_backend_set(struct loop_backend *b, int fd, uint32_t gen, unsigned old_mask,
				   unsigned new_mask)
{
	if (b->kind == LOOP_URING)
		return sk_uring_set(b->uring, fd, gen, old_mask, new_mask);
	return sk_epoll_set(b->epoll, fd, gen, old_mask, new_mask);
}

static inline void loop_backend_forget(struct loop_backend *b, int fd)
{
	if (b->kind == LOOP_URING)
		sk_uring_forget(b->uring, fd);
}

static inline int loop_backend_poll(struct loop_backend *b, int timeout_ms,
				    struct loop_fired *fired)
{
	if (b->kind == LOOP_URING)
		return sk_uring_poll(b->uring, timeout_ms, fired);
	return sk_epoll_poll(b->epoll, timeout_ms, fired);
}

/* A fired entry with fd -1: only io_uring's operations post them. */
static inline int loop_backend_complete(sockit_loop *loop, struct loop_fired *f)
{
	return sk_uring_op_complete(loop, f);
}

#endif /* SOCKIT_LOOP_BACKEND_H */
