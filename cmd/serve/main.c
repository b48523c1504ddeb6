/* main.c -- `sockit serve`: parse the command line into a config, run it, exit. */
#include <stdlib.h>

#include "cli.h"
#include "serve.h"

int cmd_serve(int argc, char **argv)
{
	struct serve_config cfg;
	serve_config_defaults(&cfg);
	int rc = serve_parse(argc, argv, &cfg);
	/* systemd's sockets; an upgrading parent's are taken in listen.c. */
	if (rc < 0 && getenv("SOCKIT_READY_FD") == NULL)
		rc = serve_sd_adopt(&cfg);
	if (rc < 0)
		rc = serve_run(&cfg);
	serve_config_free(&cfg);
	return cli_stdout_done("serve", rc);
}
