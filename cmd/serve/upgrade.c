/* upgrade.c -- SIGUSR2: fork, hand the listeners over as systemd would, exec, wait for "READY".
 *
 * fork() in a threaded process: the child may make only async-signal-safe
 * calls until it executes, so everything it needs (argv, the environment,
 * the descriptor lists) is built before the fork, and the child only moves
 * descriptors (fcntl, dup2), writes its pid into the environment,
 * unblocks the signals the loop blocked, and calls execve.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "systemd.h"
#include "upgrade.h"

extern char **environ;

#define PID_ENV "LISTEN_PID="

/* What the child needs, all of it made before fork. */
struct spawn {
	char **argv, **envp;
	int *fds, *tmp;
	int nfds;
	int ready_w; /* the pipe's write end */
	char *pid_env;
	char *names;
	char fds_env[32], ready_env[48];
};

/* Decimal digits of v into p (NUL-terminated); async-signal-safe. */
static size_t put_num(char *p, long v)
{
	char d[24];
	size_t n = 0, len;
	do
		d[n++] = (char)('0' + v % 10);
	while ((v /= 10) > 0);
	for (len = n; n > 0;)
		*p++ = d[--n];
	*p = '\0';
	return len;
}

static void child_exec(const char *exe, struct spawn *s) __attribute__((noreturn));
static void child_exec(const char *exe, struct spawn *s)
{
	int base = SD_LISTEN_FDS_START + s->nfds + 1, err = 0;
	for (int i = 0; i < s->nfds && err == 0; i++) /* first above every target */
		if ((s->tmp[i] = fcntl(s->fds[i], F_DUPFD_CLOEXEC, base)) < 0)
			err = errno;
	int rtmp = err == 0 ? fcntl(s->ready_w, F_DUPFD_CLOEXEC, base) : -1;
	if (err == 0 && rtmp < 0)
		err = errno;
	for (int i = 0; i < s->nfds && err == 0; i++) /* dup2 clears close-on-exec */
		if (dup2(s->tmp[i], SD_LISTEN_FDS_START + i) < 0)
			err = errno;
	if (err == 0 && dup2(rtmp, SD_LISTEN_FDS_START + s->nfds) < 0)
		err = errno;
	if (err == 0) {
		put_num(s->pid_env + sizeof(PID_ENV) - 1, (long)getpid());
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execve(exe, s->argv, s->envp);
		err = errno;
	}
	char msg[32] = "ERR ";
	size_t n = 4 + put_num(msg + 4, err);
	ssize_t w = write(rtmp >= 0 ? rtmp : s->ready_w, msg, n);
	(void)w;
	_exit(127);
}

static void spawn_free(struct spawn *s)
{
	free(s->argv);
	free(s->envp);
	free(s->fds);
	free(s->tmp);
	free(s->pid_env);
	free(s->names);
}

static int env_is(const char *e, const char *name)
{
	size_t n = strlen(name);
	return strncmp(e, name, n) == 0 && e[n] == '=';
}

/* The descriptors in systemd's order with their names, argv and envp. */
static int spawn_prepare(struct spawn *s, const char *exe, const struct serve_config *cfg,
			 const struct serve_shared *sh, int metrics_fd)
{
	memset(s, 0, sizeof(*s));
	size_t max = 2 * (size_t)sh->nworkers + 1, nenv = 0;
	while (environ[nenv] != NULL)
		nenv++;
	s->fds = calloc(max, sizeof(int));
	s->tmp = calloc(max, sizeof(int));
	s->names = calloc(max, 8);
	s->argv = calloc((size_t)cfg->argc + 2, sizeof(char *));
	s->envp = calloc(nenv + 5, sizeof(char *));
	s->pid_env = malloc(sizeof(PID_ENV) + 24);
	if (!s->fds || !s->tmp || !s->names || !s->argv || !s->envp || !s->pid_env)
		return -ENOMEM;
	strcpy(s->names, "LISTEN_FDNAMES=");
	for (int pass = 0; pass < 3; pass++) {
		for (int i = 0; i < (pass < 2 ? sh->nworkers : 1); i++) {
			const struct worker *w = &sh->workers[i];
			int fd = pass == 0 ? w->tcp_fd : pass == 1 ? w->udp_fd : metrics_fd;
			if (fd < 0)
				continue;
			if (s->nfds > 0)
				strcat(s->names, ":");
			strcat(s->names, pass == 0 ? "tcp" : pass == 1 ? "udp" : "metrics");
			s->fds[s->nfds++] = fd;
		}
	}
	s->argv[0] = (char *)exe;
	for (int i = 0; i < cfg->argc; i++)
		s->argv[i + 1] = cfg->argv[i];
	size_t k = 0;
	for (size_t i = 0; i < nenv; i++)
		if (!env_is(environ[i], "LISTEN_PID") && !env_is(environ[i], "LISTEN_FDS") &&
		    !env_is(environ[i], "LISTEN_FDNAMES") && !env_is(environ[i], "SOCKIT_READY_FD"))
			s->envp[k++] = environ[i];
	snprintf(s->fds_env, sizeof(s->fds_env), "LISTEN_FDS=%d", s->nfds);
	snprintf(s->ready_env, sizeof(s->ready_env), "SOCKIT_READY_FD=%d",
		 SD_LISTEN_FDS_START + s->nfds);
	strcpy(s->pid_env, PID_ENV "0");
	s->envp[k++] = s->fds_env;
	s->envp[k++] = s->names;
	s->envp[k++] = s->ready_env;
	s->envp[k++] = s->pid_env;
	return 0;
}

/* ---- Waiting for the child ---------------------------------------------------- */

static void wait_end(struct upgrade *u)
{
	sockit_timer_stop(u->loop, &u->timer);
	if (u->pipe_fd >= 0) {
		sockit_loop_unwatch(u->loop, u->pipe_fd);
		close(u->pipe_fd);
	}
	u->pipe_fd = -1;
	u->child = 0;
}

/* The child did not make it: why, and it is reaped. */
static void upgrade_failed(struct upgrade *u, int timed_out)
{
	pid_t pid = u->child;
	int st = 0, err = 0;
	kill(pid, SIGKILL); /* if it is still there: it must not serve half-ready */
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	char why[160];
	if (sscanf(u->buf, "ERR %d", &err) == 1)
		snprintf(why, sizeof(why), "could not be executed: %s", sockit_strerror(-err));
	else if (timed_out)
		snprintf(why, sizeof(why), "was not ready within %ds: stopped it",
			 UPGRADE_TIMEOUT_MS / 1000);
	else if (WIFEXITED(st))
		snprintf(why, sizeof(why), "exited with status %d before it was ready",
			 WEXITSTATUS(st));
	else
		snprintf(why, sizeof(why), "died of signal %d (%s) before it was ready",
			 WTERMSIG(st), strsignal(WTERMSIG(st)));
	wait_end(u);
	serve_log(u->lg, LOG_ERROR, "upgrade failed: process %d (%s) %s; still serving", (int)pid,
		  u->exe, why);
}

static void on_pipe(sockit_loop *loop, int fd, unsigned events, void *arg)
{
	(void)loop;
	(void)events;
	struct upgrade *u = arg;
	ssize_t n = read(fd, u->buf + u->got, sizeof(u->buf) - 1 - u->got);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0) {
		u->got += (size_t)n;
		u->buf[u->got] = '\0';
		if (strstr(u->buf, "READY") == NULL && u->got < sizeof(u->buf) - 1)
			return;
		if (strstr(u->buf, "READY") != NULL) {
			pid_t pid = u->child;
			wait_end(u);
			u->ready(u->arg, pid);
			return;
		}
	}
	upgrade_failed(u, 0); /* EOF first: it ended (or it said ERR) */
}

static void on_timeout(sockit_loop *loop, sockit_timer *t)
{
	(void)loop;
	upgrade_failed(t->data, 1);
}

/* ---- What run.c calls ------------------------------------------------------------ */

void upgrade_init(struct upgrade *u, const struct serve_log *lg, sockit_loop *loop)
{
	memset(u, 0, sizeof(*u));
	u->lg = lg;
	u->loop = loop;
	u->pipe_fd = u->parent_fd = -1;
	sockit_timer_init(&u->timer, on_timeout, u);
	ssize_t n = readlink("/proc/self/exe", u->exe, sizeof(u->exe) - 1);
	if (n < 0) {
		u->exe_err = -errno;
		u->exe[0] = '\0';
	} else {
		u->exe[n] = '\0';
	}
	const char *s = getenv("SOCKIT_READY_FD");
	int fd;
	if (s != NULL && cli_parse_int(s, SD_LISTEN_FDS_START, 1 << 20, &fd) == 0 &&
	    fcntl(fd, F_SETFD, FD_CLOEXEC) == 0)
		u->parent_fd = fd;
	unsetenv("SOCKIT_READY_FD");
}

int upgrade_start(struct upgrade *u, const struct serve_config *cfg, const struct serve_shared *sh,
		  int metrics_fd, upgrade_ready_cb ready, void *arg)
{
	if (u->child != 0) {
		serve_log(u->lg, LOG_WARN, "SIGUSR2: an upgrade is under way (process %d)",
			  (int)u->child);
		return -EBUSY;
	}
	if (u->exe[0] == '\0') {
		serve_log(u->lg, LOG_ERROR, "upgrade failed: cannot read /proc/self/exe: %s",
			  sockit_strerror(u->exe_err));
		return u->exe_err;
	}
	struct spawn s;
	int p[2] = {-1, -1}, rc = spawn_prepare(&s, u->exe, cfg, sh, metrics_fd);
	if (rc == 0 && pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		rc = -errno;
	pid_t pid = rc == 0 ? fork() : -1;
	if (pid == 0) {
		s.ready_w = p[1];
		child_exec(u->exe, &s);
	}
	if (rc == 0 && pid < 0)
		rc = -errno;
	spawn_free(&s);
	if (p[1] >= 0)
		close(p[1]);
	if (rc == 0) {
		u->child = pid;
		u->pipe_fd = p[0];
		u->got = 0;
		u->buf[0] = '\0';
		u->ready = ready;
		u->arg = arg;
		rc = sockit_loop_watch(u->loop, p[0], SOCKIT_READABLE, on_pipe, u);
		if (rc == 0)
			rc = sockit_timer_start(u->loop, &u->timer, UPGRADE_TIMEOUT_MS, 0);
		if (rc < 0) {
			upgrade_failed(u, 0);
			return rc;
		}
		serve_log(u->lg, LOG_INFO, "upgrade: started %s as process %d", u->exe, (int)pid);
		return 0;
	}
	if (p[0] >= 0)
		close(p[0]);
	serve_log(u->lg, LOG_ERROR, "upgrade failed: cannot start %s: %s; still serving", u->exe,
		  sockit_strerror(rc));
	return rc;
}

void upgrade_notify_parent(struct upgrade *u)
{
	if (u->parent_fd < 0)
		return;
	(void)cli_write_all(u->parent_fd, "READY\n", 6);
	close(u->parent_fd);
	u->parent_fd = -1;
}

void upgrade_free(struct upgrade *u)
{
	if (u->child != 0) {
		kill(u->child, SIGKILL);
		while (waitpid(u->child, NULL, 0) < 0 && errno == EINTR)
			;
	}
	wait_end(u);
	if (u->parent_fd >= 0)
		close(u->parent_fd);
	u->parent_fd = -1;
}
