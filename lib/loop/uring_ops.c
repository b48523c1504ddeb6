/* uring_ops.c -- the completion operations of a loop on io_uring (ops.h).
 *
 * Sends, a reply's send-shutdown-close chain, multishot accepts and
 * receives, queued in the ring of uring.c and carried out by the kernel
 * inside the loop's next wait.  The core hands each completion (a fired
 * event with fd -1) to sk_uring_op_complete(); everything else is the
 * callers' (ops.h).
 */

#include <errno.h>
#include <linux/io_uring.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend.h"
#include "internal.h"
#include "ops.h"
#include "uring.h"

/* ---- operation slots ------------------------------------------------------ */

/* One slot per operation in flight, from a free list; chunks are kept
 * until the loop is freed (the peak in flight, not the total).  A slot in
 * flight is on ops->ops, so the loop can finish or cancel them all.  Slots
 * are small (a connection's armed receive holds one for its whole life);
 * the bytes and address of a send sit in a payload of their own, from a
 * second free list. */
struct op_payload {
	union {
		struct op_payload *next;    /* the free list */
		struct sockaddr_storage to; /* sk_loop_sendto() */
	};
	char buf[LOOP_SEND_MAX];
};

struct loop_op {
	loop_op_cb cb;
	void *arg;
	struct loop_op *prev, *next; /* in flight, or (next only) the free list */
	struct op_payload *pay;	     /* a send's bytes, else NULL */
	const char *data;	     /* sk_loop_op_data(): the send's bytes, the chunk received */
	uint32_t len;
	uint32_t sqe_idx; /* its SQE's place in the submission queue */
	int fd;
	uint8_t cancelled; /* 1, or OP_NEVER_RAN */
	uint8_t chain;	   /* sk_loop_send_close(): CHAIN_SEND, then CHAIN_CLOSE; see the enum */
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
 * sk_uring_take_back()); that no-op's completion reads as -ECANCELED. */
#define OP_NEVER_RAN 2u

/* The operations' state: loop->be.ops. */
struct uring_ops {
	struct loop_op *free_ops;	  /* operation slots */
	struct op_payload *free_payloads; /* the bytes of sends */
	void *chunks;			  /* their memory, a list */
	struct loop_op *ops;		  /* in flight */
	struct recv_bufs rb;		  /* sk_loop_recv_multi()'s buffers */
};

int sk_uring_ops_new(struct uring_ops **out, const struct uring_backend *u)
{
	*out = NULL;
	if (!u->ops_ok)
		return 0;
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void sk_uring_ops_free(struct uring_ops *o)
{
	if (!o)
		return;
	sk_recv_bufs_free(&o->rb);
	while (o->chunks) {
		void *next = *(void **)o->chunks;
		free(o->chunks);
		o->chunks = next;
	}
	free(o);
}

/* Room for n items of size bytes, kept on o->chunks until the loop is
 * freed. */
static void *chunk_new(struct uring_ops *o, size_t size, size_t n)
{
	/* One pointer (the chunk list) ahead of the items, padded. */
	char *chunk = malloc(64 + n * size);
	if (!chunk)
		return NULL;
	*(void **)chunk = o->chunks;
	o->chunks = chunk;
	return chunk + 64;
}

static struct loop_op *op_get(struct uring_ops *o)
{
	if (!o->free_ops) {
		struct loop_op *ops = chunk_new(o, sizeof(struct loop_op), OPS_PER_CHUNK);
		if (!ops)
			return NULL;
		for (int i = 0; i < OPS_PER_CHUNK; i++) {
			ops[i].next = o->free_ops;
			o->free_ops = &ops[i];
		}
	}
	struct loop_op *op = o->free_ops;
	o->free_ops = op->next;
	op->cancelled = 0;
	op->chain = 0;
	op->len = 0;
	op->pay = NULL;
	op->data = NULL;
	op->prev = NULL;
	op->next = o->ops;
	if (o->ops)
		o->ops->prev = op;
	o->ops = op;
	return op;
}

static struct op_payload *payload_get(struct uring_ops *o)
{
	if (!o->free_payloads) {
		struct op_payload *pays =
			chunk_new(o, sizeof(struct op_payload), PAYLOADS_PER_CHUNK);
		if (!pays)
			return NULL;
		for (int i = 0; i < PAYLOADS_PER_CHUNK; i++) {
			pays[i].next = o->free_payloads;
			o->free_payloads = &pays[i];
		}
	}
	struct op_payload *p = o->free_payloads;
	o->free_payloads = p->next;
	return p;
}

static void op_put(struct uring_ops *o, struct loop_op *op)
{
	if (op->prev)
		op->prev->next = op->next;
	else
		o->ops = op->next;
	if (op->next)
		op->next->prev = op->prev;
	if (op->pay) {
		op->pay->next = o->free_payloads;
		o->free_payloads = op->pay;
	}
	op->next = o->free_ops;
	o->free_ops = op;
}

static uint64_t ud_op(const struct loop_op *op)
{
	return UD_OP << UD_KIND_SHIFT | (uint64_t)(uintptr_t)op;
}

/* ---- completions ---------------------------------------------------------- */

/* The close of an sk_loop_send_close() completed: the slot is free.  A
 * cancelled close is done here, so the fd never outlives the chain. */
static void chain_closed(struct uring_ops *o, struct loop_op *op, int res)
{
	if (res == -ECANCELED)
		close(op->fd);
	op_put(o, op);
}

/* The send of an sk_loop_send_close() completed (res): the FIN, then the
 * close.  shutdown() is a direct call: io_uring always runs
 * IORING_OP_SHUTDOWN on a worker thread, a context switch per
 * connection, which measured dearer than the system call. */
static void chain_sent(sockit_loop *loop, struct loop_op *op, int res)
{
	if (op->shut && res >= 0)
		shutdown(op->fd, SHUT_WR);
	struct io_uring_sqe *sqe = sk_uring_sqe(loop->be.uring);
	if (!sqe) {
		close(op->fd);
		op_put(loop->be.ops, op);
		return;
	}
	op->chain = CHAIN_CLOSE;
	sqe->opcode = IORING_OP_CLOSE;
	sqe->fd = op->fd;
	sqe->user_data = ud_op(op) | OP_CLOSE_TAG;
	loop->be.uring->ninline++; /* a socket's close does not block */
}

/* A chunk (or the end) of an sk_loop_recv_multi(): the callback sees the
 * bytes in the loop's buffer, which goes back to the kernel after it.  The
 * slot goes when the operation has ended, after the callback too (which may
 * start another). */
static void recv_complete(sockit_loop *loop, struct loop_op *op, const struct loop_fired *f,
			  int more)
{
	struct recv_bufs *rb = &loop->be.ops->rb;
	int bid = -1;
	if (f->events & IORING_CQE_F_BUFFER) {
		bid = (int)(f->events >> IORING_CQE_BUFFER_SHIFT);
		op->data = sk_recv_buf(rb, (unsigned)bid);
	}
	op->more_input = (f->events & IORING_CQE_F_SOCK_NONEMPTY) != 0;
	/* Before the callback starts another receive. */
	if (f->res == -ENOBUFS)
		sk_recv_bufs_grow(rb, sockit_loop_now_ms(loop));
	if (op->cb)
		op->cb(loop, op->arg, f->res, more, 0);
	op->data = NULL;
	if (bid >= 0)
		sk_recv_buf_back(rb, (unsigned)bid, sockit_loop_now_ms(loop));
	if (!more)
		op_put(loop->be.ops, op);
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

int sk_uring_op_complete(sockit_loop *loop, struct loop_fired *f)
{
	uintptr_t p = (uintptr_t)f->op;
	struct loop_op *op = fired_op(f);
	int more = (f->events & IORING_CQE_F_MORE) != 0;

	if (p & OP_CLOSE_TAG) {
		chain_closed(loop->be.ops, op, f->res); /* its callback ran at the send */
		return 0;
	}
	loop_op_cb cb = op->cb;
	void *arg = op->arg;
	size_t len = op->len;
	if (op->chain == OP_RECV) {
		recv_complete(loop, op, f, more);
		return 1;
	}
	if (op->chain == OP_SEND) {
		/* The callback may still read the bytes (sk_loop_op_data). */
		if (cb)
			cb(loop, arg, f->res, 0, len);
		op_put(loop->be.ops, op);
		return 1;
	}
	if (op->chain)
		chain_sent(loop, op, f->res);
	else if (!more)
		op_put(loop->be.ops, op); /* before the callback, which may start another */
	if (cb)
		cb(loop, arg, f->res, more, len);
	return 1;
}

/* ---- ops.h ---------------------------------------------------------------- */

int sk_loop_ops_available(const sockit_loop *loop)
{
	return loop->be.ops != NULL;
}

int sk_loop_work_pending(const sockit_loop *loop)
{
	return loop->be.kind == LOOP_URING && sk_uring_work_pending(loop->be.uring);
}

int sk_loop_yield_before_wait(sockit_loop *loop, int (*should_yield)(void *arg), void *arg,
			      uint64_t *yields)
{
	if (loop->be.kind != LOOP_URING)
		return -ENOTSUP;
	loop->be.uring->should_yield = yields ? should_yield : NULL;
	loop->be.uring->yield_arg = arg;
	loop->be.uring->yields = yields;
	return 0;
}

/* A slot and an SQE for a new operation on fd: the slot in flight with
 * cb(arg), the SQE with opcode, fd and the slot's user_data.  Returns 0,
 * or -ENOTSUP (epoll, or a kernel without the operations), -ENOMEM or
 * -EBUSY: then nothing was queued. */
static int op_start(sockit_loop *loop, int fd, uint8_t opcode, loop_op_cb cb, void *arg,
		    struct loop_op **opp, struct io_uring_sqe **sqep)
{
	struct uring_ops *o = loop->be.ops;
	if (!o)
		return -ENOTSUP;
	struct loop_op *op = op_get(o);
	if (!op)
		return -ENOMEM;
	struct uring_backend *u = loop->be.uring;
	struct io_uring_sqe *sqe = sk_uring_sqe(u);
	if (!sqe) {
		op_put(o, op);
		return -EBUSY;
	}
	op->cb = cb;
	op->arg = arg;
	op->fd = fd;
	op->sqe_idx = u->sq_local - 1;
	sqe->opcode = opcode;
	sqe->fd = fd;
	sqe->user_data = ud_op(op);
	*opp = op;
	*sqep = sqe;
	return 0;
}

/* The send of len bytes of buf, copied into a payload of the slot's.
 * -ENOMEM: then the op is put back and the SQE turned into a no-op. */
static int op_send_bytes(struct uring_ops *o, struct loop_op *op, struct io_uring_sqe *sqe,
			 const void *buf, size_t len, int msg_flags)
{
	op->pay = payload_get(o);
	if (!op->pay) {
		sqe->opcode = IORING_OP_NOP;
		sqe->user_data = UD_IGNORE;
		op_put(o, op);
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

int sk_loop_send_close(sockit_loop *loop, int fd, const void *buf, size_t len, int flags, int shut,
		       loop_op_cb cb, void *arg)
{
	struct loop_op *op;
	struct io_uring_sqe *sqe;

	if (len > LOOP_SEND_MAX)
		return sk_loop_ops_available(loop) ? -EMSGSIZE : -ENOTSUP;
	int rc = op_start(loop, fd, IORING_OP_SEND, cb, arg, &op, &sqe);
	if (rc < 0)
		return rc;
	/* The send's completion goes to cb, then chain_sent() shuts and
	 * queues the close, whose completion frees the slot (so the loop
	 * knows the fd is gone).  Not counted in ninline (sk_uring_enter):
	 * with MSG_MORE the reply waits in the socket for the shutdown that
	 * its completion makes, so that completion must end the wait at once. */
	op->chain = CHAIN_SEND;
	op->shut = (uint8_t)shut;
	return op_send_bytes(loop->be.ops, op, sqe, buf, len, MSG_NOSIGNAL | flags);
}

int sk_loop_sendto(sockit_loop *loop, int fd, const void *buf, size_t len,
		   const struct sockaddr *to, socklen_t tolen, int flags, loop_op_cb cb, void *arg,
		   struct loop_op **out)
{
	struct loop_op *op;
	struct io_uring_sqe *sqe;
	int rc;

	if (out)
		*out = NULL;
	if (len > LOOP_SEND_MAX || (to && tolen > sizeof(struct sockaddr_storage)))
		return sk_loop_ops_available(loop) ? -EMSGSIZE : -ENOTSUP;
	rc = op_start(loop, fd, IORING_OP_SEND, cb, arg, &op, &sqe);
	if (rc < 0)
		return rc;
	/* MSG_DONTWAIT: where send() would block, io_uring completes with
	 * -EAGAIN instead of waiting for room (a stuck client never pins
	 * the slot), so it always completes inside the submit. */
	op->chain = OP_SEND;
	rc = op_send_bytes(loop->be.ops, op, sqe, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT | flags);
	if (rc < 0)
		return rc;
	if (to) {
		memcpy(&op->pay->to, to, tolen);
		sqe->addr2 = (uint64_t)(uintptr_t)&op->pay->to;
		sqe->addr_len = (uint16_t)tolen;
	}
	loop->be.uring->ninline++;
	if (out)
		*out = op;
	return 0;
}

int sk_loop_send(sockit_loop *loop, int fd, const void *buf, size_t len, int flags, loop_op_cb cb,
		 void *arg, struct loop_op **out)
{
	return sk_loop_sendto(loop, fd, buf, len, NULL, 0, flags, cb, arg, out);
}

const char *sk_loop_op_data(const struct loop_op *op)
{
	return op->data;
}

int sk_loop_op_more_input(const struct loop_op *op)
{
	return op->more_input;
}

unsigned sk_loop_recv_bufs(const sockit_loop *loop)
{
	return loop->be.ops ? loop->be.ops->rb.nbufs : 0;
}

void sk_loop_op_close_after(struct loop_op *op, loop_op_cb cb, void *arg)
{
	op->chain = CHAIN_SEND;
	op->shut = 0;
	op->cb = cb;
	op->arg = arg;
}

int sk_loop_accept_multi(sockit_loop *loop, int lfd, int flags, loop_op_cb cb, void *arg,
			 struct loop_op **out)
{
	struct loop_op *op;
	struct io_uring_sqe *sqe;

	if (out)
		*out = NULL;
	int rc = op_start(loop, lfd, IORING_OP_ACCEPT, cb, arg, &op, &sqe);
	if (rc < 0)
		return rc;
	sqe->accept_flags = (uint32_t)(SOCK_CLOEXEC | flags);
	sqe->ioprio = IORING_ACCEPT_MULTISHOT;
	if (out)
		*out = op;
	return 0;
}

int sk_loop_recv_multi(sockit_loop *loop, int fd, loop_op_cb cb, void *arg, struct loop_op **out)
{
	struct loop_op *op;
	struct io_uring_sqe *sqe;

	if (out)
		*out = NULL;
	uint64_t now_ms = sockit_loop_now_ms(loop);
	int rc = loop->be.ops ? sk_recv_bufs_init(loop->be.uring, &loop->be.ops->rb, now_ms) : 0;
	if (rc < 0)
		return rc;
	rc = op_start(loop, fd, IORING_OP_RECV, cb, arg, &op, &sqe);
	if (rc < 0)
		return rc;
	op->chain = OP_RECV;
	sqe->ioprio = IORING_RECV_MULTISHOT;
	sqe->flags = IOSQE_BUFFER_SELECT;
	sqe->buf_group = RECV_BGID;
	if (out)
		*out = op;
	return 0;
}

void sk_loop_op_detach(sockit_loop *loop, struct loop_op *op)
{
	op->cb = NULL;
	sk_loop_op_cancel(loop, op);
	/* Not in the kernel yet: put it there now, with its file, before the
	 * owner closes the fd (whose number a new socket may take). */
	if ((int32_t)(__atomic_load_n(loop->be.uring->sq_head, __ATOMIC_ACQUIRE) - op->sqe_idx) <=
	    0)
		sk_loop_ops_submit(loop);
}

void sk_loop_op_cancel(sockit_loop *loop, struct loop_op *op)
{
	if (!loop->be.ops || op->cancelled)
		return;
	struct io_uring_sqe *sqe = sk_uring_sqe(loop->be.uring);
	if (!sqe) {
		/* No room for the cancel: take the operation back now. */
		int rc = sk_uring_take_back(loop->be.uring, ud_op(op), ud_op(op));
		if (rc >= 0)
			op->cancelled = rc == 1 ? OP_NEVER_RAN : 1;
		return;
	}
	op->cancelled = 1;
	sqe->opcode = IORING_OP_ASYNC_CANCEL;
	sqe->addr = ud_op(op);
	sqe->user_data = UD_IGNORE;
}

void sk_loop_ops_submit(sockit_loop *loop)
{
	if (loop->be.kind == LOOP_URING)
		sk_uring_enter(loop->be.uring, 0, 0);
}

/* ---- the end -------------------------------------------------------------- */

/* Takes completions for up to ms, without callbacks, until none is in
 * flight. */
static void ops_wait(sockit_loop *loop, uint64_t ms)
{
	struct uring_ops *o = loop->be.ops;
	uint64_t end = sk_clock_ns() + ms * 1000000u;

	while (o->ops && sk_clock_ns() < end) {
		int n = sk_uring_poll(loop->be.uring, 10, loop->fired);
		if (n < 0)
			break;
		for (int i = 0; i < n; i++) {
			struct loop_fired *f = &loop->fired[i];
			if (f->fd >= 0)
				continue;
			uintptr_t p = (uintptr_t)f->op;
			struct loop_op *op = fired_op(f);
			if (p & OP_CLOSE_TAG) {
				chain_closed(o, op, f->res);
			} else if (op->chain == OP_RECV) {
				op->cb = NULL; /* no callback runs any more */
				recv_complete(loop, op, f, (f->events & IORING_CQE_F_MORE) != 0);
			} else if (op->chain == OP_SEND) {
				op_put(o, op);
			} else if (op->chain) {
				chain_sent(loop, op, f->res);
			} else if (!(f->events & IORING_CQE_F_MORE)) {
				op_put(o, op);
			}
		}
	}
}

/* Before the ring goes: what was queued (a reply, its close) is carried
 * out, not dropped with the ring.  Multishot operations are cancelled at
 * once; the rest get a second, then are cancelled too, and a reply's fd
 * whose close never ran is closed here.  No callback runs any more. */
void sk_loop_ops_finish(sockit_loop *loop)
{
	if (loop->be.kind != LOOP_URING)
		return;
	/* Poll removals queued by the last closes: without them the polls
	 * would hold those sockets open until the ring is torn down. */
	sk_uring_enter(loop->be.uring, 0, 0);
	struct uring_ops *o = loop->be.ops;
	if (!o || !o->ops)
		return;
	loop->be.uring->nrearm = 0; /* no new polls */
	for (struct loop_op *op = o->ops; op; op = op->next)
		if (!op->chain || op->chain == OP_RECV)
			sk_loop_op_cancel(loop, op); /* the multishot ones */
	ops_wait(loop, 1000);
	for (struct loop_op *op = o->ops; op; op = op->next)
		sk_loop_op_cancel(loop, op);
	ops_wait(loop, 100);
	while (o->ops) {
		if (o->ops->chain == CHAIN_SEND || o->ops->chain == CHAIN_CLOSE)
			close(o->ops->fd); /* the chain's: an OP_SEND's fd is its owner's */
		op_put(o, o->ops);
	}
}
