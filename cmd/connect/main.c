/* main.c -- `sockit connect`: a netcat-style client (parse, run, exit). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "cli.h"
#include "connect.h"

#define CMD "connect"

/* Makes sure fds 0, 1 and 2 are open, so a socket never lands on them.  A
 * closed stdout gets /dev/null opened read-only, so that every write to it
 * still fails (EBADF), as it would have.  Returns whether stdout was
 * closed. */
static int keep_std_fds_open(void)
{
	int stdout_closed = 0;
	for (int fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		if (fd == STDOUT_FILENO)
			stdout_closed = 1;
		int nfd = open("/dev/null", fd == 2 ? O_WRONLY : O_RDONLY);
		if (nfd >= 0 && nfd != fd) {
			dup2(nfd, fd);
			close(nfd);
		}
	}
	return stdout_closed;
}

int cmd_connect(int argc, char **argv)
{
	struct connect_config cfg;
	int rc = connect_parse(argc, argv, &cfg);
	if (rc == CONNECT_PARSE_HELP) {
		fputs(connect_help, stdout);
		return cli_stdout_done(CMD, 0);
	}
	if (rc == CONNECT_PARSE_VERSION) {
		cli_print_version();
		return cli_stdout_done(CMD, 0);
	}
	if (rc != 0)
		return cli_stdout_done(CMD, rc);
	int stdout_closed = keep_std_fds_open();
	int signo = 0;
	rc = connect_run(&cfg, &signo);
	if (signo != 0)
		cli_die_of_signal(signo);
	/* A closed stdout is a failure even when nothing was written: put it
	 * back the way it was for cli_stdout_done, unless a failed write
	 * already said so (rc is then 1). */
	if (stdout_closed && rc == 0)
		close(STDOUT_FILENO);
	return cli_stdout_done(CMD, rc);
}
