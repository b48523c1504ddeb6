/* run.c -- one `sockit connect` run: connect (Happy Eyeballs, --wait-for), session, relay, report.
 *
 * It owns the socket, the TLS context and connection, the stop signals
 * and the result; session sends the PROXY header and does the handshake,
 * the relays fill the result in and summary puts it into words.
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

/* How long close_notify may take at the end (not after a stop signal). */
#define TLS_CLOSE_MS 1000

/* -U PATH: one address, reported as the attempts are. */
static int connect_unix(const struct connect_config *cfg, int timeout_ms,
			struct connect_attempts *att)
{
	(void)sockit_addr_from_path(cfg->unix_path, &att->used); /* parse checked it */
	int fd = sockit_create_unix_connection(cfg->unix_path, cfg->udp ? SOCK_DGRAM : SOCK_STREAM,
					       timeout_ms);
	if (fd < 0) {
		att->failed[0] = (sockit_attempt){.addr = att->used, .error = fd};
		att->nfailed = 1;
	}
	return fd;
}

/* One round: every resolved address raced (RFC 8305), all within
 * timeout_ms (-1: none), or the Unix socket.  Returns the fd or a
 * negative code; fills in the attempts. */
static int connect_round(const struct connect_config *cfg, int timeout_ms,
			 struct connect_attempts *att)
{
	att->rounds++;
	att->nfailed = 0;
	att->timeout_ms = timeout_ms;
	att->round_ms = sk_clock_ms();
	int fd;
	if (cfg->unix_path != NULL) {
		fd = connect_unix(cfg, timeout_ms, att);
	} else {
		sockit_connect_opts o = SOCKIT_CONNECT_OPTS_INIT;
		o.family = cfg->family;
		o.type = cfg->udp ? SOCK_DGRAM : SOCK_STREAM;
		o.timeout_ms = timeout_ms;
		o.attempt_delay_ms = cfg->attempt_delay_ms;
		fd = sockit_create_connection_opts(cfg->name, cfg->port, &o, att->failed,
						   CONNECT_MAX_TRIED, &att->nfailed, &att->used);
	}
	if (fd >= 0) {
		att->connected = 1;
		att->connect_ms = sk_clock_ms() - att->round_ms;
	}
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
static void relay(const struct connect_config *cfg, int fd, sockit_tls *tls,
		  const struct connect_attempts *att, struct connect_result *res)
{
	if (cfg->zero) {
		res->end = END_OPEN;
		return;
	}
	struct connect_link link = {
		.sock = fd, .sigfd = catch_stop_signals(), .peer = &att->used, .tls = tls};
	if (cfg->udp)
		connect_relay_udp(cfg, &link, res);
	else
		connect_relay_tcp(cfg, &link, res);
	if (link.sigfd >= 0)
		close(link.sigfd);
}

/* What is left of the last round's deadline, for the handshake: -w is
 * one deadline for connecting and the handshake together. */
static int handshake_timeout(const struct connect_attempts *att)
{
	if (att->timeout_ms < 0)
		return -1;
	uint64_t spent = sk_clock_ms() - att->round_ms;
	return spent >= (uint64_t)att->timeout_ms ? 1 : att->timeout_ms - (int)spent;
}

/* Connected: the PROXY header and TLS, then the relay; closes fd. */
static void connected(const struct connect_config *cfg, int fd, sockit_tls_ctx *ctx,
		      const struct connect_attempts *att, struct connect_result *res)
{
	sockit_tls *tls = NULL;
	if (connect_session_open(cfg, fd, &att->used, ctx, handshake_timeout(att), &tls, res) == 0)
		relay(cfg, fd, tls, att, res);
	if (tls != NULL) /* close_notify (if not sent yet), then close(fd) */
		(void)sockit_tls_close(tls, res->end == END_SIGNAL ? 0 : TLS_CLOSE_MS);
	else
		sockit_close(fd);
}

int connect_run(const struct connect_config *cfg, int *signo)
{
	sockit_tls_ctx *ctx = NULL;
	int rc = connect_tls_context(cfg, &ctx);
	if (rc != 0)
		return rc;
	if (cfg->tls_insecure && !cfg->json)
		fprintf(stderr, "sockit connect: warning: --tls-insecure: the server's certificate "
				"is not verified\n");
	uint64_t start_ns = sk_clock_ns();
	struct connect_attempts att = {0};
	struct connect_result res = {0};
	int fd = open_connection(cfg, &att);
	if (fd >= 0)
		connected(cfg, fd, ctx, &att, &res);
	else
		connect_describe_failure(cfg, &att, &res);
	sockit_tls_ctx_free(ctx);
	double duration_ms = (double)(sk_clock_ns() - start_ns) / 1e6;
	fflush(stdout);
	connect_report(stderr, cfg, &att, &res, duration_ms);
	*signo = res.end == END_SIGNAL ? res.signo : 0;
	return connect_exit_code(&res);
}
