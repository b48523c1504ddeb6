/* connect.h -- `sockit connect`: its configuration, the result its relays report, its parts.
 *
 * Calls go one way: main -> parse, run; run -> relay_tcp / relay_udp and
 * summary; the relays -> relay (what they share).  A relay reports through
 * struct connect_result, which run hands to summary; nothing calls up.
 */
#ifndef SOCKIT_CONNECT_H
#define SOCKIT_CONNECT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sockit.h"

/* "No such limit" for the optional durations below. */
#define CONNECT_NEVER UINT64_MAX

/* ---- parse.c: argv -> config ------------------------------------------------ */

/* Everything the command line says, validated.  name may point into
 * name_buf: never copy a config, pass a pointer. */
struct connect_config {
	const char *host; /* HOST as given (for messages and --json) */
	const char *name; /* HOST for the resolver: "[::1]" unwrapped */
	char name_buf[256];
	int port;
	int udp;	      /* -u, --udp */
	int family;	      /* AF_UNSPEC, AF_INET (-4), AF_INET6 (-6) */
	uint64_t connect_ms;  /* -w, --timeout per address; 0 = no limit */
	uint64_t idle_ms;     /* -i, --idle-timeout; 0 = no limit */
	uint64_t quit_ms;     /* -q, --quit-after after input EOF; CONNECT_NEVER = wait */
	uint64_t reply_ms;    /* --reply-timeout (UDP) */
	uint64_t wait_for_ms; /* --wait-for; 0 = one round of attempts */
	int newline;	      /* append '\n' to DATA (TCP) / keep stdin's '\n' (UDP) */
	int zero;	      /* -z, --zero-io */
	int verbose;	      /* -v, --verbose */
	int json;	      /* --json */
	char **data;	      /* DATA arguments (NULL when relaying stdin) */
	int ndata;
};

/* connect_parse's answers besides 0 (run) and 2 (usage error, printed). */
#define CONNECT_PARSE_HELP (-1)
#define CONNECT_PARSE_VERSION (-2)

/* Parses argv (argv[0] is "connect") into cfg.  Returns 0, 2 after
 * printing a usage error to stderr, or CONNECT_PARSE_HELP/VERSION (nothing
 * printed: the caller prints connect_help or the version). */
int connect_parse(int argc, char **argv, struct connect_config *cfg);

/* The --help text. */
extern const char connect_help[];

/* ---- What a run did --------------------------------------------------------- */

/* How a run ended: the "end" of the summary, and its exit code. */
enum connect_end {
	END_NONE = 0,
	END_FIN,	    /* the server closed (TCP): 0 */
	END_QUIT,	    /* -q passed after input EOF: 0 */
	END_OPEN,	    /* -z: the port accepted a connection: 0 */
	END_DONE,	    /* UDP: datagrams sent, replies waited for: 0 */
	END_RESET,	    /* connection reset by the server: 1 */
	END_IDLE,	    /* -i passed without data either way: 1 */
	END_STDOUT,	    /* stdout was closed under us (EPIPE): 1 */
	END_NO_REPLY,	    /* UDP: datagrams sent, no reply at all: 1 */
	END_REFUSED,	    /* UDP: ICMP port unreachable: 1 */
	END_ERROR,	    /* any other I/O error (stdout's included): 1 */
	END_RESOLVE_FAILED, /* the host did not resolve: 1 */
	END_CONNECT_FAILED, /* no address accepted the connection: 1 */
	END_SIGNAL,	    /* SIGINT/SIGTERM/SIGHUP: the process then dies of it */
};

/* What a relay reports (run fills in the connect failures). */
struct connect_result {
	uint64_t bytes_sent, bytes_received;
	uint64_t dgrams_sent, dgrams_received; /* UDP */
	enum connect_end end;
	int signo;	   /* END_SIGNAL: the signal */
	int stdout_failed; /* a write to stdout failed; error says why */
	char error[1024];  /* the runtime message, "" if none */
};

#define CONNECT_MAX_TRIED 16

/* The addresses tried (run.c fills it in). */
struct connect_attempts {
	sockit_attempt failed[CONNECT_MAX_TRIED]; /* failed addresses, last round */
	size_t nfailed;				  /* may exceed CONNECT_MAX_TRIED */
	sockit_addr used;			  /* valid when connected */
	int connected;
	int rounds;	   /* rounds of attempts (more than 1 with --wait-for) */
	int timeout_ms;	   /* each attempt's limit in the last round; -1 none */
	uint64_t took_ms;  /* from the first attempt to the last failure */
	int resolve_error; /* the resolver's code when nothing was tried, else 0 */
};

/* ---- run.c: connect, relay, report ------------------------------------------ */

/* Connects (every address, --wait-for rounds), hands the socket to the
 * relay, prints the message and the -v/--json summary.  Returns the exit
 * code; *signo gets the stop signal (the caller dies of it) or 0. */
int connect_run(const struct connect_config *cfg, int *signo);

/* ---- relay_tcp.c, relay_udp.c: on a connected socket they do not own -------- */

/* What a relay needs besides the config: the socket, a signalfd for the
 * stop signals (-1: none) and the peer (for messages). */
struct connect_link {
	int sock;
	int sigfd;
	const sockit_addr *peer;
};

/* Each fills in res (bytes, end, message) and returns when the run is
 * over; it never exits or prints anything but the relayed bytes. */
void connect_relay_tcp(const struct connect_config *cfg, const struct connect_link *link,
		       struct connect_result *res);
void connect_relay_udp(const struct connect_config *cfg, const struct connect_link *link,
		       struct connect_result *res);

/* ---- summary.c: the result in words --------------------------------------- */

/* Records a runtime message (the first one wins) and the end. */
void connect_result_fail(struct connect_result *res, enum connect_end end, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The connect failure in res: resolve (att->resolve_error) or every
 * address refused/timed out, one mention of each address, the timeout's
 * length, the next step where there is one. */
void connect_describe_failure(const struct connect_config *cfg, const struct connect_attempts *att,
			      struct connect_result *res);

/* "fin", "idle-timeout", ...; and the exit code (128 + signo after one). */
const char *connect_end_name(enum connect_end e);
int connect_exit_code(const struct connect_result *res);

/* Prints to f (stderr) the message, and the -v lines or the --json object
 * (which then carries the message in "error"). */
void connect_report(FILE *f, const struct connect_config *cfg, const struct connect_attempts *att,
		    const struct connect_result *res, double duration_ms);

#endif /* SOCKIT_CONNECT_H */
