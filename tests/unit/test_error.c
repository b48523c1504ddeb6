/* test_error.c -- sockit_strerror for 0, -errno, resolver codes and unknowns. */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "sockit.h"

static void test_success(void **state)
{
	(void)state;
	assert_string_equal(sockit_strerror(0), "success");
}

static void test_errno_range(void **state)
{
	(void)state;
	assert_string_equal(sockit_strerror(-ECONNREFUSED), "connection refused");
	assert_string_equal(sockit_strerror(-EADDRINUSE), "address already in use");
	assert_string_equal(sockit_strerror(-ETIMEDOUT), "connection timed out");
	assert_string_equal(sockit_strerror(-EPIPE), "broken pipe");
	assert_string_equal(sockit_strerror(-EINVAL), "invalid argument");
	assert_string_equal(sockit_strerror(-EMSGSIZE), "message too long");
	/* An acronym keeps its capitals. */
	assert_string_equal(sockit_strerror(-EREMOTEIO), "remote I/O error");
}

static void test_resolver_range(void **state)
{
	(void)state;
	assert_string_equal(sockit_strerror(SOCKIT_EAI_BASE + EAI_NONAME),
			    "name or service not known");
	assert_string_equal(sockit_strerror(SOCKIT_EAI_BASE + EAI_AGAIN),
			    "temporary failure in name resolution");
	assert_string_equal(sockit_strerror(SOCKIT_EAI_BASE + EAI_SERVICE),
			    "servname not supported for ai_socktype");
	assert_true(SOCKIT_IS_EAI(SOCKIT_EAI_BASE + EAI_NONAME));
	assert_true(SOCKIT_IS_EAI(SOCKIT_EAI_BASE + EAI_FAMILY));
	assert_false(SOCKIT_IS_EAI(-ECONNREFUSED));
	assert_false(SOCKIT_IS_EAI(SOCKIT_EAI_BASE));
	assert_false(SOCKIT_IS_EAI(0));
}

static void test_unknown(void **state)
{
	(void)state;
	assert_string_equal(sockit_strerror(-12345), "unknown error -12345");
	assert_string_equal(sockit_strerror(-4000), "unknown error -4000");
	assert_string_equal(sockit_strerror(12), "unknown error 12");
	assert_string_equal(sockit_strerror(SOCKIT_EAI_BASE - 999), "unknown error -10999");
	assert_string_equal(sockit_strerror(SOCKIT_EAI_BASE), "unknown error -10000");
	assert_string_equal(sockit_strerror(-2147483647 - 1), "unknown error -2147483648");
}

/* Known codes are the same static string in every thread. */
static void *other_thread(void *arg)
{
	(void)arg;
	return (void *)sockit_strerror(-ECONNRESET);
}

static void test_thread_safe(void **state)
{
	(void)state;
	pthread_t t;
	void *theirs = NULL;
	assert_int_equal(pthread_create(&t, NULL, other_thread, NULL), 0);
	assert_int_equal(pthread_join(t, &theirs), 0);
	assert_ptr_equal(theirs, sockit_strerror(-ECONNRESET));
	assert_string_equal(theirs, "connection reset by peer");
}

static void test_version(void **state)
{
	(void)state;
	assert_string_equal(sockit_version(), SOCKIT_VERSION);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_success),	       cmocka_unit_test(test_errno_range),
		cmocka_unit_test(test_resolver_range), cmocka_unit_test(test_unknown),
		cmocka_unit_test(test_thread_safe),    cmocka_unit_test(test_version),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
