/* hist.c -- a log-linear histogram: exact below 256, then 128 buckets per octave. */
#include <math.h>
#include <string.h>

#include "hist.h"

void hist_init(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

unsigned hist_index(uint64_t v)
{
	if (v < 2 * HIST_SUB)
		return (unsigned)v;
	unsigned msb = 63u - (unsigned)__builtin_clzll(v); /* >= HIST_SUB_BITS + 1 */
	unsigned shift = msb - HIST_SUB_BITS;
	return shift * HIST_SUB + (unsigned)(v >> shift); /* v >> shift in [SUB, 2 SUB) */
}

uint64_t hist_bucket_low(unsigned index)
{
	if (index < 2 * HIST_SUB)
		return index;
	unsigned shift = index / HIST_SUB - 1;
	return (uint64_t)(index - shift * HIST_SUB) << shift;
}

uint64_t hist_bucket_width(unsigned index)
{
	if (index < 2 * HIST_SUB)
		return 1;
	return (uint64_t)1 << (index / HIST_SUB - 1);
}

void hist_record_n(struct hist *h, uint64_t v, uint64_t n)
{
	if (n == 0)
		return;
	h->buckets[hist_index(v)] += n;
	h->count += n;
	h->sum += (double)v * (double)n;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void hist_record(struct hist *h, uint64_t v)
{
	hist_record_n(h, v, 1);
}

void hist_merge(struct hist *dst, const struct hist *src)
{
	if (src->count == 0)
		return;
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		dst->buckets[i] += src->buckets[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t hist_percentile(const struct hist *h, double p)
{
	if (h->count == 0)
		return 0;
	if (p <= 0)
		return h->min;
	if (p >= 100)
		return h->max;
	/* rank = ceil(p% of count), shaved so that 99.9% of 1000 is 999, not
	 * 1000 through rounding. */
	double r = p / 100.0 * (double)h->count;
	uint64_t rank = (uint64_t)ceil(r - r * 1e-12);
	if (rank < 1)
		rank = 1;
	if (rank > h->count)
		rank = h->count;
	uint64_t seen = 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen < rank)
			continue;
		uint64_t w = hist_bucket_width(i);
		uint64_t v = hist_bucket_low(i) + (w > 1 ? w / 2 : 0);
		if (v < h->min)
			v = h->min;
		if (v > h->max)
			v = h->max;
		return v;
	}
	return h->max; /* not reached: the buckets add up to count */
}

uint64_t hist_min(const struct hist *h)
{
	return h->count ? h->min : 0;
}

uint64_t hist_max(const struct hist *h)
{
	return h->max;
}

double hist_mean(const struct hist *h)
{
	return h->count ? h->sum / (double)h->count : 0.0;
}
