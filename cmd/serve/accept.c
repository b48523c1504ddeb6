/* accept.c -- new clients: accept, admit (allow/deny, --max-conns, per IP or UID), start a mode.
 *
 * Readiness and accept4 in batches (adapting to the load), or on io_uring
 * one multishot accept when nothing needs the client's address.  Out of
 * descriptors, accepting pauses instead of spinning, and resumes alone.
 */
#include <errno.h>
#include <string.h>

#include "cli.h"
#include "conn.h"

#define ACCEPT_BATCH 64	    /* accepts per wake, so connections are not starved */
#define ACCEPT_PAUSE_MS 100 /* out of descriptors: retry accepting this often */

static int accept_arm(struct worker *w);

/* sockit_accept() with timeout 0 would also ask fcntl(F_GETFL) whether the
 * listener blocks: a syscall per connection.  Ours never blocks. */
static int io_accept(int lfd, sockit_addr *peer)
{
	return sockit_try_accept(lfd, peer, SOCK_NONBLOCK);
}

static void on_accept_timer(sockit_loop *loop, sockit_timer *t)
{
	struct worker *w = t->data;
	if (w->tcp_fd >= 0 && w->accept_paused) {
		w->accept_paused = 0;
		if (w->accept_multi)
			(void)accept_arm(w);
		else
			sockit_loop_modify(loop, w->tcp_fd, SOCKIT_READABLE);
	}
}

/* Out of descriptors (or memory): stop watching the listener for a moment
 * instead of spinning on a readable listener we cannot accept from.  Pending
 * clients wait in the backlog and are served once descriptors free up. */
static void accept_pause(struct worker *w, int err)
{
	if (!w->emfile_episode) {
		char every[32];
		cli_format_duration(every, sizeof(every), ACCEPT_PAUSE_MS);
		w->emfile_episode = 1;
		serve_log(w->log, LOG_WARN, "accept: %s; pausing accepts, retrying every %s%s",
			  sockit_strerror(err), every,
			  err == -EMFILE || err == -ENFILE
				  ? " (raise the limit with ulimit -n, or lower --max-conns)"
				  : "");
	}
	w->accept_paused = 1;
	if (w->accept_op != NULL)
		sk_loop_op_cancel(w->loop, w->accept_op);
	else if (!w->accept_multi)
		sockit_loop_modify(w->loop, w->tcp_fd, 0);
	sockit_timer_start(w->loop, &w->accept_timer, ACCEPT_PAUSE_MS, 0);
}

/* The other workers' active connections, read with relaxed loads (the
 * counters each worker publishes; see struct serve_counters). */
static uint64_t others_active(const struct worker *w)
{
	uint64_t total = 0;
	for (int i = 0; i < w->sh->nworkers; i++)
		if (i != w->id)
			total += __atomic_load_n(&w->sh->workers[i].ctr.active, __ATOMIC_RELAXED);
	return total;
}

/* 1 if one more connection fits under --max-conns (global).  Far from the
 * limit the other workers' count read within the last millisecond is good
 * enough; within a margin of it, they are re-read for every connection.
 * No lock, no read-modify-write: two workers admitting at the same instant
 * at the very limit may overshoot it by one each. */
static int room_for_one(struct worker *w)
{
	uint64_t max = w->cfg->max_conns;
	uint64_t margin = (uint64_t)ACCEPT_BATCH * (uint64_t)w->sh->nworkers;
	if (w->ctr.active + w->others + margin < max)
		return 1;
	w->others = others_active(w);
	return w->ctr.active + w->others < max;
}

/* "127.0.0.1:5555", "pid 123 uid 1000" for a Unix peer, or "?". */
static void peer_name(const sockit_addr *peer, const struct peer_cred *cred, char *buf, size_t len)
{
	if (cred != NULL)
		peer_cred_format(cred, buf, len);
	else if (peer != NULL)
		sockit_addr_format(peer, buf, len);
}

static void refuse(struct worker *w, int fd, const sockit_addr *peer, const struct peer_cred *cred,
		   const char *reason, const char *why)
{
	sockit_close(fd);
	if (w->log->level >= LOG_WARN) {
		char addr[SOCKIT_ADDRSTRLEN] = "?";
		peer_name(peer, cred, addr, sizeof(addr));
		struct log_fields f = {"refused", -1, addr, reason, cred};
		serve_log_limited(&w->rl_refused, LOG_WARN, &f, "refused %s: %s", addr, why);
	}
}

/* Accepting until EAGAIN costs one failed accept4 per wake: a waste when
 * each wake finds one client (light load, or the load spread over
 * workers).  Then take one per wake: if more wait, the level-triggered
 * listener is reported again at once (an epoll_wait that does not sleep,
 * no dearer than the failed accept4).  Back to batches when wakes come
 * back to back, where one failed accept4 per batch is cheaper. */
static void accept_adapt(struct worker *w, int got, uint64_t now)
{
	if (!w->accept_one) {
		if (got <= 1) {
			w->accept_one = 1;
			w->accept_busy = 0;
		}
		return;
	}
	if (got == 1 && now == w->accept_ms) {
		if (++w->accept_busy >= 4)
			w->accept_one = 0;
	} else {
		w->accept_busy = 0;
	}
	w->accept_ms = now;
}

/* Whether accepting needs the client's address. */
static int need_peer(const struct worker *w)
{
	const struct serve_config *cfg = w->cfg;
	return cfg->nallow > 0 || cfg->ndeny > 0 || w->sh->ips != NULL || cfg->nproxy_from > 0 ||
	       w->log->level >= LOG_DEBUG;
}

/* Refreshes the others' count at most once a millisecond: it is a cache
 * line they write all the time. */
static void others_refresh(struct worker *w, uint64_t now)
{
	if (w->sh->nworkers > 1 && now != w->others_ms) {
		w->others = others_active(w);
		w->others_ms = now;
	}
}

void conn_log_accepted(struct worker *w, int fd, const sockit_addr *peer, const sockit_addr *via,
		       const struct peer_cred *cred)
{
	char addr[SOCKIT_ADDRSTRLEN] = "?", by[SOCKIT_ADDRSTRLEN + 8] = "";
	peer_name(peer, cred, addr, sizeof(addr));
	if (via != NULL) {
		memcpy(by, " via ", 5);
		sockit_addr_format(via, by + 5, sizeof(by) - 5);
	}
	conn_note_peer(w, fd, peer, cred);
	struct log_fields f = {"accepted", fd, addr, NULL, cred};
	serve_log_event(w->log, LOG_DEBUG, &f, "accepted fd %d from %s%s", fd, addr, by);
}

void conn_admitted(struct worker *w, int fd, struct ip_entry *ip)
{
	if (w->sh->tls != NULL)
		tls_start(w, fd, ip, NULL);
	else if (w->cfg->mode == MODE_ONCE)
		once_start(w, fd, ip);
	else
		stream_start(w, fd, ip);
}

/* --proxy-protocol: the balancer may connect (--proxy-from); the checks
 * that need the client's address wait for its header (proxy.c). */
static void accept_proxied(struct worker *w, int fd, const sockit_addr *peer)
{
	const struct serve_config *cfg = w->cfg;
	if (cfg->nproxy_from > 0 && !proxy_from_allows(cfg, peer)) {
		CTR_ADD(w, refused_proxy_from, 1);
		refuse(w, fd, peer, NULL, "proxy_from", "not in --proxy-from");
		return;
	}
	if (!room_for_one(w)) {
		CTR_ADD(w, refused_maxconns, 1);
		refuse(w, fd, peer, NULL, "max_conns", "--max-conns reached");
		return;
	}
	CTR_ADD(w, accepted, 1);
	CTR_ADD(w, active, 1);
	if (cfg->metrics_host != NULL)
		duration_open(w, fd);
	proxy_start(w, fd, peer);
}

/* A new connection fd (peer NULL when need_peer() is 0): admit or refuse.
 * A Unix peer (no IP) is known by its credentials: per-UID limits. */
static void accept_one(struct worker *w, int fd, const sockit_addr *peer)
{
	const struct serve_config *cfg = w->cfg;
	struct peer_cred cr, *cred = NULL;
	if (w->emfile_episode) {
		w->emfile_episode = 0;
		serve_log(w->log, LOG_INFO, "descriptors available again; accepting");
	}
	if (cfg->proxy) {
		accept_proxied(w, fd, peer);
		return;
	}
	if (peer != NULL && peer->ss.ss_family == AF_UNIX &&
	    sockit_peercred(fd, &cr.pid, &cr.uid, NULL) == 0)
		cred = &cr;
	if (peer != NULL && (cfg->nallow > 0 || cfg->ndeny > 0) && !serve_acl_allows(cfg, peer)) {
		CTR_ADD(w, refused_denied, 1);
		refuse(w, fd, peer, cred, "denied", "denied by --allow/--deny");
		return;
	}
	if (!room_for_one(w)) {
		CTR_ADD(w, refused_maxconns, 1);
		refuse(w, fd, peer, cred, "max_conns", "--max-conns reached");
		return;
	}
	struct ip_entry *ip = NULL;
	if (w->sh->ips != NULL &&
	    (ip = cred != NULL ? ip_table_acquire_uid(w->sh->ips, cred->uid)
			       : ip_table_acquire(w->sh->ips, peer)) == NULL) {
		CTR_ADD(w, refused_perip, 1);
		refuse(w, fd, peer, cred, "max_conns_per_ip", "--max-conns-per-ip reached");
		return;
	}
	CTR_ADD(w, accepted, 1);
	CTR_ADD(w, active, 1);
	if (cfg->metrics_host != NULL)
		duration_open(w, fd);
	if (w->log->level >= LOG_DEBUG)
		conn_log_accepted(w, fd, peer, NULL, cred);
	conn_admitted(w, fd, ip);
}

/* An accept error: ECONNABORTED, EPERM (firewall), EPROTO... are one
 * client's; running out of descriptors or memory pauses accepting. */
static int accept_error(struct worker *w, int err)
{
	if (err == -EMFILE || err == -ENFILE || err == -ENOBUFS || err == -ENOMEM) {
		accept_pause(w, err);
		return -1;
	}
	struct log_fields f = {"accept_failed", -1, NULL, NULL, NULL};
	serve_log_limited(&w->rl_accept, LOG_WARN, &f, "accept: %s", sockit_strerror(err));
	return 0;
}

static void on_accept(sockit_loop *loop, int lfd, unsigned events, void *arg)
{
	(void)loop;
	(void)events;
	struct worker *w = arg;
	int peer_wanted = need_peer(w);
	uint64_t now = sockit_loop_now_ms(w->loop);
	others_refresh(w, now);
	int limit = w->accept_one ? 1 : ACCEPT_BATCH, got = 0;
	for (int i = 0; i < limit && w->tcp_fd == lfd; i++) {
		sockit_addr peer;
		int fd = io_accept(lfd, peer_wanted ? &peer : NULL);
		if (fd < 0) {
			if (fd == -EAGAIN)
				break;
			if (accept_error(w, fd) < 0)
				return;
			continue;
		}
		got++;
		accept_one(w, fd, peer_wanted ? &peer : NULL);
	}
	accept_adapt(w, got, now);
}

/* io_uring: one multishot accept hands us every new connection inside the
 * loop's wait, no accept4 per client.  It has no room for the peer's
 * address, so it is used only when nothing needs it (need_peer()). */
static void on_accept_op(sockit_loop *loop, void *arg, int res, int more, size_t len);

static int accept_arm(struct worker *w)
{
	if (w->accept_op != NULL || w->tcp_fd < 0)
		return 0;
	int rc = sk_loop_accept_multi(w->loop, w->tcp_fd, SOCK_NONBLOCK, on_accept_op, w,
				      &w->accept_op);
	if (rc < 0)
		accept_pause(w, rc); /* out of memory or ring space: retry soon */
	return rc;
}

static void on_accept_op(sockit_loop *loop, void *arg, int res, int more, size_t len)
{
	(void)len;
	struct worker *w = arg;
	if (!more)
		w->accept_op = NULL;
	if (res >= 0) {
		others_refresh(w, sockit_loop_now_ms(loop));
		accept_one(w, res, NULL);
	} else if (res != -ECANCELED && accept_error(w, res) < 0) {
		return; /* paused: the timer re-arms */
	}
	if (more || w->accept_paused || w->draining)
		return;
	if (res < 0 && res != -ECANCELED)
		accept_pause(w, res); /* an error ended it: re-arming at once could spin */
	else
		(void)accept_arm(w);
}

int accept_start(struct worker *w)
{
	sockit_timer_init(&w->accept_timer, on_accept_timer, w);
	if (w->tcp_fd < 0)
		return 0;
	if (w->ops && !need_peer(w)) {
		w->accept_multi = 1;
		return accept_arm(w);
	}
	return sockit_loop_watch(w->loop, w->tcp_fd, SOCKIT_READABLE, on_accept, w);
}

/* Stopping: the clients already in the listener's backlog completed their
 * handshake with us, and a close would reset them -- behind a balancer,
 * each a failed request that no retry can save (it saw the connect
 * succeed).  They are accepted and served as in-flight ones; only a
 * handshake completing in the microseconds before the close is lost. */
static void accept_backlog(struct worker *w)
{
	int peer_wanted = need_peer(w);
	for (int i = 0; i < 4 * ACCEPT_BATCH && w->tcp_fd >= 0; i++) {
		sockit_addr peer;
		int fd = io_accept(w->tcp_fd, peer_wanted ? &peer : NULL);
		if (fd < 0) {
			if (fd == -EAGAIN || fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS ||
			    fd == -ENOMEM)
				return; /* (out of descriptors: they stay unserved) */
			continue;
		}
		accept_one(w, fd, peer_wanted ? &peer : NULL);
	}
}

void accept_drain(struct worker *w)
{
	if (w->accept_op != NULL)
		sk_loop_op_cancel(w->loop, w->accept_op); /* it holds the listener open */
	if (w->tcp_fd >= 0 && !w->accept_paused)
		accept_backlog(w);
	if (w->tcp_fd >= 0) {
		/* unwatch, not sockit_loop_close: after an upgrade the socket
		 * lives on in the new process, and closing our descriptor would
		 * not take it out of our epoll set */
		sockit_loop_unwatch(w->loop, w->tcp_fd);
		sockit_close(w->tcp_fd);
		w->tcp_fd = -1;
	}
	sockit_timer_stop(w->loop, &w->accept_timer);
}
