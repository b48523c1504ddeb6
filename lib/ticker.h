/* ticker.h -- a one-shot timer with nanosecond resolution, as a descriptor.
 *
 * Internal to sockit (not installed).  The event loop's timers wake in whole
 * milliseconds (epoll_wait's unit); a ticker is a timerfd to watch for
 * readability when a deadline needs better, e.g. an open-loop load
 * generator's schedule.  Results follow sockit.h: >= 0 or a negative errno.
 */
#ifndef SOCKIT_TICKER_H
#define SOCKIT_TICKER_H

#include <stdint.h>

/* A disarmed ticker on CLOCK_MONOTONIC: non-blocking, close-on-exec.
 * Returns the fd (close it with sockit_close or sockit_loop_close). */
int sockit_ticker_new(void);

/* Arms fd to become readable at when_ns (absolute CLOCK_MONOTONIC
 * nanoseconds; a time already past fires at once) and then every period_ns
 * after it (0: once), replacing any earlier setting; when_ns 0 disarms.
 * It never fires early.  Returns 0. */
int sockit_ticker_arm(int fd, uint64_t when_ns, uint64_t period_ns);

/* Consumes the expiries: how many deadlines passed since the last call
 * (capped at INT_MAX), 0 if none yet. */
int sockit_ticker_ack(int fd);

#endif /* SOCKIT_TICKER_H */
