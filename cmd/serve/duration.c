/* duration.c -- connection durations for --metrics: accept times by fd, a histogram at close.
 *
 * Cost per connection, only with --metrics: one store at accept (the
 * array grows by doubling when a descriptor number passes its end, so not
 * per connection), and at close one subtraction, one bucket index and two
 * relaxed stores -- no lock, no system call.  The clock is the worker
 * loop's, read once per wake: a connection served within one wake lasts 0.
 */
#include <stdlib.h>
#include <string.h>

#include "worker.h"

#define BORN_MIN 256

void duration_open(struct worker *w, int fd)
{
	if (fd < 0)
		return;
	if ((size_t)fd >= w->nborn) {
		size_t n = w->nborn ? w->nborn : BORN_MIN;
		while (n <= (size_t)fd)
			n *= 2;
		uint64_t *grown = realloc(w->born, n * sizeof(*grown));
		if (grown == NULL)
			return; /* this one goes unmeasured */
		memset(grown + w->nborn, 0, (n - w->nborn) * sizeof(*grown));
		w->born = grown;
		w->nborn = n;
	}
	w->born[fd] = sockit_loop_now_ns(w->loop);
}

void duration_close(struct worker *w, int fd)
{
	if (fd < 0 || (size_t)fd >= w->nborn || w->born[fd] == 0)
		return;
	uint64_t us = (sockit_loop_now_ns(w->loop) - w->born[fd]) / 1000;
	w->born[fd] = 0;
	unsigned k = dur_bucket(us);
	__atomic_store_n(&w->dur.bucket[k], w->dur.bucket[k] + 1, __ATOMIC_RELAXED);
	__atomic_store_n(&w->dur.sum_us, w->dur.sum_us + us, __ATOMIC_RELAXED);
}

void duration_free(struct worker *w)
{
	free(w->born);
	w->born = NULL;
	w->nborn = 0;
}
