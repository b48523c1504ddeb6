/* relay_udp.c -- `sockit connect -u` (and -u -U): datagrams out, replies to stdout.
 *
 * Each DATA argument, or each stdin line, is one datagram; replies are
 * written to stdout as they come.  After the input, the run waits until
 * --reply-timeout passes without a reply: exit 0 if one came.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "internal.h"
#include "relay.h"

#define REPLY_BUF 65536

struct dgram_relay {
	const struct connect_config *cfg;
	const struct connect_link *link;
	struct connect_result *res;
	struct relay_buf in; /* stdin bytes not yet sent as datagrams */
	int in_eof;	     /* stdin ended (or DATA is the input) */
	int next_arg;	     /* next DATA argument */
	const char *pend;    /* the datagram being sent, or NULL */
	size_t pend_len;     /* its length */
	size_t pend_taken;   /* stdin bytes it consumes once sent */
	char *argbuf;	     /* DATA argument plus '\n' */
	uint64_t last_ms;    /* last datagram either way */
	uint64_t done_ms;    /* when the input was all sent; 0 before */
	int out_last;
};

/* The next DATA argument as the pending datagram.  Returns 1 if one is
 * pending, 0 if none is left or it is too long (recorded). */
static int next_arg(struct dgram_relay *d)
{
	const struct connect_config *cfg = d->cfg;
	if (d->next_arg >= cfg->ndata)
		return 0;
	size_t l = strlen(cfg->data[d->next_arg]);
	size_t total = l + (cfg->newline ? 1 : 0);
	if (total > SOCKIT_UDP_MAX) {
		connect_result_fail(d->res, END_ERROR,
				    "DATA argument %d is too long for a datagram (%zu bytes, at "
				    "most %d)",
				    d->next_arg + 1, total, SOCKIT_UDP_MAX);
		return 0;
	}
	memcpy(d->argbuf, cfg->data[d->next_arg], l);
	if (cfg->newline)
		d->argbuf[l++] = '\n';
	d->next_arg++;
	d->pend = d->argbuf;
	d->pend_len = l;
	d->pend_taken = 0;
	return 1;
}

/* Picks the next datagram: the next DATA argument, or the next stdin line
 * (a line longer than SOCKIT_UDP_MAX goes in pieces; a last line without
 * '\n' is sent at EOF).  Returns 1 if one is pending. */
static int next_dgram(struct dgram_relay *d)
{
	if (d->pend != NULL)
		return 1;
	if (d->cfg->ndata > 0)
		return next_arg(d);
	const char *start = d->in.p + d->in.off;
	size_t avail = relay_buf_pending(&d->in);
	const char *nl = memchr(start, '\n', avail);
	size_t take;
	if (nl != NULL)
		take = (size_t)(nl - start) + 1;
	else if (avail == d->in.cap || (d->in_eof && avail > 0))
		take = avail;
	else
		return 0;
	d->pend = start;
	d->pend_taken = take;
	d->pend_len = (nl != NULL && !d->cfg->newline) ? take - 1 : take;
	return 1;
}

static void udp_error(struct dgram_relay *d, long rc, const char *what)
{
	char peer[SOCKIT_ADDRSTRLEN];
	relay_peer_name(d->link, peer, sizeof(peer));
	const char *proto = d->cfg->unix_path != NULL ? "unix-dgram" : "udp";
	if (rc == -ECONNREFUSED)
		connect_result_fail(
			d->res, END_REFUSED,
			"%s %s: connection refused (%s: is the server running?)", proto, peer,
			d->cfg->unix_path != NULL ? "no socket bound there" : "port unreachable");
	else
		connect_result_fail(d->res, END_ERROR, "%s %s %s: %s", what, proto, peer,
				    sockit_strerror((int)rc));
}

static void send_dgram(struct dgram_relay *d, uint64_t now)
{
	ssize_t n = sockit_send(d->link->sock, d->pend, d->pend_len, 0);
	if (n >= 0) {
		d->res->dgrams_sent++;
		d->res->bytes_sent += (uint64_t)n;
		d->in.off += d->pend_taken;
		d->pend = NULL;
		d->last_ms = now;
	} else if (!relay_would_block(n)) {
		udp_error(d, n, "cannot send to");
	}
}

static void recv_dgram(struct dgram_relay *d, char *rbuf, size_t rlen, uint64_t now)
{
	ssize_t n = sockit_recv(d->link->sock, rbuf, rlen, 0);
	if (n < 0) {
		if (!relay_would_block(n))
			udp_error(d, n, "cannot receive from");
		return;
	}
	d->res->dgrams_received++;
	d->res->bytes_received += (uint64_t)n;
	d->last_ms = now;
	if (n == 0)
		return;
	int rc = relay_write_stdout(rbuf, (size_t)n);
	if (rc < 0)
		relay_stdout_failed(d->res, rc);
	else
		d->out_last = (unsigned char)rbuf[n - 1];
}

/* After the input: done when --reply-timeout passes without a datagram. */
static int dgram_finished(struct dgram_relay *d, uint64_t now, uint64_t *deadline)
{
	const struct connect_config *cfg = d->cfg;
	struct connect_result *res = d->res;
	if (d->done_ms == 0)
		d->done_ms = now;
	uint64_t reply_end = d->last_ms + cfg->reply_ms;
	uint64_t quit_end =
		cfg->quit_ms == CONNECT_NEVER ? CONNECT_NEVER : d->done_ms + cfg->quit_ms;
	if (res->dgrams_sent == 0 || cfg->reply_ms == 0 || now >= reply_end || now >= quit_end) {
		if (now >= quit_end && now < reply_end) {
			res->end = END_QUIT;
		} else if (res->dgrams_received > 0 || res->dgrams_sent == 0 ||
			   cfg->reply_ms == 0) {
			res->end = END_DONE;
		} else {
			char dur[32];
			cli_format_duration(dur, sizeof(dur), cfg->reply_ms);
			connect_result_fail(res, END_NO_REPLY, "no reply within %s", dur);
		}
		return 1;
	}
	if (reply_end < *deadline)
		*deadline = reply_end;
	if (quit_end < *deadline)
		*deadline = quit_end;
	return 0;
}

/* -i passed with no datagram either way.  A reply came and nothing is
 * left unsent: the exchange succeeded, the wait is over (issue 19, item
 * 2).  Otherwise a failure. */
static void dgram_idle(struct dgram_relay *d)
{
	if (d->res->dgrams_received > 0 && d->pend == NULL) {
		d->res->end = END_DONE;
		return;
	}
	char dur[32];
	cli_format_duration(dur, sizeof(dur), d->cfg->idle_ms);
	connect_result_fail(d->res, END_IDLE, "idle timeout: no datagram either way for %s", dur);
}

/* Whether the run is over before the next wait; sets *have (a datagram
 * is pending) and *deadline. */
static int dgram_step(struct dgram_relay *d, uint64_t now, int *have, uint64_t *deadline)
{
	const struct connect_config *cfg = d->cfg;
	if (d->res->end != END_NONE)
		return 1;
	*deadline = CONNECT_NEVER;
	if (cfg->idle_ms > 0) {
		if (now - d->last_ms >= cfg->idle_ms) {
			dgram_idle(d);
			return 1;
		}
		*deadline = d->last_ms + cfg->idle_ms;
	}
	*have = next_dgram(d);
	if (d->res->end != END_NONE)
		return 1;
	int input_done = !*have && (cfg->ndata > 0 || d->in_eof);
	return input_done && dgram_finished(d, now, deadline);
}

static void dgram_loop(struct dgram_relay *d, char *rbuf, size_t rlen)
{
	const struct connect_config *cfg = d->cfg;
	for (;;) {
		uint64_t now = sk_clock_ms(), deadline;
		int have = 0;
		if (dgram_step(d, now, &have, &deadline))
			break;
		struct pollfd pfd[3] = {
			{.fd = -1}, {.fd = -1}, {.fd = d->link->sock, .events = POLLIN}};
		if (have)
			pfd[2].events |= POLLOUT;
		else if (cfg->ndata == 0 && !d->in_eof)
			pfd[1] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
		int n = relay_wait(pfd, 3, relay_until(deadline, now), d->link, d->res);
		if (n < 0) {
			connect_result_fail(d->res, END_ERROR, "poll: %s", sockit_strerror(n));
			break;
		}
		if (n == 0)
			continue;
		now = sk_clock_ms();
		if (pfd[2].revents & (POLLIN | POLLERR))
			recv_dgram(d, rbuf, rlen, now);
		if ((pfd[2].revents & POLLOUT) && have && d->res->end == END_NONE)
			send_dgram(d, now);
		if (pfd[1].revents & POLLNVAL)
			d->in_eof = 1;
		else if (pfd[1].revents && relay_read_stdin(&d->in, d->res) == 0)
			d->in_eof = 1;
	}
}

void connect_relay_udp(const struct connect_config *cfg, const struct connect_link *link,
		       struct connect_result *res)
{
	struct dgram_relay d = {
		.cfg = cfg,
		.link = link,
		.res = res,
		.in_eof = cfg->ndata > 0,
		.last_ms = sk_clock_ms(),
		.out_last = -1,
	};
	int rc = sockit_set_nonblocking(link->sock, 1);
	if (rc < 0) {
		connect_result_fail(res, END_ERROR, "cannot make the socket non-blocking: %s",
				    sockit_strerror(rc));
		return;
	}
	char *rbuf = malloc(REPLY_BUF);
	char *inbuf = malloc(SOCKIT_UDP_MAX + 2);
	d.argbuf = inbuf;
	d.in = (struct relay_buf){.p = inbuf, .cap = SOCKIT_UDP_MAX};
	if (rbuf == NULL || inbuf == NULL) {
		connect_result_fail(res, END_ERROR, "out of memory");
	} else {
		dgram_loop(&d, rbuf, REPLY_BUF);
		relay_terminal_newline(d.out_last, res);
	}
	free(rbuf);
	free(inbuf);
}
