/* hist.h -- a log-linear histogram of uint64 values, HdrHistogram-style.
 *
 * Internal to sockit (not installed).  Values below 2 * HIST_SUB are kept
 * exactly; above, each power of two is split into HIST_SUB equal buckets,
 * so a bucket is at most 1/HIST_SUB of its lower bound wide.  Reported
 * percentiles are bucket midpoints clamped to [min, max]: their relative
 * error is at most HIST_REL_ERROR (1/256, about 0.4%) of the exact value.
 * min, max, count and mean are exact.
 *
 * The whole range of uint64 is covered; a histogram is a fixed ~58 KiB
 * struct, never allocates, and recording is O(1).  Not thread-safe: keep
 * one per thread and merge them.
 */
#ifndef SOCKIT_HIST_H
#define SOCKIT_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS) /* buckets per power of two */
/* Values < 2 * HIST_SUB are exact; then shifts 1 .. 64 - HIST_SUB_BITS - 1. */
#define HIST_BUCKETS ((64 - HIST_SUB_BITS) * HIST_SUB + HIST_SUB)
#define HIST_REL_ERROR (1.0 / (2.0 * HIST_SUB))

struct hist {
	uint64_t count;
	uint64_t min; /* UINT64_MAX while empty */
	uint64_t max;
	double sum; /* for the mean; exact up to 2^53 */
	uint64_t buckets[HIST_BUCKETS];
};

/* Empties h. */
void hist_init(struct hist *h);

/* Records value v once / n times. */
void hist_record(struct hist *h, uint64_t v);
void hist_record_n(struct hist *h, uint64_t v, uint64_t n);

/* Adds every value recorded in src to dst. */
void hist_merge(struct hist *dst, const struct hist *src);

/* The value at percentile p (0..100): the smallest recorded value v such
 * that at least p% of the values are <= v, within HIST_REL_ERROR.  p <= 0
 * gives min, p >= 100 gives max.  0 when empty. */
uint64_t hist_percentile(const struct hist *h, double p);

/* Exact figures; 0 when empty. */
uint64_t hist_min(const struct hist *h);
uint64_t hist_max(const struct hist *h);
double hist_mean(const struct hist *h);

/* Bucket arithmetic, exposed for tests: the index of v, and the lowest
 * value and width of a bucket. */
unsigned hist_index(uint64_t v);
uint64_t hist_bucket_low(unsigned index);
uint64_t hist_bucket_width(unsigned index);

#endif /* SOCKIT_HIST_H */
