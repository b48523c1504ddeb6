/* unix.c -- Unix-domain sockets: servers on a path or an abstract name, stale files, peer
 * credentials. */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

static int type_ok(int type)
{
	return type == SOCK_STREAM || type == SOCK_DGRAM || type == SOCK_SEQPACKET;
}

/* The filesystem path of a, or NULL for an abstract name or an unnamed
 * socket (sockit_addr_from_path keeps paths NUL-terminated). */
static const char *fs_path(const sockit_addr *a)
{
	const struct sockaddr_un *sun = (const struct sockaddr_un *)&a->ss;
	if (a->len <= offsetof(struct sockaddr_un, sun_path) || sun->sun_path[0] == '\0')
		return NULL;
	return sun->sun_path;
}

/* connect() to the socket file at a: -ECONNREFUSED means no socket is bound
 * there any more (a dead server's leftover); 0, -EAGAIN (its backlog is
 * full) or -EPROTOTYPE (a socket of another type) mean someone owns it. */
static int probe(const sockit_addr *a, int type)
{
	int fd = sockit_socket(AF_UNIX, type | SOCK_NONBLOCK);
	if (fd < 0)
		return fd;
	int rc;
	while ((rc = connect(fd, (const struct sockaddr *)&a->ss, a->len)) < 0 && errno == EINTR)
		;
	rc = rc < 0 ? -errno : 0;
	sockit_close(fd);
	return rc;
}

/* Binds fd to a, replacing a stale socket file (see probe) but never a live
 * socket or a file of another kind.  Two servers starting on one path at
 * the same instant can still race between the probe and the unlink. */
static int bind_unix(int fd, const sockit_addr *a, int type)
{
	int rc = sockit_bind(fd, a);
	const char *path = fs_path(a);
	if (rc != -EADDRINUSE || path == NULL)
		return rc;
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? sockit_bind(fd, a) : -errno; /* gone meanwhile */
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	rc = probe(a, type);
	if (rc != -ECONNREFUSED && rc != -ENOENT)
		return -EADDRINUSE;
	if (rc == -ECONNREFUSED && unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return sockit_bind(fd, a);
}

int sockit_create_unix_server(const char *path, int type, int backlog, int flags, unsigned mode)
{
	if (!type_ok(type) || (flags & ~SOCKIT_NONBLOCK) != 0 || mode > 07777)
		return -EINVAL;
	sockit_addr a;
	int rc = sockit_addr_from_path(path, &a);
	if (rc < 0)
		return rc;
	int fd = sockit_socket(AF_UNIX, type | ((flags & SOCKIT_NONBLOCK) ? SOCK_NONBLOCK : 0));
	if (fd < 0)
		return fd;
	rc = bind_unix(fd, &a, type);
	const char *file = rc == 0 ? fs_path(&a) : NULL; /* ours to remove on failure */
	/* Before listen(), a stream socket refuses connections: no one gets in
	 * under the umask's mode. */
	if (rc == 0 && file != NULL && mode != 0 && chmod(file, mode) < 0)
		rc = -errno;
	if (rc == 0 && type != SOCK_DGRAM)
		rc = sockit_listen(fd, backlog);
	if (rc < 0) {
		if (file != NULL)
			unlink(file);
		sockit_close(fd);
		return rc;
	}
	return fd;
}

/* SO_SNDTIMEO as the time left (0: none). */
static int set_sndtimeo(int fd, int64_t ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	return setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ? -errno : 0;
}

/* A Unix stream connect has no "in progress" state to poll: against a full
 * backlog it blocks, or fails with EAGAIN on a non-blocking socket.  So a
 * deadline is applied to the blocking connect with SO_SNDTIMEO, which the
 * kernel uses for that wait, and cleared after. */
static int connect_unix(int fd, const sockit_addr *a, int timeout_ms)
{
	if (timeout_ms == 0)
		return sockit_connect(fd, a, 0); /* one try: -EAGAIN when full */
	int64_t deadline = timeout_ms < 0 ? -1 : (int64_t)sk_clock_ms() + timeout_ms;
	int rc;
	for (;;) {
		if (deadline >= 0) {
			int64_t left = deadline - (int64_t)sk_clock_ms();
			rc = left <= 0 ? -ETIMEDOUT : set_sndtimeo(fd, left);
			if (rc < 0)
				break;
		}
		rc = connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0 ? -errno : 0;
		if (rc != -EINTR)
			break;
	}
	if (rc == -EAGAIN && deadline >= 0)
		rc = -ETIMEDOUT;
	if (deadline >= 0) {
		int rc2 = set_sndtimeo(fd, 0);
		if (rc == 0)
			rc = rc2;
	}
	return rc;
}

int sockit_create_unix_connection(const char *path, int type, int timeout_ms)
{
	if (!type_ok(type))
		return -EINVAL;
	sockit_addr a;
	int rc = sockit_addr_from_path(path, &a);
	if (rc < 0)
		return rc;
	int fd = sockit_socket(AF_UNIX, type);
	if (fd < 0)
		return fd;
	rc = type == SOCK_DGRAM ? sockit_bind_unix_auto(fd) : 0;
	if (rc == 0)
		rc = connect_unix(fd, &a, timeout_ms);
	if (rc < 0) {
		sockit_close(fd);
		return rc;
	}
	return fd;
}

int sockit_bind_unix_auto(int fd)
{
	if (fd < 0)
		return -EINVAL;
	/* Linux: a bare family (no sun_path at all) binds a fresh abstract name. */
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	return bind(fd, (const struct sockaddr *)&sun, sizeof(sa_family_t)) < 0 ? -errno : 0;
}

int sockit_unlink_unix(const char *path)
{
	sockit_addr a;
	int rc = sockit_addr_from_path(path, &a);
	if (rc < 0)
		return rc;
	const char *file = fs_path(&a);
	if (file == NULL)
		return 0; /* an abstract name leaves no file */
	struct stat st;
	if (lstat(file, &st) < 0)
		return -errno;
	if (!S_ISSOCK(st.st_mode))
		return -ENOTSOCK;
	return unlink(file) < 0 ? -errno : 0;
}

int sockit_peercred(int fd, pid_t *pid, uid_t *uid, gid_t *gid)
{
	if (fd < 0)
		return -EINVAL;
	int domain = 0;
	socklen_t sl = sizeof(domain);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &sl) < 0)
		return -errno;
	if (domain != AF_UNIX)
		return -EAFNOSUPPORT;
	struct ucred cr;
	sl = sizeof(cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &sl) < 0)
		return -errno;
	if (cr.pid == 0)
		return -ENOTCONN; /* no peer: never connected */
	if (pid != NULL)
		*pid = cr.pid;
	if (uid != NULL)
		*uid = cr.uid;
	if (gid != NULL)
		*gid = cr.gid;
	return 0;
}
