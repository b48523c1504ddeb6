/* test_hist.c -- the histogram: bucket arithmetic, percentiles within the bound, merge. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hist.h"

static struct hist h1, h2, h3; /* ~58 KiB each: not on the stack */

/* A deterministic generator (xorshift64*), so failures reproduce. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The exact percentile of sorted v[0..n) for p in thousandths of a percent
 * (99900 = 99.9%): the value of rank ceil(p * n / 100000), at least 1. */
static uint64_t exact_percentile(const uint64_t *v, size_t n, uint64_t p_milli)
{
	uint64_t rank = (p_milli * n + 99999) / 100000;
	if (rank < 1)
		rank = 1;
	return v[rank - 1];
}

static void assert_within_bound(uint64_t got, uint64_t want, const char *what)
{
	double err = fabs((double)got - (double)want);
	if (err > (double)want * HIST_REL_ERROR) {
		print_error("%s: got %llu, want %llu (+-%.3f%%), off by %.4f%%\n", what,
			    (unsigned long long)got, (unsigned long long)want,
			    100.0 * HIST_REL_ERROR, want ? 100.0 * err / (double)want : 100.0);
		fail();
	}
}

static void check_bucket(uint64_t v)
{
	unsigned i = hist_index(v);
	assert_true(i < HIST_BUCKETS);
	uint64_t lo = hist_bucket_low(i), w = hist_bucket_width(i);
	assert_true(lo <= v);
	assert_true(v - lo < w); /* v < lo + w, without overflow at the top */
	if (i >= 2 * HIST_SUB)
		assert_true(w <= lo / HIST_SUB); /* the relative width bound */
	else
		assert_int_equal(w, 1);
}

static void test_buckets_cover_the_range(void **state)
{
	(void)state;
	unsigned prev = 0;
	for (uint64_t v = 0; v < 200000; v++) {
		check_bucket(v);
		unsigned i = hist_index(v);
		assert_true(i == prev || i == prev + 1); /* monotonic, no gaps */
		prev = i;
	}
	for (unsigned b = 0; b < 64; b++) {
		uint64_t p = (uint64_t)1 << b;
		check_bucket(p);
		check_bucket(p - 1);
		check_bucket(p + 1);
	}
	check_bucket(UINT64_MAX);
	assert_int_equal(hist_index(UINT64_MAX), HIST_BUCKETS - 1);
	for (int k = 0; k < 100000; k++)
		check_bucket(rng() >> (rng() % 64));
}

static void test_small_values_are_exact(void **state)
{
	(void)state;
	hist_init(&h1);
	for (uint64_t v = 1; v <= 100; v++)
		hist_record(&h1, v);
	assert_int_equal(h1.count, 100);
	assert_int_equal(hist_percentile(&h1, 50), 50);
	assert_int_equal(hist_percentile(&h1, 90), 90);
	assert_int_equal(hist_percentile(&h1, 99), 99);
	assert_int_equal(hist_percentile(&h1, 99.9), 100);
	assert_int_equal(hist_percentile(&h1, 100), 100);
	assert_int_equal(hist_percentile(&h1, 0), 1);
	assert_int_equal(hist_min(&h1), 1);
	assert_int_equal(hist_max(&h1), 100);
	assert_true(fabs(hist_mean(&h1) - 50.5) < 1e-9);
}

/* 999 fast values and one slow: p99.9 of 1000 is the 999th, not the
 * slow one (floating-point rounding must not push the rank up). */
static void test_rank_rounding(void **state)
{
	(void)state;
	hist_init(&h1);
	hist_record_n(&h1, 7, 999);
	hist_record(&h1, 200);
	assert_int_equal(hist_percentile(&h1, 99.9), 7);
	assert_int_equal(hist_percentile(&h1, 99.95), 200);
	assert_int_equal(hist_max(&h1), 200);
}

/* Known data: a latency-like spread from 1 us to ~10 s in nanoseconds;
 * every percentile within the documented relative error. */
static void test_percentiles_within_bound(void **state)
{
	(void)state;
	enum { N = 200000 };
	uint64_t *v = malloc(N * sizeof(*v));
	assert_non_null(v);
	hist_init(&h1);
	double sum = 0;
	for (size_t i = 0; i < N; i++) {
		/* log-uniform over 2^10 .. 2^33 ns, plus a fine uniform part */
		unsigned e = 10 + (unsigned)(rng() % 23);
		v[i] = ((uint64_t)1 << e) + rng() % ((uint64_t)1 << e);
		hist_record(&h1, v[i]);
		sum += (double)v[i];
	}
	qsort(v, N, sizeof(*v), cmp_u64);
	static const uint64_t ps[] = {1000, 10000, 25000, 50000, 75000, 90000, 99000, 99900, 99990};
	char what[64];
	for (size_t k = 0; k < sizeof(ps) / sizeof(ps[0]); k++) {
		snprintf(what, sizeof(what), "p%.3f", (double)ps[k] / 1000.0);
		assert_within_bound(hist_percentile(&h1, (double)ps[k] / 1000.0),
				    exact_percentile(v, N, ps[k]), what);
	}
	assert_int_equal(hist_min(&h1), v[0]);
	assert_int_equal(hist_max(&h1), v[N - 1]);
	assert_int_equal(hist_percentile(&h1, 100), v[N - 1]);
	assert_true(fabs(hist_mean(&h1) - sum / N) <= 1e-9 * sum / N);
	free(v);
}

/* Uniform 1..10000: the median is 5000 within the bound, and a bucket
 * midpoint, not its lower edge (which could be 0.78% off). */
static void test_uniform_median(void **state)
{
	(void)state;
	hist_init(&h1);
	for (uint64_t x = 1; x <= 10000; x++)
		hist_record(&h1, x);
	assert_within_bound(hist_percentile(&h1, 50), 5000, "p50");
	assert_within_bound(hist_percentile(&h1, 90), 9000, "p90");
	assert_within_bound(hist_percentile(&h1, 99), 9900, "p99");
	assert_within_bound(hist_percentile(&h1, 99.9), 9990, "p99.9");
}

static void test_merge_equals_recording_all(void **state)
{
	(void)state;
	hist_init(&h1);
	hist_init(&h2);
	hist_init(&h3);
	for (int i = 0; i < 50000; i++) {
		uint64_t x = rng() >> (rng() % 60);
		hist_record(i % 3 ? &h1 : &h2, x);
		hist_record(&h3, x);
	}
	hist_merge(&h1, &h2);
	assert_int_equal(h1.count, h3.count);
	assert_int_equal(h1.min, h3.min);
	assert_int_equal(h1.max, h3.max);
	assert_memory_equal(h1.buckets, h3.buckets, sizeof(h1.buckets));
	assert_int_equal(hist_percentile(&h1, 99), hist_percentile(&h3, 99));
	/* merging an empty histogram changes nothing, min included */
	hist_init(&h2);
	hist_merge(&h1, &h2);
	assert_int_equal(h1.min, h3.min);
	assert_int_equal(h1.count, h3.count);
}

static void test_empty_and_record_n(void **state)
{
	(void)state;
	hist_init(&h1);
	assert_int_equal(hist_percentile(&h1, 50), 0);
	assert_int_equal(hist_min(&h1), 0);
	assert_int_equal(hist_max(&h1), 0);
	assert_true(hist_mean(&h1) == 0.0);
	hist_record_n(&h1, 123456, 0);
	assert_int_equal(h1.count, 0);
	hist_init(&h2);
	hist_record_n(&h1, 123456, 5);
	for (int i = 0; i < 5; i++)
		hist_record(&h2, 123456);
	assert_memory_equal(&h1, &h2, sizeof(h1));
	hist_record(&h1, UINT64_MAX);
	assert_int_equal(hist_max(&h1), UINT64_MAX);
	assert_int_equal(hist_percentile(&h1, 100), UINT64_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buckets_cover_the_range),
		cmocka_unit_test(test_small_values_are_exact),
		cmocka_unit_test(test_rank_rounding),
		cmocka_unit_test(test_percentiles_within_bound),
		cmocka_unit_test(test_uniform_median),
		cmocka_unit_test(test_merge_equals_recording_all),
		cmocka_unit_test(test_empty_and_record_n),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
