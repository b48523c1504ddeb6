/* dgram.c -- datagrams in batches: recvmmsg/sendmmsg, EINTR retried, never blocking. */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <sys/socket.h>

#include "internal.h"

int sk_recv_batch(int fd, struct mmsghdr *m, unsigned n)
{
	if (fd < 0 || (m == NULL && n > 0) || n > INT_MAX)
		return -EINVAL;
	if (n == 0)
		return 0;
	for (;;) {
		int r = recvmmsg(fd, m, n, MSG_DONTWAIT, NULL);
		if (r >= 0)
			return r;
		if (errno != EINTR)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}

int sk_send_batch(int fd, struct mmsghdr *m, unsigned n)
{
	if (fd < 0 || (m == NULL && n > 0) || n > INT_MAX)
		return -EINVAL;
	if (n == 0)
		return 0;
	for (;;) {
		int r = sendmmsg(fd, m, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r >= 0)
			return r;
		if (errno != EINTR)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}
