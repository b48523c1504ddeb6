/* udp.c -- one reply datagram per datagram, in recvmmsg/sendmmsg batches.
 *
 * Each of UDP_BATCH slots holds the prefix followed by room for the largest
 * datagram, so a reply is (prefix, data) already contiguous: no copy.  A
 * wake reads up to UDP_ROUNDS batches, then lets other clients run.
 *
 * The batches are small on purpose.  Replies leave once per batch, and a
 * client waits for its reply before it sends again: with 32 per batch, 16
 * clients got their replies in one burst, sent their next datagrams in one
 * burst, and the worker slept in between.  In batches of 8 the first
 * replies are out while the rest is read, and the worker seldom runs dry
 * (udp-16: 2.1 -> 1.8 us of server CPU per datagram, see bench/README.md).
 */
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "../../lib/loop/ops.h"
#include "internal.h"
#include "worker.h"

#define UDP_BATCH 8
#define UDP_ROUNDS 16
#define UDP_DATA_MAX 65536 /* larger than any UDP payload */
#define UDP4_MAX SOCKIT_UDP_MAX
#define UDP6_MAX 65527 /* 65535 - 8 (UDP): IPv6's length excludes its header */
#define UDP_RCVBUF (4 << 20)

struct udp_state {
	struct mmsghdr in[UDP_BATCH];
	struct mmsghdr out[UDP_BATCH];
	struct iovec iov_in[UDP_BATCH];
	struct iovec iov_out[UDP_BATCH];
	sockit_addr from[UDP_BATCH];
	size_t slot_size;
	char *slots;
};

/* Source ports of the classic UDP loop services (and 0, which cannot be
 * replied to): answering them can start an endless ping-pong.  A Unix
 * sender that is not bound (no name) cannot be replied to either. */
static int banned_port(const sockit_addr *a)
{
	/* An unbound Unix sender comes with no address at all (length 0),
	 * and the family field then still holds whatever the slot held. */
	if (a->len < sizeof(sa_family_t))
		return 1;
	if (a->ss.ss_family == AF_UNIX)
		return a->len <= offsetof(struct sockaddr_un, sun_path);
	int port = sockit_addr_port(a);
	return port == 0 || port == 7 || port == 13 || port == 19;
}

/* 1 if replies to a travel over IPv6 (a v4-mapped source on a dual-stack
 * socket travels over IPv4, with IPv4's smaller limit). */
static int is_v6_path(const sockit_addr *a)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a->ss;
	return a->ss.ss_family == AF_INET6 && !IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr);
}

/* A reply sent through the ring completed.  It was counted as sent when
 * queued (a client that has it finds it counted); a failure takes that
 * back. */
static void on_udp_sent(sockit_loop *loop, void *arg, int res, int more, size_t len)
{
	(void)more;
	struct worker *w = arg;
	if (res >= 0)
		return;
	CTR_SUB(w, dgrams_out, 1);
	CTR_SUB(w, bytes_out, len);
	(void)loop;
	serve_log_limited(&w->rl_udp, LOG_WARN, NULL, "udp send: %s", sockit_strerror(res));
}

/* io_uring: the reply to a lone datagram rides in the loop's next wait
 * instead of a sendmmsg of its own (a batch keeps its one sendmmsg).
 * Returns 1 if queued. */
static int reply_async(struct worker *w, int fd, const char *data, size_t len,
		       const sockit_addr *to)
{
	if (sk_loop_sendto(w->loop, fd, data, len, (const struct sockaddr *)&to->ss, to->len, 0,
			   on_udp_sent, w, NULL) < 0)
		return 0;
	CTR_ADD(w, dgrams_out, 1);
	CTR_ADD(w, bytes_out, len);
	return 1;
}

/* Points the receive batch's headers at the slots (after the prefix). */
static void prepare_in(struct udp_state *u, size_t prefix_len)
{
	for (unsigned i = 0; i < UDP_BATCH; i++) {
		struct msghdr *h = &u->in[i].msg_hdr;
		u->iov_in[i].iov_base = u->slots + i * u->slot_size + prefix_len;
		u->iov_in[i].iov_len = UDP_DATA_MAX;
		memset(h, 0, sizeof(*h));
		h->msg_name = &u->from[i].ss;
		h->msg_namelen = sizeof(u->from[i].ss);
		h->msg_iov = &u->iov_in[i];
		h->msg_iovlen = 1;
	}
}

/* Sends the batch's nout replies with sendmmsg, as many calls as it takes. */
static void send_out(struct worker *w, int fd, unsigned nout)
{
	struct udp_state *u = w->udp;
	for (unsigned sent = 0; sent < nout;) {
		int r = sk_send_batch(fd, u->out + sent, nout - sent);
		if (r < 0) {
			serve_log_limited(&w->rl_udp, LOG_WARN, NULL, "udp send: %s",
					  sockit_strerror(r));
			if (r == -EAGAIN || r == -EWOULDBLOCK || r == -ENOBUFS)
				break; /* UDP is lossy: drop the rest of the batch */
			sent++;	       /* this destination failed; go on */
			continue;
		}
		for (int k = 0; k < r; k++)
			CTR_ADD(w, bytes_out, u->iov_out[sent + (unsigned)k].iov_len);
		CTR_ADD(w, dgrams_out, r);
		sent += (unsigned)r;
	}
}

static void on_udp(sockit_loop *loop, int fd, unsigned events, void *arg)
{
	(void)events;
	struct worker *w = arg;
	struct udp_state *u = w->udp;
	const struct serve_config *cfg = w->cfg;
	int acl = cfg->nallow > 0 || cfg->ndeny > 0;
	uint64_t now = sockit_loop_now_ms(loop);

	for (int round = 0; round < UDP_ROUNDS; round++) {
		prepare_in(u, cfg->prefix_len);
		int n = sk_recv_batch(fd, u->in, UDP_BATCH);
		if (n < 0) {
			if (n != -EAGAIN && n != -EWOULDBLOCK)
				serve_log_limited(&w->rl_udp, LOG_WARN, NULL, "udp receive: %s",
						  sockit_strerror(n));
			return;
		}
		unsigned nout = 0;
		for (int i = 0; i < n; i++) {
			size_t len = u->in[i].msg_len;
			sockit_addr *from = &u->from[i];
			from->len = u->in[i].msg_hdr.msg_namelen;
			CTR_ADD(w, dgrams_in, 1);
			CTR_ADD(w, bytes_in, len);
			if (banned_port(from)) {
				CTR_ADD(w, dgrams_dropped_port, 1);
				continue;
			}
			if (acl && !serve_acl_allows(cfg, from)) {
				CTR_ADD(w, refused_denied, 1);
				continue;
			}
			if (w->rate != NULL && !rate_table_allow(w->rate, from, now)) {
				CTR_ADD(w, dgrams_dropped_rate, 1);
				continue;
			}
			char *data = u->slots + (size_t)i * u->slot_size;
			size_t rlen = len;
			if (cfg->mode != MODE_ECHO)
				rlen += cfg->prefix_len;
			else
				data += cfg->prefix_len;
			size_t max = is_v6_path(from) ? UDP6_MAX : UDP4_MAX;
			if (rlen > max)
				rlen = max;
			if (n == 1 && w->ops && reply_async(w, fd, data, rlen, from))
				break;
			u->iov_out[nout].iov_base = data;
			u->iov_out[nout].iov_len = rlen;
			struct msghdr *h = &u->out[nout].msg_hdr;
			memset(h, 0, sizeof(*h));
			h->msg_name = &from->ss;
			h->msg_namelen = from->len;
			h->msg_iov = &u->iov_out[nout];
			h->msg_iovlen = 1;
			nout++;
		}
		send_out(w, fd, nout);
		if (n < UDP_BATCH)
			return; /* the queue is empty: no EAGAIN round trip */
	}
}

int udp_start(struct worker *w)
{
	const struct serve_config *cfg = w->cfg;
	if (w->udp_fd < 0)
		return 0;
	struct udp_state *u = calloc(1, sizeof(*u));
	if (u == NULL)
		return -ENOMEM;
	w->udp = u;
	u->slot_size = (cfg->prefix_len + UDP_DATA_MAX + 63) & ~(size_t)63;
	/* Only the pages datagrams touch become resident. */
	u->slots = malloc(u->slot_size * UDP_BATCH);
	if (u->slots == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < UDP_BATCH; i++)
		memcpy(u->slots + i * u->slot_size, cfg->prefix, cfg->prefix_len);
	if (cfg->udp_rate > 0 && (w->rate = rate_table_new(cfg->udp_rate)) == NULL)
		return -ENOMEM;
	sockit_set_rcvbuf(w->udp_fd, UDP_RCVBUF); /* best effort: capped by rmem_max */
	return sockit_loop_watch(w->loop, w->udp_fd, SOCKIT_READABLE, on_udp, w);
}

/* Stops serving UDP.  A reply queued in the ring is handed to the kernel
 * first: from then on it holds the socket itself, and the fd can go. */
void udp_drain(struct worker *w)
{
	if (w->udp_fd < 0)
		return;
	sk_loop_ops_submit(w->loop);
	sockit_loop_unwatch(w->loop, w->udp_fd); /* see accept_drain() */
	sockit_close(w->udp_fd);
	w->udp_fd = -1;
}

void udp_free(struct worker *w)
{
	struct udp_state *u = w->udp;
	if (u != NULL) {
		free(u->slots);
		free(u);
		w->udp = NULL;
	}
	rate_table_free(w->rate);
	w->rate = NULL;
}
