/* unix.c -- serve on Unix-domain sockets (-U PATH), and listeners that every worker shares.
 *
 * A Unix socket has no SO_REUSEPORT group, and a socket systemd passes is
 * one socket: such a listener is shared.  Each worker watches its own
 * dup() of it (so each can close its own on drain), and accepts from it
 * as from its own: the kernel hands each connection to one accept4, the
 * others get EAGAIN and wait again.  The socket files this server made
 * are removed at exit, but only while they are still the ones it made:
 * a newer server that replaced them keeps its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "worker.h"

#define DGRAM_SUFFIX ".dgram"

/* A socket file this server made: removed at exit if it is still that one. */
struct unix_file {
	char path[SOCKIT_ADDRSTRLEN + sizeof(DGRAM_SUFFIX)];
	dev_t dev;
	ino_t ino;
	int made;
};

struct unix_files {
	struct unix_file f[2]; /* the stream socket, the datagram one */
};

int peer_cred_format(const struct peer_cred *c, char *buf, size_t len)
{
	return snprintf(buf, len, "pid %ld uid %lu", (long)c->pid, (unsigned long)c->uid);
}

int listeners_share(struct serve_shared *sh, int stream_fd, int dgram_fd)
{
	for (int i = 0; i < sh->nworkers; i++) {
		struct worker *w = &sh->workers[i];
		int fds[2] = {stream_fd, dgram_fd};
		for (int k = 0; k < 2; k++) {
			int fd = fds[k];
			if (fd >= 0 && i > 0 && (fd = fcntl(fds[k], F_DUPFD_CLOEXEC, 0)) < 0)
				return -errno; /* worker_free closes what was given */
			*(k == 0 ? &w->tcp_fd : &w->udp_fd) = fd;
		}
	}
	return 0;
}

/* Notes path as made by us (an abstract name has no file). */
static void file_made(struct unix_file *f, const char *path)
{
	struct stat st;
	if (path[0] == '@' || stat(path, &st) != 0)
		return;
	snprintf(f->path, sizeof(f->path), "%s", path);
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->made = 1;
}

void unix_files_remove(struct serve_shared *sh)
{
	if (sh->ux == NULL)
		return;
	for (int i = 0; i < 2; i++) {
		struct unix_file *f = &sh->ux->f[i];
		struct stat st;
		if (f->made && lstat(f->path, &st) == 0 && S_ISSOCK(st.st_mode) &&
		    st.st_dev == f->dev && st.st_ino == f->ino)
			(void)sockit_unlink_unix(f->path);
		f->made = 0;
	}
}

void unix_files_free(struct serve_shared *sh)
{
	free(sh->ux);
	sh->ux = NULL;
}

/* The next step for a failure to listen on a Unix path, or "". */
static const char *unix_hint(int err)
{
	if (err == -EEXIST)
		return " (it exists and is not a socket: remove it or choose another path)";
	if (err == -ENOENT)
		return " (does its directory exist?)";
	if (err == -EMFILE || err == -ENFILE)
		return ": raise the limit with ulimit -n";
	return "";
}

/* One Unix listener of type on path: its fd, or a negative code (printed). */
static int open_one(const struct serve_config *cfg, const struct serve_log *lg, const char *path,
		    int type, struct unix_file *f)
{
	int fd = sockit_create_unix_server(path, type, 0, SOCKIT_NONBLOCK, cfg->unix_mode);
	if (fd == -EADDRINUSE)
		serve_log_fail(lg, "another server is listening on %s", path);
	else if (fd < 0)
		serve_log_fail(lg, "cannot listen on %s: %s%s", path, sockit_strerror(fd),
			       unix_hint(fd));
	else
		file_made(f, path);
	return fd;
}

int unix_files_adopt(struct serve_shared *sh, const struct serve_config *cfg)
{
	sh->ux = calloc(1, sizeof(*sh->ux));
	if (sh->ux == NULL)
		return -ENOMEM;
	if (cfg->tcp)
		file_made(&sh->ux->f[0], cfg->unix_path);
	if (cfg->udp) {
		char dpath[sizeof(sh->ux->f[1].path)];
		snprintf(dpath, sizeof(dpath), "%s%s", cfg->unix_path, DGRAM_SUFFIX);
		file_made(&sh->ux->f[1], dpath);
	}
	return 0;
}

int unix_listeners_open(struct serve_shared *sh, const struct serve_config *cfg,
			const struct serve_log *lg)
{
	sh->ux = calloc(1, sizeof(*sh->ux));
	if (sh->ux == NULL) {
		serve_log_fail(lg, "out of memory");
		return -ENOMEM;
	}
	int sfd = -1, dfd = -1, rc = 0;
	if (cfg->tcp)
		rc = sfd = open_one(cfg, lg, cfg->unix_path, SOCK_STREAM, &sh->ux->f[0]);
	if (rc >= 0 && cfg->udp) {
		char dpath[sizeof(sh->ux->f[1].path)];
		snprintf(dpath, sizeof(dpath), "%s%s", cfg->unix_path, DGRAM_SUFFIX);
		rc = dfd = open_one(cfg, lg, dpath, SOCK_DGRAM, &sh->ux->f[1]);
	}
	if (rc >= 0 && (rc = listeners_share(sh, sfd, dfd)) < 0)
		serve_log_fail(lg, "cannot share the listener with the workers: %s%s",
			       sockit_strerror(rc), unix_hint(rc));
	if (rc < 0 && sh->workers[0].tcp_fd != sfd && sfd >= 0)
		sockit_close(sfd); /* not handed to worker 0: ours to close */
	if (rc < 0 && sh->workers[0].udp_fd != dfd && dfd >= 0)
		sockit_close(dfd);
	return rc < 0 ? rc : 0;
}
