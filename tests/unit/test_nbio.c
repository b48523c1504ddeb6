/* test_nbio.c -- one-attempt connect/send/recv/accept: -EAGAIN for "not now", EINTR retried,
 * errors. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "sockit.h"

/* send/recv shims: fail with EINTR while eintr_left > 0. */
static int eintr_left;
ssize_t __real_send(int fd, const void *buf, size_t len, int flags);
ssize_t __real_recv(int fd, void *buf, size_t len, int flags);
ssize_t __wrap_send(int fd, const void *buf, size_t len, int flags);
ssize_t __wrap_recv(int fd, void *buf, size_t len, int flags);

ssize_t __wrap_send(int fd, const void *buf, size_t len, int flags)
{
	if (eintr_left > 0) {
		eintr_left--;
		errno = EINTR;
		return -1;
	}
	assert_true(flags & MSG_DONTWAIT);
	assert_true(flags & MSG_NOSIGNAL);
	return __real_send(fd, buf, len, flags);
}

ssize_t __wrap_recv(int fd, void *buf, size_t len, int flags)
{
	if (eintr_left > 0) {
		eintr_left--;
		errno = EINTR;
		return -1;
	}
	assert_true(flags & MSG_DONTWAIT);
	return __real_recv(fd, buf, len, flags);
}

static void test_send_recv(void **state)
{
	(void)state;
	int sv[2];
	char buf[8];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);	     /* blocking fds */
	assert_int_equal(sockit_try_recv(sv[1], buf, sizeof(buf)), -EAGAIN); /* no wait */
	eintr_left = 2;
	assert_int_equal(sockit_try_send(sv[0], "hello", 5, 0), 5);
	eintr_left = 1;
	assert_int_equal(sockit_try_recv(sv[1], buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "hello", 5);
	close(sv[0]);
	assert_int_equal(sockit_try_recv(sv[1], buf, sizeof(buf)), 0); /* EOF */
	assert_int_equal(sockit_try_send(sv[1], "x", 1, 0), -EPIPE);   /* no SIGPIPE */
	close(sv[1]);
	assert_int_equal(sockit_try_send(-1, "x", 1, 0), -EINVAL);
	assert_int_equal(sockit_try_recv(sv[1], buf, 1), -EBADF);
}

static void test_connect(void **state)
{
	(void)state;
	/* a listener on a free loopback port, then a non-blocking connect */
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(l, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(l, 4), 0);
	sockit_addr a = {.len = sizeof(sin)};
	socklen_t sl = sizeof(a.ss);
	assert_int_equal(getsockname(l, (struct sockaddr *)&a.ss, &sl), 0);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int rc = sockit_try_connect(fd, &a);
	assert_true(rc == 0 || rc == -EINPROGRESS);
	close(fd);
	/* the port closed: refused, at once or at the first recv */
	close(l);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	rc = sockit_try_connect(fd, &a);
	if (rc == -EINPROGRESS) {
		char b;
		for (int i = 0; i < 1000 && (rc = (int)sockit_try_recv(fd, &b, 1)) == -EAGAIN; i++)
			usleep(1000);
	}
	assert_int_equal(rc, -ECONNREFUSED);
	close(fd);
	assert_int_equal(sockit_try_connect(-1, &a), -EINVAL);
	assert_int_equal(sockit_try_connect(0, NULL), -EINVAL);
}

static void test_accept(void **state)
{
	(void)state;
	int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(l, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(l, 4), 0);
	sockit_addr a = {.len = sizeof(sin)};
	socklen_t sl = sizeof(a.ss);
	assert_int_equal(getsockname(l, (struct sockaddr *)&a.ss, &sl), 0);
	assert_int_equal(sockit_try_accept(l, NULL, 0), -EAGAIN); /* none queued: no wait */
	int c = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(c, (struct sockaddr *)&a.ss, a.len), 0);
	sockit_addr peer;
	int fd = -EAGAIN;
	for (int i = 0; i < 1000 && (fd = sockit_try_accept(l, &peer, SOCK_NONBLOCK)) == -EAGAIN;
	     i++)
		usleep(1000);
	assert_true(fd >= 0);
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	sockit_addr local;
	sl = sizeof(local.ss);
	assert_int_equal(getsockname(c, (struct sockaddr *)&local.ss, &sl), 0);
	local.len = sl;
	assert_int_equal(peer.len, sl);
	assert_int_equal(sockit_addr_port(&peer), sockit_addr_port(&local));
	close(fd);
	close(c);
	assert_int_equal(sockit_try_accept(l, NULL, 0x7), -EINVAL);
	assert_int_equal(sockit_try_accept(-1, NULL, 0), -EINVAL);
	close(l);
	assert_int_equal(sockit_try_accept(l, NULL, 0), -EBADF);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_send_recv),
		cmocka_unit_test(test_connect),
		cmocka_unit_test(test_accept),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
