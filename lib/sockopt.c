/* sockopt.c -- socket options: non-blocking, nodelay, keepalive, buffers, reuseport, linger. */
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "sockit.h"

static int setopt(int fd, int level, int name, int v)
{
	if (fd < 0)
		return -EINVAL;
	return setsockopt(fd, level, name, &v, sizeof(v)) < 0 ? -errno : 0;
}

int sockit_set_nonblocking(int fd, int on)
{
	if (fd < 0)
		return -EINVAL;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -errno;
	int nfl = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
	if (nfl != fl && fcntl(fd, F_SETFL, nfl) < 0)
		return -errno;
	return 0;
}

int sockit_set_nodelay(int fd, int on)
{
	return setopt(fd, IPPROTO_TCP, TCP_NODELAY, on != 0);
}

int sockit_set_keepalive(int fd, int on, int idle_s, int interval_s, int count)
{
	int rc = setopt(fd, SOL_SOCKET, SO_KEEPALIVE, on != 0);
	if (rc == 0 && on && idle_s > 0)
		rc = setopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, idle_s);
	if (rc == 0 && on && interval_s > 0)
		rc = setopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, interval_s);
	if (rc == 0 && on && count > 0)
		rc = setopt(fd, IPPROTO_TCP, TCP_KEEPCNT, count);
	return rc;
}

/* The kernel doubles the value (bookkeeping overhead) and caps it at
 * net.core.wmem_max / rmem_max; read it back with getsockopt if it matters. */
int sockit_set_sndbuf(int fd, int bytes)
{
	return bytes <= 0 ? -EINVAL : setopt(fd, SOL_SOCKET, SO_SNDBUF, bytes);
}

int sockit_set_rcvbuf(int fd, int bytes)
{
	return bytes <= 0 ? -EINVAL : setopt(fd, SOL_SOCKET, SO_RCVBUF, bytes);
}

int sockit_set_reuseport(int fd, int on)
{
	return setopt(fd, SOL_SOCKET, SO_REUSEPORT, on != 0);
}

int sockit_set_linger(int fd, int on, int seconds)
{
	if (fd < 0 || seconds < 0)
		return -EINVAL;
	struct linger lg = {.l_onoff = on != 0, .l_linger = seconds};
	return setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0 ? -errno : 0;
}

int sockit_set_defer_accept(int fd, int seconds)
{
	return seconds < 0 ? -EINVAL : setopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, seconds);
}

int sockit_unacked(int fd)
{
	if (fd < 0)
		return -EINVAL;
	int v = 0;
	return ioctl(fd, SIOCOUTQ, &v) < 0 ? -errno : v;
}
