/* test_connect_summary.c -- `sockit connect`'s messages, -v text and --json. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "connect.h"
#include "testutil.h"

static struct connect_config config(const char *host, int port)
{
	return (struct connect_config){
		.host = host, .name = host, .port = port, .connect_ms = 10000};
}

static void add_failure(struct connect_attempts *att, const char *addr, int error)
{
	assert_ok(sockit_addr_parse(addr, &att->failed[att->nfailed].addr));
	att->failed[att->nfailed++].error = error;
}

static void describe(const struct connect_config *cfg, const struct connect_attempts *att,
		     const char *want)
{
	struct connect_result res = {0};
	connect_describe_failure(cfg, att, &res);
	assert_int_equal(res.end, att->nfailed == 0 && SOCKIT_IS_EAI(att->resolve_error)
					  ? END_RESOLVE_FAILED
					  : END_CONNECT_FAILED);
	if (strcmp(res.error, want) != 0)
		fail_msg("message\n  \"%s\"\nwant\n  \"%s\"", res.error, want);
}

/* issue 19, item 11: the address once, the timeout's length, the next step. */
static void test_one_address(void **state)
{
	(void)state;
	struct connect_config cfg = config("127.0.0.1", 1);
	struct connect_attempts att = {.rounds = 1, .timeout_ms = 10000};
	add_failure(&att, "127.0.0.1:1", -ECONNREFUSED);
	describe(&cfg, &att,
		 "cannot connect to 127.0.0.1:1: connection refused (is the server running?)");
	att.failed[0].error = -ETIMEDOUT;
	describe(&cfg, &att, "cannot connect to 127.0.0.1:1: connection timed out after 10s");
	att.failed[0].error = -EMFILE;
	describe(&cfg, &att,
		 "cannot connect to 127.0.0.1:1: too many open files (raise the limit with ulimit "
		 "-n)");
	att.failed[0].error = -ECONNREFUSED;
	att.rounds = 4;
	att.took_ms = 1500;
	describe(
		&cfg, &att,
		"cannot connect to 127.0.0.1:1: connection refused (still closed after 4 rounds in "
		"1.5s; is the server running?)");
	cfg = config("db.example", 5432);
	att = (struct connect_attempts){.rounds = 1, .timeout_ms = 500};
	add_failure(&att, "192.0.2.1:5432", -ETIMEDOUT);
	describe(&cfg, &att,
		 "cannot connect to db.example (192.0.2.1:5432): connection timed out after 500ms");
}

static void test_several_addresses(void **state)
{
	(void)state;
	struct connect_config cfg = config("localhost", 5);
	struct connect_attempts att = {.rounds = 1, .timeout_ms = 2000};
	add_failure(&att, "[::1]:5", -ETIMEDOUT);
	add_failure(&att, "127.0.0.1:5", -ECONNREFUSED);
	describe(&cfg, &att,
		 "cannot connect to localhost port 5:\n"
		 "  [::1]:5: connection timed out after 2s\n"
		 "  127.0.0.1:5: connection refused (is the server running?)");
}

static void test_resolve_failure(void **state)
{
	(void)state;
	struct connect_config cfg = config("no.such.invalid", 80);
	struct connect_attempts att = {.rounds = 1};
	att.resolve_error = SOCKIT_EAI_BASE - 2; /* any resolver code */
	struct connect_result res = {0};
	connect_describe_failure(&cfg, &att, &res);
	assert_int_equal(res.end, END_RESOLVE_FAILED);
	assert_non_null(strstr(res.error, "cannot resolve 'no.such.invalid' port 80: "));
	assert_int_equal(connect_exit_code(&res), 1);
}

static void test_exit_codes(void **state)
{
	(void)state;
	struct connect_result res = {.end = END_FIN};
	assert_int_equal(connect_exit_code(&res), 0);
	res.end = END_DONE;
	assert_int_equal(connect_exit_code(&res), 0);
	res.end = END_IDLE;
	assert_int_equal(connect_exit_code(&res), 1);
	res.end = END_ERROR;
	assert_int_equal(connect_exit_code(&res), 1);
	res = (struct connect_result){.end = END_SIGNAL, .signo = 2};
	assert_int_equal(connect_exit_code(&res), 130);
	assert_string_equal(connect_end_name(END_IDLE), "idle-timeout");
	assert_string_equal(connect_end_name(END_STDOUT), "stdout-closed");
}

/* The first result message wins. */
static void test_first_failure_wins(void **state)
{
	(void)state;
	struct connect_result res = {0};
	connect_result_fail(&res, END_RESET, "connection reset by %s", "x");
	connect_result_fail(&res, END_ERROR, "later");
	assert_int_equal(res.end, END_RESET);
	assert_string_equal(res.error, "connection reset by x");
}

static char *report(const struct connect_config *cfg, const struct connect_attempts *att,
		    const struct connect_result *res)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	connect_report(f, cfg, att, res, 12.5);
	fclose(f);
	return buf;
}

/* issue 19, item 10: the keys bench shares, spelled the same. */
static void test_json(void **state)
{
	(void)state;
	struct connect_config cfg = config("local\"host", 7);
	cfg.json = 1;
	struct connect_attempts att = {.rounds = 1, .connected = 1, .timeout_ms = 10000};
	add_failure(&att, "[::1]:7", -ECONNREFUSED);
	assert_ok(sockit_addr_parse("127.0.0.1:7", &att.used));
	struct connect_result res = {.bytes_sent = 3, .bytes_received = 4, .end = END_FIN};
	char *out = report(&cfg, &att, &res);
	const char *want =
		"{\"host\":\"local\\\"host\",\"port\":7,\"proto\":\"tcp\",\"address\":\"127.0.0.1:"
		"7\","
		"\"attempts\":[{\"address\":\"[::1]:7\",\"error\":\"connection refused\"},"
		"{\"address\":\"127.0.0.1:7\",\"error\":null}],\"connect_ms\":0,\"rounds\":1,"
		"\"bytes_sent\":3,"
		"\"bytes_received\":4,\"datagrams_sent\":0,\"datagrams_received\":0,"
		"\"duration_ms\":12.500,\"end\":\"fin\",\"exit\":0,\"error\":null}\n";
	if (strcmp(out, want) != 0)
		fail_msg("json\n  %s\nwant\n  %s", out, want);
	free(out);
}

static void test_text(void **state)
{
	(void)state;
	struct connect_config cfg = config("127.0.0.1", 7);
	cfg.verbose = 1;
	struct connect_attempts att = {.rounds = 1, .connected = 1};
	assert_ok(sockit_addr_parse("127.0.0.1:7", &att.used));
	struct connect_result res = {.bytes_sent = 3, .end = END_IDLE};
	snprintf(res.error, sizeof(res.error), "idle timeout: no data either way for 1s");
	char *out = report(&cfg, &att, &res);
	assert_string_equal(out, "sockit connect: idle timeout: no data either way for 1s\n"
				 "sockit connect: connected to 127.0.0.1:7 (tcp)\n"
				 "sockit connect: sent 3 bytes, received 0 bytes, 13ms, "
				 "end=idle-timeout exit=1\n");
	free(out);
}

/* issues 15 and 17: the TLS fields and a Unix socket in -v and --json. */
static void test_tls_unix(void **state)
{
	(void)state;
	struct connect_config cfg = config("@s", 0);
	cfg.unix_path = "@s";
	cfg.tls = cfg.verbose = 1;
	struct connect_attempts att = {.rounds = 1, .connected = 1, .connect_ms = 2};
	assert_ok(sockit_addr_from_path("@s", &att.used));
	struct connect_result res = {.end = END_TRUNCATED};
	res.tls = (struct connect_tls_info){.done = 1,
					    .version = "TLSv1.3",
					    .cipher = "TLS_AES_128_GCM_SHA256",
					    .subject = "CN=localhost"};
	char *out = report(&cfg, &att, &res);
	assert_string_equal(out, "sockit connect: connected to @s (unix)\n"
				 "sockit connect: TLS TLSv1.3 TLS_AES_128_GCM_SHA256, peer "
				 "CN=localhost, verified\n"
				 "sockit connect: sent 0 bytes, received 0 bytes, 13ms, "
				 "end=truncated exit=1\n");
	free(out);
	cfg.verbose = 0;
	cfg.json = 1;
	cfg.tls_insecure = 1;
	out = report(&cfg, &att, &res);
	const char *want = "{\"host\":\"@s\",\"port\":null,\"proto\":\"unix\",\"address\":\"@s\","
			   "\"attempts\":[{\"address\":\"@s\",\"error\":null}],\"connect_ms\":2,"
			   "\"tls_version\":\"TLSv1.3\",\"tls_cipher\":\"TLS_AES_128_GCM_SHA256\","
			   "\"tls_peer_subject\":\"CN=localhost\",\"tls_resumed\":false,"
			   "\"tls_verified\":false,\"rounds\":1,";
	if (strncmp(out, want, strlen(want)) != 0)
		fail_msg("json\n  %s\nwant\n  %s...", out, want);
	free(out);
	res.end = END_TLS_FAILED;
	assert_string_equal(connect_end_name(res.end), "tls-failed");
	assert_int_equal(connect_exit_code(&res), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_address),
		cmocka_unit_test(test_several_addresses),
		cmocka_unit_test(test_resolve_failure),
		cmocka_unit_test(test_exit_codes),
		cmocka_unit_test(test_first_failure_wins),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_text),
		cmocka_unit_test(test_tls_unix),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
