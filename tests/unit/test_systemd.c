/* test_systemd.c -- socket activation and sd_notify, against real sockets and a forked child. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "sockit.h"
#include "systemd.h"

/* In a child (descriptors 3 and 4 are overwritten there): a TCP listener
 * and a UDP socket passed as systemd passes them.  Exit code 0 = right. */
static int child_listen(void)
{
	int t = sockit_create_server("127.0.0.1", 0, SOCK_STREAM, 0, 0);
	int u = sockit_create_server("127.0.0.1", 0, SOCK_DGRAM, 0, 0);
	if (t < 0 || u < 0 || dup2(t, 3) != 3 || dup2(u, 4) != 4)
		return 10;
	char pid[32];
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", "2", 1);
	setenv("LISTEN_FDNAMES", "web:dns", 1);
	struct sd_socket s[1];
	if (sd_listen_sockets(s, 1) != -E2BIG) /* too many for the room given */
		return 11;
	struct sd_socket ss[4];
	if (sd_listen_sockets(ss, 4) != 2)
		return 12;
	if (ss[0].fd != 3 || ss[0].type != SOCK_STREAM || !ss[0].listening ||
	    ss[0].family != AF_INET || strcmp(ss[0].name, "web") != 0)
		return 13;
	if (ss[1].fd != 4 || ss[1].type != SOCK_DGRAM || strcmp(ss[1].name, "dns") != 0)
		return 14;
	if (getenv("LISTEN_PID") != NULL || getenv("LISTEN_FDS") != NULL)
		return 15; /* unset, so children do not take them */
	if (sd_listen_sockets(ss, 4) != 0)
		return 16;
	/* Another process's sockets are not ours. */
	setenv("LISTEN_PID", "1", 1);
	setenv("LISTEN_FDS", "2", 1);
	if (sd_listen_sockets(ss, 4) != 0)
		return 17;
	setenv("LISTEN_PID", "x", 1);
	if (sd_listen_sockets(ss, 4) != -EINVAL)
		return 18;
	return 0;
}

static void test_listen_fds(void **state)
{
	(void)state;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(child_listen());
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	unsetenv("LISTEN_PID");
	struct sd_socket ss[2];
	assert_int_equal(sd_listen_sockets(ss, 2), 0);
}

static void notify_to(const char *name, int abstract)
{
	int fd = sockit_socket(AF_UNIX, SOCK_DGRAM);
	assert_true(fd >= 0);
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	size_t n = strlen(name);
	memcpy(sun.sun_path, name, n);
	if (abstract)
		sun.sun_path[0] = '\0';
	assert_int_equal(bind(fd, (struct sockaddr *)&sun,
			      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)),
			 0);
	setenv("NOTIFY_SOCKET", name, 1);
	assert_int_equal(sd_notify_send("READY=1\nSTATUS=serving"), 1);
	char buf[64];
	ssize_t got = sockit_recv(fd, buf, sizeof(buf) - 1, 5000);
	assert_int_equal(got, 22);
	buf[got] = '\0';
	assert_string_equal(buf, "READY=1\nSTATUS=serving");
	sockit_close(fd);
}

static void test_notify(void **state)
{
	(void)state;
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(sd_notify_send("READY=1"), 0);
	char name[64];
	snprintf(name, sizeof(name), "@sockit-test-notify-%d", (int)getpid());
	notify_to(name, 1);
	char dir[] = "/tmp/sockit-sd-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128];
	snprintf(path, sizeof(path), "%s/notify", dir);
	notify_to(path, 0);
	unlink(path);
	rmdir(dir);
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	assert_int_equal(sd_notify_send("READY=1"), -EINVAL);
	unsetenv("NOTIFY_SOCKET");
}

static void test_watchdog(void **state)
{
	(void)state;
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	assert_int_equal(sd_watchdog_usec(), 0);
	setenv("WATCHDOG_USEC", "2000000", 1);
	assert_int_equal(sd_watchdog_usec(), 2000000);
	char pid[32];
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	assert_int_equal(sd_watchdog_usec(), 2000000);
	setenv("WATCHDOG_PID", "1", 1);
	assert_int_equal(sd_watchdog_usec(), 0);
	setenv("WATCHDOG_USEC", "soon", 1);
	unsetenv("WATCHDOG_PID");
	assert_int_equal(sd_watchdog_usec(), 0);
	unsetenv("WATCHDOG_USEC");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_listen_fds),
		cmocka_unit_test(test_notify),
		cmocka_unit_test(test_watchdog),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
