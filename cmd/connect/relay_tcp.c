/* relay_tcp.c -- `sockit connect`'s stream relay: input to the socket, the socket to stdout.
 *
 * One poll() loop over stdin, the socket and stdout, with a bounded buffer
 * each way that keeps an offset: partial writes are the normal case.  The
 * end follows the table in the help: input EOF half-closes, the server's
 * FIN ends it (0), a reset or any write error ends it (1).  With TLS the
 * socket's bytes go through the link's sockit_tls (non-blocking): each
 * direction waits for the readiness sockit_tls_want named after its
 * -EAGAIN, decrypted bytes already buffered are taken before any wait, the
 * half-close is close_notify, and a FIN without one is a truncation (1).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "internal.h"
#include "relay.h"

#define RELAY_BUF (64 * 1024) /* each direction */

struct relay {
	const struct connect_config *cfg;
	const struct connect_link *link;
	struct connect_result *res;
	int in_fd;	       /* STDIN_FILENO, or -1 when the input is DATA */
	struct relay_buf up;   /* input -> socket */
	struct relay_buf down; /* socket -> stdout */
	int in_eof;	       /* no more input will come */
	int wr_shut;	       /* SHUT_WR done */
	int sock_eof;	       /* the server's FIN arrived */
	int stopping;	       /* the end is decided: only stdout is still written */
	uint64_t shut_ms;
	unsigned up_want;   /* TLS: what the last send waits for (SOCKIT_WRITABLE) */
	unsigned down_want; /* TLS: what the last recv waits for (SOCKIT_READABLE) */
	unsigned shut_want; /* TLS: close_notify in progress: what it waits for */
	uint64_t last_ms;   /* last data moved, either way */
	size_t out_max;	    /* largest write to stdout that cannot block */
	int out_last;	    /* last byte written to stdout, -1 before any */
};

static int is_reset(long rc)
{
	return rc == -ECONNRESET || rc == -EPIPE || rc == -ECONNABORTED;
}

static void socket_error(struct relay *r, long rc, const char *what)
{
	char peer[SOCKIT_ADDRSTRLEN];
	relay_peer_name(r->link, peer, sizeof(peer));
	if (is_reset(rc))
		connect_result_fail(r->res, END_RESET, "connection reset by %s", peer);
	else
		connect_result_fail(r->res, END_ERROR, "%s %s: %s%s", what, peer,
				    sockit_strerror((int)rc),
				    rc == SOCKIT_TLS_ECERTREQUIRED && r->cfg->tls_cert == NULL
					    ? " (present one with --tls-cert FILE)"
					    : "");
}

/* ---- The socket's bytes: plain, or through TLS --------------------------- */

static ssize_t link_send(struct relay *r, const void *p, size_t len)
{
	sockit_tls *t = r->link->tls;
	if (t == NULL)
		return sockit_send(r->link->sock, p, len, 0);
	ssize_t n = sockit_tls_send(t, p, len, 0);
	r->up_want = n == -EAGAIN ? sockit_tls_want(t) : SOCKIT_WRITABLE;
	return n;
}

static ssize_t link_recv(struct relay *r, void *p, size_t len)
{
	sockit_tls *t = r->link->tls;
	if (t == NULL)
		return sockit_recv(r->link->sock, p, len, 0);
	ssize_t n = sockit_tls_recv(t, p, len, 0);
	r->down_want = n == -EAGAIN ? sockit_tls_want(t) : SOCKIT_READABLE;
	return n;
}

/* The half-close: SHUT_WR, or close_notify (which may have to wait: then
 * shut_want says for what, and it is called again).  An error here (e.g.
 * already reset) shows up on recv.  Returns 1 when done. */
static int link_shutdown(struct relay *r)
{
	sockit_tls *t = r->link->tls;
	if (t == NULL) {
		(void)sockit_shutdown(r->link->sock, SHUT_WR);
		return 1;
	}
	int rc = sockit_tls_shutdown(t, 0);
	r->shut_want = rc == -EAGAIN ? sockit_tls_want(t) : 0;
	return r->shut_want == 0;
}

/* Decrypted bytes that a recv returns without the socket being readable. */
static int link_buffered(const struct relay *r)
{
	return r->link->tls != NULL && sockit_tls_pending(r->link->tls) > 0;
}

static short poll_event(unsigned want)
{
	return want == SOCKIT_WRITABLE ? POLLOUT : POLLIN;
}

/* ---- The relay -------------------------------------------------------------- */

static void fill_up(struct relay *r, uint64_t now)
{
	int rc = relay_read_stdin(&r->up, r->res);
	if (rc > 0)
		r->last_ms = now;
	else if (rc == 0)
		r->in_eof = 1;
}

static void send_up(struct relay *r, uint64_t now)
{
	ssize_t n = link_send(r, r->up.p + r->up.off, relay_buf_pending(&r->up));
	if (n > 0) {
		r->up.off += (size_t)n;
		r->res->bytes_sent += (uint64_t)n;
		r->last_ms = now;
	} else if (n < 0 && !relay_would_block(n)) {
		socket_error(r, n, "cannot send to");
	}
}

static void recv_down(struct relay *r, uint64_t now)
{
	size_t room = relay_buf_room(&r->down);
	ssize_t n = link_recv(r, r->down.p + r->down.len, room);
	if (n > 0) {
		r->down.len += (size_t)n;
		r->res->bytes_received += (uint64_t)n;
		r->last_ms = now;
	} else if (n == 0) {
		r->sock_eof = 1;
		r->last_ms = now;
	} else if (n == SOCKIT_TLS_ETRUNCATED) {
		char peer[SOCKIT_ADDRSTRLEN];
		relay_peer_name(r->link, peer, sizeof(peer));
		connect_result_fail(r->res, END_TRUNCATED,
				    "%s closed the connection without close_notify: %s", peer,
				    sockit_strerror((int)n));
	} else if (!relay_would_block(n)) {
		socket_error(r, n, "cannot receive from");
	}
}

/* Any failure but EAGAIN/EINTR ends the run at once: retrying a full disk
 * or a closed descriptor would spin (issue 19, item 1). */
static void write_down(struct relay *r, uint64_t now)
{
	size_t len = relay_buf_pending(&r->down);
	if (len > r->out_max)
		len = r->out_max;
	ssize_t n = write(STDOUT_FILENO, r->down.p + r->down.off, len);
	if (n > 0) {
		r->down.off += (size_t)n;
		r->out_last = (unsigned char)r->down.p[r->down.off - 1];
		r->last_ms = now;
	} else if (n < 0 && errno != EINTR && errno != EAGAIN) {
		relay_stdout_failed(r->res, -errno);
	}
}

/* Decides whether the relay is over (returns 1) and does the EOF moves. */
static int relay_step(struct relay *r, uint64_t now)
{
	const struct connect_config *cfg = r->cfg;
	struct connect_result *res = r->res;
	if (res->end == END_SIGNAL || res->stdout_failed)
		return 1;
	if (res->end != END_NONE)
		r->stopping = 1; /* an error or a decision already made */
	if (!r->stopping) {
		if (r->in_eof && relay_buf_pending(&r->up) == 0 && !r->wr_shut &&
		    link_shutdown(r)) {
			r->wr_shut = 1;
			r->shut_ms = now;
		}
		if (r->sock_eof) {
			res->end = END_FIN;
			r->stopping = 1;
		} else if (r->wr_shut && cfg->quit_ms != CONNECT_NEVER &&
			   now - r->shut_ms >= cfg->quit_ms) {
			res->end = END_QUIT;
			r->stopping = 1;
		}
	}
	/* Stopping: only what was received is still written out. */
	if (r->stopping && relay_buf_pending(&r->down) == 0)
		return 1;
	if (cfg->idle_ms > 0 && now - r->last_ms >= cfg->idle_ms) {
		char d[32];
		cli_format_duration(d, sizeof(d), cfg->idle_ms);
		connect_result_fail(res, END_IDLE, "idle timeout: no data either way for %s", d);
		return 1;
	}
	return 0;
}

/* The descriptors to wait for (pfd[0] is relay_wait's), and the deadline. */
static uint64_t relay_interest(struct relay *r, struct pollfd *pfd)
{
	const struct connect_config *cfg = r->cfg;
	int sock = r->link->sock;
	if (!r->stopping && !r->in_eof && r->in_fd >= 0 && relay_buf_room(&r->up) > 0)
		pfd[1] = (struct pollfd){.fd = r->in_fd, .events = POLLIN};
	short sev = 0;
	if (!r->stopping && !r->sock_eof && relay_buf_room(&r->down) > 0)
		sev |= poll_event(r->down_want);
	if (!r->stopping && relay_buf_pending(&r->up) > 0)
		sev |= poll_event(r->up_want);
	if (!r->stopping && r->shut_want != 0)
		sev |= poll_event(r->shut_want);
	if (sev != 0)
		pfd[2] = (struct pollfd){.fd = sock, .events = sev};
	if (relay_buf_pending(&r->down) > 0)
		pfd[3] = (struct pollfd){.fd = STDOUT_FILENO, .events = POLLOUT};
	uint64_t deadline = CONNECT_NEVER;
	if (cfg->idle_ms > 0)
		deadline = r->last_ms + cfg->idle_ms;
	if (r->wr_shut && cfg->quit_ms != CONNECT_NEVER && !r->stopping &&
	    r->shut_ms + cfg->quit_ms < deadline)
		deadline = r->shut_ms + cfg->quit_ms;
	return deadline;
}

/* Whether a direction that waits for want may go on, given revents. */
static int ready_for(short revents, unsigned want)
{
	return (revents & (poll_event(want) | POLLHUP | POLLERR)) != 0;
}

static void relay_loop(struct relay *r)
{
	for (;;) {
		uint64_t now = sk_clock_ms();
		if (relay_step(r, now))
			break;
		struct pollfd pfd[4] = {{.fd = -1}, {.fd = -1}, {.fd = -1}, {.fd = -1}};
		uint64_t deadline = relay_interest(r, pfd);
		int down = !r->stopping && !r->sock_eof && relay_buf_room(&r->down) > 0;
		int up = !r->stopping && relay_buf_pending(&r->up) > 0;
		if (down && link_buffered(r)) {
			recv_down(r, now); /* already decrypted: no wait */
			continue;
		}
		int n = relay_wait(pfd, 4, relay_until(deadline, now), r->link, r->res);
		if (n < 0) {
			connect_result_fail(r->res, END_ERROR, "poll: %s", sockit_strerror(n));
			break;
		}
		if (n == 0)
			continue;
		now = sk_clock_ms();
		if (pfd[1].revents & POLLNVAL)
			r->in_eof = 1;
		else if (pfd[1].revents)
			fill_up(r, now);
		short rev = pfd[2].revents;
		if (down && ready_for(rev, r->down_want))
			recv_down(r, now);
		if (up && ready_for(rev, r->up_want) && r->res->end == END_NONE)
			send_up(r, now);
		if (r->shut_want != 0 && ready_for(rev, r->shut_want) && link_shutdown(r)) {
			r->wr_shut = 1;
			r->shut_ms = now;
		}
		if (pfd[3].revents)
			write_down(r, now);
	}
}

/* DATA joined by single spaces, plus '\n' unless -n.  Returns a malloc'd
 * buffer (caller frees) or NULL. */
static char *join_data(const struct connect_config *cfg, size_t *len)
{
	size_t total = cfg->newline ? 1 : 0;
	for (int i = 0; i < cfg->ndata; i++)
		total += strlen(cfg->data[i]) + (i > 0);
	char *p = malloc(total + 1);
	if (p == NULL)
		return NULL;
	size_t used = 0;
	for (int i = 0; i < cfg->ndata; i++) {
		if (i > 0)
			p[used++] = ' ';
		size_t l = strlen(cfg->data[i]);
		memcpy(p + used, cfg->data[i], l);
		used += l;
	}
	if (cfg->newline)
		p[used++] = '\n';
	*len = used;
	return p;
}

void connect_relay_tcp(const struct connect_config *cfg, const struct connect_link *link,
		       struct connect_result *res)
{
	struct relay r = {
		.cfg = cfg,
		.link = link,
		.res = res,
		.in_fd = STDIN_FILENO,
		.last_ms = sk_clock_ms(),
		.out_max = relay_stdout_max(RELAY_BUF),
		.out_last = -1,
		.up_want = SOCKIT_WRITABLE,
		.down_want = SOCKIT_READABLE,
	};
	int rc = sockit_set_nonblocking(link->sock, 1);
	if (rc < 0) {
		connect_result_fail(res, END_ERROR, "cannot make the socket non-blocking: %s",
				    sockit_strerror(rc));
		return;
	}
	char *down = malloc(RELAY_BUF);
	char *up = NULL;
	if (cfg->ndata > 0) {
		size_t len = 0;
		up = join_data(cfg, &len);
		r.up = (struct relay_buf){.p = up, .cap = len, .len = len};
		r.in_fd = -1;
		r.in_eof = 1;
	} else {
		up = malloc(RELAY_BUF);
		r.up = (struct relay_buf){.p = up, .cap = RELAY_BUF};
	}
	if (up == NULL || down == NULL) {
		connect_result_fail(res, END_ERROR, "out of memory");
	} else {
		r.down = (struct relay_buf){.p = down, .cap = RELAY_BUF};
		relay_loop(&r);
		relay_terminal_newline(r.out_last, res);
	}
	free(up);
	free(down);
}
