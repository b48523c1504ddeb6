/* connect.c -- connecting to a host name: every address, raced as RFC 8305 (Happy Eyeballs) says.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"

/* At most this many resolved addresses are tried. */
#define MAX_ADDRS 16

/* Orders addrs as RFC 8305 section 4 asks: getaddrinfo's order (RFC 6724
 * on glibc) within each family, the families alternating, starting with
 * the first address's family. */
static void interleave(sockit_addr *addrs, int n)
{
	sockit_addr out[MAX_ADDRS];
	int first[MAX_ADDRS], other[MAX_ADDRS], nf = 0, no = 0, m = 0;
	for (int i = 0; i < n; i++) {
		if (addrs[i].ss.ss_family == addrs[0].ss.ss_family)
			first[nf++] = i;
		else
			other[no++] = i;
	}
	for (int k = 0; k < nf || k < no; k++) {
		if (k < nf)
			out[m++] = addrs[first[k]];
		if (k < no)
			out[m++] = addrs[other[k]];
	}
	memcpy(addrs, out, (size_t)n * sizeof(addrs[0]));
}

/* The attempts of one call: those in flight are watched together by one
 * poll(); each failure is written down as it happens. */
struct race {
	const sockit_addr *addrs;
	int n, type;
	int next; /* the next address to try */
	int live; /* attempts in flight: pfd[0..live) */
	struct pollfd pfd[MAX_ADDRS];
	int who[MAX_ADDRS];	  /* the address of each pfd */
	int64_t next_at;	  /* when the next attempt is due (ms) */
	int delay_ms;		  /* < 0: only after the previous one failed */
	sockit_attempt *attempts; /* the caller's report */
	size_t max, failed;
	int last; /* the latest failure */
};

static void record(struct race *r, int i, int error)
{
	if (r->failed < r->max) {
		r->attempts[r->failed].addr = r->addrs[i];
		r->attempts[r->failed].error = error;
	}
	r->failed++;
	r->last = error;
}

/* Starts the next address: its fd when it connected at once (a datagram
 * socket, or TCP that finished inside connect()), else -EINPROGRESS with
 * the attempt in flight, or the failure (written down). */
static int start_next(struct race *r, int64_t now)
{
	int i = r->next++;
	int fd = sockit_socket(r->addrs[i].ss.ss_family, r->type | SOCK_NONBLOCK);
	int rc = fd < 0 ? fd : sockit_try_connect(fd, &r->addrs[i]);
	if (rc == 0)
		return fd;
	if (rc == -EINPROGRESS) {
		r->pfd[r->live] = (struct pollfd){.fd = fd, .events = POLLOUT};
		r->who[r->live++] = i;
		r->next_at = now + (r->delay_ms < 0 ? 0 : r->delay_ms);
		return rc;
	}
	if (fd >= 0)
		sockit_close(fd);
	record(r, i, rc);
	return rc;
}

/* Takes in-flight attempt k out of the race, keeping pfd dense. */
static void take_out(struct race *r, int k)
{
	r->live--;
	r->pfd[k] = r->pfd[r->live];
	r->who[k] = r->who[r->live];
}

/* Closes in-flight attempt k and takes it out. */
static void drop(struct race *r, int k)
{
	sockit_close(r->pfd[k].fd);
	take_out(r, k);
}

/* Settles the attempts poll found ready: the fd of the first that
 * connected (*won its address), else -EINPROGRESS after writing down and
 * closing those that failed.  A failure makes the next attempt due now. */
static int reap(struct race *r, int64_t now, int *won)
{
	for (int k = 0; k < r->live;) {
		if (r->pfd[k].revents == 0) {
			k++;
			continue;
		}
		int fd = r->pfd[k].fd, err = 0;
		socklen_t sl = sizeof(err);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
			err = errno;
		else if (err == 0 && !(r->pfd[k].revents & POLLOUT))
			err = ECONNABORTED;
		if (err == 0) {
			*won = r->who[k];
			take_out(r, k); /* the winner leaves the race open */
			return fd;
		}
		record(r, r->who[k], -err);
		drop(r, k);
		r->next_at = now;
	}
	return -EINPROGRESS;
}

/* Milliseconds poll may sleep: until the deadline (-1: none) or the next
 * attempt's start, whichever comes first. */
static int wait_ms(const struct race *r, int64_t deadline, int64_t now)
{
	int64_t until = deadline;
	if (r->next < r->n && r->delay_ms >= 0 && (until < 0 || r->next_at < until))
		until = r->next_at;
	if (until < 0)
		return -1;
	int64_t left = until - now;
	return left <= 0 ? 0 : left > 0x7fffffff ? 0x7fffffff : (int)left;
}

/* Runs the race until one attempt connects (its fd; *won its address),
 * all failed (the latest failure), or the deadline passes with attempts
 * in flight (each written down with expired, which is returned).  Once
 * the deadline passed, a new attempt starts only when all before it
 * failed, and gets one look (a poll of 0 ms). */
static int race(struct race *r, int64_t deadline, int expired, int *won)
{
	for (;;) {
		int64_t now = (int64_t)sk_clock_ms();
		int due = r->live == 0 || (r->delay_ms >= 0 && now >= r->next_at);
		if (r->next < r->n && due) {
			int rc;
			do /* one that fails at once makes the next due at once */
				rc = start_next(r, now);
			while (rc < 0 && rc != -EINPROGRESS && r->next < r->n);
			if (rc >= 0) {
				*won = r->next - 1;
				return rc;
			}
		}
		if (r->live == 0)
			return r->last; /* every address failed */
		int n = poll(r->pfd, (nfds_t)r->live, wait_ms(r, deadline, now));
		if (n < 0 && errno != EINTR)
			return -errno;
		now = (int64_t)sk_clock_ms();
		if (n > 0) {
			int fd = reap(r, now, won);
			if (fd >= 0)
				return fd;
		}
		if (deadline >= 0 && now >= deadline && r->live > 0) {
			while (r->live > 0) {
				record(r, r->who[0], expired);
				drop(r, 0);
			}
			return expired;
		}
	}
}

int sockit_create_connection_opts(const char *host, int port, const sockit_connect_opts *opts,
				  sockit_attempt *attempts, size_t max, size_t *nattempts,
				  sockit_addr *connected)
{
	static const sockit_connect_opts defaults = SOCKIT_CONNECT_OPTS_INIT;
	const sockit_connect_opts *o = opts != NULL ? opts : &defaults;
	int type = o->type == 0 ? SOCK_STREAM : o->type;
	if (nattempts != NULL)
		*nattempts = 0;
	if ((type != SOCK_STREAM && type != SOCK_DGRAM) || (attempts == NULL && max > 0) ||
	    (o->flags & ~SOCKIT_NONBLOCK) != 0 || o->attempt_delay_ms < -1)
		return -EINVAL;
	sockit_addr addrs[MAX_ADDRS];
	int n = sockit_resolve(host, port, o->family, type, 0, addrs, MAX_ADDRS);
	if (n < 0)
		return n;
	interleave(addrs, n);
	struct race r = {
		.addrs = addrs,
		.n = n,
		.type = type,
		.delay_ms =
			o->attempt_delay_ms == 0 ? SOCKIT_CONNECT_DELAY_MS : o->attempt_delay_ms,
		.attempts = attempts,
		.max = max,
		.last = -ECONNREFUSED,
	};
	int64_t deadline = o->timeout_ms < 0 ? -1 : (int64_t)sk_clock_ms() + o->timeout_ms;
	int won = -1;
	int fd = race(&r, deadline, o->timeout_ms == 0 ? -EAGAIN : -ETIMEDOUT, &won);
	while (r.live > 0)
		drop(&r, 0); /* the losers */
	if (fd >= 0 && !(o->flags & SOCKIT_NONBLOCK)) {
		int rc = sockit_set_nonblocking(fd, 0);
		if (rc < 0) {
			sockit_close(fd);
			fd = rc;
		}
	}
	if (fd >= 0 && connected != NULL)
		*connected = addrs[won];
	if (nattempts != NULL)
		*nattempts = r.failed;
	return fd;
}

int sockit_create_connection_ex(const char *host, int port, int family, int type, int timeout_ms,
				sockit_attempt *attempts, size_t max, size_t *nattempts,
				sockit_addr *connected)
{
	sockit_connect_opts o = SOCKIT_CONNECT_OPTS_INIT;
	o.family = family;
	o.type = type;
	o.timeout_ms = timeout_ms;
	if (type == 0) { /* _ex always wanted an explicit type */
		if (nattempts != NULL)
			*nattempts = 0;
		return -EINVAL;
	}
	return sockit_create_connection_opts(host, port, &o, attempts, max, nattempts, connected);
}

int sockit_create_connection(const char *host, int port, int timeout_ms)
{
	return sockit_create_connection_ex(host, port, AF_UNSPEC, SOCK_STREAM, timeout_ms, NULL, 0,
					   NULL, NULL);
}

int sockit_udp_connect(const char *host, int port, int family)
{
	/* connect() on a datagram socket only sets the default peer: no wait. */
	return sockit_create_connection_ex(host, port, family, SOCK_DGRAM, -1, NULL, 0, NULL, NULL);
}
