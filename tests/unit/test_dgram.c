/* test_dgram.c -- datagram batches: counts, would-block, truncation, errors, EINTR. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "internal.h"

/* recvmmsg/sendmmsg shims: fail with EINTR while eintr_left > 0. */
static int eintr_left;
int __real_recvmmsg(int fd, struct mmsghdr *m, unsigned n, int flags, struct timespec *t);
int __real_sendmmsg(int fd, struct mmsghdr *m, unsigned n, int flags);
int __wrap_recvmmsg(int fd, struct mmsghdr *m, unsigned n, int flags, struct timespec *t);
int __wrap_sendmmsg(int fd, struct mmsghdr *m, unsigned n, int flags);

int __wrap_recvmmsg(int fd, struct mmsghdr *m, unsigned n, int flags, struct timespec *t)
{
	if (eintr_left > 0) {
		eintr_left--;
		errno = EINTR;
		return -1;
	}
	return __real_recvmmsg(fd, m, n, flags, t);
}

int __wrap_sendmmsg(int fd, struct mmsghdr *m, unsigned n, int flags)
{
	if (eintr_left > 0) {
		eintr_left--;
		errno = EINTR;
		return -1;
	}
	return __real_sendmmsg(fd, m, n, flags);
}

struct batch {
	struct mmsghdr m[4];
	struct iovec iov[4];
	char buf[4][8];
};

static void batch_init(struct batch *b, const char *const *msgs, size_t bufsize)
{
	memset(b, 0, sizeof(*b));
	for (int i = 0; i < 4; i++) {
		if (msgs != NULL) {
			b->iov[i].iov_base = (void *)msgs[i];
			b->iov[i].iov_len = strlen(msgs[i]);
		} else {
			b->iov[i].iov_base = b->buf[i];
			b->iov[i].iov_len = bufsize;
		}
		b->m[i].msg_hdr.msg_iov = &b->iov[i];
		b->m[i].msg_hdr.msg_iovlen = 1;
	}
}

static const char *const msgs[4] = {"one", "two", "three", "fourfour+"};

static void test_batch_round_trip(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0);
	struct batch out, in;
	batch_init(&out, msgs, 0);
	batch_init(&in, NULL, sizeof(in.buf[0]));

	assert_int_equal(sk_recv_batch(sv[1], in.m, 4), -EAGAIN); /* nothing yet, no wait */
	eintr_left = 2;
	assert_int_equal(sk_send_batch(sv[0], out.m, 3), 3); /* EINTR retried */
	assert_int_equal(eintr_left, 0);
	eintr_left = 1;
	assert_int_equal(sk_recv_batch(sv[1], in.m, 4), 3); /* only what is queued */
	assert_int_equal(in.m[0].msg_len, 3);
	assert_memory_equal(in.buf[0], "one", 3);
	assert_int_equal(in.m[2].msg_len, 5);
	assert_memory_equal(in.buf[2], "three", 5);
	assert_int_equal(sk_recv_batch(sv[1], in.m, 4), -EAGAIN);

	/* a datagram longer than its buffer is cut and flagged */
	assert_int_equal(sk_send_batch(sv[0], out.m + 3, 1), 1);
	batch_init(&in, NULL, sizeof(in.buf[0]));
	assert_int_equal(sk_recv_batch(sv[1], in.m, 4), 1);
	assert_int_equal(in.m[0].msg_len, 8);
	assert_true(in.m[0].msg_hdr.msg_flags & MSG_TRUNC);

	assert_int_equal(sk_send_batch(sv[0], out.m, 0), 0);
	close(sv[0]);
	close(sv[1]);
}

static void test_errors(void **state)
{
	(void)state;
	struct batch b;
	batch_init(&b, msgs, 0);
	assert_int_equal(sk_send_batch(-1, b.m, 1), -EINVAL);
	assert_int_equal(sk_recv_batch(-1, b.m, 1), -EINVAL);
	assert_int_equal(sk_send_batch(0, NULL, 1), -EINVAL);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0);
	close(sv[1]);
	assert_int_equal(sk_send_batch(sv[0], b.m, 2), -ECONNREFUSED); /* peer gone */
	close(sv[0]);
	assert_int_equal(sk_recv_batch(sv[0], b.m, 1), -EBADF);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batch_round_trip),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
