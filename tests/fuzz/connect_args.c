/* connect_args.c -- fuzz connect_parse (cmd/connect/parse.c) with argv built from the input.
 *
 * The input split at NUL bytes is argv after "connect".  Properties: the
 * result is 0, 2 or CONNECT_PARSE_HELP/VERSION; a config to run names a
 * host (the resolver's form unwrapped from [brackets]), a port in range,
 * DATA words that are argv's own; no word is read past its end.
 */
#include <netinet/in.h>

#include "connect.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	fuzz_quiet();
	return 0;
}

static void check_config(const struct connect_config *cfg, const struct fuzz_argv *a)
{
	/* -U PATH replaces HOST PORT: then every word left is DATA */
	if (cfg->unix_path == NULL) {
		FUZZ_CHECK(cfg->host != NULL && cfg->host[0] != '\0' && cfg->name != NULL);
		FUZZ_CHECK(cfg->name == cfg->host || cfg->name == cfg->name_buf);
	}
	FUZZ_CHECK(cfg->port >= 0 && cfg->port <= 65535);
	FUZZ_CHECK(cfg->family == AF_UNSPEC || cfg->family == AF_INET || cfg->family == AF_INET6);
	FUZZ_CHECK(cfg->ndata >= 0 && cfg->ndata <= a->argc - (cfg->unix_path != NULL ? 1 : 3));
	FUZZ_CHECK((cfg->ndata == 0) == (cfg->data == NULL));
	for (int i = 0; i < cfg->ndata; i++) {
		int found = 0;
		for (int j = 1; j < a->argc; j++)
			found |= cfg->data[i] == a->words[j];
		FUZZ_CHECK(found);
	}
	FUZZ_CHECK(!(cfg->zero && (cfg->udp || cfg->ndata > 0)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	struct fuzz_argv a;
	struct connect_config cfg;
	fuzz_argv_make(&a, "connect", data, size);
	int rc = connect_parse(a.argc, a.argv, &cfg);
	FUZZ_CHECK(rc == 0 || rc == 2 || rc == CONNECT_PARSE_HELP || rc == CONNECT_PARSE_VERSION);
	if (rc == 0)
		check_config(&cfg, &a);
	fuzz_argv_free(&a);
	return 0;
}
