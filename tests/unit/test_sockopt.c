/* test_sockopt.c -- socket options are really set (read back from the kernel). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <unistd.h>

#include <cmocka.h>

#include "sockit.h"
#include "testutil.h"

static int getopt_int(int fd, int level, int name)
{
	int v = -1;
	socklen_t sl = sizeof(v);
	assert_int_equal(getsockopt(fd, level, name, &v, &sl), 0);
	return v;
}

static void test_nonblocking(void **state)
{
	(void)state;
	int fd = sockit_socket(AF_INET, SOCK_STREAM);
	assert_ok(fd);
	assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	assert_int_equal(sockit_set_nonblocking(fd, 1), 0);
	assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
	assert_int_equal(sockit_set_nonblocking(fd, 1), 0);
	assert_int_equal(sockit_set_nonblocking(fd, 0), 0);
	assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	sockit_close(fd);
}

static void test_nodelay_keepalive(void **state)
{
	(void)state;
	int fd = sockit_socket(AF_INET6, SOCK_STREAM);
	if (fd < 0)
		fd = sockit_socket(AF_INET, SOCK_STREAM);
	assert_ok(fd);
	assert_int_equal(sockit_set_nodelay(fd, 1), 0);
	assert_int_equal(getopt_int(fd, IPPROTO_TCP, TCP_NODELAY), 1);
	assert_int_equal(sockit_set_nodelay(fd, 0), 0);
	assert_int_equal(getopt_int(fd, IPPROTO_TCP, TCP_NODELAY), 0);

	int idle = getopt_int(fd, IPPROTO_TCP, TCP_KEEPIDLE);
	assert_int_equal(sockit_set_keepalive(fd, 1, 0, 0, 0), 0);
	assert_int_equal(getopt_int(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
	assert_int_equal(getopt_int(fd, IPPROTO_TCP, TCP_KEEPIDLE), idle); /* kept */
	assert_int_equal(sockit_set_keepalive(fd, 1, 7, 3, 4), 0);
	assert_int_equal(getopt_int(fd, IPPROTO_TCP, TCP_KEEPIDLE), 7);
	assert_int_equal(getopt_int(fd, IPPROTO_TCP, TCP_KEEPINTVL), 3);
	assert_int_equal(getopt_int(fd, IPPROTO_TCP, TCP_KEEPCNT), 4);
	assert_int_equal(sockit_set_keepalive(fd, 0, 0, 0, 0), 0);
	assert_int_equal(getopt_int(fd, SOL_SOCKET, SO_KEEPALIVE), 0);
	/* The kernel's range check comes back as a code. */
	assert_int_equal(sockit_set_keepalive(fd, 1, 1000000, 0, 0), -EINVAL);
	sockit_close(fd);
}

static void test_buffers_reuseport(void **state)
{
	(void)state;
	int fd = sockit_socket(AF_INET, SOCK_DGRAM);
	assert_ok(fd);
	assert_int_equal(sockit_set_sndbuf(fd, 32768), 0);
	assert_true(getopt_int(fd, SOL_SOCKET, SO_SNDBUF) >= 32768);
	assert_int_equal(sockit_set_rcvbuf(fd, 4096), 0);
	int rcv = getopt_int(fd, SOL_SOCKET, SO_RCVBUF);
	assert_in_range(rcv, 4096, 65536);
	assert_int_equal(sockit_set_sndbuf(fd, 0), -EINVAL);
	assert_int_equal(sockit_set_rcvbuf(fd, -5), -EINVAL);
	assert_int_equal(sockit_set_reuseport(fd, 1), 0);
	assert_int_equal(getopt_int(fd, SOL_SOCKET, SO_REUSEPORT), 1);
	assert_int_equal(sockit_set_reuseport(fd, 0), 0);
	assert_int_equal(getopt_int(fd, SOL_SOCKET, SO_REUSEPORT), 0);
	sockit_close(fd);
}

static void test_bad_fd(void **state)
{
	(void)state;
	assert_int_equal(sockit_set_nonblocking(-1, 1), -EINVAL);
	assert_int_equal(sockit_set_nodelay(-1, 1), -EINVAL);
	assert_int_equal(sockit_set_keepalive(-1, 1, 1, 1, 1), -EINVAL);
	assert_int_equal(sockit_set_sndbuf(-1, 4096), -EINVAL);
	assert_int_equal(sockit_set_rcvbuf(-1, 4096), -EINVAL);
	assert_int_equal(sockit_set_reuseport(-1, 1), -EINVAL);
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(sockit_set_nodelay(p[0], 1), -ENOTSOCK);
	assert_int_equal(sockit_set_reuseport(p[0], 1), -ENOTSOCK);
	close(p[0]);
	close(p[1]);
	/* nodelay on a datagram socket is not supported. */
	int u = sockit_socket(AF_INET, SOCK_DGRAM);
	assert_ok(u);
	assert_true(sockit_set_nodelay(u, 1) < 0);
	sockit_close(u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nonblocking),
		cmocka_unit_test(test_nodelay_keepalive),
		cmocka_unit_test(test_buffers_reuseport),
		cmocka_unit_test(test_bad_fd),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
