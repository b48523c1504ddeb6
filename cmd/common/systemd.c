/* systemd.c -- socket activation and sd_notify in a few lines, as sd_listen_fds(3) allows. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"
#include "sockit.h"
#include "systemd.h"

/* A whole decimal number in 1..max, else -1. */
static long env_number(const char *s, long max)
{
	uint64_t v;
	if (s == NULL || cli_parse_u64(s, 1, (uint64_t)max, &v) < 0)
		return -1;
	return (long)v;
}

static void unset_listen_env(void)
{
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}

/* Copies the i-th ':'-separated name of names (may be NULL) into out. */
static void fd_name(const char *names, size_t i, char *out, size_t len)
{
	out[0] = '\0';
	for (const char *p = names; p != NULL; i--) {
		const char *end = strchr(p, ':');
		size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
		if (i == 0) {
			if (n >= len)
				n = len - 1;
			memcpy(out, p, n);
			out[n] = '\0';
			return;
		}
		p = end != NULL ? end + 1 : NULL;
	}
}

static int getopt_int(int fd, int level, int name, int *out)
{
	socklen_t sl = sizeof(*out);
	return getsockopt(fd, level, name, out, &sl) < 0 ? -errno : 0;
}

int sd_listen_sockets(struct sd_socket *out, size_t max)
{
	const char *pid_s = getenv("LISTEN_PID"), *fds_s = getenv("LISTEN_FDS");
	if (pid_s == NULL || fds_s == NULL)
		return 0;
	long pid = env_number(pid_s, 0x7fffffff);
	if (pid < 0)
		return -EINVAL;
	if (pid != (long)getpid())
		return 0; /* meant for another process (our parent, say) */
	long n = env_number(fds_s, 4096);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n > max)
		return -E2BIG;
	const char *names = getenv("LISTEN_FDNAMES");
	for (long i = 0; i < n; i++) {
		struct sd_socket *s = &out[i];
		memset(s, 0, sizeof(*s));
		s->fd = SD_LISTEN_FDS_START + (int)i;
		int fl = fcntl(s->fd, F_GETFD);
		if (fl < 0 || fcntl(s->fd, F_SETFD, fl | FD_CLOEXEC) < 0)
			return -errno;
		int rc = getopt_int(s->fd, SOL_SOCKET, SO_TYPE, &s->type);
		if (rc == 0)
			rc = getopt_int(s->fd, SOL_SOCKET, SO_DOMAIN, &s->family);
		if (rc == 0)
			rc = getopt_int(s->fd, SOL_SOCKET, SO_ACCEPTCONN, &s->listening);
		if (rc < 0)
			return rc;
		fd_name(names, (size_t)i, s->name, sizeof(s->name));
	}
	unset_listen_env();
	return (int)n;
}

int sd_notify_send(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (path == NULL || path[0] == '\0')
		return 0;
	sockit_addr to = {.len = 0};
	struct sockaddr_un *sun = (struct sockaddr_un *)&to.ss;
	size_t n = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || n >= sizeof(sun->sun_path))
		return -EINVAL;
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, path, n);
	if (path[0] == '@')
		sun->sun_path[0] = '\0'; /* the abstract namespace */
	to.len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	int fd = sockit_socket(AF_UNIX, SOCK_DGRAM);
	if (fd < 0)
		return fd;
	ssize_t sent = sockit_sendto(fd, state, strlen(state), &to, 1000);
	sockit_close(fd);
	return sent < 0 ? (int)sent : 1;
}

uint64_t sd_watchdog_usec(void)
{
	uint64_t usec;
	const char *u = getenv("WATCHDOG_USEC"), *p = getenv("WATCHDOG_PID");
	if (u == NULL || cli_parse_u64(u, 1, UINT64_MAX, &usec) < 0)
		return 0;
	if (p != NULL && env_number(p, 0x7fffffff) != (long)getpid())
		return 0;
	return usec;
}
