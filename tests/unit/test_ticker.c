/* test_ticker.c -- the nanosecond one-shot timer: fires not before its deadline, once, disarms. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "internal.h"

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int readable(int fd, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

static void test_fires_once_not_early(void **state)
{
	(void)state;
	int fd = sk_ticker_new();
	assert_true(fd >= 0);
	assert_int_equal(sk_ticker_ack(fd), 0); /* disarmed: nothing */

	uint64_t t0 = now_ns(), when = t0 + 3000000; /* 3 ms */
	assert_int_equal(sk_ticker_arm(fd, when, 0), 0);
	assert_true(readable(fd, 10000));
	uint64_t t1 = now_ns();
	if (t1 < when) {
		print_error("fired %llu ns early\n", (unsigned long long)(when - t1));
		fail();
	}
	assert_int_equal(sk_ticker_ack(fd), 1);
	assert_int_equal(sk_ticker_ack(fd), 0); /* one shot */
	assert_false(readable(fd, 5));

	/* a deadline in the past fires at once; re-arming replaces */
	assert_int_equal(sk_ticker_arm(fd, 1, 0), 0);
	assert_true(readable(fd, 10000));
	assert_int_equal(sk_ticker_ack(fd), 1);
	assert_int_equal(sk_ticker_arm(fd, now_ns() + 3600000000000ull, 0), 0);
	assert_int_equal(sk_ticker_arm(fd, now_ns() + 1000000, 0), 0); /* moved to 1 ms */
	assert_true(readable(fd, 10000));
	assert_int_equal(sk_ticker_ack(fd), 1);

	/* periodic: every 2 ms from 2 ms on; expiries add up while unread */
	t0 = now_ns();
	assert_int_equal(sk_ticker_arm(fd, t0 + 2000000, 2000000), 0);
	assert_true(readable(fd, 10000));
	assert_true(now_ns() >= t0 + 2000000);
	assert_true(sk_ticker_ack(fd) >= 1);
	usleep(7000);
	int n = sk_ticker_ack(fd);
	assert_true(n >= 3);		  /* at least 3 more periods passed */
	assert_true(readable(fd, 10000)); /* and it goes on */

	/* 0 disarms */
	assert_int_equal(sk_ticker_arm(fd, now_ns() + 2000000, 0), 0);
	assert_int_equal(sk_ticker_arm(fd, 0, 0), 0);
	assert_false(readable(fd, 20));
	close(fd);
}

static void test_bad_fd(void **state)
{
	(void)state;
	assert_int_equal(sk_ticker_arm(-1, 5, 0), -EINVAL);
	assert_int_equal(sk_ticker_ack(-1), -EINVAL);
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(sk_ticker_arm(p[0], 5, 0), -EINVAL); /* not a timerfd */
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fires_once_not_early),
		cmocka_unit_test(test_bad_fd),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
