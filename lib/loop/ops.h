/* ops.h -- completion operations of a loop on io_uring (uring_ops.c).
 *
 * Internal to sockit (not installed, not exported from the .so: the sk_
 * prefix marks the library's internal names).  With the io_uring backend
 * the loop can hand the kernel whole operations that run inside its next
 * wait, instead of one system call each.  With epoll they return -ENOTSUP
 * and the caller does the work itself, so every caller keeps its plain
 * path.
 *
 * Results follow the library: 0 (or >= 0) or a negative code.  The
 * functions that start an operation take an out parameter last: when it
 * is not NULL, *out gets the operation's handle, or NULL on failure; pass
 * NULL where the handle is not needed.
 *
 * Callbacks run from the loop's dispatch, like fd callbacks, with the
 * loop's time fresh.  sockit_loop_free() carries out what is still queued
 * (cancelling multishot operations, waiting up to a second for the rest)
 * without running any more callbacks.
 */
#ifndef SOCKIT_LOOP_OPS_H
#define SOCKIT_LOOP_OPS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "sockit_loop.h"

/* Largest payload sk_loop_send_close() and sk_loop_send() take (it is copied). */
#define LOOP_SEND_MAX 1984

struct loop_op;

/* res: the operation's result (>= 0 or -errno).  more: 1 when a multishot
 * operation stays armed and will complete again.  len: the bytes asked of
 * a send (sk_loop_send_close, sk_loop_send), else 0. */
typedef void (*loop_op_cb)(sockit_loop *loop, void *arg, int res, int more, size_t len);

/* 1 if loop takes the operations below: io_uring, on Linux 6.1 or later. */
int sk_loop_ops_available(const sockit_loop *loop);

/* Queues: send(fd, buf, len, MSG_NOSIGNAL | flags); when it completes,
 * shutdown(fd, SHUT_WR) if shut and the send succeeded (a direct call:
 * io_uring would run it on a worker thread), then close(fd) through the
 * ring.  With MSG_MORE the reply waits for the FIN and leaves with it.
 * buf is copied.
 * fd must not be watched by the loop; it belongs to the loop from now on.
 * cb (may be NULL) gets the send's result.  Returns 0, or -ENOTSUP (epoll),
 * -EMSGSIZE (len over LOOP_SEND_MAX), -ENOMEM or -EBUSY: then nothing was
 * queued and fd is still the caller's.  No handle: the loop owns it all. */
int sk_loop_send_close(sockit_loop *loop, int fd, const void *buf, size_t len, int flags, int shut,
		       loop_op_cb cb, void *arg);

/* Queues send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT | flags) to run
 * inside the loop's next wait; buf is copied.  It never waits for room:
 * where send() would block, it completes short or with -EAGAIN.  cb (may
 * be NULL) gets the result and len; until cb returns, sk_loop_op_data()
 * has the bytes, so a caller can keep what did not go.  fd stays the
 * caller's and must stay open until cb has run -- or be handed over with
 * sk_loop_op_close_after().  Returns 0 (*out: the handle, valid until cb
 * returns), or -ENOTSUP (epoll), -EMSGSIZE (over LOOP_SEND_MAX), -ENOMEM,
 * -EBUSY: then nothing was queued. */
int sk_loop_send(sockit_loop *loop, int fd, const void *buf, size_t len, int flags, loop_op_cb cb,
		 void *arg, struct loop_op **out);

/* sk_loop_send() to the address to (a datagram socket's sendto()).  The
 * address is copied too; a tolen over sockaddr_storage is -EMSGSIZE. */
int sk_loop_sendto(sockit_loop *loop, int fd, const void *buf, size_t len,
		   const struct sockaddr *to, socklen_t tolen, int flags, loop_op_cb cb, void *arg,
		   struct loop_op **out);

/* The bytes an sk_loop_send() operation carries. */
const char *sk_loop_op_data(const struct loop_op *op);

/* The owner of a queued sk_loop_send() is done with its fd: once the send
 * completes, the loop closes the fd through the ring, as for
 * sk_loop_send_close() without the shutdown, and the completion goes to
 * cb(arg) instead.  The caller must forget fd (sockit_loop_unwatch) and
 * not close it.  Not from op's own callback. */
void sk_loop_op_close_after(struct loop_op *op, loop_op_cb cb, void *arg);

/* Multishot accept4(lfd, NULL, NULL, SOCK_CLOEXEC | flags): cb gets each
 * new fd, or -errno.  When cb's more is 0 the operation has ended (an
 * error such as -EMFILE, a cancel, or the kernel's own limit) and the
 * handle is gone; start another to go on.  Returns 0 (*out: the handle),
 * or -ENOTSUP, -ENOMEM, -EBUSY. */
int sk_loop_accept_multi(sockit_loop *loop, int lfd, int flags, loop_op_cb cb, void *arg,
			 struct loop_op **out);

/* Multishot recv(fd) into the loop's own buffers (8 KiB each, shared by
 * all its receives; 16 at first, doubled up to 256 whenever they run
 * out): cb gets each chunk as res > 0 bytes at sk_loop_op_data(op), valid
 * until cb returns; res 0 at EOF; -errno on an error.  While more is 1
 * the operation stays armed.  When more is 0 it has ended -- EOF, an
 * error, a cancel, -ENOBUFS when the loop's buffers ran out (the data
 * waits in the socket), or the kernel's own limit -- and the handle is
 * gone: start another to read on.  Chunks may still come after an
 * sk_loop_op_cancel(), until the one with more 0.  Returns 0 (*out: the
 * handle), or -ENOTSUP, -ENOMEM, -EBUSY, or the kernel's refusal of the
 * buffers. */
int sk_loop_recv_multi(sockit_loop *loop, int fd, loop_op_cb cb, void *arg, struct loop_op **out);

/* In an sk_loop_recv_multi() callback: 1 if the kernel said more input was
 * already waiting in the socket after this chunk (another chunk follows
 * soon), so a reply may wait to go out with the next one's. */
int sk_loop_op_more_input(const struct loop_op *op);

/* How many buffers the multishot receives' ring holds now (it grows when
 * it runs dry and halves after a calm period; uring.h), 0 before the
 * first receive. */
unsigned sk_loop_recv_bufs(const sockit_loop *loop);

/* The owner is done with op (a multishot operation whose callback has not
 * said more 0): it is cancelled, its callback never runs again, and what it
 * still receives is dropped.  op is in the kernel when this returns (it is
 * submitted now if it was not yet), so the owner may close the fd at once:
 * a new socket that takes the number is never read by it. */
void sk_loop_op_detach(sockit_loop *loop, struct loop_op *op);

/* Hands what is queued to the kernel now, without waiting.  From then on
 * each operation holds its own reference to its fd's file, so an owner
 * may close the fd of an sk_loop_send() whose callback has not run yet. */
void sk_loop_ops_submit(sockit_loop *loop);

/* Submits what is queued (poll removals of closed fds, replies and their
 * closes), cancels multishot operations, waits up to a second for the
 * rest, then cancels them and closes the fds of replies whose close never
 * ran.  No callback runs.  sockit_loop_free() does it too, but a ring that
 * is not shared (io_uring's SINGLE_ISSUER) only takes this from the thread
 * that ran the loop: a thread that ends its loop calls it before handing
 * the loop back. */
void sk_loop_ops_finish(sockit_loop *loop);

/* Asks the kernel to cancel op; its callback still runs, with more 0 (and
 * usually -ECANCELED).  Until then op stays valid. */
void sk_loop_op_cancel(sockit_loop *loop, struct loop_op *op);

/* For threads that may share a CPU, each with its own loop.  Before the
 * loop sleeps, it calls should_yield(arg); if that returns 1, it hands
 * what is queued to the kernel, and if nothing but those sends' own
 * completions comes back, gives the CPU up once (sched_yield) and adds 1
 * to *yields (a relaxed atomic store: another thread may read it) before
 * it waits.  The thread that shares the CPU runs now, and this one finds
 * its next input waiting when it comes back, instead of being woken for
 * it from another CPU: a sleep and a wake-up cost more than the switch.
 * should_yield NULL turns it off.  Returns 0, or -ENOTSUP (epoll). */
int sk_loop_yield_before_wait(sockit_loop *loop, int (*should_yield)(void *arg), void *arg,
			      uint64_t *yields);

/* 1 if loop (io_uring) has completions its thread has not taken yet:
 * new ones, or those of sends it queued before it went to sleep.  Any
 * thread may ask.  0 on epoll. */
int sk_loop_work_pending(const sockit_loop *loop);

#endif /* SOCKIT_LOOP_OPS_H */
