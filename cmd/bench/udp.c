/* udp.c -- bench's UDP engine: each slot keeps one datagram outstanding on the thread's
 * one connected socket; replies find their slot by the id they carry.
 *
 * Costs: up to UDP_BATCH datagrams per system call each way
 * (recvmmsg/sendmmsg); no allocation per request; a reply is matched to
 * its slot from the last digits of its id, then compared in place.
 * One request, one outcome: a reply that names no waiting request but
 * still fails (mismatch, truncated) is charged to the oldest outstanding
 * request, which then sends its next one at once.  With -U the socket is
 * a Unix datagram one, autobound to an abstract name the server replies to.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "sockit.h"

#define UDP_BATCH 64

/* The thread's socket, its send queue and the batches for recvmmsg/sendmmsg. */
struct udp_io {
	int fd;
	unsigned interest;
	struct mmsghdr in[UDP_BATCH];
	struct iovec in_iov[UDP_BATCH];
	struct mmsghdr out[UDP_BATCH];
	struct iovec out_iov[UDP_BATCH];
	unsigned batch; /* datagrams per receive: UDP_BATCH, fewer for big ones */
	int flushing;
	char *bufs;  /* batch buffers of reply_len + 1 bytes (to see oversize replies) */
	unsigned *q; /* slots whose datagram waits for the socket */
	unsigned nq;
};

static void udp_watch(struct bench_worker *w, struct udp_io *io)
{
	unsigned want = SOCKIT_READABLE | (io->nq ? SOCKIT_WRITABLE : 0);
	if (io->interest != want) {
		io->interest = want;
		sockit_loop_modify(w->loop, io->fd, want);
	}
}

/* c's request is over; in a closed loop, c starts again on the next pass. */
static void udp_fail(struct bench_worker *w, struct conn *c, enum bench_err kind, uint64_t now)
{
	c->count = 0;
	request_over(w, c, now);
	if (w->cfg->rate == 0)
		kick_later(w, c);
	count_error(w, kind, 1);
	check_done(w);
}

static void udp_start(struct bench_worker *w, struct conn *c, uint64_t t0, uint64_t now)
{
	struct udp_io *io = w->engine;
	struct req *r = &c->ring[0];
	next_id(w, c, r);
	r->t0 = t0;
	r->sent = now;
	c->count = 1;
	w->inflight++;
	render(w->tm, c->out, r);
	if (!c->udp_unsent) {
		c->udp_unsent = 1;
		io->q[io->nq++] = c->slot;
	}
}

/* Drops queued datagrams whose request already failed; returns the rest. */
static unsigned udp_prune(struct bench_worker *w, struct udp_io *io)
{
	unsigned j = 0;
	for (unsigned i = 0; i < io->nq; i++) {
		struct conn *c = &w->conns[io->q[i]];
		if (c->count)
			io->q[j++] = io->q[i];
		else
			c->udp_unsent = 0;
	}
	return io->nq = j;
}

/* Sends the queued datagrams, UDP_BATCH per system call; what the socket
 * does not take waits for writability.  Not re-entered: datagrams queued by
 * a failure's restart go out in the same pass. */
static void udp_flush(struct bench_worker *w)
{
	struct udp_io *io = w->engine;
	if (io->flushing || io->fd < 0)
		return;
	io->flushing = 1;
	while (!w->stopping && udp_prune(w, io) > 0) {
		unsigned n = io->nq < UDP_BATCH ? io->nq : UDP_BATCH;
		for (unsigned i = 0; i < n; i++) {
			io->out_iov[i].iov_base = w->conns[io->q[i]].out;
			io->out_iov[i].iov_len = w->tm->size;
		}
		int r = sk_send_batch(io->fd, io->out, n);
		uint64_t now = now_ns();
		if (r == -EAGAIN || r == -ENOBUFS)
			break; /* the rest when writable */
		unsigned done = r > 0 ? (unsigned)r : 1;
		for (unsigned i = 0; i < done; i++) {
			w->conns[io->q[i]].udp_unsent = 0;
			if (r > 0 && now >= w->clk->measure)
				w->res.bytes_out += w->tm->size;
		}
		struct conn *failed = r < 0 ? &w->conns[io->q[0]] : NULL;
		io->nq -= done;
		memmove(io->q, io->q + done, io->nq * sizeof(*io->q));
		if (failed != NULL)
			udp_fail(w, failed, bench_classify(r, 0), now);
	}
	io->flushing = 0;
	udp_watch(w, io);
}

/* c's request got its verified reply. */
static void udp_complete(struct bench_worker *w, struct conn *c, uint64_t now)
{
	record_ok(w, &c->ring[0], now);
	c->count = 0;
	request_over(w, c, now);
	if (w->cfg->rate == 0 && may_start(w, now))
		udp_start(w, c, now, now);
}

/* The request that has waited longest (and left), or NULL. */
static struct conn *udp_oldest(struct bench_worker *w)
{
	struct conn *oldest = NULL;
	for (unsigned i = 0; i < w->nconns; i++) {
		struct conn *c = &w->conns[i];
		if (c->count && !c->udp_unsent &&
		    (!oldest || c->ring[0].sent < oldest->ring[0].sent))
			oldest = c;
	}
	return oldest;
}

/* The slot whose outstanding request has the id in the reply, or NULL;
 * *ours says whether the id names one of this thread's slots at all. */
static struct conn *udp_owner(struct bench_worker *w, const char *p, size_t n, int *ours)
{
	const struct bench_tmpl *tm = w->tm;
	uint64_t id;
	*ours = 0;
	if (n < tm->id_off + tm->id_len || bench_id_parse(p + tm->id_off, tm->id_len, &id) < 0)
		return NULL;
	uint64_t mask = tm->id_len >= 16 ? UINT64_MAX : (1ull << (4 * tm->id_len)) - 1;
	unsigned slot = (unsigned)(id & ((1ull << w->slot_bits) - 1));
	unsigned thread = (unsigned)((id >> w->slot_bits) & ((1ull << w->thread_bits) - 1));
	*ours = slot < w->nconns && thread == w->index;
	if (*ours && w->conns[slot].count && (w->conns[slot].ring[0].id & mask) == id)
		return &w->conns[slot];
	return NULL;
}

/* The slow path: sorts out a reply that is not the exact reply to the
 * request its last digits name (late, truncated, mismatch, someone
 * else's). */
static void udp_odd_reply(struct bench_worker *w, const char *p, size_t n, uint64_t now)
{
	const struct bench_tmpl *tm = w->tm;
	int ours;
	struct conn *c = udp_owner(w, p, n, &ours);
	/* the bytes must be the expected reply to the id they carry */
	const char *idtxt = c != NULL || ours ? p + tm->id_off : NULL;
	long rc = -1;
	if (idtxt != NULL)
		rc = bench_reply_check(tm, idtxt, p, n);
	else if (n < tm->id_off + tm->id_len)
		rc = memcmp(p, tm->expect, n < tm->id_off ? n : tm->id_off) == 0 ? -2 : -1;
	enum bench_err kind = ERR_KINDS;
	if (rc == -1 || n > tm->reply_len)
		kind = ERR_MISMATCH;
	else if (rc == -2)
		kind = ERR_TRUNCATED;
	else if (!ours)
		kind = ERR_MISMATCH; /* someone else's id */
	if (kind == ERR_KINDS) {
		if (c == NULL)
			w->res.late++; /* its request timed out (or it came twice) */
		else
			udp_complete(w, c, now);
		return;
	}
	if (c == NULL)
		c = udp_oldest(w); /* one request, one outcome */
	if (kind == ERR_MISMATCH)
		note_mismatch(w, c != NULL ? c->ring[0].idtxt : NULL, 0, p, n);
	if (c != NULL)
		udp_fail(w, c, kind, now);
	else
		count_error(w, kind, 1);
}

/* Checks one reply datagram: the fast path finds its slot from the id's
 * last digits and compares in place. */
static void udp_reply(struct bench_worker *w, const char *p, size_t n, uint64_t now)
{
	const struct bench_tmpl *tm = w->tm;
	const size_t id_end = tm->id_off + tm->id_len;
	uint64_t id;
	if (n == tm->reply_len &&
	    bench_id_parse(p + id_end - w->low_digits, w->low_digits, &id) == 0) {
		unsigned slot = (unsigned)(id & ((1ull << w->slot_bits) - 1));
		unsigned thread = (unsigned)((id >> w->slot_bits) & ((1ull << w->thread_bits) - 1));
		struct conn *c = &w->conns[slot < w->nconns ? slot : 0];
		if (slot < w->nconns && thread == w->index && c->count &&
		    memcmp(p + tm->id_off, c->ring[0].idtxt, tm->id_len) == 0) {
			if (memcmp(p, tm->expect, tm->id_off) != 0 ||
			    memcmp(p + id_end, tm->expect + id_end, n - id_end) != 0) {
				note_mismatch(w, c->ring[0].idtxt, 0, p, n);
				udp_fail(w, c, ERR_MISMATCH, now);
				return;
			}
			udp_complete(w, c, now);
			return;
		}
	}
	udp_odd_reply(w, p, n, now);
}

/* An ICMP error (e.g. port unreachable) fails the oldest outstanding datagram. */
static void udp_async_error(struct bench_worker *w, int rc, uint64_t now)
{
	struct conn *oldest = udp_oldest(w);
	if (oldest != NULL)
		udp_fail(w, oldest, bench_classify(rc, 0), now);
	else
		count_error(w, bench_classify(rc, 0), 1);
}

static void on_udp(sockit_loop *loop, int fd, unsigned events, void *arg)
{
	struct bench_worker *w = arg;
	struct udp_io *io = w->engine;
	(void)loop;
	if (events & SOCKIT_READABLE) {
		/* At most about one window of replies per wake-up, so a flood
		 * cannot starve the timers. */
		for (unsigned got = 0; got < w->nconns + UDP_BATCH && !w->stopping;) {
			int r = sk_recv_batch(fd, io->in, io->batch);
			uint64_t now = now_ns();
			if (r == -EAGAIN)
				break;
			if (r < 0) {
				udp_async_error(w, r, now);
				continue;
			}
			w->res.answered = 1;
			for (int i = 0; i < r; i++) {
				size_t n = io->in[i].msg_len;
				if (now >= w->clk->measure)
					w->res.bytes_in += n;
				udp_reply(w, io->in_iov[i].iov_base, n, now);
			}
			got += (unsigned)r;
			if ((unsigned)r < io->batch || w->inflight == 0)
				break; /* drained, or nothing more to expect */
		}
	}
	udp_flush(w);
	check_done(w);
}

/* ---- the table's functions ---------------------------------------------- */

static void udp_engine_free(struct bench_worker *w)
{
	struct udp_io *io = w->engine;
	if (io != NULL) {
		free(io->bufs);
		free(io->q);
	}
	free(io);
	w->engine = NULL;
}

static int udp_engine_new(struct bench_worker *w)
{
	size_t len = w->tm->reply_len + 1;
	struct udp_io *io = calloc(1, sizeof(*io));
	if (io == NULL)
		return -ENOMEM;
	w->engine = io;
	io->fd = -1;
	io->batch = (unsigned)((256u << 10) / len);
	io->batch = io->batch < 1 ? 1 : io->batch > UDP_BATCH ? UDP_BATCH : io->batch;
	io->bufs = malloc(io->batch * len);
	io->q = calloc(w->nconns, sizeof(*io->q));
	if (io->bufs == NULL || io->q == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < io->batch; i++) {
		io->in_iov[i] = (struct iovec){.iov_base = io->bufs + i * len, .iov_len = len};
		io->in[i].msg_hdr = (struct msghdr){.msg_iov = &io->in_iov[i], .msg_iovlen = 1};
	}
	for (unsigned i = 0; i < UDP_BATCH; i++)
		io->out[i].msg_hdr = (struct msghdr){.msg_iov = &io->out_iov[i], .msg_iovlen = 1};
	return 0;
}

static void udp_open(struct bench_worker *w)
{
	struct udp_io *io = w->engine;
	int fd = sockit_socket(w->cfg->addr.ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK);
	int rc = fd;
	if (fd >= 0 && w->cfg->addr.ss.ss_family == AF_UNIX)
		rc = sockit_bind_unix_auto(fd); /* a name, so that replies come back */
	if (rc >= 0)
		rc = sockit_connect(fd, &w->cfg->addr, 0);
	if (rc == 0) {
		/* room for the whole window of datagrams both ways */
		size_t want = (size_t)w->nconns * (w->tm->reply_len + 64) * 2;
		if (want > 4u << 20)
			want = 4u << 20;
		if (want > 212992) {
			sockit_set_rcvbuf(fd, (int)want);
			sockit_set_sndbuf(fd, (int)want);
		}
		rc = sockit_loop_watch(w->loop, fd, SOCKIT_READABLE, on_udp, w);
	}
	if (rc < 0) {
		if (fd >= 0)
			sockit_close(fd);
		count_error(w, bench_classify(rc, 1), 1);
		finish_run(w, now_ns());
		return;
	}
	io->fd = fd;
	io->interest = SOCKIT_READABLE;
	for (unsigned i = 0; i < w->nconns; i++)
		w->conns[i].fd = fd;
}

static void udp_close(struct bench_worker *w)
{
	struct udp_io *io = w->engine;
	if (io->fd >= 0)
		sockit_loop_close(w->loop, io->fd);
	io->fd = -1;
}

static void udp_kick(struct bench_worker *w, struct conn *c, uint64_t now)
{
	if (may_start(w, now))
		udp_start(w, c, now, now);
}

static void udp_sweep(struct bench_worker *w, uint64_t now, uint64_t limit)
{
	for (unsigned i = 0; i < w->nconns && !w->stopping; i++) {
		struct conn *c = &w->conns[i];
		if (c->count && now - c->ring[0].sent > limit)
			udp_fail(w, c, ERR_TIMEOUT, now);
	}
}

const struct bench_mode_ops bench_udp_ops = {
	.engine_new = udp_engine_new,
	.engine_free = udp_engine_free,
	.open = udp_open,
	.close = udp_close,
	.start = udp_start,
	.kick = udp_kick,
	.flush = udp_flush,
	.sweep = udp_sweep,
};
