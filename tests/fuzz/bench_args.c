/* bench_args.c -- fuzz bench_parse (cmd/bench/parse.c) with argv built from the input.
 *
 * The input split at NUL bytes is argv after "bench".  Properties: the
 * result is 0 (run), -1 (--help/--version printed) or 2 (usage error
 * printed); a config to run is consistent (room for the id and the
 * newline, no more threads than connections, a datagram that fits, the
 * prefix's length, a positive timeout) and, when small, builds the request
 * template; no word is read past its end.
 */
#include <math.h>
#include <netinet/in.h>

#include "bench.h"
#include "codec.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	fuzz_quiet();
	return 0;
}

static void check_config(const struct bench_config *cfg)
{
	FUZZ_CHECK(cfg->mode >= BENCH_ONCE && cfg->mode < BENCH_MODES);
	/* -U PATH replaces HOST PORT */
	FUZZ_CHECK(cfg->unix_path != NULL ||
		   (cfg->host != NULL && cfg->host[0] != '\0' && cfg->host_arg != NULL));
	FUZZ_CHECK(cfg->port >= 0 && cfg->port <= 65535);
	FUZZ_CHECK(cfg->lined == (cfg->mode == BENCH_LINE || cfg->mode == BENCH_ECHO));
	FUZZ_CHECK(cfg->size >= 8u + (unsigned)cfg->lined);
	FUZZ_CHECK(cfg->conns >= 1 && cfg->threads >= 1 && cfg->threads <= cfg->conns);
	FUZZ_CHECK(cfg->depth >= 1 && cfg->timeout_ms > 0);
	FUZZ_CHECK(cfg->rate == 0 || (isfinite(cfg->rate) && cfg->rate > 0));
	FUZZ_CHECK(cfg->prefix != NULL && cfg->prefix_len == strlen(cfg->prefix));
	FUZZ_CHECK(!cfg->echo || cfg->prefix_len == 0);
	FUZZ_CHECK(cfg->mode != BENCH_UDP || cfg->size + cfg->prefix_len <= SOCKIT_UDP_MAX);
	if (cfg->size <= 4096 && cfg->prefix_len <= 4096) {
		struct bench_tmpl tm;
		FUZZ_CHECK(bench_tmpl_init(&tm, cfg->size, cfg->lined, cfg->prefix,
					   cfg->prefix_len) == 0);
		FUZZ_CHECK(tm.reply_len == cfg->prefix_len + cfg->size);
		FUZZ_CHECK(tm.id_len >= 8 && tm.id_len <= 16);
		FUZZ_CHECK(!cfg->lined || tm.msg[cfg->size - 1] == '\n');
		bench_tmpl_free(&tm);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	struct fuzz_argv a;
	struct bench_config cfg;
	fuzz_argv_make(&a, "bench", data, size);
	int rc = bench_parse(a.argc, a.argv, &cfg);
	FUZZ_CHECK(rc == 0 || rc == -1 || rc == 2);
	if (rc == 0)
		check_config(&cfg);
	fuzz_argv_free(&a);
	return 0;
}
