/* coalesce.c -- adaptive wake-up coalescing: linger after a small batch, back off when it gathers
 * little. */
#include <errno.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <time.h>

#include "backend.h"

/* A batch this small is a sign of wake-ups that carry one event each. */
#define COALESCE_SMALL 4
/* A linger that gathers fewer than this was not worth its sleep. */
#define COALESCE_GATHER 2
/* At most this many small batches pass without lingering after fruitless
 * lingers (the skip doubles from 1 up to it).  A lone client then meets a
 * linger in 1 request of 1025: out of its p99 (a cap of 64, 1.5% of
 * requests, raised c=1's p99 by a fifth at 100 us). */
#define COALESCE_MAX_SKIP 1024

/* Sleeps ns outside the kernel's wait, so that what arrives meanwhile is
 * taken in one batch instead of one wake-up (a cross-CPU interrupt) each.
 * The thread's timer slack (50 us by default) would stretch the sleep:
 * it is set to 1 us the first time. */
static void linger(sockit_loop *loop, uint64_t ns)
{
	struct coalesce *co = &loop->co;
	if (!co->slack_set) {
		prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
		co->slack_set = 1;
	}
	struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
			      .tv_nsec = (long)(ns % 1000000000u)};
	while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
		;
}

/* The poll of one iteration, with coalescing: after a small batch, hand
 * what is queued to the kernel and take what is ready (no wait); if
 * nothing is, linger, then take what came (no wait); only if still nothing
 * came, wait as usual.  A linger that gathered little doubles the number
 * of small batches that pass before the next one (interrupt moderation
 * as NICs and NAPI do it). */
int sk_loop_coalesced_poll(sockit_loop *loop, int t)
{
	struct coalesce *co = &loop->co;
	int n;
	if (co->ns == 0 || t == 0 || co->last_n <= 0 || co->last_n >= COALESCE_SMALL) {
		if (co->last_n >= COALESCE_SMALL)
			co->penalty = 0; /* busy again: the next small batch may linger */
		return loop_backend_poll(&loop->be, t, loop->fired);
	}
	if (co->skip > 0) {
		co->skip--;
		return loop_backend_poll(&loop->be, t, loop->fired);
	}
	n = loop_backend_poll(&loop->be, 0, loop->fired);
	if (n != 0)
		return n;
	uint64_t ns = co->ns;
	if (t > 0 && (uint64_t)t * 1000000u < ns)
		ns = (uint64_t)t * 1000000u; /* never past a timer */
	linger(loop, ns);
	co->lingers++;
	n = loop_backend_poll(&loop->be, 0, loop->fired);
	if (n >= COALESCE_GATHER) {
		co->fruitful++;
		co->penalty = 0;
	} else {
		co->penalty = co->penalty == 0 ? 1 : co->penalty * 2;
		if (co->penalty > COALESCE_MAX_SKIP)
			co->penalty = COALESCE_MAX_SKIP;
		co->skip = co->penalty;
	}
	if (n == 0 && t != 0) {
		/* t counted from before the linger: close enough for a timer
		 * that was more than the linger away (see above). */
		n = loop_backend_poll(&loop->be, t, loop->fired);
	}
	return n;
}

int sockit_loop_coalesce(sockit_loop *loop, uint64_t usec)
{
	if (loop == NULL || usec > 1000000u)
		return -EINVAL;
	loop->co.ns = usec * 1000u;
	loop->co.skip = loop->co.penalty = 0;
	return 0;
}

void sockit_loop_coalesce_stats(const sockit_loop *loop, uint64_t *lingers, uint64_t *fruitful)
{
	if (lingers != NULL)
		*lingers = loop->co.lingers;
	if (fruitful != NULL)
		*fruitful = loop->co.fruitful;
}
