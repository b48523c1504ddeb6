/* nbio.c -- one non-blocking connect/send/recv/accept: a single system call, EINTR retried. */
#include <errno.h>
#include <sys/socket.h>

#include "sockit.h"

ssize_t sockit_try_send(int fd, const void *buf, size_t len, int flags)
{
	if (fd < 0 || (buf == NULL && len > 0))
		return -EINVAL;
	for (;;) {
		ssize_t n = send(fd, buf, len, flags | MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n >= 0)
			return n;
		if (errno != EINTR)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}

ssize_t sockit_try_recv(int fd, void *buf, size_t len)
{
	if (fd < 0 || (buf == NULL && len > 0))
		return -EINVAL;
	for (;;) {
		ssize_t n = recv(fd, buf, len, MSG_DONTWAIT);
		if (n >= 0)
			return n;
		if (errno != EINTR)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}

int sockit_try_connect(int fd, const sockit_addr *a)
{
	if (fd < 0 || a == NULL || a->len == 0 || a->len > sizeof(a->ss))
		return -EINVAL;
	if (connect(fd, (const struct sockaddr *)&a->ss, a->len) == 0)
		return 0;
	/* EINTR: the handshake goes on in the background, as with EINPROGRESS. */
	return errno == EINTR ? -EINPROGRESS : -errno;
}

int sockit_try_accept(int fd, sockit_addr *peer, int flags)
{
	if (fd < 0 || (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) != 0)
		return -EINVAL;
	for (;;) {
		struct sockaddr *sa = NULL;
		socklen_t *lenp = NULL;
		if (peer != NULL) {
			peer->len = sizeof(peer->ss);
			sa = (struct sockaddr *)&peer->ss;
			lenp = &peer->len;
		}
		int nfd = accept4(fd, sa, lenp, flags | SOCK_CLOEXEC);
		if (nfd >= 0)
			return nfd;
		if (errno != EINTR)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}
