/* sd.c -- `sockit serve` under systemd: the sockets it passes, and what serve tells it.
 *
 * Socket activation (sd_listen_fds(3)): the passed sockets replace the
 * listeners serve would bind; one stream socket (TCP or Unix) and one
 * datagram socket (UDP or Unix) at most, each shared by every worker.
 * LISTEN_FDNAMES may name them ("tcp", "udp", "unix", "unixgram", or
 * "stream", "dgram"); a name that contradicts the socket's type is an
 * error, any other name (systemd's default is the unit's) leaves the type
 * to decide.  The command line may repeat what the sockets are (-H, -p,
 * -U, -u, --udp-only), not contradict it.
 *
 * Readiness (sd_notify(3)), on the main loop: READY=1 once listening,
 * STATUS= with the counts every STATUS_MS while they change, STOPPING=1
 * when draining, WATCHDOG=1 at half of WATCHDOG_USEC.  Nothing runs when
 * NOTIFY_SOCKET is not set.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cli.h"
#include "systemd.h"
#include "worker.h"

#define CMD "serve"
#define SD_MAX 16	/* sockets taken from systemd, at most */
#define STATUS_MS 2000	/* STATUS= at most this often */
#define MAX_RESOLVED 16 /* -H NAME's addresses compared */

/* ---- Socket activation ----------------------------------------------------- */

/* What a socket's name says it is: 1 stream, 2 datagram, 0 nothing. */
static int kind_of_name(const char *name, int *family)
{
	static const struct {
		const char *name;
		int kind, family;
	} names[] = {
		{"tcp", 1, AF_INET},	    {"unix", 1, AF_UNIX},     {"stream", 1, 0},
		{"udp", 2, AF_INET},	    {"unixgram", 2, AF_UNIX}, {"dgram", 2, 0},
		{"unix-dgram", 2, AF_UNIX},
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i].name) == 0)
			return *family = names[i].family, names[i].kind;
	return 0;
}

/* Sorts the passed sockets into cfg->sd.  0, or 1 after the message. */
static int classify(const struct sd_socket *s, int n, struct serve_inherited *in)
{
	for (int i = 0; i < n; i++) {
		int stream = s[i].type == SOCK_STREAM && s[i].listening;
		int kind = stream ? 1 : s[i].type == SOCK_DGRAM ? 2 : 0;
		int nfam = 0, nkind = kind_of_name(s[i].name, &nfam);
		int inet = s[i].family == AF_INET || s[i].family == AF_INET6;
		if (kind == 0 || (!inet && s[i].family != AF_UNIX))
			return cli_error(CMD,
					 "descriptor %d from systemd (%s) is neither a listening "
					 "TCP/Unix stream socket nor a UDP/Unix datagram socket",
					 s[i].fd, s[i].name[0] ? s[i].name : "unnamed");
		static const char *const what[2][2] = {{"Unix stream", "Unix datagram"},
						       {"TCP", "UDP"}};
		if (nkind != 0 && (nkind != kind || (nfam == AF_UNIX) != (s[i].family == AF_UNIX) ||
				   (nfam == AF_INET && !inet)))
			return cli_error(
				CMD, "descriptor %d from systemd is named '%s' but is a %s socket",
				s[i].fd, s[i].name, what[inet][kind - 1]);
		int *slot = kind == 1 ? &in->stream_fd : &in->dgram_fd;
		if (*slot >= 0)
			return cli_error(CMD,
					 "systemd passed two %s sockets (descriptors %d and %d): "
					 "sockit serve serves one stream and one datagram socket",
					 kind == 1 ? "stream" : "datagram", *slot, s[i].fd);
		*slot = s[i].fd;
	}
	return 0;
}

/* 1 if -H's addresses include a's IP. */
static int host_matches(const char *host, const sockit_addr *a)
{
	sockit_addr r[MAX_RESOLVED];
	char want[SOCKIT_ADDRSTRLEN], got[SOCKIT_ADDRSTRLEN];
	int n = sockit_resolve(host, 0, AF_UNSPEC, SOCK_STREAM, 1, r, MAX_RESOLVED);
	if (sockit_addr_format_ip(a, want, sizeof(want)) < 0)
		return 0;
	for (int i = 0; i < n; i++)
		if (sockit_addr_format_ip(&r[i], got, sizeof(got)) >= 0 && strcmp(got, want) == 0)
			return 1;
	return 0;
}

/* The command line against one passed socket fd (a Unix one named -U's
 * PATH + suffix).  -1 agrees, else 2. */
static int check_one(const struct serve_config *cfg, int fd, const char *suffix)
{
	sockit_addr a;
	char name[SOCKIT_ADDRSTRLEN] = "?";
	if (fd < 0 || sockit_getsockname(fd, &a) < 0)
		return -1;
	sockit_addr_format(&a, name, sizeof(name));
	if (a.ss.ss_family == AF_UNIX) {
		if (cfg->host_given || cfg->port_given)
			return cli_usage(CMD,
					 "%s: systemd passed the Unix socket %s, which has none",
					 cfg->host_given ? "-H" : "-p", name);
		char want[SOCKIT_ADDRSTRLEN + 8];
		snprintf(want, sizeof(want), "%s%s", cfg->unix_path ? cfg->unix_path : "", suffix);
		if (cfg->unix_path != NULL && strcmp(name, want) != 0)
			return cli_usage(CMD,
					 "-U %s: systemd passed %s: drop -U, or change the "
					 ".socket unit",
					 cfg->unix_path, name);
		return -1;
	}
	int port = sockit_addr_port(&a);
	if (cfg->unix_path != NULL)
		return cli_usage(CMD, "-U %s: systemd passed %s, not a Unix socket", cfg->unix_path,
				 name);
	if (cfg->port_given && cfg->port != 0 && cfg->port != port)
		return cli_usage(
			CMD,
			"-p %d: systemd passed a socket on port %d (%s): drop -p, or change "
			"the .socket unit",
			cfg->port, port, name);
	if (cfg->host_given && !host_matches(cfg->host, &a))
		return cli_usage(CMD,
				 "-H %s: systemd passed a socket on %s: drop -H, or change the "
				 ".socket unit",
				 cfg->host, name);
	if (cfg->family != AF_UNSPEC && cfg->family != a.ss.ss_family)
		return cli_usage(CMD, "%s: systemd passed a socket on %s",
				 cfg->family == AF_INET ? "-4" : "-6", name);
	return -1;
}

/* -u/--udp-only and the other options against what was passed. */
static int check_agree(const struct serve_config *cfg, const struct serve_inherited *in)
{
	if (cfg->udp && in->dgram_fd < 0)
		return cli_usage(CMD, "%s: systemd passed no datagram socket",
				 cfg->tcp ? "-u" : "--udp-only");
	if (!cfg->tcp && in->stream_fd >= 0)
		return cli_usage(CMD, "--udp-only: systemd passed a stream socket too");
	if (cfg->dualstack)
		return cli_usage(CMD, "--dualstack does not apply to sockets systemd passes: set "
				      "BindIPv6Only=both in the .socket unit");
	if (cfg->unix_mode != 0)
		return cli_usage(CMD, "--unix-mode does not apply to sockets systemd passes: set "
				      "SocketMode= in the .socket unit");
	int rc = check_one(cfg, in->stream_fd, "");
	return rc >= 0 ? rc : check_one(cfg, in->dgram_fd, ".dgram");
}

int serve_sd_adopt(struct serve_config *cfg)
{
	struct sd_socket s[SD_MAX];
	int n = sd_listen_sockets(s, SD_MAX);
	if (n == 0)
		return -1;
	if (n < 0)
		return cli_error(CMD, "cannot take the sockets systemd passed: %s%s",
				 sockit_strerror(n),
				 n == -E2BIG ? " (16 at most)" : " (LISTEN_FDS, LISTEN_PID)");
	struct serve_inherited in = {1, -1, -1};
	int rc = classify(s, n, &in);
	if (rc == 0)
		rc = check_agree(cfg, &in);
	if (rc >= 0)
		return rc;
	cfg->sd = in;
	cfg->tcp = in.stream_fd >= 0;
	cfg->udp = in.dgram_fd >= 0;
	return -1;
}

int sd_listeners_open(struct serve_shared *sh, const struct serve_config *cfg,
		      const struct serve_log *lg)
{
	int fds[2] = {cfg->sd.stream_fd, cfg->sd.dgram_fd};
	for (int k = 0; k < 2; k++)
		if (fds[k] >= 0 && sockit_set_nonblocking(fds[k], 1) < 0)
			serve_log(lg, LOG_WARN, "cannot make descriptor %d non-blocking", fds[k]);
	int rc = listeners_share(sh, fds[0], fds[1]);
	if (rc < 0)
		serve_log_fail(lg, "cannot share the listener with the workers: %s",
			       sockit_strerror(rc));
	return rc;
}

/* ---- Readiness ------------------------------------------------------------- */

static void notify_status(struct serve_notify *n, int force)
{
	struct serve_counters c;
	n->sum(n->arg, &c);
	if (!force && c.active == n->last_active && c.accepted == n->last_accepted)
		return;
	n->last_active = c.active;
	n->last_accepted = c.accepted;
	char msg[160];
	snprintf(msg, sizeof(msg), "%sSTATUS=%s%llu active, %llu accepted",
		 force && !n->stopping ? "READY=1\n" : "", n->stopping ? "draining: " : "",
		 (unsigned long long)c.active, (unsigned long long)c.accepted);
	(void)sd_notify_send(msg);
}

static void on_status(sockit_loop *loop, sockit_timer *t)
{
	(void)loop;
	notify_status(t->data, 0);
}

static void on_watchdog(sockit_loop *loop, sockit_timer *t)
{
	(void)loop;
	(void)t;
	(void)sd_notify_send("WATCHDOG=1");
}

void notify_start(struct serve_notify *n, sockit_loop *loop,
		  void (*sum)(void *arg, struct serve_counters *out), void *arg)
{
	memset(n, 0, sizeof(*n));
	n->loop = loop;
	n->sum = sum;
	n->arg = arg;
	sockit_timer_init(&n->status, on_status, n);
	sockit_timer_init(&n->watchdog, on_watchdog, n);
	const char *sock = getenv("NOTIFY_SOCKET");
	if (sock == NULL || sock[0] == '\0')
		return;
	n->on = 1;
	notify_status(n, 1);
	sockit_timer_start(loop, &n->status, STATUS_MS, STATUS_MS);
	uint64_t usec = sd_watchdog_usec();
	if (usec > 0) {
		uint64_t ms = usec / 2000 > 0 ? usec / 2000 : 1;
		(void)sd_notify_send("WATCHDOG=1");
		sockit_timer_start(loop, &n->watchdog, ms, ms);
	}
}

void notify_stopping(struct serve_notify *n)
{
	if (!n->on || n->stopping)
		return;
	n->stopping = 1;
	(void)sd_notify_send("STOPPING=1");
	notify_status(n, 1);
}

void notify_stop(struct serve_notify *n)
{
	if (n->loop == NULL)
		return;
	sockit_timer_stop(n->loop, &n->status);
	sockit_timer_stop(n->loop, &n->watchdog);
}

void serve_notify_mainpid(pid_t pid)
{
	char msg[48];
	snprintf(msg, sizeof(msg), "MAINPID=%ld", (long)pid);
	(void)sd_notify_send(msg);
}
