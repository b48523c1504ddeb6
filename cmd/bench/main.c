/* main.c -- `sockit bench`: a load generator that checks every reply.  Parse, run, report. */
#include <stdio.h>

#include "bench.h"
#include "cli.h"

#define CMD "bench"

int cmd_bench(int argc, char **argv)
{
	struct bench_config cfg;
	struct bench_outcome o;
	int rc = bench_parse(argc, argv, &cfg);
	if (rc != 0)
		return cli_stdout_done(CMD, rc < 0 ? 0 : rc);
	if ((rc = bench_tls_init(&cfg)) != 0)
		return cli_stdout_done(CMD, rc);
	bench_run(&cfg, &o);
	bench_tls_free(&cfg);
	if (cfg.json)
		bench_report_json(&cfg, &o);
	else
		bench_report_text(&cfg, &o);
	fflush(stdout);
	if (o.error[0] != '\0')
		cli_error(CMD, "%s%s%s%s", o.started ? "FAILED: " : "", o.error, o.hint ? ": " : "",
			  o.hint ? o.hint : "");
	if (o.signo != 0)
		cli_die_of_signal(o.signo);
	return cli_stdout_done(CMD, o.exit);
}
