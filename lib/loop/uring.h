/* uring.h -- the io_uring backend's insides, shared by uring.c (the ring,
 * readiness) and uring_ops.c (the completion operations of ops.h).
 *
 * Internal to lib/loop: the core (loop.c) never includes it; it sees the
 * backend through backend.h only.  uring.c never calls uring_ops.c.
 */
#ifndef SOCKIT_LOOP_URING_H
#define SOCKIT_LOOP_URING_H

#include <linux/io_uring.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* user_data: the top two bits say what a completion belongs to. */
#define UD_KIND_SHIFT 62
#define UD_IGNORE 0ull /* removals, the silent links of a chain */
#define UD_POLL 1ull   /* readiness: [61:32] arm sequence, [31:0] fd */
#define UD_OP 2ull     /* a struct loop_op pointer in [61:0] */

struct uring_fd;

struct uring_backend {
	int fd;
	unsigned *sq_head, *sq_tail, *sq_array, sq_mask, sq_entries;
	unsigned *sq_flags; /* IORING_SQ_TASKRUN: completions wait to be run */
	unsigned *cq_head, *cq_tail, cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
	void *sq_map, *cq_map;
	size_t sq_map_len, cq_map_len, sqes_len;
	unsigned sq_local; /* SQEs filled, published to sq_tail before each enter */
	int disabled;	   /* created IORING_SETUP_R_DISABLED: enabled by its first user */
	int ops_ok;	   /* the kernel has every operation of ops.h */
	unsigned ninline;  /* queued operations that complete inside the submit */

	struct uring_fd *fds;
	size_t nfds;
	int *rearm; /* fds whose poll fired while still watched */
	size_t nrearm;

	int (*should_yield)(void *arg); /* sk_loop_yield_before_wait() */
	void *yield_arg;
	uint64_t *yields;
};

/* Submits what is queued and waits for min_wait completions or until
 * timeout_ms (-1: none).  Returns >= 0, or -errno (-ETIME, -EINTR,
 * -EBUSY...).  See uring.c for the sends that complete inside the submit
 * (ninline). */
int sk_uring_enter(struct uring_backend *u, unsigned min_wait, int timeout_ms);

/* The submission queue is full: hands it over without waiting.  0 if
 * there is room now, else -EBUSY. */
int sk_uring_make_room(struct uring_backend *u);

/* A zeroed SQE, or NULL if the kernel cannot take the queued ones now. */
static inline struct io_uring_sqe *sk_uring_sqe(struct uring_backend *u)
{
	if (u->sq_local - __atomic_load_n(u->sq_head, __ATOMIC_ACQUIRE) >= u->sq_entries &&
	    sk_uring_make_room(u) < 0)
		return NULL;
	struct io_uring_sqe *sqe = &u->sqes[u->sq_local & u->sq_mask];
	memset(sqe, 0, sizeof(*sqe));
	u->sq_local++;
	return sqe;
}

/* Takes back the request whose user_data is ud, for a caller that found no
 * SQE to carry its removal or cancel.  1: it was still in the queue, and
 * its SQE became a no-op whose completion carries nop_ud; 0: cancelled in
 * the kernel (or completed already); -errno if neither could be done. */
int sk_uring_take_back(struct uring_backend *u, uint64_t ud, uint64_t nop_ud);

/* 1 if u has completions its thread has not taken yet.  Any thread may ask. */
int sk_uring_work_pending(const struct uring_backend *u);

/* ---- the receive buffers -------------------------------------------------- */

/* The buffers of multishot receives (sk_loop_recv_multi, uring_bufs.c): a provided-buffer
 * ring of up to RECV_BUFS buffers of RECV_BUF_SIZE bytes, registered with
 * the first receive.  The kernel takes one per chunk received; the loop
 * gives it back once the chunk's callback has run.  The kernel takes them
 * in turn, so every buffer in the ring ends up touched: the ring starts
 * with RECV_BUFS_START and doubles each time a receive finds it empty, and
 * once it has not run dry for RECV_BUFS_CALM_MS it halves (the buffers
 * above the new size leave as they come back, their pages returned to the
 * system), so the memory follows the recent bursts, not the number of
 * connections nor the largest burst ever seen. */
#define RECV_BUFS 256u
#define RECV_BUFS_START 16u
#define RECV_BUF_SIZE 8192u
#define RECV_BUFS_CALM_MS 30000u
#define RECV_BGID 0

struct recv_bufs {
	struct io_uring_buf_ring *br;
	char *base;
	unsigned nbufs;		       /* buffers 0..nbufs-1 circulate */
	uint64_t live[RECV_BUFS / 64]; /* bit bid: given to the kernel, not retired since */
	uint64_t dry_ms;	       /* the ring last ran dry or changed size then */
	uint16_t tail;		       /* ours, published to br->tail */
	int err;		       /* registration failed with this: no more tries */
};

static inline char *sk_recv_buf(const struct recv_bufs *rb, unsigned bid)
{
	return rb->base + (size_t)bid * RECV_BUF_SIZE;
}

/* Buffer bid to the kernel. */
static inline void sk_recv_buf_put(struct recv_bufs *rb, unsigned bid)
{
	struct io_uring_buf *e = &rb->br->bufs[rb->tail & (RECV_BUFS - 1)];

	/* Not e->resv: in bufs[0] it overlays the ring's tail. */
	e->addr = (uint64_t)(uintptr_t)sk_recv_buf(rb, bid);
	e->len = RECV_BUF_SIZE;
	e->bid = (uint16_t)bid;
	rb->tail++;
	/* release: the entry is written before the kernel sees the tail move */
	__atomic_store_n(&rb->br->tail, rb->tail, __ATOMIC_RELEASE);
}

void sk_recv_buf_back_slow(struct recv_bufs *rb, unsigned bid, uint64_t now_ms);

/* Buffer bid, whose chunk has been seen, back to the kernel (or retired,
 * when the ring has shrunk below it); now_ms is the loop's clock. */
static inline void sk_recv_buf_back(struct recv_bufs *rb, unsigned bid, uint64_t now_ms)
{
	if (bid < rb->nbufs && now_ms - rb->dry_ms < RECV_BUFS_CALM_MS)
		sk_recv_buf_put(rb, bid);
	else
		sk_recv_buf_back_slow(rb, bid, now_ms);
}

/* Registers the ring with u once; 0, or -errno (then never again). */
int sk_recv_bufs_init(struct uring_backend *u, struct recv_bufs *rb, uint64_t now_ms);
/* The ring ran dry: gives it as many buffers again as it has, up to RECV_BUFS. */
void sk_recv_bufs_grow(struct recv_bufs *rb, uint64_t now_ms);
/* After the ring that wrote into them is gone. */
void sk_recv_bufs_free(struct recv_bufs *rb);

#endif /* SOCKIT_LOOP_URING_H */
