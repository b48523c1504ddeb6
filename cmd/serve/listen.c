/* listen.c -- the listeners: one SO_REUSEPORT socket per worker and protocol, one port.
 *
 * (-U PATH and systemd's sockets are shared instead: unix.c, sd.c.)
 *
 * Called by run.c before the workers start; a failure is printed with the
 * address and, where there is one, the next step.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "systemd.h"
#include "worker.h"

#define DEFER_ACCEPT_S 1 /* once mode: the kernel holds silent clients this long */
#define BIND_RETRIES 8	 /* -p 0 with --udp: the TCP port may be taken for UDP */

static const char *const mode_names[] = {"once", "line", "echo"};

/* The next step for a failure to listen, or "". */
static const char *listen_hint(int err, int port)
{
	if (err == -EADDRINUSE)
		return ": is another server running? pick another port with -p";
	if (err == -EACCES && port > 0 && port < 1024)
		return ": ports below 1024 need root or CAP_NET_BIND_SERVICE";
	if (err == -EMFILE || err == -ENFILE)
		return ": raise the limit with ulimit -n";
	return "";
}

static int cannot_listen(const struct serve_log *lg, const char *host, int port, const char *proto,
			 int err)
{
	const char *fmt = strchr(host, ':') != NULL ? "[%s]:%d" : "%s:%d";
	char hp[300];
	snprintf(hp, sizeof(hp), fmt, host, port);
	serve_log_fail(lg, "cannot listen on %s%s: %s%s", hp, proto, sockit_strerror(err),
		       listen_hint(err, port));
	return err;
}

/* Is host:port free?  Our listeners share the port with SO_REUSEPORT, which
 * would let us join another process's group silently; a plain bind first
 * tells "in use" apart. */
static int probe_port(const char *host, int port, int type, int flags)
{
	int fd = sockit_create_server(host, port, type, 0, flags & ~SOCKIT_REUSEPORT);
	if (fd < 0)
		return fd;
	sockit_close(fd);
	return 0;
}

static void close_listeners(struct serve_shared *sh)
{
	for (int i = 0; i < sh->nworkers; i++) {
		struct worker *w = &sh->workers[i];
		if (w->tcp_fd >= 0)
			sockit_close(w->tcp_fd);
		if (w->udp_fd >= 0)
			sockit_close(w->udp_fd);
		w->tcp_fd = w->udp_fd = -1;
	}
}

/* The address to bind: host as given, or with -4/-6 the first address of
 * that family it resolves to. */
static int bind_host(const struct serve_config *cfg, const struct serve_log *lg, char *buf,
		     size_t len, const char **host)
{
	*host = cfg->host;
	if (cfg->family == AF_UNSPEC)
		return 0;
	sockit_addr a;
	int rc = sockit_resolve(cfg->host, cfg->port, cfg->family, SOCK_STREAM, 1, &a, 1);
	if (rc >= 0)
		rc = sockit_addr_format_ip(&a, buf, len);
	if (rc < 0)
		return cannot_listen(lg, cfg->host, cfg->port, "", rc);
	*host = buf;
	return 0;
}

/* Opens one listener per worker for type on port (0: the first picks).
 * Returns the port, or a negative code (message printed). */
static int open_group(struct serve_shared *sh, const struct serve_config *cfg,
		      const struct serve_log *lg, const char *host, int type, int port,
		      int quiet_inuse)
{
	int flags = SOCKIT_REUSEPORT | SOCKIT_NONBLOCK |
		    (cfg->dualstack ? SOCKIT_DUALSTACK : SOCKIT_V6ONLY);
	const char *proto = type == SOCK_STREAM ? "" : " (udp)";
	char ip[SOCKIT_ADDRSTRLEN];
	int rc = port != 0 ? probe_port(host, port, type, flags) : 0;
	for (int i = 0; rc >= 0 && i < sh->nworkers; i++) {
		int fd = rc = sockit_create_server(host, port, type, 0, flags);
		if (fd < 0)
			break;
		struct worker *w = &sh->workers[i];
		*(type == SOCK_STREAM ? &w->tcp_fd : &w->udp_fd) = fd;
		if (i == 0) {
			sockit_addr a;
			rc = sockit_getsockname(fd, &a);
			if (rc >= 0)
				rc = sockit_addr_format_ip(&a, ip, sizeof(ip));
			if (rc < 0)
				break;
			port = sockit_addr_port(&a);
			host = ip; /* the others bind exactly where the first did */
		}
		if (type == SOCK_STREAM && cfg->mode == MODE_ONCE &&
		    sockit_set_defer_accept(fd, DEFER_ACCEPT_S) == 0)
			w->defer_ms = DEFER_ACCEPT_S * 1000;
	}
	if (rc < 0)
		return quiet_inuse && rc == -EADDRINUSE ? rc
							: cannot_listen(lg, host, port, proto, rc);
	return port;
}

/* Opens listeners [from, nworkers) of type beside the first one's address
 * (an upgrade with more workers than sockets handed over). */
static int open_rest(struct serve_shared *sh, const struct serve_config *cfg,
		     const struct serve_log *lg, int type, int from)
{
	int *first = type == SOCK_STREAM ? &sh->workers[0].tcp_fd : &sh->workers[0].udp_fd;
	char ip[SOCKIT_ADDRSTRLEN];
	sockit_addr a;
	int rc = sockit_getsockname(*first, &a);
	if (rc >= 0)
		rc = sockit_addr_format_ip(&a, ip, sizeof(ip));
	int port = rc >= 0 ? sockit_addr_port(&a) : 0;
	int flags = SOCKIT_REUSEPORT | SOCKIT_NONBLOCK |
		    (cfg->dualstack ? SOCKIT_DUALSTACK : SOCKIT_V6ONLY);
	for (int i = from; rc >= 0 && i < sh->nworkers; i++) {
		rc = sockit_create_server(ip, port, type, 0, flags);
		*(type == SOCK_STREAM ? &sh->workers[i].tcp_fd : &sh->workers[i].udp_fd) = rc;
	}
	return rc < 0 ? cannot_listen(lg, ip, port, type == SOCK_STREAM ? "" : " (udp)", rc) : 0;
}

/* The listeners an upgrading parent handed over (upgrade.h), taken as
 * systemd passes them: when LISTEN_PID is ours, the stream and datagram
 * sockets in order become the workers' (the same arguments give the same
 * count: the rest are opened beside them, extras closed), and the one
 * named "metrics" the endpoint's.  Returns 1 when sockets were passed, 0
 * when none were, or a negative code (printed).  systemd's socket
 * activation is sd.c's (serve_sd_adopt, from main.c), which an upgrade's
 * child skips: its parent passes one listener per worker, which systemd
 * never does. */
static int listeners_inherit(struct serve_shared *sh, const struct serve_config *cfg,
			     const struct serve_log *lg)
{
	size_t max = 2 * (size_t)sh->nworkers + 1;
	struct sd_socket *s = calloc(max, sizeof(*s));
	int n = s != NULL ? sd_listen_sockets(s, max) : -ENOMEM, ntcp = 0, nudp = 0, extra = 0;
	for (int i = 0; i < n; i++) {
		int want_tcp = s[i].type == SOCK_STREAM && cfg->tcp && ntcp < sh->nworkers;
		int want_udp = s[i].type == SOCK_DGRAM && cfg->udp && nudp < sh->nworkers;
		int metrics = strcmp(s[i].name, "metrics") == 0;
		if (metrics && cfg->metrics_host != NULL && sh->metrics_fd < 0)
			sh->metrics_fd = s[i].fd;
		else if (want_tcp && !metrics)
			sh->workers[ntcp++].tcp_fd = s[i].fd;
		else if (want_udp)
			sh->workers[nudp++].udp_fd = s[i].fd;
		else
			extra += sockit_close(s[i].fd) == 0;
	}
	free(s);
	if (n <= 0) {
		if (n < 0)
			serve_log_fail(lg, "cannot take the sockets in LISTEN_FDS: %s",
				       sockit_strerror(n));
		return n;
	}
	if ((cfg->tcp && ntcp == 0) || (cfg->udp && nudp == 0)) {
		serve_log_fail(lg, "the sockets in LISTEN_FDS have no %s listener",
			       cfg->tcp && ntcp == 0 ? "TCP" : "UDP");
		return -EINVAL;
	}
	serve_log(lg, LOG_INFO, "took %d listener(s) from LISTEN_FDS%s", n - extra,
		  extra ? " (closed the ones this configuration does not use)" : "");
	if ((cfg->tcp && ntcp < sh->nworkers && open_rest(sh, cfg, lg, SOCK_STREAM, ntcp) < 0) ||
	    (cfg->udp && nudp < sh->nworkers && open_rest(sh, cfg, lg, SOCK_DGRAM, nudp) < 0))
		return -1;
	for (int i = 0; cfg->tcp && cfg->mode == MODE_ONCE && i < sh->nworkers; i++)
		if (sockit_set_defer_accept(sh->workers[i].tcp_fd, DEFER_ACCEPT_S) == 0)
			sh->workers[i].defer_ms = DEFER_ACCEPT_S * 1000;
	return 1;
}

int listeners_open(struct serve_shared *sh, const struct serve_config *cfg,
		   const struct serve_log *lg)
{
	if (cfg->sd.active)
		return sd_listeners_open(sh, cfg, lg); /* systemd's (main.c) */
	int rc = listeners_inherit(sh, cfg, lg);       /* an upgrading parent's */
	if (rc > 0 && cfg->unix_path != NULL && unix_files_adopt(sh, cfg) < 0)
		serve_log(lg, LOG_WARN, "out of memory: %s will stay after exit", cfg->unix_path);
	if (rc != 0)
		return rc < 0 ? rc : 0;
	if (cfg->unix_path != NULL)
		return unix_listeners_open(sh, cfg, lg);
	char buf[SOCKIT_ADDRSTRLEN];
	const char *host;
	rc = bind_host(cfg, lg, buf, sizeof(buf), &host);
	for (int attempt = 0; rc >= 0; attempt++) {
		int port = cfg->port;
		if (cfg->tcp)
			rc = port = open_group(sh, cfg, lg, host, SOCK_STREAM, port, 0);
		if (rc >= 0 && cfg->udp) {
			int retry = cfg->port == 0 && cfg->tcp && attempt < BIND_RETRIES;
			rc = open_group(sh, cfg, lg, host, SOCK_DGRAM, port, retry);
			if (rc == -EADDRINUSE && retry) {
				close_listeners(sh);
				rc = 0;
				continue;
			}
		}
		break;
	}
	return rc < 0 ? rc : 0;
}

void listeners_announce(const struct serve_shared *sh, const struct serve_config *cfg,
			const struct serve_log *lg)
{
	const struct worker *w0 = &sh->workers[0];
	const char *mode = mode_names[cfg->mode];
	unsigned flags =
		(cfg->dualstack ? LISTEN_DUALSTACK : 0) | (cfg->sd.active ? LISTEN_SYSTEMD : 0);
	int fds[2] = {w0->tcp_fd, w0->udp_fd};
	static const char *const protos[2][2] = {{"tcp", "unix"}, {"udp", "unixgram"}};
	for (int k = 0; k < 2; k++) {
		char addr[SOCKIT_ADDRSTRLEN];
		sockit_addr a;
		if (fds[k] < 0 || sockit_getsockname(fds[k], &a) < 0 ||
		    sockit_addr_format(&a, addr, sizeof(addr)) < 0)
			continue;
		serve_log_listening(lg, protos[k][a.ss.ss_family == AF_UNIX], addr, mode, flags);
	}
}
