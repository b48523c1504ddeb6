/* internal.h -- what lib/ shares with itself and with cmd/: not installed, not exported.
 *
 * Every name here has the internal prefix sk_ (public ones have sockit_).
 * The shared object exports none of them (see the Makefile's visibility
 * check); the static library carries them so that the sockit binary and
 * the unit tests can link them.  Results follow sockit.h: >= 0 or a
 * negative errno, "would block" is -EAGAIN, and EINTR is retried inside.
 */
#ifndef SOCKIT_INTERNAL_H
#define SOCKIT_INTERNAL_H

#include <stdint.h>
#include <sys/socket.h>

#include "sockit.h"

/* ---- Clock (clock.c) ------------------------------------------------------ */

/* CLOCK_MONOTONIC in nanoseconds / milliseconds: for deadlines and
 * durations, never the wall clock. */
uint64_t sk_clock_ns(void);
uint64_t sk_clock_ms(void);

/* ---- Datagrams in batches (dgram.c): never waits -------------------------- */

/* Receives up to n datagrams already queued on fd (MSG_DONTWAIT).  Returns
 * the number received (>= 1) with each m[i].msg_len set (a datagram longer
 * than its buffers is cut and has MSG_TRUNC in m[i].msg_hdr.msg_flags),
 * -EAGAIN when none is queued, or -errno (e.g. -ECONNREFUSED after an ICMP
 * port unreachable on a connected socket). */
int sk_recv_batch(int fd, struct mmsghdr *m, unsigned n);

/* Sends up to n datagrams without waiting (MSG_DONTWAIT | MSG_NOSIGNAL).
 * Returns the number sent (>= 1; fewer than n when the socket buffer filled
 * or a later datagram failed: call again with the rest), -EAGAIN when none
 * fit, or -errno for the first datagram. */
int sk_send_batch(int fd, struct mmsghdr *m, unsigned n);

/* ---- Ticker (ticker.c): a nanosecond one-shot timer as a descriptor ------- */

/* The event loop's timers wake in whole milliseconds (epoll_wait's unit); a
 * ticker is a timerfd to watch for readability when a deadline needs
 * better, e.g. an open-loop load generator's schedule. */

/* A disarmed ticker on CLOCK_MONOTONIC: non-blocking, close-on-exec.
 * Returns the fd (close it with sockit_close or sockit_loop_close). */
int sk_ticker_new(void);

/* Arms fd to become readable at when_ns (absolute CLOCK_MONOTONIC
 * nanoseconds; a time already past fires at once) and then every period_ns
 * after it (0: once), replacing any earlier setting; when_ns 0 disarms.
 * It never fires early.  Returns 0. */
int sk_ticker_arm(int fd, uint64_t when_ns, uint64_t period_ns);

/* Consumes the expiries: how many deadlines passed since the last call
 * (capped at INT_MAX), 0 if none yet. */
int sk_ticker_ack(int fd);

#endif /* SOCKIT_INTERNAL_H */
