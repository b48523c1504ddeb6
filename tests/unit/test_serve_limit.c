/* test_serve_limit.c -- serve's admission rules: allow/deny, per-IP counts, UDP rate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "serve.h"
#include "testutil.h"

static sockit_addr ip(const char *s)
{
	sockit_addr a;
	int rc = sockit_addr_from_ip(s, 4242, &a);
	if (rc < 0)
		fail_msg("sockit_addr_from_ip(\"%s\") = %d (%s)", s, rc, sockit_strerror(rc));
	return a;
}

static void want_acl(const struct serve_config *cfg, const char *s, int want)
{
	sockit_addr a = ip(s);
	int got = serve_acl_allows(cfg, &a);
	if (got != want)
		fail_msg("serve_acl_allows(%s) = %d, want %d", s, got, want);
}

static void test_acl(void **state)
{
	(void)state;
	sockit_cidr allow[2], deny[1];
	assert_ok(sockit_cidr_parse("10.0.0.0/8", &allow[0]));
	assert_ok(sockit_cidr_parse("::1/128", &allow[1]));
	assert_ok(sockit_cidr_parse("10.9.0.0/16", &deny[0]));
	struct serve_config cfg;
	memset(&cfg, 0, sizeof(cfg));

	want_acl(&cfg, "192.0.2.1", 1); /* no lists: everyone */
	cfg.deny = deny;
	cfg.ndeny = 1;
	want_acl(&cfg, "10.9.1.1", 0);
	want_acl(&cfg, "192.0.2.1", 1); /* deny only: the rest may come */
	cfg.allow = allow;
	cfg.nallow = 2;
	want_acl(&cfg, "10.1.2.3", 1);
	want_acl(&cfg, "10.9.1.1", 0);	/* deny wins over allow */
	want_acl(&cfg, "192.0.2.1", 0); /* an allow list excludes the rest */
	want_acl(&cfg, "::1", 1);
	want_acl(&cfg, "::ffff:10.1.2.3", 1); /* v4-mapped meets v4 rules */
	want_acl(&cfg, "::ffff:10.9.0.1", 0);
}

static void test_ip_table_limit(void **state)
{
	(void)state;
	struct ip_table *t = ip_table_new(2);
	assert_non_null(t);
	sockit_addr a = ip("192.0.2.1"), mapped = ip("::ffff:192.0.2.1"), b = ip("2001:db8::1");
	struct ip_entry *e1 = ip_table_acquire(t, &a);
	struct ip_entry *e2 = ip_table_acquire(t, &mapped); /* the same client */
	assert_non_null(e1);
	assert_ptr_equal(e1, e2);
	assert_null(ip_table_acquire(t, &a)); /* third from the same IP */
	struct ip_entry *eb = ip_table_acquire(t, &b);
	assert_non_null(eb); /* others are not affected */
	ip_table_release(t, e1);
	struct ip_entry *e3 = ip_table_acquire(t, &a); /* a slot freed */
	assert_non_null(e3);
	assert_null(ip_table_acquire(t, &a));
	ip_table_release(t, e2);
	ip_table_release(t, e3); /* count 0: the entry is freed (valgrind checks) */
	ip_table_release(t, eb);
	e1 = ip_table_acquire(t, &a);
	assert_non_null(e1);
	ip_table_release(t, e1);
	ip_table_free(t);
}

static int allowed_of(struct rate_table *t, const sockit_addr *a, uint64_t now, int tries)
{
	int n = 0;
	for (int i = 0; i < tries; i++)
		n += rate_table_allow(t, a, now);
	return n;
}

static void test_rate_bucket(void **state)
{
	(void)state;
	struct rate_table *t = rate_table_new(5);
	assert_non_null(t);
	sockit_addr a = ip("192.0.2.1"), b = ip("192.0.2.2");
	uint64_t now = 1000000;
	assert_int_equal(allowed_of(t, &a, now, 20), 5);	 /* burst = rate */
	assert_int_equal(allowed_of(t, &b, now, 20), 5);	 /* per source */
	assert_int_equal(allowed_of(t, &a, now + 100, 20), 0);	 /* 0.5 token: not yet */
	assert_int_equal(allowed_of(t, &a, now + 200, 20), 1);	 /* 1 token in 200 ms */
	assert_int_equal(allowed_of(t, &a, now + 60000, 20), 5); /* refill capped at burst */
	rate_table_free(t);
}

static void test_rate_table_is_bounded(void **state)
{
	(void)state;
	struct rate_table *t = rate_table_new(1);
	assert_non_null(t);
	char s[32];
	/* Far more sources than slots: each new one still gets its burst
	 * (evicting the least recently seen), memory stays fixed. */
	for (int i = 0; i < 20000; i++) {
		snprintf(s, sizeof(s), "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
		sockit_addr a = ip(s);
		if (rate_table_allow(t, &a, 5000 + (uint64_t)i) != 1)
			fail_msg("new source %s was refused", s);
	}
	rate_table_free(t);
}

/* Unix peers: per UID for connections, per sender address for datagrams,
 * never denied by IP blocks. */
static void test_unix_peers(void **state)
{
	(void)state;
	struct ip_table *t = ip_table_new(1);
	assert_non_null(t);
	struct ip_entry *e0 = ip_table_acquire_uid(t, 0);
	assert_non_null(e0);
	assert_null(ip_table_acquire_uid(t, 0));
	struct ip_entry *e1 = ip_table_acquire_uid(t, 1000);
	assert_non_null(e1);
	sockit_addr a = ip("0.0.0.0"); /* key bytes of uid 0 must not alias an IP */
	struct ip_entry *ea = ip_table_acquire(t, &a);
	assert_non_null(ea);
	ip_table_release(t, e0);
	e0 = ip_table_acquire_uid(t, 0);
	assert_non_null(e0);
	ip_table_release(t, e0);
	ip_table_release(t, e1);
	ip_table_release(t, ea);
	ip_table_free(t);

	struct rate_table *r = rate_table_new(2);
	assert_non_null(r);
	sockit_addr u1, u2;
	assert_int_equal(sockit_addr_from_path("/run/a.sock", &u1), 0);
	assert_int_equal(sockit_addr_from_path("@00ab1", &u2), 0);
	assert_int_equal(allowed_of(r, &u1, 1000, 10), 2);
	assert_int_equal(allowed_of(r, &u2, 1000, 10), 2); /* per sender */
	assert_int_equal(allowed_of(r, &u1, 1000, 10), 0);
	rate_table_free(r);

	struct serve_config cfg;
	serve_config_defaults(&cfg);
	assert_int_equal(serve_parse(3, (char *[]){"serve", "--allow", "10.0.0.0/8", NULL}, &cfg),
			 -1);
	assert_int_equal(serve_acl_allows(&cfg, &u1), 1);
	serve_config_free(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_acl),	    cmocka_unit_test(test_ip_table_limit),
		cmocka_unit_test(test_rate_bucket), cmocka_unit_test(test_rate_table_is_bounded),
		cmocka_unit_test(test_unix_peers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
