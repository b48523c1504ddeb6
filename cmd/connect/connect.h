/* connect.h -- `sockit connect`: the parts shared by its CLI and its relays. */
#ifndef SOCKIT_CONNECT_H
#define SOCKIT_CONNECT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "sockit.h"

/* "No such limit" for the optional durations below. */
#define CONNECT_NEVER UINT64_MAX

/* Everything the command line says, validated. */
struct connect_config {
	const char *host;
	int port;
	int udp;	      /* -u */
	int family;	      /* AF_UNSPEC, AF_INET (-4), AF_INET6 (-6) */
	uint64_t connect_ms;  /* -w per address; 0 = no limit */
	uint64_t idle_ms;     /* -i; 0 = no limit */
	uint64_t quit_ms;     /* -q after input EOF; CONNECT_NEVER = wait for the server */
	uint64_t reply_ms;    /* --reply-timeout (UDP) */
	uint64_t wait_for_ms; /* --wait-for; 0 = one round of attempts */
	int newline;	      /* append '\n' to DATA (TCP) / keep stdin's '\n' (UDP) */
	int zero;	      /* -z */
	int verbose;	      /* -v */
	int json;	      /* --json */
	char **data;	      /* DATA arguments (NULL when relaying stdin) */
	int ndata;
};

/* How a run ended: the "end" of the summary, and its exit code. */
enum connect_end {
	END_NONE = 0,
	END_FIN,	    /* the server closed (TCP): 0 */
	END_QUIT,	    /* -q passed after input EOF: 0 */
	END_OPEN,	    /* -z: the port accepted a connection: 0 */
	END_DONE,	    /* UDP: every datagram sent, replies waited for: 0 */
	END_RESET,	    /* connection reset by the server: 1 */
	END_IDLE,	    /* -i passed without data either way: 1 */
	END_STDOUT,	    /* stdout was closed under us: 1 */
	END_NO_REPLY,	    /* UDP: datagrams sent, no reply at all: 1 */
	END_REFUSED,	    /* UDP: ICMP port unreachable: 1 */
	END_ERROR,	    /* any other I/O error: 1 */
	END_RESOLVE_FAILED, /* the host did not resolve: 1 */
	END_CONNECT_FAILED, /* no address accepted the connection: 1 */
	END_SIGNAL,	    /* SIGINT/SIGTERM/SIGHUP: the process then dies of it */
};

/* The signal that asked a relay to stop, 0 if none (set by a handler). */
extern volatile sig_atomic_t connect_signal;

#define CONNECT_MAX_TRIED 16

/* What happened, for the error message and the -v / --json summary. */
struct connect_summary {
	sockit_attempt failed[CONNECT_MAX_TRIED]; /* failed addresses, last round */
	size_t nfailed;				  /* may exceed CONNECT_MAX_TRIED */
	sockit_addr used;			  /* valid when connected */
	int connected;
	int rounds; /* connection rounds (more than 1 with --wait-for) */
	uint64_t bytes_sent, bytes_received;
	uint64_t dgrams_sent, dgrams_received; /* UDP */
	uint64_t start_ms;
	enum connect_end end;
	char error[1024]; /* the runtime message, "" if none */
};

/* Monotonic milliseconds. */
uint64_t connect_now_ms(void);

/* Records a runtime message (the first one wins) and the end. */
void connect_fail(struct connect_summary *sum, enum connect_end end, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The relays, on a connected socket they do not own.  They fill in the
 * summary's byte counts, end and message; the exit code follows the end.
 * They wait in ppoll() with wait_mask (the signal mask under which the
 * stop signals are deliverable) and end with END_SIGNAL once
 * connect_signal is set. */
void connect_relay_tcp(const struct connect_config *cfg, int fd, const sigset_t *wait_mask,
		       struct connect_summary *sum);
void connect_relay_udp(const struct connect_config *cfg, int fd, const sigset_t *wait_mask,
		       struct connect_summary *sum);

#endif /* SOCKIT_CONNECT_H */
