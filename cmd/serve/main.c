/* main.c -- `sockit serve`: parse the command line into a config, run it, exit. */
#include "cli.h"
#include "serve.h"

int cmd_serve(int argc, char **argv)
{
	struct serve_config cfg;
	serve_config_defaults(&cfg);
	int rc = serve_parse(argc, argv, &cfg);
	if (rc < 0)
		rc = serve_sd_adopt(&cfg);
	if (rc < 0)
		rc = serve_run(&cfg);
	serve_config_free(&cfg);
	return cli_stdout_done("serve", rc);
}
