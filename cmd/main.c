/* main.c -- `sockit`: one binary, one subcommand per file. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "sockit.h"

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *what;
} commands[] = {
	/* one line per subcommand */
	{"serve", cmd_serve, "the tutorial's acknowledgement server (once, line, echo; TCP, UDP)"},
	{"connect", cmd_connect, "a netcat-style client (one-shot, relay, UDP, -z)"},
	{"bench", cmd_bench, "load a server and check every reply"},
	{NULL, NULL, NULL},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: sockit COMMAND [OPTIONS]\n\ncommands:\n");
	for (int i = 0; commands[i].name != NULL; i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].what);
	fprintf(f, "\n'sockit COMMAND --help' describes each; 'sockit --version' prints %s.\n",
		SOCKIT_VERSION);
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2)
		return usage(stderr), 2;
	const char *cmd = argv[1];
	if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0 ||
	    strcmp(cmd, "version") == 0) {
		cli_print_version();
		return cli_stdout_done(NULL, 0);
	}
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0)
		return usage(stdout), cli_stdout_done(NULL, 0);
	for (int i = 0; commands[i].name != NULL; i++)
		if (strcmp(cmd, commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "sockit: unknown command '%s'\n", cmd);
	usage(stderr);
	return 2;
}
