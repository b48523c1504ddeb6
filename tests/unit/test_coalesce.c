/* test_coalesce.c -- the loop's adaptive wake-up coalescing, on both backends. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "sockit.h"
#include "sockit_loop.h"

static const char *backend;

static sockit_loop *new_loop(void)
{
	sockit_loop *loop = NULL;
	int rc = sockit_loop_new_backend(&loop, backend);
	if (rc == -ENOSYS || rc == -EPERM)
		skip();
	assert_int_equal(rc, 0);
	return loop;
}

static void drain(sockit_loop *loop, int fd, unsigned events, void *arg)
{
	(void)loop;
	(void)events;
	char b[64];
	int *count = arg;
	while (read(fd, b, sizeof(b)) > 0)
		(*count)++;
}

static void test_arguments(void **state)
{
	(void)state;
	sockit_loop *loop = new_loop();
	assert_int_equal(sockit_loop_coalesce(loop, 1000001), -EINVAL);
	assert_int_equal(sockit_loop_coalesce(NULL, 50), -EINVAL);
	assert_int_equal(sockit_loop_coalesce(loop, 50), 0);
	assert_int_equal(sockit_loop_coalesce(loop, 0), 0);
	uint64_t l = 9, f = 9;
	sockit_loop_coalesce_stats(loop, &l, &f);
	assert_int_equal(l, 0);
	assert_int_equal(f, 0);
	sockit_loop_free(loop);
}

/* A lone trickle: every linger gathers nothing, so they back off to one
 * in 1024 small batches (rare enough to stay out of a lone client's p99);
 * the events all arrive. */
static void test_trickle_backs_off(void **state)
{
	(void)state;
	sockit_loop *loop = new_loop();
	int sv[2], got = 0;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	assert_int_equal(sockit_loop_watch(loop, sv[1], SOCKIT_READABLE, drain, &got), 0);
	assert_int_equal(sockit_loop_coalesce(loop, 50), 0);
	for (int i = 0; i < 1200; i++) {
		/* After each lone event the loop waits for the next: that
		 * wait lingers first, unless lingering is backing off. */
		assert_true(sockit_loop_run_once(loop, 1) >= 0);
		assert_int_equal(write(sv[0], "x", 1), 1);
		while (got <= i)
			assert_true(sockit_loop_run_once(loop, 5000) >= 0);
	}
	uint64_t lingers, fruitful;
	sockit_loop_coalesce_stats(loop, &lingers, &fruitful);
	assert_int_equal(fruitful, 0);
	assert_true(lingers >= 5); /* it did try */
	/* 1, 2, 4 ... 512 small batches apart: 10 lingers in the first 1033,
	 * then one per 1025 (a cap of 64 would have made 24). */
	assert_true(lingers <= 13);
	close(sv[0]);
	close(sv[1]);
	sockit_loop_free(loop);
}

struct burst {
	int fds[3];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int go;
};

/* Writes to three sockets 50 ms after being told: well inside a 300 ms linger. */
static void *burst_writer(void *arg)
{
	struct burst *b = arg;
	pthread_mutex_lock(&b->mu);
	while (!b->go)
		pthread_cond_wait(&b->cv, &b->mu);
	pthread_mutex_unlock(&b->mu);
	struct timespec ts = {0, 50 * 1000000};
	nanosleep(&ts, NULL);
	for (int i = 0; i < 3; i++)
		if (write(b->fds[i], "y", 1) != 1)
			abort();
	return NULL;
}

/* Events that arrive while the loop lingers are taken in one batch: one
 * iteration runs all three callbacks, and the linger counts as fruitful. */
static void test_linger_gathers_a_burst(void **state)
{
	(void)state;
	sockit_loop *loop = new_loop();
	int first[2], sv[3][2], got = 0;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, first), 0);
	assert_int_equal(sockit_loop_watch(loop, first[1], SOCKIT_READABLE, drain, &got), 0);
	struct burst b = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	for (int i = 0; i < 3; i++) {
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv[i]), 0);
		assert_int_equal(sockit_loop_watch(loop, sv[i][1], SOCKIT_READABLE, drain, &got),
				 0);
		b.fds[i] = sv[i][0];
	}
	assert_int_equal(sockit_loop_coalesce(loop, 300000), 0);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, burst_writer, &b), 0);
	/* One lone event makes a small batch ... */
	assert_int_equal(write(first[0], "x", 1), 1);
	assert_int_equal(sockit_loop_run_once(loop, 5000), 1);
	/* ... so the next iteration lingers, and the burst comes meanwhile. */
	pthread_mutex_lock(&b.mu);
	b.go = 1;
	pthread_cond_signal(&b.cv);
	pthread_mutex_unlock(&b.mu);
	assert_int_equal(sockit_loop_run_once(loop, 5000), 3);
	assert_int_equal(got, 4);
	uint64_t lingers, fruitful;
	sockit_loop_coalesce_stats(loop, &lingers, &fruitful);
	assert_int_equal(lingers, 1);
	assert_int_equal(fruitful, 1);
	pthread_join(th, NULL);
	close(first[0]);
	close(first[1]);
	for (int i = 0; i < 3; i++) {
		close(sv[i][0]);
		close(sv[i][1]);
	}
	sockit_loop_free(loop);
}

/* A linger never runs past a timer that is due sooner. */
static void on_timer(sockit_loop *loop, sockit_timer *t)
{
	(void)loop;
	*(int *)t->data = 1;
}

static void test_linger_keeps_timers(void **state)
{
	(void)state;
	sockit_loop *loop = new_loop();
	int sv[2], got = 0, fired = 0;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	assert_int_equal(sockit_loop_watch(loop, sv[1], SOCKIT_READABLE, drain, &got), 0);
	assert_int_equal(sockit_loop_coalesce(loop, 1000000), 0); /* a 1 s linger */
	assert_int_equal(write(sv[0], "x", 1), 1);
	assert_int_equal(sockit_loop_run_once(loop, 5000), 1);
	sockit_timer t;
	sockit_timer_init(&t, on_timer, &fired);
	assert_int_equal(sockit_timer_start(loop, &t, 20, 0), 0);
	struct timespec a, z;
	clock_gettime(CLOCK_MONOTONIC, &a);
	while (!fired)
		assert_true(sockit_loop_run_once(loop, 5000) >= 0);
	clock_gettime(CLOCK_MONOTONIC, &z);
	long ms = (z.tv_sec - a.tv_sec) * 1000 + (z.tv_nsec - a.tv_nsec) / 1000000;
	assert_true(ms < 800); /* generous: 20 ms asked, the linger is 1000 */
	close(sv[0]);
	close(sv[1]);
	sockit_loop_free(loop);
}

static int use_epoll(void **state)
{
	(void)state;
	backend = "epoll";
	return 0;
}

static int use_uring(void **state)
{
	(void)state;
	backend = "io_uring";
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_arguments),
		cmocka_unit_test(test_trickle_backs_off),
		cmocka_unit_test(test_linger_gathers_a_burst),
		cmocka_unit_test(test_linger_keeps_timers),
	};
	int rc = cmocka_run_group_tests_name("epoll", tests, use_epoll, NULL);
	return rc | cmocka_run_group_tests_name("io_uring", tests, use_uring, NULL);
}
