/* dgram.h -- datagrams in batches (recvmmsg/sendmmsg) for event loops: never waits.
 *
 * Internal to sockit (not installed).  One system call moves up to n
 * datagrams, which is what makes a UDP client or server cheap per datagram.
 * Results follow sockit.h: >= 0, or a negative errno; EINTR is retried.
 */
#ifndef SOCKIT_DGRAM_H
#define SOCKIT_DGRAM_H

#include <sys/socket.h>

/* Receives up to n datagrams already queued on fd (MSG_DONTWAIT).  Returns
 * the number received (>= 1) with each m[i].msg_len set (a datagram longer
 * than its buffers is cut and has MSG_TRUNC in m[i].msg_hdr.msg_flags),
 * -EAGAIN when none is queued, or -errno (e.g. -ECONNREFUSED after an ICMP
 * port unreachable on a connected socket). */
int sockit_recv_batch(int fd, struct mmsghdr *m, unsigned n);

/* Sends up to n datagrams without waiting (MSG_DONTWAIT | MSG_NOSIGNAL).
 * Returns the number sent (>= 1; fewer than n when the socket buffer filled
 * or a later datagram failed: call again with the rest), -EAGAIN when none
 * fit, or -errno for the first datagram. */
int sockit_send_batch(int fd, struct mmsghdr *m, unsigned n);

#endif /* SOCKIT_DGRAM_H */
