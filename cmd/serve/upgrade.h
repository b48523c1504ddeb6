/* upgrade.h -- SIGUSR2: start the binary now on disk with our listeners, drain once it is ready.
 *
 * The old process forks and executes the path /proc/self/exe named at
 * startup (so a file replaced since is the new binary) with the same
 * arguments.  The listeners go as systemd passes sockets: descriptors 3,
 * 4, ... with LISTEN_FDS, LISTEN_FDNAMES ("tcp", "udp", "metrics") and
 * LISTEN_PID (the child's own pid, written between fork and exec).  The
 * child reports through a pipe whose descriptor SOCKIT_READY_FD names:
 * "READY" once it listens and its workers run; "ERR n" when exec failed
 * (errno n); EOF when it died first.  Nothing is closed before the child
 * holds it: it inherits the very sockets, queued connections included.
 */
#ifndef SOCKIT_SERVE_UPGRADE_H
#define SOCKIT_SERVE_UPGRADE_H

#include <limits.h>
#include <sys/types.h>

#include "worker.h"

#define UPGRADE_TIMEOUT_MS 10000 /* the new process must be ready this soon */

/* Called on the owner's loop when the new process is ready. */
typedef void (*upgrade_ready_cb)(void *arg, pid_t pid);

struct upgrade {
	const struct serve_log *lg;
	sockit_loop *loop;
	char exe[PATH_MAX]; /* "" when /proc/self/exe could not be read */
	int exe_err;
	int parent_fd; /* SOCKIT_READY_FD: to tell the parent that we are ready, or -1 */
	pid_t child;   /* the new process while it starts, or 0 */
	int pipe_fd;   /* its end of the readiness pipe, or -1 */
	sockit_timer timer;
	char buf[32];
	size_t got;
	upgrade_ready_cb ready;
	void *arg;
};

/* At startup, before any thread: notes our binary's path and takes the
 * readiness descriptor a parent passed (SOCKIT_READY_FD, then unset). */
void upgrade_init(struct upgrade *u, const struct serve_log *lg, sockit_loop *loop);

/* Starts the new process with the workers' listeners and metrics_fd (or
 * -1).  ready is called when it is; a failure is logged here and this
 * process goes on serving.  0, or a negative code (already logged). */
int upgrade_start(struct upgrade *u, const struct serve_config *cfg, const struct serve_shared *sh,
		  int metrics_fd, upgrade_ready_cb ready, void *arg);

/* The new process's side: tells the parent (if any) that we serve. */
void upgrade_notify_parent(struct upgrade *u);

/* Stops waiting (a child still starting is killed). */
void upgrade_free(struct upgrade *u);

#endif /* SOCKIT_SERVE_UPGRADE_H */
