/* serve_args.c -- fuzz serve_parse (cmd/serve/parse.c) with argv built from the input.
 *
 * The input split at NUL bytes is argv after "serve".  Properties: the
 * result is -1 (run), 0 (--help/--version printed) or 2 (usage error
 * printed); a config to run is consistent (a host, a listener, bounded
 * sizes, prefix_len = strlen(prefix), the coalescing decided); what the
 * parser allocates is freed by serve_config_free (LeakSanitizer checks);
 * no word is read past its end (each is an exact-size block).
 */
#include <netinet/in.h>

#include "fuzz.h"
#include "serve.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	fuzz_quiet();
	return 0;
}

static void check_config(const struct serve_config *cfg)
{
	FUZZ_CHECK(cfg->host != NULL && cfg->host[0] != '\0');
	FUZZ_CHECK(cfg->port >= 0 && cfg->port <= 65535);
	FUZZ_CHECK(cfg->family == AF_UNSPEC || cfg->family == AF_INET || cfg->family == AF_INET6);
	FUZZ_CHECK(cfg->tcp || cfg->udp);
	FUZZ_CHECK(cfg->mode == MODE_ONCE || cfg->mode == MODE_LINE || cfg->mode == MODE_ECHO);
	FUZZ_CHECK(cfg->max_bytes >= 1 && cfg->max_line >= 1 && cfg->max_pending >= 1);
	FUZZ_CHECK(cfg->prefix != NULL && cfg->prefix_len == strlen(cfg->prefix));
	FUZZ_CHECK(cfg->coalesce_us >= 0 && cfg->coalesce_us <= 1000000);
	FUZZ_CHECK(cfg->workers >= 0 && cfg->workers <= 1024);
	FUZZ_CHECK((cfg->nallow == 0) == (cfg->allow == NULL));
	FUZZ_CHECK((cfg->ndeny == 0) == (cfg->deny == NULL));
	FUZZ_CHECK(!cfg->dualstack || strcmp(cfg->host, "::") == 0);
	for (size_t i = 0; i < cfg->nallow; i++)
		FUZZ_CHECK(cfg->allow[i].family == AF_INET || cfg->allow[i].family == AF_INET6);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	struct fuzz_argv a;
	struct serve_config cfg;
	fuzz_argv_make(&a, "serve", data, size);
	serve_config_defaults(&cfg);
	int rc = serve_parse(a.argc, a.argv, &cfg);
	FUZZ_CHECK(rc == -1 || rc == 0 || rc == 2);
	if (rc == -1)
		check_config(&cfg);
	serve_config_free(&cfg);
	fuzz_argv_free(&a);
	return 0;
}
