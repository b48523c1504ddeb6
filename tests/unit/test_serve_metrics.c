/* test_serve_metrics.c -- the duration buckets and the exposition text of fake workers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "worker.h"

static void test_buckets(void **state)
{
	(void)state;
	assert_int_equal(dur_bucket(0), 0);
	assert_int_equal(dur_bucket(249), 0); /* < 250us */
	assert_int_equal(dur_bucket(250), 1); /* < 500us */
	assert_int_equal(dur_bucket(499), 1);
	assert_int_equal(dur_bucket(500), 2); /* < 1ms */
	assert_int_equal(dur_bucket(999), 2);
	assert_int_equal(dur_bucket(1000), 3);	   /* < 2ms */
	assert_int_equal(dur_bucket(1100000), 13); /* 1.1s: < 2.048s */
	assert_int_equal(dur_bucket(((uint64_t)DUR_BASE_US << (DUR_FINITE - 1)) - 1),
			 DUR_FINITE - 1);
	assert_int_equal(dur_bucket((uint64_t)DUR_BASE_US << DUR_FINITE), DUR_FINITE);
	assert_int_equal(dur_bucket(UINT64_MAX), DUR_FINITE);
	/* every bound: the last value below it is inside, the bound outside */
	for (unsigned k = 0; k < DUR_FINITE; k++) {
		uint64_t bound = (uint64_t)DUR_BASE_US << k;
		assert_true(dur_bucket(bound - 1) <= k);
		assert_true(dur_bucket(bound) > k);
	}
}

static const char *line_of(const char *text, const char *start)
{
	size_t n = strlen(start);
	for (const char *p = text; p != NULL && *p != '\0';) {
		if (strncmp(p, start, n) == 0)
			return p;
		p = strchr(p, '\n');
		p = p != NULL ? p + 1 : NULL;
	}
	return NULL;
}

static void assert_line(const char *text, const char *line)
{
	const char *p = line_of(text, line);
	if (p == NULL || (p[strlen(line)] != '\n' && p[strlen(line)] != '\0'))
		fail_msg("no line '%s' in:\n%s", line, text);
}

static void test_render(void **state)
{
	(void)state;
	struct worker *w = aligned_alloc(64, 2 * sizeof(*w)); /* as run.c: aligned */
	assert_non_null(w);
	memset(w, 0, 2 * sizeof(*w));
	struct serve_shared sh = {.workers = w, .nworkers = 2};
	w[0].ctr.accepted = 3;
	w[1].ctr.accepted = 4;
	w[1].ctr.active = 2;
	w[0].ctr.closed_eof = 5;
	w[1].ctr.refused_perip = 1;
	w[0].ctr.dgrams_dropped_rate = 9;
	w[0].dur.bucket[0] = 2;
	w[1].dur.bucket[3] = 1;
	w[1].dur.bucket[DUR_FINITE] = 1;
	w[0].dur.sum_us = 1500000;
	struct mbuf b = {0};
	metrics_render(&b, &sh);
	assert_false(b.oom);
	mbuf_printf(&b, "%c", '\0');
	const char *t = b.p;
	assert_line(t, "sockit_connections_accepted_total 7");
	assert_line(t, "sockit_connections_closed_total{reason=\"eof\"} 5");
	assert_line(t, "sockit_connections_closed_total{reason=\"done\"} 0");
	assert_line(t, "sockit_connections_refused_total{reason=\"perip\"} 1");
	assert_line(t, "sockit_datagrams_dropped_total{reason=\"rate\"} 9");
	assert_line(t, "sockit_connections_active{worker=\"0\"} 0");
	assert_line(t, "sockit_connections_active{worker=\"1\"} 2");
	assert_line(t, "sockit_connections_open 2");
	assert_line(t, "sockit_connection_duration_seconds_bucket{le=\"0.00025\"} 2");
	assert_line(t, "sockit_connection_duration_seconds_bucket{le=\"0.001\"} 2");
	assert_line(t, "sockit_connection_duration_seconds_bucket{le=\"0.002\"} 3");
	assert_line(t, "sockit_connection_duration_seconds_bucket{le=\"524.288\"} 3");
	assert_line(t, "sockit_connection_duration_seconds_bucket{le=\"+Inf\"} 4");
	assert_line(t, "sockit_connection_duration_seconds_sum 1.500000");
	assert_line(t, "sockit_connection_duration_seconds_count 4");
	/* a family's HELP and TYPE once, before all of its samples */
	const char *type = line_of(t, "# TYPE sockit_connections_closed_total counter");
	assert_non_null(type);
	assert_ptr_equal(strstr(t, "# TYPE sockit_connections_closed_total"), type);
	const char *last = NULL;
	for (const char *p = t; (p = strstr(p, "\nsockit_connections_closed_total{")) != NULL; p++)
		last = p;
	assert_true(last > type);
	assert_null(strstr(type + 1, "# TYPE sockit_connections_closed_total"));
	/* no family for the active counter: it is a gauge */
	assert_null(strstr(t, "sockit_active_total"));
	mbuf_free(&b);
	free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buckets),
		cmocka_unit_test(test_render),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
