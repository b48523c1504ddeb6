/* ticker.c -- a one-shot nanosecond timer as a descriptor (timerfd). */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "internal.h"

int sk_ticker_new(void)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int sk_ticker_arm(int fd, uint64_t when_ns, uint64_t period_ns)
{
	if (fd < 0)
		return -EINVAL;
	struct itimerspec its = {0};
	if (when_ns != 0) {
		its.it_value.tv_sec = (time_t)(when_ns / 1000000000u);
		its.it_value.tv_nsec = (long)(when_ns % 1000000000u);
		if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
			its.it_value.tv_nsec = 1; /* all zero would disarm */
		its.it_interval.tv_sec = (time_t)(period_ns / 1000000000u);
		its.it_interval.tv_nsec = (long)(period_ns % 1000000000u);
	}
	return timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL) < 0 ? -errno : 0;
}

int sk_ticker_ack(int fd)
{
	if (fd < 0)
		return -EINVAL;
	uint64_t n;
	for (;;) {
		ssize_t r = read(fd, &n, sizeof(n));
		if (r == (ssize_t)sizeof(n))
			return n > INT_MAX ? INT_MAX : (int)n;
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return 0;
		return r < 0 ? -errno : -EIO;
	}
}
