/* uring.c -- the io_uring backend of the loop: the ring and readiness (the contract: backend.h).
 *
 * Readiness, as the contract asks: a one-shot IORING_OP_POLL_ADD per
 * watched fd, re-armed before the next wait while the fd stays watched.
 * Arming checks the fd at once, so an fd that is still readable comes back
 * in the next iteration: level-triggered, as epoll.  All the SQEs of one
 * iteration (arms, removals, and the completion operations of ops.h)
 * go to the kernel with the wait itself: one io_uring_enter per iteration.
 *
 * Completion operations (ops.h, in uring_ops.c) add what epoll cannot: work
 * the kernel does inside that same io_uring_enter instead of one system
 * call each -- a reply's send and its close, a multishot accept.
 *
 * Raw system calls and <linux/io_uring.h>: libc and the kernel's headers
 * are all the library needs.
 */

#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "uring.h"

#define URING_SQ_ENTRIES 1024u
#define URING_CQ_ENTRIES 4096u

/* The readiness state of one fd number (8 bytes). */
struct uring_fd {
	uint32_t gen; /* the registration's generation, given back with its events */
	uint16_t seq; /* arm sequence: a completion of an older arm is stale */
	uint8_t mask; /* interest */
	uint8_t state;
};
#define UFD_ARMED 0x1u /* a poll is in the kernel */
#define UFD_REARM 0x2u /* on the re-arm list */

static int uring_sys_setup(unsigned entries, struct io_uring_params *p)
{
	return (int)syscall(__NR_io_uring_setup, entries, p);
}

static int uring_sys_enter(int fd, unsigned submit, unsigned wait, unsigned flags, void *arg,
			   size_t argsz)
{
	return (int)syscall(__NR_io_uring_enter, fd, submit, wait, flags, arg, argsz);
}

static void uring_unmap(struct uring_backend *u)
{
	if (u->sqes)
		munmap(u->sqes, u->sqes_len);
	if (u->cq_map && u->cq_map != u->sq_map)
		munmap(u->cq_map, u->cq_map_len);
	if (u->sq_map)
		munmap(u->sq_map, u->sq_map_len);
	u->sqes = NULL;
	u->sq_map = u->cq_map = NULL;
	u->sq_flags = NULL;
}

static int uring_map(struct uring_backend *u, const struct io_uring_params *p)
{
	u->sq_map_len = p->sq_off.array + p->sq_entries * sizeof(unsigned);
	u->cq_map_len = p->cq_off.cqes + p->cq_entries * sizeof(struct io_uring_cqe);
	if (p->features & IORING_FEAT_SINGLE_MMAP) {
		if (u->cq_map_len > u->sq_map_len)
			u->sq_map_len = u->cq_map_len;
		u->cq_map_len = u->sq_map_len;
	}
	u->sq_map = mmap(NULL, u->sq_map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
			 u->fd, IORING_OFF_SQ_RING);
	if (u->sq_map == MAP_FAILED) {
		u->sq_map = NULL;
		return -errno;
	}
	if (p->features & IORING_FEAT_SINGLE_MMAP) {
		u->cq_map = u->sq_map;
	} else {
		u->cq_map = mmap(NULL, u->cq_map_len, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_POPULATE, u->fd, IORING_OFF_CQ_RING);
		if (u->cq_map == MAP_FAILED) {
			u->cq_map = NULL;
			return -errno;
		}
	}
	u->sqes_len = p->sq_entries * sizeof(struct io_uring_sqe);
	u->sqes = mmap(NULL, u->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, u->fd,
		       IORING_OFF_SQES);
	if (u->sqes == MAP_FAILED) {
		u->sqes = NULL;
		return -errno;
	}
	char *sq = u->sq_map, *cq = u->cq_map;
	u->sq_head = (unsigned *)(sq + p->sq_off.head);
	u->sq_tail = (unsigned *)(sq + p->sq_off.tail);
	u->sq_mask = *(unsigned *)(sq + p->sq_off.ring_mask);
	u->sq_entries = *(unsigned *)(sq + p->sq_off.ring_entries);
	u->sq_array = (unsigned *)(sq + p->sq_off.array);
	u->sq_flags = (unsigned *)(sq + p->sq_off.flags);
	u->cq_head = (unsigned *)(cq + p->cq_off.head);
	u->cq_tail = (unsigned *)(cq + p->cq_off.tail);
	u->cq_mask = *(unsigned *)(cq + p->cq_off.ring_mask);
	u->cqes = (struct io_uring_cqe *)(cq + p->cq_off.cqes);
	/* SQE i always sits in slot i: the index array is the identity. */
	for (unsigned i = 0; i < u->sq_entries; i++)
		u->sq_array[i] = i;
	u->sq_local = *u->sq_tail;
	return 0;
}

/* The flag sets tried, best first.  DEFER_TASKRUN runs completions only
 * when we ask for events (no interrupting task work), and needs
 * SINGLE_ISSUER; R_DISABLED lets the thread that runs the loop, not the
 * one that created it, become that single issuer. */
static const unsigned uring_flag_sets[] = {
	IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN |
		IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SINGLE_ISSUER |
		IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED,
	IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN,
	IORING_SETUP_CQSIZE,
};

/* Sets the ring up on u (zeroed), trying the flag sets in turn. */
static int uring_setup(struct uring_backend *u)
{
	struct io_uring_params p;
	int rc = -ENOSYS;

	u->fd = -1;
	for (size_t i = 0; i < sizeof(uring_flag_sets) / sizeof(uring_flag_sets[0]); i++) {
		memset(&p, 0, sizeof(p));
		p.flags = uring_flag_sets[i];
		p.cq_entries = URING_CQ_ENTRIES;
		u->fd = uring_sys_setup(URING_SQ_ENTRIES, &p);
		if (u->fd >= 0)
			break;
		rc = -errno;
		if (rc != -EINVAL)
			return rc; /* ENOSYS, EPERM (disabled by sysctl or seccomp), ENOMEM */
	}
	if (u->fd < 0)
		return rc;
	/* A wait with a timeout in one call, and no lost completions. */
	if (!(p.features & IORING_FEAT_EXT_ARG) || !(p.features & IORING_FEAT_NODROP)) {
		close(u->fd);
		u->fd = -1;
		return -ENOSYS;
	}
	/* The completion operations (multishot accept, 5.19) are offered only
	 * by a kernel that took the first flag set (6.1); an older one still
	 * serves readiness. */
	u->ops_ok = p.flags == uring_flag_sets[0];
	u->disabled = (p.flags & IORING_SETUP_R_DISABLED) != 0;
	return uring_map(u, &p);
}

int sk_uring_new(struct uring_backend **out)
{
	struct uring_backend *u = calloc(1, sizeof(*u));
	int rc;

	*out = NULL;
	if (!u)
		return -ENOMEM;
	rc = uring_setup(u);
	if (rc < 0) {
		sk_uring_free(u);
		return rc;
	}
	*out = u;
	return 0;
}

void sk_uring_free(struct uring_backend *u)
{
	if (!u)
		return;
	uring_unmap(u);
	if (u->fd >= 0)
		close(u->fd);
	free(u->fds);
	free(u->rearm);
	free(u);
}

/* A wait that expects the queued sends' completions caps itself at this,
 * in case one of them did not complete inside the submit after all. */
#define URING_SEND_WAIT_MS 10

/* How soon a poll that could not be re-armed (the kernel refused the
 * submission queue) is tried again. */
#define URING_REARM_RETRY_MS 1

/* sk_uring_enter(): submits what is queued and waits for min_wait
 * completions or until timeout_ms (-1: none).  Returns >= 0, or -errno
 * (-ETIME, -EINTR, -EBUSY...).
 *
 * Some operations complete during the submit, before the wait starts,
 * and nothing waits on their completion: an sk_loop_send() (it never waits for
 * room) and the close that ends an sk_loop_send_close().  Were those
 * completions to end the wait, each would cost an io_uring_enter of its
 * own -- as many system calls as the direct calls.  So the wait asks for
 * that many completions more, and if one did not complete inside the
 * submit after all, waits no longer than URING_SEND_WAIT_MS for it. */
int sk_uring_enter(struct uring_backend *u, unsigned min_wait, int timeout_ms)
{
	struct __kernel_timespec ts;
	struct io_uring_getevents_arg arg = {.sigmask_sz = _NSIG / 8};
	unsigned flags = IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG;
	/* Everything the kernel has not consumed yet, counted from its head:
	 * entries published by an earlier call that it refused (EBUSY) are
	 * still there, and it takes them first. */
	unsigned submit = u->sq_local - __atomic_load_n(u->sq_head, __ATOMIC_ACQUIRE);

	if (u->disabled) {
		if (syscall(__NR_io_uring_register, u->fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) <
		    0)
			return -errno;
		u->disabled = 0;
	}
	__atomic_store_n(u->sq_tail, u->sq_local, __ATOMIC_RELEASE);
	if (min_wait > 0 && u->ninline > 0) {
		min_wait += u->ninline;
		if (timeout_ms < 0 || timeout_ms > URING_SEND_WAIT_MS)
			timeout_ms = URING_SEND_WAIT_MS;
	}
	u->ninline = 0;
	if (timeout_ms >= 0 && min_wait > 0) {
		ts.tv_sec = timeout_ms / 1000;
		ts.tv_nsec = (long long)(timeout_ms % 1000) * 1000000;
		arg.ts = (uint64_t)(uintptr_t)&ts;
	}
	int rc = uring_sys_enter(u->fd, submit, min_wait, flags, &arg, sizeof(arg));
	return rc < 0 ? -errno : rc;
}

/* The slow path of sk_uring_sqe() (uring.h): the queue is full. */
int sk_uring_make_room(struct uring_backend *u)
{
	int rc = sk_uring_enter(u, 0, 0);

	if (rc < 0 && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN)
		return rc;
	if (u->sq_local - __atomic_load_n(u->sq_head, __ATOMIC_ACQUIRE) >= u->sq_entries)
		return -EBUSY;
	return 0;
}

static uint64_t ud_poll(int fd, uint16_t seq)
{
	return UD_POLL << UD_KIND_SHIFT | (uint64_t)seq << 32 | (uint32_t)fd;
}

static int uring_fds_reserve(struct uring_backend *u, int fd)
{
	size_t want = (size_t)fd + 1, n = u->nfds ? u->nfds : 64;

	if (want <= u->nfds)
		return 0;
	while (n < want)
		n *= 2;
	/* An fd is on the re-arm list at most once, so a list as long as the
	 * table never has to grow where a poll fires. */
	int *rearm = realloc(u->rearm, n * sizeof(*rearm));
	if (!rearm)
		return -ENOMEM;
	u->rearm = rearm;
	struct uring_fd *fds = realloc(u->fds, n * sizeof(*fds));
	if (!fds)
		return -ENOMEM;
	memset(fds + u->nfds, 0, (n - u->nfds) * sizeof(*fds));
	u->fds = fds;
	u->nfds = n;
	return 0;
}

static int uring_arm(struct uring_backend *u, int fd)
{
	struct uring_fd *f = &u->fds[fd];
	struct io_uring_sqe *sqe = sk_uring_sqe(u);

	if (!sqe)
		return -EBUSY;
	f->seq++;
	sqe->opcode = IORING_OP_POLL_ADD;
	sqe->fd = fd;
	sqe->poll32_events = (f->mask & SOCKIT_READABLE ? POLLIN : 0) |
			     (f->mask & SOCKIT_WRITABLE ? POLLOUT : 0);
	sqe->user_data = ud_poll(fd, f->seq);
	f->state |= UFD_ARMED;
	return 0;
}

/* Takes back the request whose user_data is ud, for a caller that found
 * no SQE to carry its removal (the kernel refuses the queue: EBUSY,
 * ENOMEM).  Left alone, the request would hold its file, so the socket
 * would outlive its close(); and one still in the queue would reach the
 * kernel later, on whatever file then has its fd number.
 *
 * Still in the queue (the kernel consumes it only inside our own
 * io_uring_enter), its SQE becomes a no-op whose completion carries
 * nop_ud: returns 1.  In the kernel, it is cancelled there and then
 * (IORING_REGISTER_SYNC_CANCEL, Linux 6.0; its completion follows as
 * usual): returns 0, also if it had completed already.  -errno if neither
 * could be done (an older kernel: the request stays until it fires). */
int sk_uring_take_back(struct uring_backend *u, uint64_t ud, uint64_t nop_ud)
{
	unsigned head = __atomic_load_n(u->sq_head, __ATOMIC_ACQUIRE);

	for (unsigned i = head; i != u->sq_local; i++) {
		struct io_uring_sqe *sqe = &u->sqes[i & u->sq_mask];
		if (sqe->user_data == ud && sqe->opcode != IORING_OP_NOP) {
			memset(sqe, 0, sizeof(*sqe));
			sqe->opcode = IORING_OP_NOP;
			sqe->user_data = nop_ud;
			return 1;
		}
	}
	struct io_uring_sync_cancel_reg reg = {.addr = ud, .fd = -1, .timeout = {.tv_sec = 1}};
	if (syscall(__NR_io_uring_register, u->fd, IORING_REGISTER_SYNC_CANCEL, &reg, 1) < 0 &&
	    errno != ENOENT)
		return -errno;
	return 0;
}

/* Takes the armed poll of fd back (its completion, if already posted, is
 * now stale by its sequence number). */
static void uring_disarm(struct uring_backend *u, int fd)
{
	struct uring_fd *f = &u->fds[fd];

	if (!(f->state & UFD_ARMED))
		return;
	struct io_uring_sqe *sqe = sk_uring_sqe(u);
	if (sqe) {
		sqe->opcode = IORING_OP_POLL_REMOVE;
		sqe->addr = ud_poll(fd, f->seq);
		sqe->user_data = UD_IGNORE;
	} else {
		(void)sk_uring_take_back(u, ud_poll(fd, f->seq), UD_IGNORE);
	}
	f->seq++;
	f->state &= (uint8_t)~UFD_ARMED;
}

int sk_uring_set(struct uring_backend *u, int fd, uint32_t gen, unsigned old_mask,
		 unsigned new_mask)
{
	int rc = uring_fds_reserve(u, fd);
	if (rc < 0)
		return rc;
	/* epoll_ctl(ADD) would refuse a closed fd; a poll would only report
	 * it, over and over.  Refuse it as epoll does. */
	if (old_mask == 0 && new_mask != 0 && fcntl(fd, F_GETFD) < 0)
		return -errno;
	uring_disarm(u, fd);
	u->fds[fd].gen = gen;
	u->fds[fd].mask = (uint8_t)new_mask;
	return new_mask ? uring_arm(u, fd) : 0;
}

/* fd is about to be closed: a poll holds a reference to the file, so it
 * must go, or the socket would outlive its close(). */
void sk_uring_forget(struct uring_backend *u, int fd)
{
	if (fd < 0 || (size_t)fd >= u->nfds)
		return;
	uring_disarm(u, fd);
	u->fds[fd].mask = 0;
}

static void uring_rearm_later(struct uring_backend *u, int fd)
{
	struct uring_fd *f = &u->fds[fd];

	if (f->state & UFD_REARM)
		return;
	u->rearm[u->nrearm++] = fd; /* room: see uring_fds_reserve() */
	f->state |= UFD_REARM;
}

/* One completion into fired (returns 1), or nothing (stale, ignored). */
static int uring_cqe(struct uring_backend *u, const struct io_uring_cqe *cqe,
		     struct loop_fired *fired)
{
	uint64_t ud = cqe->user_data;

	switch (ud >> UD_KIND_SHIFT) {
	case UD_POLL: {
		int fd = (int)(uint32_t)ud;
		uint16_t seq = (uint16_t)(ud >> 32);
		if (fd < 0 || (size_t)fd >= u->nfds)
			return 0;
		struct uring_fd *f = &u->fds[fd];
		if (!(f->state & UFD_ARMED) || f->seq != seq)
			return 0; /* removed, or an earlier arm */
		f->state &= (uint8_t)~UFD_ARMED;
		if (f->mask)
			uring_rearm_later(u, fd);
		unsigned ev = cqe->res < 0 ? POLLERR : (unsigned)cqe->res;
		fired->fd = fd;
		fired->gen = f->gen;
		fired->events = (ev & POLLIN ? SOCKIT_READABLE : 0) |
				(ev & POLLOUT ? SOCKIT_WRITABLE : 0) |
				(ev & (POLLERR | POLLHUP | POLLNVAL) ? SOCKIT_HANGUP : 0);
		return 1;
	}
	case UD_OP:
		/* An operation's completion: dispatch() runs its callback. */
		fired->fd = -1;
		fired->op = (void *)(uintptr_t)(ud & ~(UD_OP << UD_KIND_SHIFT));
		fired->res = cqe->res;
		fired->events = cqe->flags;
		return 1;
	default:
		return 0;
	}
}

/* 1 if the loop's CQ holds completions its thread has not taken, or
 * (DEFER_TASKRUN) completions wait for its thread to run them.  Any thread
 * may ask.  A thread asleep in sk_uring_enter() may hold some: those of its
 * sends, which its wait counts on (see sk_uring_enter()). */
int sk_uring_work_pending(const struct uring_backend *u)
{
	/* Only what is fixed once the rings are mapped is read here: not
	 * u->disabled, which the loop's own thread clears (a ring not yet
	 * enabled reads as empty anyway). */
	if (u->sq_flags == NULL)
		return 0;
	return (__atomic_load_n(u->sq_flags, __ATOMIC_ACQUIRE) & IORING_SQ_TASKRUN) != 0 ||
	       __atomic_load_n(u->cq_head, __ATOMIC_ACQUIRE) !=
		       __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE);
}

/* See sk_loop_yield_before_wait().  Returns 1 if there is work after all:
 * completions beyond those of the sends that complete inside the submit.
 * After a yield, the wait that follows asks for one completion more than
 * the CQ already holds. */
static int uring_yield(struct uring_backend *u, unsigned head)
{
	unsigned sends = u->ninline;

	if (sk_uring_enter(u, 0, 0) < 0)
		return 0; /* the wait will tell */
	unsigned got = __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE) - head;
	if (got > sends)
		return 1;
	sched_yield();
	__atomic_store_n(u->yields, *u->yields + 1, __ATOMIC_RELAXED);
	u->ninline = got;
	return 0;
}

int sk_uring_poll(struct uring_backend *u, int timeout_ms, struct loop_fired *fired)
{
	/* Re-arm the fds that fired and are still watched.  One that finds the
	 * submission queue still full after a flush (the kernel refused it:
	 * EBUSY, ENOMEM) stays on the list, and the wait below is kept short
	 * so that it is tried again soon. */
	size_t keep = 0;
	for (size_t i = 0; i < u->nrearm; i++) {
		int fd = u->rearm[i];
		struct uring_fd *f = &u->fds[fd];

		if (f->mask && !(f->state & UFD_ARMED) && uring_arm(u, fd) < 0) {
			u->rearm[keep++] = fd;
			continue;
		}
		f->state &= (uint8_t)~UFD_REARM;
	}
	u->nrearm = keep;
	if (keep > 0 && (timeout_ms < 0 || timeout_ms > URING_REARM_RETRY_MS))
		timeout_ms = URING_REARM_RETRY_MS;

	unsigned head = *u->cq_head;
	int ready = head != __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE);
	if (!ready && timeout_ms != 0 && u->should_yield && u->should_yield(u->yield_arg))
		ready = uring_yield(u, head);
	int rc = sk_uring_enter(u, ready || timeout_ms == 0 ? 0 : 1, timeout_ms);
	if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN)
		return rc;

	int n = 0;
	unsigned tail = __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE);
	while (head != tail && n < LOOP_BATCH) {
		n += uring_cqe(u, &u->cqes[head & u->cq_mask], &fired[n]);
		head++;
	}
	__atomic_store_n(u->cq_head, head, __ATOMIC_RELEASE);
	return n;
}
