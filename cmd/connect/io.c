/* connect_io.c -- `sockit connect`'s relays: TCP full duplex and UDP datagrams.
 *
 * Both run one ppoll() loop over stdin, the socket and stdout.  stdin and
 * stdout are left blocking (they may be shared with a shell); they are only
 * read or written after poll says so, and writes to a pipe, socket or
 * terminal stay within PIPE_BUF so a ready descriptor cannot block.  Every
 * buffer is bounded and keeps an offset: partial writes are the normal case.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "connect.h"
#include "sockit.h"

#define RELAY_BUF (64 * 1024) /* each direction of the TCP relay */
#define MAX_DGRAM SOCKIT_UDP_MAX

/* A bounded byte buffer: data is p[off, len). */
struct buf {
	char *p;
	size_t cap, off, len;
};

static size_t buf_pending(const struct buf *b)
{
	return b->len - b->off;
}

/* Room at the end, after moving the data to the front when that helps. */
static size_t buf_room(struct buf *b)
{
	if (b->off == b->len) {
		b->off = b->len = 0;
	} else if (b->len == b->cap && b->off > 0) {
		memmove(b->p, b->p + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	return b->cap - b->len;
}

static int would_block(long rc)
{
	return rc == -EAGAIN || rc == -EINTR;
}

static int is_reset(long rc)
{
	return rc == -ECONNRESET || rc == -EPIPE || rc == -ECONNABORTED;
}

/* Whether the descriptor is a regular file (writes to it never block). */
static int is_regular(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

/* Milliseconds until deadline for poll(), never negative. */
static int until(uint64_t deadline, uint64_t now)
{
	if (deadline == CONNECT_NEVER)
		return -1;
	if (deadline <= now)
		return 0;
	uint64_t d = deadline - now;
	return d > INT_MAX ? INT_MAX : (int)d;
}

static uint64_t min_deadline(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* poll() that lets the stop signals in only while it waits, so a signal is
 * never lost between the check of connect_signal and the sleep. */
static int wait_events(struct pollfd *pfd, nfds_t n, int timeout_ms, const sigset_t *wait_mask)
{
	struct timespec ts = {.tv_sec = timeout_ms / 1000,
			      .tv_nsec = (timeout_ms % 1000) * 1000000L};
	return ppoll(pfd, n, timeout_ms < 0 ? NULL : &ts, wait_mask);
}

/* Writes all of buf to stdout, waiting when it is non-blocking.  Returns 0
 * or a negative errno. */
static int write_all_stdout(const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(STDOUT_FILENO, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -errno;
			struct pollfd pfd = {.fd = STDOUT_FILENO, .events = POLLOUT};
			poll(&pfd, 1, -1);
			continue;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void stdout_failed(struct connect_summary *sum, int rc)
{
	if (rc == -EPIPE)
		connect_fail(sum, END_STDOUT, "stdout closed before all data was written");
	else
		connect_fail(sum, END_ERROR, "cannot write stdout: %s", sockit_strerror(rc));
}

/* On a terminal, a reply without a final newline would run into the shell
 * prompt: add one there, and nowhere else (pipes and files get the bytes). */
static void terminal_newline(int last_byte, const struct connect_summary *sum)
{
	if (last_byte >= 0 && last_byte != '\n' && sum->end != END_STDOUT && isatty(STDOUT_FILENO))
		(void)write_all_stdout("\n", 1);
}

static void describe_peer(const struct connect_summary *sum, char *buf, size_t len)
{
	if (sockit_addr_format(&sum->used, buf, len) < 0)
		snprintf(buf, len, "the server");
}

/* ---- TCP ------------------------------------------------------------------ */

struct relay {
	const struct connect_config *cfg;
	struct connect_summary *sum;
	const sigset_t *wait_mask;
	int sock;
	int in_fd;	 /* STDIN_FILENO, or -1 when the input is DATA */
	struct buf up;	 /* input -> socket */
	struct buf down; /* socket -> stdout */
	int in_eof;	 /* no more input will come */
	int wr_shut;	 /* SHUT_WR done */
	int sock_eof;	 /* the server's FIN arrived */
	uint64_t shut_ms;
	uint64_t last_ms; /* last data moved, either way */
	size_t out_max;	  /* largest write to stdout that cannot block */
	int out_last;	  /* last byte written to stdout, -1 before any */
};

static void fill_up(struct relay *r, uint64_t now)
{
	size_t room = buf_room(&r->up);
	ssize_t n = read(r->in_fd, r->up.p + r->up.len, room);
	if (n > 0) {
		r->up.len += (size_t)n;
		r->last_ms = now;
	} else if (n == 0) {
		r->in_eof = 1;
	} else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
		connect_fail(r->sum, END_ERROR, "cannot read stdin: %s", sockit_strerror(-errno));
	}
}

static void socket_error(struct relay *r, long rc, const char *what)
{
	char peer[SOCKIT_ADDRSTRLEN];
	describe_peer(r->sum, peer, sizeof(peer));
	if (is_reset(rc))
		connect_fail(r->sum, END_RESET, "connection reset by %s", peer);
	else
		connect_fail(r->sum, END_ERROR, "%s %s: %s", what, peer, sockit_strerror((int)rc));
}

static void send_up(struct relay *r, uint64_t now)
{
	ssize_t n = sockit_send(r->sock, r->up.p + r->up.off, buf_pending(&r->up), 0);
	if (n > 0) {
		r->up.off += (size_t)n;
		r->sum->bytes_sent += (uint64_t)n;
		r->last_ms = now;
	} else if (n < 0 && !would_block(n)) {
		socket_error(r, n, "cannot send to");
	}
}

static void recv_down(struct relay *r, uint64_t now)
{
	size_t room = buf_room(&r->down);
	ssize_t n = sockit_recv(r->sock, r->down.p + r->down.len, room, 0);
	if (n > 0) {
		r->down.len += (size_t)n;
		r->sum->bytes_received += (uint64_t)n;
		r->last_ms = now;
	} else if (n == 0) {
		r->sock_eof = 1;
		r->last_ms = now;
	} else if (!would_block(n)) {
		socket_error(r, n, "cannot receive from");
	}
}

static void write_down(struct relay *r, uint64_t now)
{
	size_t len = buf_pending(&r->down);
	if (len > r->out_max)
		len = r->out_max;
	ssize_t n = write(STDOUT_FILENO, r->down.p + r->down.off, len);
	if (n > 0) {
		r->down.off += (size_t)n;
		r->out_last = (unsigned char)r->down.p[r->down.off - 1];
		r->last_ms = now;
	} else if (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
		stdout_failed(r->sum, -errno);
	}
}

/* Decides whether the relay is over (returns 1) and does the EOF moves. */
static int relay_step(struct relay *r, uint64_t now, int *stopping)
{
	const struct connect_config *cfg = r->cfg;
	if (connect_signal != 0) {
		r->sum->end = END_SIGNAL; /* stop now: nothing more is written */
		return 1;
	}
	if (r->sum->end != END_NONE)
		*stopping = 1; /* an error or a decision already made */
	if (!*stopping) {
		if (r->in_eof && buf_pending(&r->up) == 0 && !r->wr_shut) {
			/* An error here (e.g. already reset) shows up on recv. */
			(void)sockit_shutdown(r->sock, SHUT_WR);
			r->wr_shut = 1;
			r->shut_ms = now;
		}
		if (r->sock_eof) {
			r->sum->end = END_FIN;
			*stopping = 1;
		} else if (r->wr_shut && cfg->quit_ms != CONNECT_NEVER &&
			   now - r->shut_ms >= cfg->quit_ms) {
			r->sum->end = END_QUIT;
			*stopping = 1;
		}
	}
	/* Stopping: only what was received is still written out. */
	if (*stopping && (buf_pending(&r->down) == 0 || r->sum->end == END_STDOUT))
		return 1;
	if (cfg->idle_ms > 0 && now - r->last_ms >= cfg->idle_ms) {
		connect_fail(r->sum, END_IDLE, "idle timeout: no data either way for %llums",
			     (unsigned long long)cfg->idle_ms);
		return 1;
	}
	return 0;
}

static void relay_loop(struct relay *r)
{
	const struct connect_config *cfg = r->cfg;
	int stopping = 0;
	for (;;) {
		uint64_t now = connect_now_ms();
		if (relay_step(r, now, &stopping))
			break;
		struct pollfd pfd[3] = {{.fd = -1}, {.fd = -1}, {.fd = -1}};
		if (!stopping && !r->in_eof && r->in_fd >= 0 && buf_room(&r->up) > 0)
			pfd[0] = (struct pollfd){.fd = r->in_fd, .events = POLLIN};
		short sev = 0;
		if (!stopping && !r->sock_eof && buf_room(&r->down) > 0)
			sev |= POLLIN;
		if (!stopping && buf_pending(&r->up) > 0)
			sev |= POLLOUT;
		if (sev != 0)
			pfd[1] = (struct pollfd){.fd = r->sock, .events = sev};
		if (buf_pending(&r->down) > 0)
			pfd[2] = (struct pollfd){.fd = STDOUT_FILENO, .events = POLLOUT};

		uint64_t deadline = CONNECT_NEVER;
		if (cfg->idle_ms > 0)
			deadline = r->last_ms + cfg->idle_ms;
		if (r->wr_shut && cfg->quit_ms != CONNECT_NEVER && !stopping)
			deadline = min_deadline(deadline, r->shut_ms + cfg->quit_ms);
		int n = wait_events(pfd, 3, until(deadline, now), r->wait_mask);
		if (n < 0 && errno != EINTR) {
			connect_fail(r->sum, END_ERROR, "poll: %s", sockit_strerror(-errno));
			break;
		}
		if (n <= 0)
			continue;
		now = connect_now_ms();
		if (pfd[0].revents & POLLNVAL)
			r->in_eof = 1;
		else if (pfd[0].revents)
			fill_up(r, now);
		if ((pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) && (sev & POLLIN))
			recv_down(r, now);
		if ((pfd[1].revents & (POLLOUT | POLLHUP | POLLERR)) && (sev & POLLOUT) &&
		    r->sum->end == END_NONE)
			send_up(r, now);
		if (pfd[2].revents)
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

void connect_relay_tcp(const struct connect_config *cfg, int fd, const sigset_t *wait_mask,
		       struct connect_summary *sum)
{
	struct relay r = {
		.cfg = cfg,
		.sum = sum,
		.wait_mask = wait_mask,
		.sock = fd,
		.in_fd = STDIN_FILENO,
		.last_ms = connect_now_ms(),
		.out_max = is_regular(STDOUT_FILENO) ? RELAY_BUF : PIPE_BUF,
		.out_last = -1,
	};
	int rc = sockit_set_nonblocking(fd, 1);
	if (rc < 0) {
		connect_fail(sum, END_ERROR, "cannot make the socket non-blocking: %s",
			     sockit_strerror(rc));
		return;
	}
	char *down = malloc(RELAY_BUF);
	char *up = NULL;
	if (cfg->ndata > 0) {
		size_t len = 0;
		up = join_data(cfg, &len);
		r.up = (struct buf){.p = up, .cap = len, .len = len};
		r.in_fd = -1;
		r.in_eof = 1;
	} else {
		up = malloc(RELAY_BUF);
		r.up = (struct buf){.p = up, .cap = RELAY_BUF};
	}
	if (up == NULL || down == NULL) {
		connect_fail(sum, END_ERROR, "out of memory");
	} else {
		r.down = (struct buf){.p = down, .cap = RELAY_BUF};
		relay_loop(&r);
		terminal_newline(r.out_last, sum);
	}
	free(up);
	free(down);
}

/* ---- UDP ------------------------------------------------------------------ */

struct dgram_relay {
	const struct connect_config *cfg;
	struct connect_summary *sum;
	const sigset_t *wait_mask;
	int sock;
	struct buf in;	   /* stdin bytes not yet sent as datagrams */
	int in_eof;	   /* stdin ended (or DATA is the input) */
	int next_arg;	   /* next DATA argument */
	const char *pend;  /* the datagram being sent, or NULL */
	size_t pend_len;   /* its length */
	size_t pend_taken; /* stdin bytes it consumes once sent */
	char *argbuf;	   /* DATA argument plus '\n' */
	uint64_t last_ms;  /* last datagram either way */
	uint64_t done_ms;  /* when the last datagram went out; 0 before */
	int out_last;
};

/* Picks the next datagram: the next DATA argument, or the next stdin line
 * (a line longer than MAX_DGRAM goes in MAX_DGRAM pieces; a last line
 * without '\n' is sent at EOF).  Returns 1 if one is pending. */
static int next_dgram(struct dgram_relay *d)
{
	const struct connect_config *cfg = d->cfg;
	if (d->pend != NULL)
		return 1;
	if (cfg->ndata > 0) {
		if (d->next_arg >= cfg->ndata)
			return 0;
		size_t l = strlen(cfg->data[d->next_arg]);
		if (l + (cfg->newline ? 1 : 0) > MAX_DGRAM) {
			connect_fail(d->sum, END_ERROR,
				     "DATA argument %d is too long for a datagram (%zu bytes, at "
				     "most %d)",
				     d->next_arg + 1, l + (cfg->newline ? 1 : 0), MAX_DGRAM);
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
	const char *start = d->in.p + d->in.off;
	size_t avail = buf_pending(&d->in);
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
	d->pend_len = (nl != NULL && !cfg->newline) ? take - 1 : take;
	return 1;
}

static void udp_error(struct dgram_relay *d, long rc, const char *what)
{
	char peer[SOCKIT_ADDRSTRLEN];
	describe_peer(d->sum, peer, sizeof(peer));
	if (rc == -ECONNREFUSED)
		connect_fail(d->sum, END_REFUSED,
			     "udp %s: connection refused (port unreachable; nothing listening?)",
			     peer);
	else
		connect_fail(d->sum, END_ERROR, "%s udp %s: %s", what, peer,
			     sockit_strerror((int)rc));
}

static void send_dgram(struct dgram_relay *d, uint64_t now)
{
	ssize_t n = sockit_send(d->sock, d->pend, d->pend_len, 0);
	if (n >= 0) {
		d->sum->dgrams_sent++;
		d->sum->bytes_sent += (uint64_t)n;
		d->in.off += d->pend_taken;
		d->pend = NULL;
		d->last_ms = now;
	} else if (!would_block(n)) {
		udp_error(d, n, "cannot send to");
	}
}

static void recv_dgram(struct dgram_relay *d, char *rbuf, size_t rlen, uint64_t now)
{
	ssize_t n = sockit_recv(d->sock, rbuf, rlen, 0);
	if (n < 0) {
		if (!would_block(n))
			udp_error(d, n, "cannot receive from");
		return;
	}
	d->sum->dgrams_received++;
	d->sum->bytes_received += (uint64_t)n;
	d->last_ms = now;
	if (n == 0)
		return;
	int rc = write_all_stdout(rbuf, (size_t)n);
	if (rc < 0)
		stdout_failed(d->sum, rc);
	else
		d->out_last = (unsigned char)rbuf[n - 1];
}

static void dgram_read_stdin(struct dgram_relay *d)
{
	size_t room = buf_room(&d->in);
	ssize_t n = read(STDIN_FILENO, d->in.p + d->in.len, room);
	if (n > 0)
		d->in.len += (size_t)n;
	else if (n == 0)
		d->in_eof = 1;
	else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
		connect_fail(d->sum, END_ERROR, "cannot read stdin: %s", sockit_strerror(-errno));
}

/* After the input: done when --reply-timeout passes without a datagram. */
static int dgram_finished(struct dgram_relay *d, uint64_t now, uint64_t *deadline)
{
	const struct connect_config *cfg = d->cfg;
	if (d->done_ms == 0)
		d->done_ms = now;
	uint64_t reply_end = d->last_ms + cfg->reply_ms;
	uint64_t quit_end =
		cfg->quit_ms == CONNECT_NEVER ? CONNECT_NEVER : d->done_ms + cfg->quit_ms;
	if (d->sum->dgrams_sent == 0 || cfg->reply_ms == 0 || now >= reply_end || now >= quit_end) {
		if (now >= quit_end && now < reply_end)
			d->sum->end = END_QUIT;
		else if (d->sum->dgrams_received > 0 || d->sum->dgrams_sent == 0 ||
			 cfg->reply_ms == 0)
			d->sum->end = END_DONE;
		else
			connect_fail(d->sum, END_NO_REPLY, "no reply within %llums",
				     (unsigned long long)cfg->reply_ms);
		return 1;
	}
	*deadline = min_deadline(*deadline, min_deadline(reply_end, quit_end));
	return 0;
}

static void dgram_loop(struct dgram_relay *d, char *rbuf, size_t rlen)
{
	const struct connect_config *cfg = d->cfg;
	for (;;) {
		uint64_t now = connect_now_ms();
		if (connect_signal != 0)
			d->sum->end = END_SIGNAL;
		if (d->sum->end != END_NONE)
			break;
		uint64_t deadline = CONNECT_NEVER;
		if (cfg->idle_ms > 0) {
			if (now - d->last_ms >= cfg->idle_ms) {
				connect_fail(d->sum, END_IDLE,
					     "idle timeout: no datagram either way for %llums",
					     (unsigned long long)cfg->idle_ms);
				break;
			}
			deadline = d->last_ms + cfg->idle_ms;
		}
		int have = next_dgram(d);
		if (d->sum->end != END_NONE)
			break;
		int input_done = !have && (cfg->ndata > 0 || d->in_eof);
		if (input_done && dgram_finished(d, now, &deadline))
			break;
		struct pollfd pfd[2] = {{.fd = -1}, {.fd = d->sock, .events = POLLIN}};
		if (have)
			pfd[1].events |= POLLOUT;
		else if (cfg->ndata == 0 && !d->in_eof)
			pfd[0] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
		int n = wait_events(pfd, 2, until(deadline, now), d->wait_mask);
		if (n < 0 && errno != EINTR) {
			connect_fail(d->sum, END_ERROR, "poll: %s", sockit_strerror(-errno));
			break;
		}
		if (n <= 0)
			continue;
		now = connect_now_ms();
		if (pfd[1].revents & (POLLIN | POLLERR))
			recv_dgram(d, rbuf, rlen, now);
		if ((pfd[1].revents & POLLOUT) && have && d->sum->end == END_NONE)
			send_dgram(d, now);
		if (pfd[0].revents & POLLNVAL)
			d->in_eof = 1;
		else if (pfd[0].revents)
			dgram_read_stdin(d);
	}
}

void connect_relay_udp(const struct connect_config *cfg, int fd, const sigset_t *wait_mask,
		       struct connect_summary *sum)
{
	struct dgram_relay d = {
		.cfg = cfg,
		.sum = sum,
		.wait_mask = wait_mask,
		.sock = fd,
		.in_eof = cfg->ndata > 0,
		.last_ms = connect_now_ms(),
		.out_last = -1,
	};
	int rc = sockit_set_nonblocking(fd, 1);
	if (rc < 0) {
		connect_fail(sum, END_ERROR, "cannot make the socket non-blocking: %s",
			     sockit_strerror(rc));
		return;
	}
	size_t rlen = 65536;
	char *rbuf = malloc(rlen);
	char *inbuf = malloc(MAX_DGRAM + 2);
	d.argbuf = inbuf;
	d.in = (struct buf){.p = inbuf, .cap = MAX_DGRAM};
	if (rbuf == NULL || inbuf == NULL) {
		connect_fail(sum, END_ERROR, "out of memory");
	} else {
		dgram_loop(&d, rbuf, rlen);
		terminal_newline(d.out_last, sum);
	}
	free(rbuf);
	free(inbuf);
}
