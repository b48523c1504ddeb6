/* test_net.c -- sockets: injected short writes/EINTR/EAGAIN, timeouts, EPIPE, recvline, fallbacks.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "sockit.h"
#include "testutil.h"

/* ---- Fault injection: -Wl,--wrap=send,recv,getaddrinfo ------------------ */

/* A script step: > 0 passes at most that many bytes to the real call;
 * INJ_EINTR / INJ_EAGAIN / INJ_RESET fail without calling it. */
enum { INJ_EINTR = -1, INJ_EAGAIN = -2, INJ_RESET = -3 };
#define SCRIPT_MAX 16

struct inject {
	int script[SCRIPT_MAX];
	int nscript, step;
	int calls;
	int no_nosignal; /* sends made without MSG_NOSIGNAL */
};
static struct inject send_inj, recv_inj;
static int last_send_flags; /* the flags of the latest send */

ssize_t __real_send(int fd, const void *buf, size_t len, int flags);
ssize_t __wrap_send(int fd, const void *buf, size_t len, int flags);
ssize_t __real_recv(int fd, void *buf, size_t len, int flags);
ssize_t __wrap_recv(int fd, void *buf, size_t len, int flags);
int __real_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		       struct addrinfo **res);
int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		       struct addrinfo **res);

static void script(struct inject *inj, const int *steps, int n)
{
	memset(inj, 0, sizeof(*inj));
	memcpy(inj->script, steps, (size_t)n * sizeof(int));
	inj->nscript = n;
}

/* Returns the byte limit for this call, or -1 with errno set to fail it. */
static ssize_t next_step(struct inject *inj, size_t len)
{
	inj->calls++;
	if (inj->step >= inj->nscript)
		return (ssize_t)len;
	int s = inj->script[inj->step++];
	if (s > 0)
		return (size_t)s < len ? s : (ssize_t)len;
	errno = s == INJ_EINTR ? EINTR : s == INJ_EAGAIN ? EAGAIN : ECONNRESET;
	return -1;
}

ssize_t __wrap_send(int fd, const void *buf, size_t len, int flags)
{
	last_send_flags = flags;
	if (!(flags & MSG_NOSIGNAL))
		send_inj.no_nosignal++;
	ssize_t lim = next_step(&send_inj, len);
	return lim < 0 ? -1 : __real_send(fd, buf, (size_t)lim, flags);
}

ssize_t __wrap_recv(int fd, void *buf, size_t len, int flags)
{
	ssize_t lim = next_step(&recv_inj, len);
	return lim < 0 ? -1 : __real_recv(fd, buf, (size_t)lim, flags);
}

/* "dual.test" resolves to ::1 then 127.0.0.1 (those the hints allow);
 * "noname.test" fails. */
int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		       struct addrinfo **res)
{
	if (node != NULL && strcmp(node, "noname.test") == 0)
		return EAI_NONAME;
	if (node == NULL || strcmp(node, "dual.test") != 0)
		return __real_getaddrinfo(node, service, hints, res);
	static const char *const ips[] = {"::1", "127.0.0.1"};
	struct addrinfo *head = NULL, **tail = &head;
	int rc = EAI_NONAME;
	for (int i = 0; i < 2; i++) {
		struct addrinfo *one = NULL;
		rc = __real_getaddrinfo(ips[i], service, hints, &one);
		if (rc != 0)
			continue;
		*tail = one;
		while (*tail != NULL)
			tail = &(*tail)->ai_next;
	}
	*res = head;
	return head != NULL ? 0 : rc;
}

/* Counting shims: -Wl,--wrap=poll,clock_gettime,fcntl.  The counters
 * prove what a call costs in system calls beyond its one I/O call. */
static int poll_calls, clock_calls, fcntl_calls;
int __real_poll(struct pollfd *fds, nfds_t nfds, int timeout);
int __wrap_poll(struct pollfd *fds, nfds_t nfds, int timeout);
int __real_clock_gettime(clockid_t clk, struct timespec *ts);
int __wrap_clock_gettime(clockid_t clk, struct timespec *ts);
int __real_fcntl(int fd, int cmd, ...);
int __wrap_fcntl(int fd, int cmd, ...);

int __wrap_poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
	poll_calls++;
	return __real_poll(fds, nfds, timeout);
}

int __wrap_clock_gettime(clockid_t clk, struct timespec *ts)
{
	clock_calls++;
	return __real_clock_gettime(clk, ts);
}

/* F_GETFL/F_GETFD/F_SETFL/F_SETFD only: an int argument or none. */
int __wrap_fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	int arg = va_arg(ap, int);
	va_end(ap);
	fcntl_calls++;
	return __real_fcntl(fd, cmd, arg);
}

static void reset_counts(void)
{
	poll_calls = clock_calls = fcntl_calls = 0;
	send_inj.calls = recv_inj.calls = 0;
}

static int reset_injection(void **state)
{
	(void)state;
	memset(&send_inj, 0, sizeof(send_inj));
	memset(&recv_inj, 0, sizeof(recv_inj));
	reset_counts();
	return 0;
}

/* ---- Helpers ------------------------------------------------------------ */

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int bound_port(int fd)
{
	sockit_addr a;
	assert_int_equal(sockit_getsockname(fd, &a), 0);
	return sockit_addr_port(&a);
}

/* A connected TCP pair over 127.0.0.1: *c the client, *s the server side. */
static void tcp_pair(int *c, int *s)
{
	int srv = sockit_create_server("127.0.0.1", 0, SOCK_STREAM, 4, 0);
	assert_ok(srv);
	*c = sockit_create_connection("127.0.0.1", bound_port(srv), 5000);
	assert_ok(*c);
	*s = sockit_accept(srv, NULL, 0, 5000);
	assert_ok(*s);
	sockit_close(srv);
}

static void fill_pattern(unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(i * 7 + i / 251);
}

/* ---- sendall / recv under injected faults ------------------------------- */

static void test_sendall_short_eintr_eagain(void **state)
{
	(void)state;
	int c, s;
	tcp_pair(&c, &s);
	enum { N = 4096 };
	unsigned char out[N], in[N];
	fill_pattern(out, N);
	const int steps[] = {3, INJ_EINTR, 1, INJ_EAGAIN, INJ_EINTR, INJ_EINTR, 5, INJ_EAGAIN, 100};
	script(&send_inj, steps, sizeof(steps) / sizeof(steps[0]));
	size_t sent = 0;
	assert_int_equal(sockit_sendall(c, out, N, 5000, &sent), 0);
	assert_int_equal(sent, N);
	/* Every scripted step ran, plus at least one real send for the rest. */
	assert_int_equal(send_inj.step, send_inj.nscript);
	assert_true(send_inj.calls > send_inj.nscript);
	assert_int_equal(send_inj.no_nosignal, 0);
	assert_int_equal(sockit_recv_exact(s, in, N, 5000), N);
	assert_memory_equal(in, out, N);
	sockit_close(c);
	sockit_close(s);
}

static void test_sendall_reports_partial(void **state)
{
	(void)state;
	int c, s;
	tcp_pair(&c, &s);
	const int steps[] = {10, INJ_EINTR, 7, INJ_RESET};
	script(&send_inj, steps, 4);
	size_t sent = 12345;
	char out[100], in[17];
	memset(out, 'x', sizeof(out));
	assert_int_equal(sockit_sendall(c, out, sizeof(out), 5000, &sent), -ECONNRESET);
	assert_int_equal(sent, 17);
	assert_int_equal(sockit_recv_exact(s, in, sizeof(in), 5000), 17);
	sockit_close(c);
	sockit_close(s);
}

static void test_recv_retries_eintr_eagain(void **state)
{
	(void)state;
	int c, s;
	tcp_pair(&c, &s);
	assert_int_equal(sockit_send(s, "ping", 4, 1000), 4);
	const int steps[] = {INJ_EINTR, INJ_EAGAIN, INJ_EINTR, 2};
	script(&recv_inj, steps, 4);
	char buf[8];
	assert_int_equal(sockit_recv_exact(c, buf, 4, 5000), 4);
	assert_memory_equal(buf, "ping", 4);
	assert_int_equal(recv_inj.calls, 5);
	/* A hard error is reported, not retried. */
	const int reset[] = {INJ_RESET};
	script(&recv_inj, reset, 1);
	assert_int_equal(sockit_recv(c, buf, sizeof(buf), 1000), -ECONNRESET);
	sockit_close(c);
	sockit_close(s);
}

static void test_sendall_timeout(void **state)
{
	(void)state;
	/* Small buffers and a peer that never reads: the send side fills up. */
	int srv = sockit_create_server("127.0.0.1", 0, SOCK_STREAM, 4, 0);
	assert_ok(srv);
	assert_int_equal(sockit_set_rcvbuf(srv, 4096), 0);
	int c = sockit_create_connection("127.0.0.1", bound_port(srv), 5000);
	assert_ok(c);
	assert_int_equal(sockit_set_sndbuf(c, 4096), 0);
	int s = sockit_accept(srv, NULL, 0, 5000);
	assert_ok(s);
	size_t len = 8u << 20;
	char *big = calloc(1, len);
	assert_non_null(big);
	size_t sent = 0;
	int64_t t0 = mono_ms();
	assert_int_equal(sockit_sendall(c, big, len, 200, &sent), -ETIMEDOUT);
	int64_t elapsed = mono_ms() - t0;
	assert_in_range(elapsed, 190, 5000);
	assert_in_range(sent, 1, len - 1);
	free(big);
	sockit_close(c);
	sockit_close(s);
	sockit_close(srv);
}

/* ---- Timeouts ----------------------------------------------------------- */

static void test_recv_timeout(void **state)
{
	(void)state;
	int c, s;
	tcp_pair(&c, &s);
	char buf[16];
	int64_t t0 = mono_ms();
	assert_int_equal(sockit_recv(c, buf, sizeof(buf), 100), -ETIMEDOUT);
	int64_t elapsed = mono_ms() - t0;
	assert_in_range(elapsed, 90, 5000);
	/* 0 tries once, without waiting. */
	t0 = mono_ms();
	assert_int_equal(sockit_recv(c, buf, sizeof(buf), 0), -EAGAIN);
	assert_in_range(mono_ms() - t0, 0, 1000);
	/* The fd is still blocking: the timeout did not change it. */
	assert_int_equal(fcntl(c, F_GETFL) & O_NONBLOCK, 0);
	sockit_close(c);
	sockit_close(s);
}

static void test_accept_timeout(void **state)
{
	(void)state;
	int srv = sockit_create_server("127.0.0.1", 0, SOCK_STREAM, 4, 0);
	assert_ok(srv);
	int64_t t0 = mono_ms();
	assert_int_equal(sockit_accept(srv, NULL, 0, 100), -ETIMEDOUT);
	assert_in_range(mono_ms() - t0, 90, 5000);
	/* Non-blocking listener, same contract. */
	int nb = sockit_create_server("127.0.0.1", 0, SOCK_STREAM, 4, SOCKIT_NONBLOCK);
	assert_ok(nb);
	t0 = mono_ms();
	assert_int_equal(sockit_accept(nb, NULL, 0, 100), -ETIMEDOUT);
	assert_in_range(mono_ms() - t0, 90, 5000);
	/* And a real client is accepted, with its address and flags. */
	int c = sockit_create_connection("127.0.0.1", bound_port(nb), 5000);
	assert_ok(c);
	sockit_addr peer;
	int s = sockit_accept(nb, &peer, SOCK_NONBLOCK, 5000);
	assert_ok(s);
	assert_true(fcntl(s, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(s, F_GETFD) & FD_CLOEXEC);
	sockit_addr local;
	assert_int_equal(sockit_getsockname(c, &local), 0);
	assert_int_equal(sockit_addr_port(&peer), sockit_addr_port(&local));
	sockit_close(s);
	sockit_close(c);
	sockit_close(nb);
	sockit_close(srv);
}

static void test_connect_timeout(void **state)
{
	(void)state;
	/* A listener with backlog 1 that never accepts: once its queue is
	 * full the kernel drops further SYNs, and connects hang. */
	int srv = sockit_socket(AF_INET, SOCK_STREAM);
	sockit_addr a;
	assert_int_equal(sockit_addr_from_ip("127.0.0.1", 0, &a), 0);
	assert_int_equal(sockit_bind(srv, &a), 0);
	assert_int_equal(sockit_listen(srv, 1), 0);
	assert_int_equal(sockit_getsockname(srv, &a), 0);
	int fds[16], nfds = 0, rc = 0;
	int64_t elapsed = 0;
	while (nfds < 16 && rc == 0) {
		int fd = fds[nfds++] = sockit_socket(AF_INET, SOCK_STREAM);
		assert_ok(fd);
		int64_t t0 = mono_ms();
		rc = sockit_connect(fd, &a, 100);
		elapsed = mono_ms() - t0;
		/* Blocking again, whatever happened. */
		assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	}
	assert_int_equal(rc, -ETIMEDOUT);
	assert_in_range(elapsed, 90, 5000);
	/* create_connection reports the timed-out attempt. */
	sockit_attempt att[2];
	size_t natt = 0;
	rc = sockit_create_connection_ex("127.0.0.1", sockit_addr_port(&a), AF_INET, SOCK_STREAM,
					 100, att, 2, &natt, NULL);
	assert_int_equal(rc, -ETIMEDOUT);
	assert_int_equal(natt, 1);
	assert_int_equal(att[0].error, -ETIMEDOUT);
	for (int i = 0; i < nfds; i++)
		sockit_close(fds[i]);
	sockit_close(srv);
}

/* ---- EPIPE without a signal (SIGPIPE stays at its default: fatal) -------- */

static void test_epipe_no_signal(void **state)
{
	(void)state;
	int c, s;
	tcp_pair(&c, &s);
	assert_int_equal(sockit_shutdown(c, SHUT_WR), 0);
	assert_int_equal(sockit_send(c, "x", 1, 1000), -EPIPE);
	size_t sent = 1;
	assert_int_equal(sockit_sendall(c, "xy", 2, 1000, &sent), -EPIPE);
	assert_int_equal(sent, 0);
	sockit_close(c);
	sockit_close(s);

	/* The peer closed: the first send may still succeed, then RST comes. */
	tcp_pair(&c, &s);
	sockit_close(s);
	int rc = 0;
	for (int i = 0; i < 200 && rc >= 0; i++) {
		rc = (int)sockit_send(c, "data", 4, 1000);
		if (rc >= 0)
			poll(NULL, 0, 5);
	}
	if (rc != -EPIPE && rc != -ECONNRESET)
		fail_msg("send to a closed peer: %d (%s)", rc, sockit_strerror(rc));
	sockit_close(c);
}

/* ---- recvline ----------------------------------------------------------- */

static void test_recvline_byte_exact(void **state)
{
	(void)state;
	int c, s;
	tcp_pair(&c, &s);
	const char *data = "hello\nworld\r\nrest";
	assert_int_equal(sockit_sendall(s, data, strlen(data), 1000, NULL), 0);
	char line[64];
	assert_int_equal(sockit_recvline(c, line, sizeof(line), 1000), 6);
	assert_string_equal(line, "hello\n");
	assert_int_equal(sockit_recvline(c, line, sizeof(line), 1000), 7);
	assert_string_equal(line, "world\r\n");
	/* The bytes after the line are still there for a plain recv. */
	char buf[16];
	assert_int_equal(sockit_recv(c, buf, sizeof(buf), 1000), 4);
	assert_memory_equal(buf, "rest", 4);
	sockit_close(c);
	sockit_close(s);
}

static void test_recvline_limits(void **state)
{
	(void)state;
	int c, s;
	tcp_pair(&c, &s);
	assert_int_equal(sockit_sendall(s, "abcdefghij", 10, 1000, NULL), 0);
	char line[6];
	/* A buffer of 6 holds a line of 5 with its '\n'; 5 bytes without one: too long. */
	assert_int_equal(sockit_recvline(c, line, sizeof(line), 1000), -EMSGSIZE);
	char buf[16];
	assert_int_equal(sockit_recv_exact(c, buf, 10, 1000), 10);
	assert_memory_equal(buf, "abcdefghij", 10);
	/* Exactly len - 1 bytes with the '\n': fits. */
	assert_int_equal(sockit_sendall(s, "abcd\nZ", 6, 1000, NULL), 0);
	assert_int_equal(sockit_recvline(c, line, sizeof(line), 1000), 5);
	assert_string_equal(line, "abcd\n");
	/* A partial line waits for its end: timeout, bytes left unread. */
	int64_t t0 = mono_ms();
	assert_int_equal(sockit_recvline(c, line, sizeof(line), 100), -ETIMEDOUT);
	assert_in_range(mono_ms() - t0, 90, 5000);
	/* At EOF the partial line is returned, then 0. */
	assert_int_equal(sockit_shutdown(s, SHUT_WR), 0);
	assert_int_equal(sockit_recvline(c, line, sizeof(line), 1000), 1);
	assert_string_equal(line, "Z");
	assert_int_equal(sockit_recvline(c, line, sizeof(line), 1000), 0);
	assert_string_equal(line, "");
	assert_int_equal(sockit_recvline(c, NULL, 10, 1000), -EINVAL);
	assert_int_equal(sockit_recvline(c, line, 1, 1000), -EINVAL);
	assert_int_equal(sockit_recvline(-1, line, sizeof(line), 1000), -EINVAL);
	sockit_close(c);
	sockit_close(s);
}

struct delayed {
	int fd;
	const char *data;
};

static void *send_later(void *arg)
{
	struct delayed *d = arg;
	poll(NULL, 0, 50);
	sockit_sendall(d->fd, d->data, strlen(d->data), 5000, NULL);
	return NULL;
}

static void test_recvline_waits_for_rest(void **state)
{
	(void)state;
	int c, s;
	tcp_pair(&c, &s);
	assert_int_equal(sockit_send(s, "par", 3, 1000), 3);
	struct delayed d = {s, "tial\nnext"};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, send_later, &d), 0);
	char line[64];
	int64_t t0 = mono_ms();
	assert_int_equal(sockit_recvline(c, line, sizeof(line), 5000), 8);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_string_equal(line, "partial\n");
	assert_in_range(mono_ms() - t0, 0, 4900);
	char buf[8];
	assert_int_equal(sockit_recv_exact(c, buf, 4, 1000), 4);
	assert_memory_equal(buf, "next", 4);
	sockit_close(c);
	sockit_close(s);
}

/* ---- create_connection / create_server ---------------------------------- */

static void test_create_connection_dead_then_live(void **state)
{
	(void)state;
	int srv = sockit_create_server("127.0.0.1", 0, SOCK_STREAM, 4, 0);
	assert_ok(srv);
	int port = bound_port(srv);
	sockit_attempt att[4];
	size_t natt = 99;
	sockit_addr ok;
	int fd = sockit_create_connection_ex("dual.test", port, AF_UNSPEC, SOCK_STREAM, 2000, att,
					     4, &natt, &ok);
	if (fd < 0)
		fail_msg("create_connection_ex: %d (%s)", fd, sockit_strerror(fd));
	/* ::1 was tried first and failed; 127.0.0.1 worked. */
	assert_int_equal(natt, 1);
	assert_int_equal(att[0].addr.ss.ss_family, AF_INET6);
	assert_true(att[0].error < 0);
	char buf[SOCKIT_ADDRSTRLEN], want[32];
	snprintf(want, sizeof(want), "127.0.0.1:%d", port);
	sockit_addr_format(&ok, buf, sizeof(buf));
	assert_string_equal(buf, want);
	assert_int_equal(sockit_peername_str(fd, buf, sizeof(buf)), (int)strlen(want));
	assert_string_equal(buf, want);
	/* The result is blocking and close-on-exec. */
	assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	sockit_close(fd);
	/* The plain variant also gets through. */
	fd = sockit_create_connection("dual.test", port, 2000);
	assert_ok(fd);
	sockit_close(fd);
	sockit_close(srv);
}

static void test_create_connection_all_dead(void **state)
{
	(void)state;
	/* A bound, non-listening socket keeps the port dead and ours. */
	int hold = sockit_socket(AF_INET, SOCK_STREAM);
	sockit_addr a;
	assert_int_equal(sockit_addr_from_ip("127.0.0.1", 0, &a), 0);
	assert_int_equal(sockit_bind(hold, &a), 0);
	int port = bound_port(hold);
	assert_int_equal(sockit_create_connection("127.0.0.1", port, 2000), -ECONNREFUSED);
	sockit_attempt att[1];
	size_t natt = 0;
	int rc = sockit_create_connection_ex("dual.test", port, AF_UNSPEC, SOCK_STREAM, 2000, att,
					     1, &natt, NULL);
	assert_int_equal(rc, -ECONNREFUSED);
	assert_int_equal(natt, 2); /* more failures than room: counted anyway */
	assert_int_equal(att[0].addr.ss.ss_family, AF_INET6);
	/* Family restriction: only the IPv4 address is tried. */
	rc = sockit_create_connection_ex("dual.test", port, AF_INET, SOCK_STREAM, 2000, att, 1,
					 &natt, NULL);
	assert_int_equal(rc, -ECONNREFUSED);
	assert_int_equal(natt, 1);
	assert_int_equal(att[0].addr.ss.ss_family, AF_INET);
	assert_int_equal(att[0].error, -ECONNREFUSED);
	/* Resolver failures come back in their own range. */
	rc = sockit_create_connection("noname.test", 80, 1000);
	assert_int_equal(rc, SOCKIT_EAI_BASE + EAI_NONAME);
	assert_string_equal(sockit_strerror(rc), "name or service not known");
	sockit_close(hold);
}

static void test_connect_restores_blocking(void **state)
{
	(void)state;
	int srv = sockit_create_server("127.0.0.1", 0, SOCK_STREAM, 4, 0);
	assert_ok(srv);
	sockit_addr a;
	assert_int_equal(sockit_addr_from_ip("127.0.0.1", bound_port(srv), &a), 0);
	int fd = sockit_socket(AF_INET, SOCK_STREAM);
	assert_ok(fd);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(sockit_connect(fd, &a, 2000), 0);
	assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	sockit_close(fd);
	/* A non-blocking fd stays non-blocking; 0 gives 0 or -EINPROGRESS. */
	fd = sockit_socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK);
	int rc = sockit_connect(fd, &a, 0);
	if (rc != 0 && rc != -EINPROGRESS)
		fail_msg("non-blocking connect: %d (%s)", rc, sockit_strerror(rc));
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	assert_int_equal(poll(&p, 1, 5000), 1);
	sockit_close(fd);
	sockit_close(srv);
}

static void test_create_server_udp(void **state)
{
	(void)state;
	int srv = sockit_create_server("127.0.0.1", 0, SOCK_DGRAM, 0, 0);
	assert_ok(srv);
	int port = bound_port(srv);
	int c = sockit_udp_connect("127.0.0.1", port, AF_UNSPEC);
	assert_ok(c);
	assert_int_equal(sockit_send(c, "dgram", 5, 1000), 5);
	char buf[16];
	sockit_addr from;
	assert_int_equal(sockit_recvfrom(srv, buf, sizeof(buf), &from, 2000), 5);
	assert_memory_equal(buf, "dgram", 5);
	assert_int_equal(sockit_sendto(srv, "back", 4, &from, 1000), 4);
	assert_int_equal(sockit_recv(c, buf, sizeof(buf), 2000), 4);
	assert_memory_equal(buf, "back", 4);
	/* One-shot send to a named host. */
	int u = sockit_socket(AF_INET, SOCK_DGRAM);
	assert_ok(u);
	assert_int_equal(sockit_udp_sendto(u, "named", 5, "127.0.0.1", port, 1000), 5);
	assert_int_equal(sockit_recvfrom(srv, buf, sizeof(buf), NULL, 2000), 5);
	assert_memory_equal(buf, "named", 5);
	assert_int_equal(sockit_udp_sendto(u, "x", 1, "noname.test", port, 1000),
			 SOCKIT_EAI_BASE + EAI_NONAME);
	/* A datagram server does not listen, and recvfrom times out. */
	assert_int_equal(sockit_recvfrom(srv, buf, sizeof(buf), NULL, 50), -ETIMEDOUT);
	sockit_close(u);
	sockit_close(c);
	sockit_close(srv);
}

static void test_create_server_flags(void **state)
{
	(void)state;
	int a = sockit_create_server("127.0.0.1", 0, SOCK_STREAM, 0, SOCKIT_REUSEPORT);
	assert_ok(a);
	int port = bound_port(a);
	/* REUSEPORT: a second listener on the same port. */
	int b = sockit_create_server("127.0.0.1", port, SOCK_STREAM, 0, SOCKIT_REUSEPORT);
	assert_ok(b);
	/* Without it: address in use. */
	assert_int_equal(sockit_create_server("127.0.0.1", port, SOCK_STREAM, 0, 0), -EADDRINUSE);
	sockit_close(b);
	sockit_close(a);
	int nb = sockit_create_server("127.0.0.1", 0, SOCK_STREAM, 0, SOCKIT_NONBLOCK);
	assert_ok(nb);
	assert_true(fcntl(nb, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(nb, F_GETFD) & FD_CLOEXEC);
	sockit_close(nb);
	/* IPv6 loopback, v6-only by default. */
	int v6 = sockit_create_server("::1", 0, SOCK_STREAM, 0, 0);
	if (v6 >= 0) {
		int on = 0;
		socklen_t sl = sizeof(on);
		assert_int_equal(getsockopt(v6, IPPROTO_IPV6, IPV6_V6ONLY, &on, &sl), 0);
		assert_int_equal(on, 1);
		int c = sockit_create_connection("::1", bound_port(v6), 2000);
		assert_ok(c);
		sockit_close(c);
		sockit_close(v6);
	}
	assert_int_equal(sockit_create_server("127.0.0.1", 0, SOCK_RAW, 0, 0), -EINVAL);
	assert_int_equal(sockit_create_server("127.0.0.1", 0, SOCK_STREAM, 0, 0x100), -EINVAL);
	assert_int_equal(
		sockit_create_server("::1", 0, SOCK_STREAM, 0, SOCKIT_DUALSTACK | SOCKIT_V6ONLY),
		-EINVAL);
	assert_int_equal(sockit_create_server("127.0.0.1", 70000, SOCK_STREAM, 0, 0), -EINVAL);
}

/* ---- Timeout 0 is one system call --------------------------------------- */

static void test_timeout0_one_syscall(void **state)
{
	(void)state;
	int c, s;
	tcp_pair(&c, &s);
	char buf[16];
	/* Nothing queued: one recv, "would block" is -EAGAIN; no clock, no poll. */
	reset_counts();
	assert_int_equal(sockit_recv(c, buf, sizeof(buf), 0), -EAGAIN);
	assert_int_equal(recv_inj.calls, 1);
	assert_int_equal(poll_calls, 0);
	assert_int_equal(clock_calls, 0);
	assert_int_equal(fcntl_calls, 0);
	/* A send and the recv that takes it: one call each. */
	reset_counts();
	assert_int_equal(sockit_send(s, "ping", 4, 0), 4);
	assert_int_equal(send_inj.calls, 1);
	assert_true(last_send_flags & MSG_DONTWAIT); /* a blocking fd cannot block */
	char got[4];
	assert_int_equal(sockit_recv(c, got, 4, -1), 4); /* -1: no clock either */
	assert_int_equal(poll_calls + clock_calls + fcntl_calls, 0);
	/* A full send buffer: one send, -EAGAIN, still nothing else. */
	assert_int_equal(sockit_set_sndbuf(s, 4096), 0);
	char *big = calloc(1, 1u << 20);
	assert_non_null(big);
	ssize_t n;
	while ((n = sockit_send(s, big, 1u << 20, 0)) > 0)
		;
	free(big);
	assert_int_equal(n, -EAGAIN);
	reset_counts();
	assert_int_equal(sockit_send(s, "x", 1, 0), -EAGAIN);
	assert_int_equal(send_inj.calls, 1);
	assert_int_equal(poll_calls + clock_calls + fcntl_calls, 0);
	sockit_close(c);
	sockit_close(s);
	/* recvfrom on an empty UDP socket, sendto: the same. */
	int u = sockit_create_server("127.0.0.1", 0, SOCK_DGRAM, 0, 0);
	assert_ok(u);
	sockit_addr self;
	assert_int_equal(sockit_getsockname(u, &self), 0);
	reset_counts();
	assert_int_equal(sockit_recvfrom(u, buf, sizeof(buf), NULL, 0), -EAGAIN);
	assert_int_equal(sockit_sendto(u, "d", 1, &self, 0), 1);
	assert_int_equal(poll_calls + clock_calls + fcntl_calls, 0);
	sockit_close(u);
}

static void test_accept_costs(void **state)
{
	(void)state;
	int nb = sockit_create_server("127.0.0.1", 0, SOCK_STREAM, 4, SOCKIT_NONBLOCK);
	assert_ok(nb);
	/* timeout 0: must learn whether the listener blocks (one fcntl), never polls. */
	reset_counts();
	assert_int_equal(sockit_accept(nb, NULL, 0, 0), -EAGAIN);
	assert_int_equal(fcntl_calls, 1);
	assert_int_equal(poll_calls + clock_calls, 0);
	/* timeout -1 with a client queued: accept4 alone, no fcntl, clock or poll. */
	int c = sockit_create_connection("127.0.0.1", bound_port(nb), 5000);
	assert_ok(c);
	struct pollfd p = {.fd = nb, .events = POLLIN};
	assert_int_equal(__real_poll(&p, 1, 5000), 1);
	reset_counts();
	sockit_addr peer;
	int s = sockit_accept(nb, &peer, SOCK_NONBLOCK, -1);
	assert_ok(s);
	assert_int_equal(fcntl_calls + poll_calls + clock_calls, 0);
	assert_int_equal(sockit_addr_port(&peer) > 0, 1);
	sockit_close(s);
	sockit_close(c);
	/* A blocking listener with timeout 0 still never waits. */
	int bl = sockit_create_server("127.0.0.1", 0, SOCK_STREAM, 4, 0);
	assert_ok(bl);
	int64_t t0 = mono_ms();
	assert_int_equal(sockit_accept(bl, NULL, 0, 0), -EAGAIN);
	assert_in_range(mono_ms() - t0, 0, 1000);
	sockit_close(bl);
	sockit_close(nb);
}

static void test_send_flags(void **state)
{
	(void)state;
	int c, s;
	tcp_pair(&c, &s);
	/* The caller's flags reach send(2), with MSG_NOSIGNAL added. */
	assert_int_equal(sockit_send_flags(s, "more", 4, MSG_MORE, 1000), 4);
	assert_true(last_send_flags & MSG_MORE);
	assert_true(last_send_flags & MSG_NOSIGNAL);
	assert_int_equal(send_inj.no_nosignal, 0);
	/* timeout 0 adds MSG_DONTWAIT, is one call, and keeps the flags. */
	reset_counts();
	assert_int_equal(sockit_send_flags(s, "!", 1, MSG_MORE, 0), 1);
	assert_int_equal(send_inj.calls, 1);
	assert_int_equal(last_send_flags & (MSG_MORE | MSG_NOSIGNAL | MSG_DONTWAIT),
			 MSG_MORE | MSG_NOSIGNAL | MSG_DONTWAIT);
	assert_int_equal(poll_calls + clock_calls + fcntl_calls, 0);
	/* The held data leaves with the FIN. */
	assert_int_equal(sockit_shutdown(s, SHUT_WR), 0);
	char buf[8];
	assert_int_equal(sockit_recv_exact(c, buf, sizeof(buf), 5000), 5);
	assert_memory_equal(buf, "more!", 5);
	/* Without flags: plain send, still MSG_NOSIGNAL; errors pass through. */
	assert_int_equal(sockit_send_flags(-1, "x", 1, 0, 0), -EINVAL);
	assert_int_equal(sockit_send_flags(c, NULL, 1, 0, 0), -EINVAL);
	sockit_close(c);
	sockit_close(s);
}

/* ---- Bad arguments: negative codes, never a crash ----------------------- */

static void test_bad_arguments(void **state)
{
	(void)state;
	char buf[8];
	sockit_addr a;
	assert_int_equal(sockit_addr_from_ip("127.0.0.1", 1, &a), 0);
	assert_int_equal(sockit_socket(12345, SOCK_STREAM), -EINVAL);
	assert_int_equal(sockit_socket(AF_INET, 999), -EINVAL);
	assert_int_equal(sockit_close(-1), -EINVAL);
	assert_int_equal(sockit_bind(-1, &a), -EINVAL);
	assert_int_equal(sockit_bind(0, NULL), -EINVAL);
	assert_int_equal(sockit_listen(-1, 5), -EINVAL);
	assert_int_equal(sockit_connect(-1, &a, 100), -EINVAL);
	assert_int_equal(sockit_connect(0, NULL, 100), -EINVAL);
	assert_int_equal(sockit_accept(-1, NULL, 0, 100), -EINVAL);
	assert_int_equal(sockit_accept(0, NULL, 0x7, 100), -EINVAL);
	assert_int_equal(sockit_send(-1, "x", 1, 100), -EINVAL);
	assert_int_equal(sockit_send(0, NULL, 1, 100), -EINVAL);
	assert_int_equal(sockit_recv(-1, buf, 1, 100), -EINVAL);
	assert_int_equal(sockit_recv(0, NULL, 1, 100), -EINVAL);
	assert_int_equal(sockit_sendto(-1, "x", 1, &a, 100), -EINVAL);
	assert_int_equal(sockit_sendto(0, "x", 1, NULL, 100), -EINVAL);
	assert_int_equal(sockit_recvfrom(-1, buf, 1, NULL, 100), -EINVAL);
	assert_int_equal(sockit_shutdown(-1, SHUT_WR), -EINVAL);
	assert_int_equal(sockit_shutdown(0, 42), -EINVAL);
	size_t sent = 99;
	assert_int_equal(sockit_sendall(-1, "x", 1, 100, &sent), -EINVAL);
	assert_int_equal(sent, 0);
	assert_int_equal(sockit_sendall(0, NULL, 1, 100, NULL), -EINVAL);
	assert_int_equal(sockit_recv_exact(-1, buf, 1, 100), -EINVAL);
	assert_int_equal(sockit_recv_exact(0, NULL, 1, 100), -EINVAL);
	assert_int_equal(sockit_create_connection("127.0.0.1", -1, 100), -EINVAL);
	assert_int_equal(sockit_create_connection("127.0.0.1", 65536, 100), -EINVAL);
	assert_int_equal(sockit_create_connection_ex("127.0.0.1", 1, AF_UNIX, SOCK_STREAM, 100,
						     NULL, 0, NULL, NULL),
			 -EINVAL);
	assert_int_equal(sockit_create_connection_ex("127.0.0.1", 1, AF_INET, SOCK_RAW, 100, NULL,
						     0, NULL, NULL),
			 -EINVAL);
	assert_int_equal(sockit_create_connection_ex("127.0.0.1", 1, AF_INET, SOCK_STREAM, 100,
						     NULL, 4, NULL, NULL),
			 -EINVAL);
	assert_int_equal(sockit_udp_connect("127.0.0.1", 99999, AF_UNSPEC), -EINVAL);
	assert_int_equal(sockit_udp_sendto(-1, "x", 1, "127.0.0.1", 1, 100), -EINVAL);
	assert_int_equal(sockit_udp_sendto(0, NULL, 1, "127.0.0.1", 1, 100), -EINVAL);
	/* A closed descriptor number: the kernel's answer, passed through. */
	int fd = sockit_socket(AF_INET, SOCK_STREAM);
	assert_ok(fd);
	sockit_close(fd);
	assert_int_equal(sockit_send(fd, "x", 1, 100), -EBADF);
	assert_int_equal(sockit_recv(fd, buf, 1, 0), -EBADF);
	assert_int_equal(sockit_close(fd), -EBADF);
	/* Not a socket. */
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(sockit_send(p[1], "x", 1, 100), -ENOTSOCK);
	assert_int_equal(sockit_accept(p[0], NULL, 0, 0), -ENOTSOCK);
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_sendall_short_eintr_eagain, reset_injection),
		cmocka_unit_test_setup(test_sendall_reports_partial, reset_injection),
		cmocka_unit_test_setup(test_recv_retries_eintr_eagain, reset_injection),
		cmocka_unit_test_setup(test_sendall_timeout, reset_injection),
		cmocka_unit_test_setup(test_recv_timeout, reset_injection),
		cmocka_unit_test_setup(test_accept_timeout, reset_injection),
		cmocka_unit_test_setup(test_connect_timeout, reset_injection),
		cmocka_unit_test_setup(test_epipe_no_signal, reset_injection),
		cmocka_unit_test_setup(test_recvline_byte_exact, reset_injection),
		cmocka_unit_test_setup(test_recvline_limits, reset_injection),
		cmocka_unit_test_setup(test_recvline_waits_for_rest, reset_injection),
		cmocka_unit_test_setup(test_create_connection_dead_then_live, reset_injection),
		cmocka_unit_test_setup(test_create_connection_all_dead, reset_injection),
		cmocka_unit_test_setup(test_connect_restores_blocking, reset_injection),
		cmocka_unit_test_setup(test_create_server_udp, reset_injection),
		cmocka_unit_test_setup(test_create_server_flags, reset_injection),
		cmocka_unit_test_setup(test_bad_arguments, reset_injection),
		cmocka_unit_test_setup(test_timeout0_one_syscall, reset_injection),
		cmocka_unit_test_setup(test_accept_costs, reset_injection),
		cmocka_unit_test_setup(test_send_flags, reset_injection),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
