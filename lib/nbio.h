/* nbio.h -- one non-blocking attempt at connect/send/recv/accept, for event loops.
 *
 * Internal to sockit (not installed).  sockit_send()/sockit_recv() with
 * timeout 0 read the clock for their deadline and poll once on EAGAIN;
 * sockit_connect() asks fcntl(F_GETFL) first.  A loop that already knows
 * the fd is non-blocking and ready needs none of that: these make exactly
 * one system call (EINTR retried).  Results follow sockit.h: >= 0 or a
 * negative errno, with -EAGAIN for "not now" (never -EWOULDBLOCK or
 * -ETIMEDOUT).  Sends use MSG_NOSIGNAL.
 */
#ifndef SOCKIT_NBIO_H
#define SOCKIT_NBIO_H

#include <sys/types.h>

#include "sockit.h"

/* send(MSG_DONTWAIT | MSG_NOSIGNAL): the bytes taken, or -EAGAIN, -EPIPE, ... */
ssize_t sockit_try_send(int fd, const void *buf, size_t len);

/* recv(MSG_DONTWAIT): the bytes read (0 at EOF), or -EAGAIN, -ECONNRESET, ... */
ssize_t sockit_try_recv(int fd, void *buf, size_t len);

/* connect() on a non-blocking fd: 0 if connected at once, -EINPROGRESS
 * while the handshake goes on (watch for writability; the first send or
 * recv reports a failure), or the error (-ECONNREFUSED, -EAGAIN when out
 * of local ports, ...). */
int sockit_try_connect(int fd, const sockit_addr *a);

/* accept4(SOCK_CLOEXEC | flags) on a NON-BLOCKING listener (flags may be
 * SOCK_NONBLOCK, for the new fd): the new fd, -EAGAIN when none is queued,
 * or -errno.  peer may be NULL (the kernel then copies no address).
 * sockit_accept() with timeout 0 adds an fcntl(F_GETFL) per call, because
 * a blocking listener would block; here the caller vouches it does not. */
int sockit_try_accept(int fd, sockit_addr *peer, int flags);

#endif /* SOCKIT_NBIO_H */
