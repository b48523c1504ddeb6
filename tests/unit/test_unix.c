/* test_unix.c -- Unix-domain sockets: addresses, servers on paths and abstract names, stale files,
 * peer credentials (issue 17). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "sockit.h"
#include "testutil.h"

/* ---- A private directory per test --------------------------------------- */

static char dir[64];

static int make_dir(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/sockit-unix-XXXXXX");
	return mkdtemp(dir) != NULL ? 0 : -1;
}

/* Removes whatever the test left in dir (files and empty folders), then dir. */
static int remove_dir(void **state)
{
	(void)state;
	DIR *d = opendir(dir);
	if (d == NULL)
		return -1;
	struct dirent *e;
	char p[sizeof(dir) + sizeof(e->d_name) + 1];
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (unlink(p) < 0)
			rmdir(p);
	}
	closedir(d);
	return rmdir(dir) == 0 ? 0 : -1;
}

static void in_dir(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

/* An abstract name no other test run uses. */
static void abstract_name(char *buf, size_t len, const char *tag)
{
	snprintf(buf, len, "@sockit-test-%d-%s", (int)getpid(), tag);
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void assert_cloexec(int fd)
{
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
}

/* fd's local (peer = 0) or peer (peer = 1) address as text. */
static const char *name_of(int fd, int peer, char *buf, size_t len)
{
	int rc = peer ? sockit_peername_str(fd, buf, len) : sockit_sockname_str(fd, buf, len);
	assert_ok(rc);
	return buf;
}

/* ---- Addresses ---------------------------------------------------------- */

static void round_trip(const char *s)
{
	sockit_addr a, b;
	char buf[SOCKIT_ADDRSTRLEN];
	assert_int_equal(sockit_addr_from_path(s, &a), 0);
	assert_int_equal(a.ss.ss_family, AF_UNIX);
	assert_int_equal(sockit_addr_format(&a, buf, sizeof(buf)), (int)strlen(s));
	assert_string_equal(buf, s);
	assert_int_equal(sockit_addr_format_ip(&a, buf, sizeof(buf)), (int)strlen(s));
	assert_string_equal(buf, s);
	assert_int_equal(sockit_addr_port(&a), -EINVAL);
	/* sockit_addr_parse takes what looks like a path or "@name". */
	if (s[0] == '/' || s[0] == '@' || s[0] == '.') {
		assert_int_equal(sockit_addr_parse(s, &b), 0);
		assert_int_equal(b.len, a.len);
		assert_memory_equal(&b.ss, &a.ss, a.len);
	}
}

static void test_addr_round_trip(void **state)
{
	(void)state;
	round_trip("/run/x.sock");
	round_trip("./x.sock");
	round_trip("../x.sock");
	round_trip("x.sock");
	round_trip("@name");
	round_trip("@with space, \x01\x7f\xff and more @ signs");

	/* The lengths: a path keeps its NUL, an abstract name needs none. */
	sockit_addr a;
	assert_int_equal(sockit_addr_from_path("/a", &a), 0);
	assert_int_equal(a.len, offsetof(struct sockaddr_un, sun_path) + 3);
	assert_int_equal(sockit_addr_from_path("@a", &a), 0);
	assert_int_equal(a.len, offsetof(struct sockaddr_un, sun_path) + 2);

	/* 107 bytes fit, 108 do not; the same for abstract names. */
	char p[200];
	memset(p, 'p', sizeof(p));
	p[0] = '/';
	p[107] = '\0';
	round_trip(p);
	p[107] = 'p';
	p[108] = '\0';
	assert_int_equal(sockit_addr_from_path(p, &a), -ENAMETOOLONG);
	assert_int_equal(sockit_addr_parse(p, &a), -ENAMETOOLONG);
	p[0] = '@';
	assert_int_equal(sockit_addr_from_path(p, &a), 0);
	assert_int_equal(a.len, sizeof(struct sockaddr_un));
	char buf[SOCKIT_ADDRSTRLEN];
	assert_int_equal(sockit_addr_format(&a, buf, sizeof(buf)), 108);
	assert_string_equal(buf, p);
	p[108] = 'p';
	p[109] = '\0';
	assert_int_equal(sockit_addr_from_path(p, &a), -ENAMETOOLONG);

	/* Empty, a bare "@", NULL: refused. */
	assert_int_equal(sockit_addr_from_path("", &a), -EINVAL);
	assert_int_equal(sockit_addr_from_path("@", &a), -EINVAL);
	assert_int_equal(sockit_addr_from_path(NULL, &a), -EINVAL);
	assert_int_equal(sockit_addr_from_path("/x", NULL), -EINVAL);
	assert_int_equal(sockit_addr_parse("@", &a), -EINVAL);
}

static void test_addr_format_edges(void **state)
{
	(void)state;
	sockit_addr a;
	char buf[SOCKIT_ADDRSTRLEN];
	/* Exactly fitting, then one byte short. */
	assert_int_equal(sockit_addr_from_path("/abc", &a), 0);
	assert_int_equal(sockit_addr_format(&a, buf, 5), 4);
	assert_int_equal(sockit_addr_format(&a, buf, 4), -ENOSPC);
	assert_string_equal(buf, "");
	/* An unnamed socket (a stream client) prints as "". */
	memset(&a, 0, sizeof(a));
	a.ss.ss_family = AF_UNIX;
	a.len = offsetof(struct sockaddr_un, sun_path);
	assert_int_equal(sockit_addr_format(&a, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	/* NUL bytes inside an abstract name print as '@'. */
	struct sockaddr_un *sun = (struct sockaddr_un *)&a.ss;
	memcpy(sun->sun_path, "\0a\0b", 4);
	a.len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 4);
	assert_int_equal(sockit_addr_format(&a, buf, sizeof(buf)), 4);
	assert_string_equal(buf, "@a@b");
	/* A path filling sun_path without a NUL (another program's) prints whole. */
	memset(sun->sun_path, 'q', sizeof(sun->sun_path));
	a.len = sizeof(struct sockaddr_un);
	assert_int_equal(sockit_addr_format(&a, buf, sizeof(buf)), 108);
	/* Longer than a sockaddr_un: not an address. */
	a.len = sizeof(a.ss);
	assert_int_equal(sockit_addr_format(&a, buf, sizeof(buf)), -EINVAL);
}

/* ---- Stream and datagram round trips ------------------------------------ */

/* Connects to path, sends "ping", the server echoes it back; checks the
 * names each side sees. */
static void echo_over(const char *path)
{
	int srv = sockit_create_unix_server(path, SOCK_STREAM, 0, 0, 0);
	assert_ok(srv);
	assert_cloexec(srv);
	char buf[SOCKIT_ADDRSTRLEN];
	assert_string_equal(name_of(srv, 0, buf, sizeof(buf)), path);
	int c = sockit_create_unix_connection(path, SOCK_STREAM, 2000);
	assert_ok(c);
	assert_cloexec(c);
	assert_int_equal(fcntl(c, F_GETFL) & O_NONBLOCK, 0);
	sockit_addr peer;
	int s = sockit_accept(srv, &peer, 0, 2000);
	assert_ok(s);
	assert_cloexec(s);
	assert_int_equal(peer.ss.ss_family, AF_UNIX);
	assert_int_equal(sockit_addr_format(&peer, buf, sizeof(buf)), 0); /* unnamed client */
	assert_string_equal(name_of(c, 1, buf, sizeof(buf)), path);

	assert_int_equal(sockit_sendall(c, "ping\n", 5, 2000, NULL), 0);
	char line[16];
	assert_int_equal(sockit_recvline(s, line, sizeof(line), 2000), 5);
	assert_int_equal(sockit_sendall(s, line, 5, 2000, NULL), 0);
	assert_int_equal(sockit_recv_exact(c, line, 5, 2000), 5);
	assert_memory_equal(line, "ping\n", 5);
	sockit_close(c);
	assert_int_equal(sockit_recv(s, line, sizeof(line), 2000), 0); /* EOF */
	sockit_close(s);
	sockit_close(srv);
}

static void test_stream_echo_path(void **state)
{
	(void)state;
	char path[128];
	in_dir(path, sizeof(path), "s.sock");
	echo_over(path);
	struct stat st;
	assert_int_equal(lstat(path, &st), 0); /* the file outlives the socket */
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(sockit_unlink_unix(path), 0);
	assert_int_equal(lstat(path, &st), -1);
	assert_int_equal(sockit_unlink_unix(path), -ENOENT);
}

static void test_stream_echo_abstract(void **state)
{
	(void)state;
	char name[64];
	abstract_name(name, sizeof(name), "echo");
	echo_over(name);
	echo_over(name); /* the name went with its socket */
	assert_int_equal(sockit_unlink_unix(name), 0);
}

static void test_stream_echo_max_path(void **state)
{
	(void)state;
	/* The longest path that fits: 107 bytes. */
	char path[128];
	int n = snprintf(path, sizeof(path), "%s/", dir);
	memset(path + n, 'm', (size_t)(107 - n));
	path[107] = '\0';
	echo_over(path);
	assert_int_equal(sockit_unlink_unix(path), 0);
	path[107] = 'm';
	path[108] = '\0';
	assert_int_equal(sockit_create_unix_server(path, SOCK_STREAM, 0, 0, 0), -ENAMETOOLONG);
	assert_int_equal(sockit_create_unix_connection(path, SOCK_STREAM, 100), -ENAMETOOLONG);
}

/* The server replies to whoever sent: works only if the client has a name. */
static void dgram_echo(const char *path)
{
	int srv = sockit_create_unix_server(path, SOCK_DGRAM, 0, 0, 0);
	assert_ok(srv);
	int c = sockit_create_unix_connection(path, SOCK_DGRAM, 2000);
	assert_ok(c);
	assert_cloexec(c);
	assert_int_equal(sockit_send(c, "ping", 4, 2000), 4);
	char buf[16], name[SOCKIT_ADDRSTRLEN];
	sockit_addr from;
	assert_int_equal(sockit_recvfrom(srv, buf, sizeof(buf), &from, 2000), 4);
	/* Autobind: "@" and five hex digits. */
	assert_int_equal(sockit_addr_format(&from, name, sizeof(name)), 6);
	assert_int_equal(name[0], '@');
	assert_int_equal(strspn(name + 1, "0123456789abcdef"), 5);
	assert_int_equal(sockit_sendto(srv, "pong", 4, &from, 2000), 4);
	assert_int_equal(sockit_recv(c, buf, sizeof(buf), 2000), 4);
	assert_memory_equal(buf, "pong", 4);
	sockit_close(c);

	/* An unconnected client: sockit_bind_unix_auto, then sendto. */
	c = sockit_socket(AF_UNIX, SOCK_DGRAM);
	assert_ok(c);
	assert_int_equal(sockit_bind_unix_auto(c), 0);
	sockit_addr to;
	assert_int_equal(sockit_addr_from_path(path, &to), 0);
	assert_int_equal(sockit_sendto(c, "two", 3, &to, 2000), 3);
	assert_int_equal(sockit_recvfrom(srv, buf, sizeof(buf), &from, 2000), 3);
	assert_int_equal(sockit_sendto(srv, "back", 4, &from, 2000), 4);
	sockit_addr back;
	assert_int_equal(sockit_recvfrom(c, buf, sizeof(buf), &back, 2000), 4);
	assert_string_equal(sockit_addr_format(&back, name, sizeof(name)) > 0 ? name : "?", path);
	/* Already bound: a second autobind keeps the name. */
	sockit_addr me, again;
	assert_int_equal(sockit_getsockname(c, &me), 0);
	assert_int_equal(sockit_bind_unix_auto(c), 0);
	assert_int_equal(sockit_getsockname(c, &again), 0);
	assert_int_equal(again.len, me.len);
	assert_memory_equal(&again.ss, &me.ss, me.len);
	sockit_close(c);
	sockit_close(srv);
}

static void test_dgram_reply_to_autobound(void **state)
{
	(void)state;
	char path[128], name[64];
	in_dir(path, sizeof(path), "d.sock");
	dgram_echo(path);
	abstract_name(name, sizeof(name), "dgram");
	dgram_echo(name);
}

/* ---- Stale, live and foreign files --------------------------------------- */

static void test_stale_file_replaced(void **state)
{
	(void)state;
	char path[128];
	in_dir(path, sizeof(path), "s.sock");
	/* A server that died without removing its file. */
	int dead = sockit_create_unix_server(path, SOCK_STREAM, 0, 0, 0);
	assert_ok(dead);
	sockit_close(dead);
	struct stat st;
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(sockit_create_unix_connection(path, SOCK_STREAM, 1000), -ECONNREFUSED);
	int srv = sockit_create_unix_server(path, SOCK_STREAM, 0, 0, 0);
	assert_ok(srv);
	int c = sockit_create_unix_connection(path, SOCK_STREAM, 2000);
	assert_ok(c);
	sockit_close(c);
	sockit_close(srv);
	/* The same for datagrams. */
	srv = sockit_create_unix_server(path, SOCK_DGRAM, 0, 0, 0);
	assert_ok(srv);
	sockit_close(srv);
	srv = sockit_create_unix_server(path, SOCK_DGRAM, 0, 0, 0);
	assert_ok(srv);
	sockit_close(srv);
	assert_int_equal(sockit_unlink_unix(path), 0);
}

/* Another server on path must fail with -EADDRINUSE and leave the file. */
static void assert_not_stolen(const char *path, int type)
{
	struct stat before, after;
	assert_int_equal(lstat(path, &before), 0);
	assert_int_equal(sockit_create_unix_server(path, type, 0, 0, 0), -EADDRINUSE);
	assert_int_equal(sockit_create_unix_server(path, type, 0, 0, 0600), -EADDRINUSE);
	assert_int_equal(lstat(path, &after), 0);
	assert_int_equal(after.st_ino, before.st_ino);
	assert_int_equal(after.st_mode, before.st_mode);
}

static void test_live_server_not_stolen(void **state)
{
	(void)state;
	char path[128];
	in_dir(path, sizeof(path), "s.sock");
	int srv = sockit_create_unix_server(path, SOCK_STREAM, 0, 0, 0);
	assert_ok(srv);
	assert_not_stolen(path, SOCK_STREAM);
	assert_not_stolen(path, SOCK_DGRAM); /* a socket of another type owns it too */
	/* Still reachable: the probe connections queued, then this one. */
	int c = sockit_create_unix_connection(path, SOCK_STREAM, 2000);
	assert_ok(c);
	int s;
	while ((s = sockit_accept(srv, NULL, 0, 0)) >= 0) /* the probes, then c */
		sockit_close(s);
	assert_int_equal(s, -EAGAIN);
	sockit_close(c);
	sockit_close(srv);
	assert_int_equal(sockit_unlink_unix(path), 0);

	/* A live datagram server. */
	srv = sockit_create_unix_server(path, SOCK_DGRAM, 0, 0, 0);
	assert_ok(srv);
	assert_not_stolen(path, SOCK_DGRAM);
	sockit_close(srv);
	assert_int_equal(sockit_unlink_unix(path), 0);

	/* An abstract name in use. */
	char name[64];
	abstract_name(name, sizeof(name), "live");
	srv = sockit_create_unix_server(name, SOCK_STREAM, 0, 0, 0);
	assert_ok(srv);
	assert_int_equal(sockit_create_unix_server(name, SOCK_STREAM, 0, 0, 0), -EADDRINUSE);
	sockit_close(srv);
}

static void test_full_backlog(void **state)
{
	(void)state;
	char path[128];
	in_dir(path, sizeof(path), "s.sock");
	int srv = sockit_socket(AF_UNIX, SOCK_STREAM);
	sockit_addr a;
	assert_int_equal(sockit_addr_from_path(path, &a), 0);
	assert_int_equal(sockit_bind(srv, &a), 0);
	assert_int_equal(sockit_listen(srv, 1), 0);
	/* Fill the accept queue until a connect would wait. */
	int fill[8], n = 0, rc = 0;
	while (n < 8 && rc == 0) {
		fill[n] = sockit_socket(AF_UNIX, SOCK_STREAM);
		rc = sockit_connect(fill[n++], &a, 0);
	}
	assert_int_equal(rc, -EAGAIN);
	/* A full server is alive: not stolen. */
	assert_not_stolen(path, SOCK_STREAM);
	/* A connect waits for room: timeout 0 says so at once, > 0 expires. */
	assert_int_equal(sockit_create_unix_connection(path, SOCK_STREAM, 0), -EAGAIN);
	int64_t t0 = mono_ms();
	assert_int_equal(sockit_create_unix_connection(path, SOCK_STREAM, 200), -ETIMEDOUT);
	int64_t took = mono_ms() - t0;
	assert_in_range(took, 150, 3000);
	/* Room again: the connection goes through, and it sends without a timeout. */
	int s = sockit_accept(srv, NULL, 0, 1000);
	assert_ok(s);
	sockit_close(s);
	int c = sockit_create_unix_connection(path, SOCK_STREAM, 2000);
	assert_ok(c);
	struct timeval tv;
	socklen_t sl = sizeof(tv);
	assert_int_equal(getsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, &sl), 0);
	assert_true(tv.tv_sec == 0 && tv.tv_usec == 0);
	sockit_close(c);
	for (int i = 0; i < n; i++)
		sockit_close(fill[i]);
	sockit_close(srv);
	assert_int_equal(sockit_unlink_unix(path), 0);
}

static void test_non_socket_untouched(void **state)
{
	(void)state;
	char file[128], sub[128], link[128], sock[128];
	in_dir(file, sizeof(file), "file");
	in_dir(sub, sizeof(sub), "sub");
	in_dir(link, sizeof(link), "link");
	in_dir(sock, sizeof(sock), "s.sock");
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	fputs("keep me\n", f);
	fclose(f);
	assert_int_equal(mkdir(sub, 0700), 0);
	/* A symlink to a stale socket: the link is not a socket itself. */
	int dead = sockit_create_unix_server(sock, SOCK_STREAM, 0, 0, 0);
	assert_ok(dead);
	sockit_close(dead);
	assert_int_equal(symlink(sock, link), 0);

	const char *paths[] = {file, sub, link};
	for (int i = 0; i < 3; i++) {
		struct stat before, after;
		assert_int_equal(lstat(paths[i], &before), 0);
		int rc = sockit_create_unix_server(paths[i], SOCK_STREAM, 0, 0, 0600);
		if (rc != -EEXIST)
			fail_msg("%s: %d (%s), want -EEXIST", paths[i], rc, sockit_strerror(rc));
		assert_int_equal(sockit_create_unix_server(paths[i], SOCK_DGRAM, 0, 0, 0), -EEXIST);
		assert_int_equal(sockit_unlink_unix(paths[i]), -ENOTSOCK);
		assert_int_equal(lstat(paths[i], &after), 0);
		assert_int_equal(after.st_ino, before.st_ino);
		assert_int_equal(after.st_mode, before.st_mode);
	}
	char buf[16] = "";
	f = fopen(file, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	assert_string_equal(buf, "keep me\n");
	assert_int_equal(sockit_unlink_unix(sock), 0);
}

static void test_mode(void **state)
{
	(void)state;
	char path[128];
	in_dir(path, sizeof(path), "s.sock");
	mode_t old = umask(022);
	struct stat st;
	static const unsigned modes[] = {0600, 0660, 0666, 0700};
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		int srv = sockit_create_unix_server(path, SOCK_STREAM, 0, 0, modes[i]);
		assert_ok(srv);
		assert_int_equal(lstat(path, &st), 0);
		assert_int_equal(st.st_mode & 07777, modes[i]);
		sockit_close(srv);
	}
	/* 0 leaves the umask's mode; the stale file is replaced. */
	int srv = sockit_create_unix_server(path, SOCK_DGRAM, 0, 0, 0);
	assert_ok(srv);
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	sockit_close(srv);
	umask(old);
	assert_int_equal(sockit_create_unix_server(path, SOCK_STREAM, 0, 0, 010000), -EINVAL);
	assert_int_equal(sockit_unlink_unix(path), 0);
	/* Abstract names have no file and ignore the mode. */
	char name[64];
	abstract_name(name, sizeof(name), "mode");
	srv = sockit_create_unix_server(name, SOCK_STREAM, 0, SOCKIT_NONBLOCK, 0600);
	assert_ok(srv);
	assert_int_equal(fcntl(srv, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
	assert_int_equal(sockit_accept(srv, NULL, 0, 0), -EAGAIN);
	sockit_close(srv);
}

static void test_peercred(void **state)
{
	(void)state;
	char name[64];
	abstract_name(name, sizeof(name), "cred");
	int srv = sockit_create_unix_server(name, SOCK_STREAM, 0, 0, 0);
	assert_ok(srv);
	int c = sockit_create_unix_connection(name, SOCK_STREAM, 2000);
	assert_ok(c);
	int s = sockit_accept(srv, NULL, 0, 2000);
	assert_ok(s);
	pid_t pid = 0;
	uid_t uid = (uid_t)-2;
	gid_t gid = (gid_t)-2;
	assert_int_equal(sockit_peercred(s, &pid, &uid, &gid), 0);
	assert_int_equal(pid, getpid());
	assert_int_equal(uid, getuid());
	assert_int_equal(gid, getgid());
	pid = 0;
	assert_int_equal(sockit_peercred(c, &pid, NULL, NULL), 0);
	assert_int_equal(pid, getpid());
	assert_int_equal(sockit_peercred(s, NULL, NULL, NULL), 0);
	/* No peer, another family, no socket. */
	int lone = sockit_socket(AF_UNIX, SOCK_STREAM);
	assert_int_equal(sockit_peercred(lone, &pid, &uid, &gid), -ENOTCONN);
	int tcp = sockit_socket(AF_INET, SOCK_STREAM);
	assert_int_equal(sockit_peercred(tcp, &pid, &uid, &gid), -EAFNOSUPPORT);
	assert_int_equal(sockit_peercred(-1, &pid, &uid, &gid), -EINVAL);
	sockit_close(tcp);
	sockit_close(lone);
	sockit_close(s);
	sockit_close(c);
	sockit_close(srv);
}

static void test_bad_arguments(void **state)
{
	(void)state;
	char path[128];
	in_dir(path, sizeof(path), "s.sock");
	assert_int_equal(sockit_create_unix_server(NULL, SOCK_STREAM, 0, 0, 0), -EINVAL);
	assert_int_equal(sockit_create_unix_server("", SOCK_STREAM, 0, 0, 0), -EINVAL);
	assert_int_equal(sockit_create_unix_server(path, SOCK_RAW, 0, 0, 0), -EINVAL);
	assert_int_equal(sockit_create_unix_server(path, SOCK_STREAM, 0, SOCKIT_REUSEPORT, 0),
			 -EINVAL);
	assert_int_equal(sockit_create_unix_connection(NULL, SOCK_STREAM, 100), -EINVAL);
	assert_int_equal(sockit_create_unix_connection(path, SOCK_RAW, 100), -EINVAL);
	/* Nothing there; a directory that does not exist. */
	assert_int_equal(sockit_create_unix_connection(path, SOCK_STREAM, 100), -ENOENT);
	assert_int_equal(sockit_create_unix_connection(path, SOCK_DGRAM, 100), -ENOENT);
	assert_int_equal(sockit_create_unix_server("/nonexistent-dir/x.sock", SOCK_STREAM, 0, 0, 0),
			 -ENOENT);
	assert_int_equal(sockit_create_unix_connection("@sockit-test-nobody", SOCK_STREAM, 100),
			 -ECONNREFUSED);
	assert_int_equal(sockit_unlink_unix(NULL), -EINVAL);
	assert_int_equal(sockit_bind_unix_auto(-1), -EINVAL);
	int tcp = sockit_socket(AF_INET, SOCK_STREAM);
	assert_true(sockit_bind_unix_auto(tcp) < 0);
	sockit_close(tcp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_round_trip),
		cmocka_unit_test(test_addr_format_edges),
		cmocka_unit_test_setup_teardown(test_stream_echo_path, make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_stream_echo_abstract, make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_stream_echo_max_path, make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_dgram_reply_to_autobound, make_dir,
						remove_dir),
		cmocka_unit_test_setup_teardown(test_stale_file_replaced, make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_live_server_not_stolen, make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_full_backlog, make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_non_socket_untouched, make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_mode, make_dir, remove_dir),
		cmocka_unit_test(test_peercred),
		cmocka_unit_test_setup_teardown(test_bad_arguments, make_dir, remove_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
