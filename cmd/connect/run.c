/* run.c -- one `sockit connect` run: connect (every address, --wait-for), relay, report.
 *
 * It owns the socket, the stop signals and the result; the relays fill
 * the result in and summary puts it into words.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "connect.h"
#include "internal.h"

/* --wait-for's backoff between rounds of attempts. */
#define BACKOFF_FIRST_MS 50
#define BACKOFF_MAX_MS 1000

/* One round: every resolved address, each within timeout_ms (-1: none).
 * Returns the fd or a negative code; fills in the attempts. */
static int connect_round(const struct connect_config *cfg, int timeout_ms,
			 struct connect_attempts *att)
{
	att->rounds++;
	att->nfailed = 0;
	att->timeout_ms = timeout_ms;
	int fd = sockit_create_connection_ex(
		cfg->name, cfg->port, cfg->family, cfg->udp ? SOCK_DGRAM : SOCK_STREAM, timeout_ms,
		att->failed, CONNECT_MAX_TRIED, &att->nfailed, &att->used);
	if (fd >= 0)
		att->connected = 1;
	return fd;
}

/* Connects, retrying with backoff until --wait-for passes.  Returns the fd,
 * or a negative code with the attempts filled in. */
static int open_connection(const struct connect_config *cfg, struct connect_attempts *att)
{
	uint64_t start = sk_clock_ms();
	uint64_t deadline = start + cfg->wait_for_ms;
	uint64_t backoff = BACKOFF_FIRST_MS;
	for (;;) {
		int timeout = cfg->connect_ms == 0 ? -1 : (int)cfg->connect_ms;
		uint64_t now = sk_clock_ms();
		if (cfg->wait_for_ms > 0) {
			uint64_t left = deadline > now ? deadline - now : 1;
			if (timeout < 0 || (uint64_t)timeout > left)
				timeout = (int)left;
		}
		int fd = connect_round(cfg, timeout, att);
		if (fd >= 0)
			return fd;
		now = sk_clock_ms();
		att->took_ms = now - start;
		if (att->nfailed == 0)
			att->resolve_error = fd;
		if (cfg->wait_for_ms == 0 || now >= deadline)
			return fd;
		uint64_t nap = backoff < deadline - now ? backoff : deadline - now;
		(void)poll(NULL, 0, (int)nap); /* a signal may cut it short: harmless */
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
}

/* Once connected, SIGINT, SIGTERM and SIGHUP end the relay with its
 * summary (then the process dies of the signal, as the shell expects):
 * they are blocked and read from the returned signalfd, which the relays
 * poll, so even a relay that never sleeps sees them.  A signal the caller
 * ignores (a background job's SIGINT) stays ignored.  Returns -1 if the
 * signalfd cannot be made (the signals then keep their default action). */
static int catch_stop_signals(void)
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
	sigset_t set;
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		struct sigaction old;
		if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
			continue;
		sigaddset(&set, sigs[i]);
	}
	int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd >= 0)
		sigprocmask(SIG_BLOCK, &set, NULL);
	return fd;
}

/* The connected part: -z is done, else the relay runs. */
static void relay(const struct connect_config *cfg, int fd, const struct connect_attempts *att,
		  struct connect_result *res)
{
	if (cfg->zero) {
		res->end = END_OPEN;
		return;
	}
	struct connect_link link = {.sock = fd, .sigfd = catch_stop_signals(), .peer = &att->used};
	if (cfg->udp)
		connect_relay_udp(cfg, &link, res);
	else
		connect_relay_tcp(cfg, &link, res);
	if (link.sigfd >= 0)
		close(link.sigfd);
}

int connect_run(const struct connect_config *cfg, int *signo)
{
	uint64_t start_ns = sk_clock_ns();
	struct connect_attempts att = {0};
	struct connect_result res = {0};
	int fd = open_connection(cfg, &att);
	if (fd >= 0) {
		relay(cfg, fd, &att, &res);
		sockit_close(fd);
	} else {
		connect_describe_failure(cfg, &att, &res);
	}
	double duration_ms = (double)(sk_clock_ns() - start_ns) / 1e6;
	fflush(stdout);
	connect_report(stderr, cfg, &att, &res, duration_ms);
	*signo = res.end == END_SIGNAL ? res.signo : 0;
	return connect_exit_code(&res);
}
