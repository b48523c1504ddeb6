/* test_happy.c -- sockit_create_connection races the addresses (RFC 8305, Happy Eyeballs; issue
 * 17): black holes cost one delay, every failure is reported, losers are closed, one deadline. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
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

/* ---- The resolver seam: -Wl,--wrap=getaddrinfo -------------------------- */

/* "race.test" resolves to these numeric addresses, in this order (those
 * the hints' family allows); any other name goes to the real resolver. */
static const char *race_ips[8];
static int race_n;

static void resolves_to(int n, const char *const *ips)
{
	race_n = n;
	for (int i = 0; i < n; i++)
		race_ips[i] = ips[i];
}

int __real_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		       struct addrinfo **res);
int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		       struct addrinfo **res);

int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		       struct addrinfo **res)
{
	if (node == NULL || strcmp(node, "race.test") != 0)
		return __real_getaddrinfo(node, service, hints, res);
	struct addrinfo *head = NULL, **tail = &head;
	int rc = EAI_NONAME;
	for (int i = 0; i < race_n; i++) {
		struct addrinfo h = *hints, *one = NULL;
		h.ai_flags |= AI_NUMERICHOST;
		rc = __real_getaddrinfo(race_ips[i], service, &h, &one);
		if (rc != 0)
			continue;
		*tail = one;
		while (*tail != NULL)
			tail = &(*tail)->ai_next;
	}
	*res = head;
	return head != NULL ? 0 : rc;
}

/* ---- Helpers ------------------------------------------------------------ */

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Open descriptors, counted in /proc/self/fd. */
static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	int n = 0;
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

static int port_of(int fd)
{
	sockit_addr a;
	assert_int_equal(sockit_getsockname(fd, &a), 0);
	return sockit_addr_port(&a);
}

/* A TCP socket bound to ip:port (port 0: any), listening with backlog
 * (< 0: not listening), or a negative code.  "::" is dual-stack. */
static int tcp_on(const char *ip, int port, int backlog)
{
	sockit_addr a;
	assert_int_equal(sockit_addr_from_ip(ip, port, &a), 0);
	int fd = sockit_socket(a.ss.ss_family, SOCK_STREAM);
	assert_ok(fd);
	int off = 0;
	if (a.ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
	int rc = sockit_bind(fd, &a);
	if (rc == 0 && backlog >= 0)
		rc = listen(fd, backlog) < 0 ? -errno : 0;
	if (rc < 0) {
		sockit_close(fd);
		return rc;
	}
	return fd;
}

/* A black hole: a listener on ip (port 0) with backlog 0 whose accept queue
 * is full, so the kernel drops further SYNs (tcp_abort_on_overflow = 0)
 * and connects to it hang.  fill[2] hold the queue.  Skips the test if
 * this kernel answers instead. */
struct hole {
	int lst, fill[2], port;
};

static void hole_open(struct hole *h, const char *ip)
{
	h->lst = tcp_on(ip, 0, 0);
	assert_ok(h->lst);
	h->port = port_of(h->lst);
	const char *to = strchr(ip, ':') != NULL      ? "::1"
			 : strcmp(ip, "0.0.0.0") == 0 ? "127.0.0.1"
						      : ip;
	sockit_addr a;
	assert_int_equal(sockit_addr_from_ip(to, h->port, &a), 0);
	for (int i = 0; i < 2; i++) {
		h->fill[i] = sockit_socket(a.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK);
		assert_ok(h->fill[i]);
		sockit_connect(h->fill[i], &a, 0);
	}
	usleep(100 * 1000);
	int probe = sockit_socket(a.ss.ss_family, SOCK_STREAM);
	int rc = sockit_connect(probe, &a, 300);
	sockit_close(probe);
	if (rc != -ETIMEDOUT) {
		print_message("a full backlog does not drop SYNs here (%s)\n", sockit_strerror(rc));
		skip();
	}
}

static void hole_close(struct hole *h)
{
	sockit_close(h->fill[0]);
	sockit_close(h->fill[1]);
	sockit_close(h->lst);
}

static int have_ipv6(void)
{
	int fd = tcp_on("::1", 0, -1);
	if (fd < 0)
		return 0;
	sockit_close(fd);
	return 1;
}

static const char *fmt(const sockit_addr *a, char *buf)
{
	if (sockit_addr_format(a, buf, SOCKIT_ADDRSTRLEN) < 0)
		strcpy(buf, "?");
	return buf;
}

/* Connects to race.test:port with the delay given; returns the fd and
 * the milliseconds it took. */
static int race_to(int port, int delay_ms, int timeout_ms, int64_t *took, sockit_attempt *att,
		   size_t max, size_t *natt, sockit_addr *won)
{
	sockit_connect_opts o = SOCKIT_CONNECT_OPTS_INIT;
	o.attempt_delay_ms = delay_ms;
	o.timeout_ms = timeout_ms;
	int64_t t0 = mono_ms();
	int fd = sockit_create_connection_opts("race.test", port, &o, att, max, natt, won);
	*took = mono_ms() - t0;
	return fd;
}

/* ---- (a) a black hole first costs one delay ------------------------------ */

/* hole_ip black-holes, live_ip listens on the same port: the race must
 * connect to live_ip after about delay_ms. */
static void hole_then_live(const char *hole_ip, const char *live_ip, int delay_ms)
{
	struct hole h;
	int live = -1;
	for (int tries = 0; tries < 20 && live < 0; tries++) {
		hole_open(&h, hole_ip);
		live = tcp_on(live_ip, h.port, 16);
		if (live < 0)
			hole_close(&h); /* that port is taken on live_ip: another one */
	}
	assert_ok(live);
	const char *ips[] = {hole_ip, live_ip};
	resolves_to(2, ips);
	int before = open_fds();
	int64_t took;
	sockit_attempt att[4];
	size_t natt = 99;
	sockit_addr won;
	int fd = race_to(h.port, delay_ms, 10000, &took, att, 4, &natt, &won);
	assert_ok(fd);
	print_message("  %s black-holed, %s answered: connected in %lld ms (delay %d ms)\n",
		      hole_ip, live_ip, (long long)took, delay_ms);
	assert_in_range(took, delay_ms * 8 / 10, 2000);
	assert_int_equal(natt, 0); /* the black hole lost the race; it did not fail */
	char buf[SOCKIT_ADDRSTRLEN], want[SOCKIT_ADDRSTRLEN];
	snprintf(want, sizeof(want), strchr(live_ip, ':') ? "[%s]:%d" : "%s:%d", live_ip, h.port);
	assert_string_equal(fmt(&won, buf), want);
	assert_int_equal(sockit_peername_str(fd, buf, sizeof(buf)), (int)strlen(want));
	/* Blocking and close-on-exec, as before; the loser is closed (c). */
	assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(open_fds(), before + 1);
	sockit_close(fd);
	sockit_close(live);
	hole_close(&h);
}

static void test_black_hole_costs_one_delay(void **state)
{
	(void)state;
	for (int i = 0; i < 3; i++)
		hole_then_live("127.0.0.2", "127.0.0.1", 250);
	hole_then_live("127.0.0.2", "127.0.0.1", 100); /* the delay is an option */
	if (have_ipv6())
		hole_then_live("::1", "127.0.0.1", 250); /* the case RFC 8305 is for */
}

/* One attempt at a time (delay -1) is the old behaviour: the black hole
 * takes the whole deadline and the live address is never tried. */
static void test_sequential_waits_out_the_hole(void **state)
{
	(void)state;
	struct hole h;
	int live = -1;
	for (int tries = 0; tries < 20 && live < 0; tries++) {
		hole_open(&h, "127.0.0.2");
		live = tcp_on("127.0.0.1", h.port, 16);
		if (live < 0)
			hole_close(&h);
	}
	assert_ok(live);
	const char *ips[] = {"127.0.0.2", "127.0.0.1"};
	resolves_to(2, ips);
	int64_t took;
	sockit_attempt att[4];
	size_t natt = 0;
	int rc = race_to(h.port, -1, 500, &took, att, 4, &natt, NULL);
	assert_int_equal(rc, -ETIMEDOUT);
	assert_in_range(took, 450, 3000);
	assert_int_equal(natt, 1);
	assert_int_equal(att[0].error, -ETIMEDOUT);
	sockit_close(live);
	hole_close(&h);
}

/* ---- (b) every failure reported; (e) the families interleaved ------------ */

/* A port closed on every loopback address, v4 and v6: a bound,
 * non-listening dual-stack socket holds it. */
static int closed_port(int *hold)
{
	*hold = tcp_on(have_ipv6() ? "::" : "0.0.0.0", 0, -1);
	assert_ok(*hold);
	return port_of(*hold);
}

/* want: the addresses expected, in order, as formatted (an IPv4-mapped
 * IPv6 address prints as IPv4: fams tells the families apart). */
static void assert_order(int port, int n, const char *const *ips, const char *const *want,
			 const int *fams)
{
	resolves_to(n, ips);
	sockit_attempt att[8];
	size_t natt = 0;
	int64_t took;
	int before = open_fds();
	int rc = race_to(port, 0, 5000, &took, att, 8, &natt, NULL);
	assert_int_equal(rc, -ECONNREFUSED);
	assert_int_equal(natt, (size_t)n);
	assert_in_range(took, 0, 2000); /* refusals start the next at once */
	for (int i = 0; i < n; i++) {
		char buf[SOCKIT_ADDRSTRLEN], w[SOCKIT_ADDRSTRLEN];
		snprintf(w, sizeof(w), strchr(want[i], ':') ? "[%s]:%d" : "%s:%d", want[i], port);
		if (strcmp(fmt(&att[i].addr, buf), w) != 0 || att[i].error != -ECONNREFUSED ||
		    att[i].addr.ss.ss_family != fams[i])
			fail_msg("attempt %d: %s (family %d) %s, want %s (family %d) connection "
				 "refused",
				 i, buf, att[i].addr.ss.ss_family, sockit_strerror(att[i].error), w,
				 fams[i]);
	}
	assert_int_equal(open_fds(), before);
}

static void test_all_failing_reported_in_order(void **state)
{
	(void)state;
	int hold;
	int port = closed_port(&hold);
	/* One family: getaddrinfo's order. */
	const char *v4[] = {"127.0.0.1", "127.0.0.2", "127.0.0.3"};
	const int fam4[] = {AF_INET, AF_INET, AF_INET};
	assert_order(port, 3, v4, v4, fam4);
	if (have_ipv6()) {
		/* IPv6 first: alternate, starting with IPv6 (::ffff:127.0.0.2 is an
		 * IPv6 address that reaches 127.0.0.2). */
		const char *six_first[] = {"::1", "::ffff:127.0.0.2", "127.0.0.1", "127.0.0.3"};
		const char *want6[] = {"::1", "127.0.0.1", "127.0.0.2", "127.0.0.3"};
		const int fam6[] = {AF_INET6, AF_INET, AF_INET6, AF_INET};
		assert_order(port, 4, six_first, want6, fam6);
		/* IPv4 first, one IPv6 address. */
		const char *four_first[] = {"127.0.0.1", "127.0.0.3", "::1"};
		const char *want4[] = {"127.0.0.1", "::1", "127.0.0.3"};
		const int fam46[] = {AF_INET, AF_INET6, AF_INET};
		assert_order(port, 3, four_first, want4, fam46);
	}
	sockit_close(hold);
}

/* ---- (d) one deadline across all attempts -------------------------------- */

static void test_deadline_holds(void **state)
{
	(void)state;
	/* A dual-stack (or IPv4 wildcard) black hole covers every loopback address. */
	struct hole h;
	hole_open(&h, have_ipv6() ? "::" : "0.0.0.0");
	const char *ips[] = {"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"};
	resolves_to(4, ips);
	int before = open_fds();
	int64_t took;
	sockit_attempt att[8];
	size_t natt = 0;
	int rc = race_to(h.port, 250, 600, &took, att, 8, &natt, NULL);
	print_message("  all black holes, timeout 600 ms: -ETIMEDOUT after %lld ms\n",
		      (long long)took);
	assert_int_equal(rc, -ETIMEDOUT);
	assert_in_range(took, 550, 2500);
	/* Started at 0, 250 and 500 ms; none after the deadline. */
	assert_int_equal(natt, 3);
	for (size_t i = 0; i < natt; i++)
		assert_int_equal(att[i].error, -ETIMEDOUT);
	assert_int_equal(open_fds(), before);
	/* The plain call holds its deadline too. */
	int64_t t0 = mono_ms();
	rc = sockit_create_connection("race.test", h.port, 300);
	took = mono_ms() - t0;
	assert_int_equal(rc, -ETIMEDOUT);
	assert_in_range(took, 250, 2500);
	assert_int_equal(open_fds(), before);
	hole_close(&h);
}

/* timeout 0 waits for nothing: what completes without a wait, or -EAGAIN,
 * and no descriptor left behind either way. */
static void test_timeout_zero(void **state)
{
	(void)state;
	int live = tcp_on("127.0.0.2", 0, 16);
	assert_ok(live);
	int port = port_of(live);
	int hold = tcp_on("127.0.0.1", port, -1); /* bound, not listening: refuses */
	if (hold < 0) {
		sockit_close(live);
		skip(); /* that port is taken on 127.0.0.1 */
	}
	const char *ips[] = {"127.0.0.1", "127.0.0.2"};
	resolves_to(2, ips);
	int before = open_fds();
	int64_t took;
	sockit_attempt att[4];
	size_t natt = 0;
	int fd = race_to(port, 0, 0, &took, att, 4, &natt, NULL);
	/* Loopback answers within the first look: refused, then connected. */
	assert_ok(fd);
	assert_int_equal(natt, 1);
	assert_int_equal(att[0].error, -ECONNREFUSED);
	assert_in_range(took, 0, 1000);
	sockit_close(fd);
	assert_int_equal(open_fds(), before);
	/* A black hole gets its look, then -EAGAIN. */
	struct hole h;
	hole_open(&h, "127.0.0.2");
	const char *hole[] = {"127.0.0.2"};
	resolves_to(1, hole);
	before = open_fds();
	fd = race_to(h.port, 0, 0, &took, att, 4, &natt, NULL);
	assert_int_equal(fd, -EAGAIN);
	assert_int_equal(natt, 1);
	assert_int_equal(att[0].error, -EAGAIN);
	assert_in_range(took, 0, 1000);
	assert_int_equal(open_fds(), before);
	hole_close(&h);
	sockit_close(live);
	sockit_close(hold);
}

/* ---- Datagrams, flags, options ------------------------------------------- */

static void test_dgram_takes_the_first(void **state)
{
	(void)state;
	int six = have_ipv6();
	const char *ips[] = {six ? "::1" : "127.0.0.2", "127.0.0.1"};
	resolves_to(2, ips);
	sockit_connect_opts o = SOCKIT_CONNECT_OPTS_INIT;
	o.type = SOCK_DGRAM;
	sockit_addr won;
	size_t natt = 99;
	int before = open_fds();
	int fd = sockit_create_connection_opts("race.test", 9, &o, NULL, 0, &natt, &won);
	assert_ok(fd);
	assert_int_equal(natt, 0);
	char buf[SOCKIT_ADDRSTRLEN];
	assert_string_equal(fmt(&won, buf), six ? "[::1]:9" : "127.0.0.2:9");
	assert_int_equal(open_fds(), before + 1);
	sockit_close(fd);
	fd = sockit_udp_connect("race.test", 9, AF_INET);
	assert_ok(fd);
	assert_ok(sockit_peername_str(fd, buf, sizeof(buf)));
	assert_string_equal(buf, six ? "127.0.0.1:9" : "127.0.0.2:9");
	sockit_close(fd);
}

static void test_options(void **state)
{
	(void)state;
	int srv = tcp_on("127.0.0.1", 0, 16);
	assert_ok(srv);
	int port = port_of(srv);
	/* NULL options: the defaults. */
	int fd = sockit_create_connection_opts("127.0.0.1", port, NULL, NULL, 0, NULL, NULL);
	assert_ok(fd);
	assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	sockit_close(fd);
	/* SOCKIT_NONBLOCK leaves the result non-blocking; family restricts. */
	sockit_connect_opts o = SOCKIT_CONNECT_OPTS_INIT;
	o.flags = SOCKIT_NONBLOCK;
	o.family = AF_INET;
	o.timeout_ms = 2000;
	fd = sockit_create_connection_opts("127.0.0.1", port, &o, NULL, 0, NULL, NULL);
	assert_ok(fd);
	assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	sockit_close(fd);
	/* Bad options. */
	size_t natt = 99;
	o = (sockit_connect_opts)SOCKIT_CONNECT_OPTS_INIT;
	o.attempt_delay_ms = -2;
	assert_int_equal(sockit_create_connection_opts("127.0.0.1", port, &o, NULL, 0, &natt, NULL),
			 -EINVAL);
	assert_int_equal(natt, 0);
	o = (sockit_connect_opts)SOCKIT_CONNECT_OPTS_INIT;
	o.flags = SOCKIT_REUSEPORT;
	assert_int_equal(sockit_create_connection_opts("127.0.0.1", port, &o, NULL, 0, NULL, NULL),
			 -EINVAL);
	o = (sockit_connect_opts)SOCKIT_CONNECT_OPTS_INIT;
	o.type = SOCK_RAW;
	assert_int_equal(sockit_create_connection_opts("127.0.0.1", port, &o, NULL, 0, NULL, NULL),
			 -EINVAL);
	o = (sockit_connect_opts)SOCKIT_CONNECT_OPTS_INIT;
	o.family = AF_UNIX;
	assert_int_equal(sockit_create_connection_opts("127.0.0.1", port, &o, NULL, 0, NULL, NULL),
			 -EINVAL);
	assert_int_equal(
		sockit_create_connection_opts("127.0.0.1", port, NULL, NULL, 3, NULL, NULL),
		-EINVAL);
	natt = 99;
	assert_int_equal(sockit_create_connection_ex("127.0.0.1", port, AF_INET, 0, 100, NULL, 0,
						     &natt, NULL),
			 -EINVAL);
	assert_int_equal(natt, 0);
	sockit_close(srv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_black_hole_costs_one_delay),
		cmocka_unit_test(test_sequential_waits_out_the_hole),
		cmocka_unit_test(test_all_failing_reported_in_order),
		cmocka_unit_test(test_deadline_holds),
		cmocka_unit_test(test_timeout_zero),
		cmocka_unit_test(test_dgram_takes_the_first),
		cmocka_unit_test(test_options),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
