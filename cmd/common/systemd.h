/* systemd.h -- systemd's socket activation and readiness protocols, without libsystemd.
 *
 * Both protocols are small and stable (sd_listen_fds(3), sd_notify(3)):
 * the service manager passes listening sockets as descriptors 3, 4, ...
 * with LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES in the environment, and
 * takes status lines as datagrams on the Unix socket named by
 * NOTIFY_SOCKET.  Outside systemd every function here does nothing.
 */
#ifndef SOCKIT_SYSTEMD_H
#define SOCKIT_SYSTEMD_H

#include <stddef.h>
#include <stdint.h>

/* The first descriptor systemd passes. */
#define SD_LISTEN_FDS_START 3

/* One inherited socket. */
struct sd_socket {
	int fd;
	int type;      /* SOCK_STREAM, SOCK_DGRAM, ... (SO_TYPE) */
	int family;    /* AF_INET, AF_INET6, AF_UNIX (SO_DOMAIN) */
	int listening; /* SO_ACCEPTCONN */
	char name[64]; /* from LISTEN_FDNAMES, or "" */
};

/* The sockets passed to this process: when LISTEN_PID is our pid and
 * LISTEN_FDS is set, fills up to max entries, marks the descriptors
 * close-on-exec, and unsets LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES (so
 * children do not take them).  Returns how many were passed (0 when none
 * are ours), -EINVAL for a malformed variable, -E2BIG when more than max
 * were passed, or -errno when one of them is not a socket (-ENOTSOCK). */
int sd_listen_sockets(struct sd_socket *out, size_t max);

/* Sends state ("READY=1", "STATUS=...", "STOPPING=1", "WATCHDOG=1",
 * "MAINPID=123"; several separated by '\n') to NOTIFY_SOCKET.  Returns 1
 * when sent, 0 when NOTIFY_SOCKET is not set, or a negative code. */
int sd_notify_send(const char *state);

/* The watchdog interval in microseconds when systemd asks this process for
 * WATCHDOG=1 pings (WATCHDOG_USEC set, and WATCHDOG_PID unset or ours),
 * else 0.  Ping at half of it. */
uint64_t sd_watchdog_usec(void);

#endif /* SOCKIT_SYSTEMD_H */
