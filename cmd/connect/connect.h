/* connect.h -- `sockit connect`: its configuration, the result its relays report, its parts.
 *
 * Calls go one way: main -> parse, run; run -> session (the PROXY header,
 * TLS), relay_tcp / relay_udp and summary; the relays -> relay (what they
 * share).  A relay reports through
 * struct connect_result, which run hands to summary; nothing calls up.
 */
#ifndef SOCKIT_CONNECT_H
#define SOCKIT_CONNECT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sockit.h"
#include "sockit_tls.h"

/* "No such limit" for the optional durations below. */
#define CONNECT_NEVER UINT64_MAX

/* ---- parse.c: argv -> config ------------------------------------------------ */

/* Everything the command line says, validated.  name may point into
 * name_buf: never copy a config, pass a pointer. */
struct connect_config {
	const char *host; /* HOST as given, or -U's PATH (for messages and --json) */
	const char *name; /* HOST for the resolver: "[::1]" unwrapped; -U's PATH */
	char name_buf[256];
	int port;	       /* 0 with -U */
	const char *unix_path; /* -U, --unix: PATH or @name instead of HOST PORT */
	int udp;	       /* -u, --udp (with -U: a datagram Unix socket) */
	int family;	       /* AF_UNSPEC, AF_INET (-4), AF_INET6 (-6) */
	uint64_t connect_ms;   /* -w, --timeout: every address (and the handshake)
				  within one deadline; 0 = no limit */
	int attempt_delay_ms;  /* --attempt-delay, as sockit_connect_opts takes it:
				  -1 = one address after another */
	int proxy_header;      /* --proxy-header: 0, 1 or 2 */
	int tls;	       /* --tls */
	int tls_insecure;      /* --tls-insecure */
	const char *tls_ca;    /* --tls-ca FILE, or NULL (the system's) */
	const char *tls_cert;  /* --tls-cert FILE, or NULL */
	const char *tls_key;   /* --tls-key FILE, or NULL (then in tls_cert) */
	const char *tls_name;  /* the name the certificate must match: HOST or
				  --tls-servername; NULL with -U --tls-insecure */
	uint64_t idle_ms;      /* -i, --idle-timeout; 0 = no limit */
	uint64_t quit_ms;      /* -q, --quit-after after input EOF; CONNECT_NEVER = wait */
	uint64_t reply_ms;     /* --reply-timeout (UDP) */
	uint64_t wait_for_ms;  /* --wait-for; 0 = one round of attempts */
	int newline;	       /* append '\n' to DATA (TCP) / keep stdin's '\n' (UDP) */
	int zero;	       /* -z, --zero-io */
	int verbose;	       /* -v, --verbose */
	int json;	       /* --json */
	char **data;	       /* DATA arguments (NULL when relaying stdin) */
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
	END_FIN,	    /* the server closed (TCP; TLS: its close_notify): 0 */
	END_QUIT,	    /* -q passed after input EOF: 0 */
	END_OPEN,	    /* -z: the port accepted a connection: 0 */
	END_DONE,	    /* UDP: datagrams sent, replies waited for: 0 */
	END_RESET,	    /* connection reset by the server: 1 */
	END_TRUNCATED,	    /* TLS: FIN without close_notify: 1 */
	END_TLS_FAILED,	    /* TLS handshake or verification failed: 1 */
	END_IDLE,	    /* -i passed without data either way: 1 */
	END_STDOUT,	    /* stdout was closed under us (EPIPE): 1 */
	END_NO_REPLY,	    /* UDP: datagrams sent, no reply at all: 1 */
	END_REFUSED,	    /* UDP: ICMP port unreachable: 1 */
	END_ERROR,	    /* any other I/O error (stdout's included): 1 */
	END_RESOLVE_FAILED, /* the host did not resolve: 1 */
	END_CONNECT_FAILED, /* no address accepted the connection: 1 */
	END_SIGNAL,	    /* SIGINT/SIGTERM/SIGHUP: the process then dies of it */
};

/* What the TLS handshake settled, for -v and --json. */
struct connect_tls_info {
	int done;	   /* the handshake completed */
	char version[16];  /* "TLSv1.3" */
	char cipher[64];   /* "TLS_AES_256_GCM_SHA384" */
	char subject[256]; /* the peer certificate's subject, "" if none */
	int resumed;
};

/* What a relay reports (run fills in the connect failures). */
struct connect_result {
	uint64_t bytes_sent, bytes_received;
	uint64_t dgrams_sent, dgrams_received; /* UDP */
	enum connect_end end;
	int signo;	   /* END_SIGNAL: the signal */
	int stdout_failed; /* a write to stdout failed; error says why */
	char error[1024];  /* the runtime message, "" if none */
	struct connect_tls_info tls;
};

#define CONNECT_MAX_TRIED 16

/* The addresses tried (run.c fills it in). */
struct connect_attempts {
	sockit_attempt failed[CONNECT_MAX_TRIED]; /* failed addresses, last round */
	size_t nfailed;				  /* may exceed CONNECT_MAX_TRIED */
	sockit_addr used;			  /* valid when connected */
	int connected;
	int rounds;	     /* rounds of attempts (more than 1 with --wait-for) */
	int timeout_ms;	     /* the last round's deadline; -1 none */
	uint64_t took_ms;    /* from the first attempt to the last failure */
	uint64_t round_ms;   /* when the last round started (sk_clock_ms) */
	uint64_t connect_ms; /* how long the last round took to connect */
	int resolve_error;   /* the resolver's code when nothing was tried, else 0 */
};

/* ---- run.c: connect, relay, report ------------------------------------------ */

/* Connects (every address, --wait-for rounds), hands the socket to the
 * relay, prints the message and the -v/--json summary.  Returns the exit
 * code; *signo gets the stop signal (the caller dies of it) or 0. */
int connect_run(const struct connect_config *cfg, int *signo);

/* ---- session.c: between connect and relay ------------------------------------ */

/* The TLS client context for cfg, or NULL without --tls, in *out.  Returns
 * 0, or 2 after printing the usage error that names the bad file. */
int connect_tls_context(const struct connect_config *cfg, sockit_tls_ctx **out);

/* On the connected fd: sends the PROXY header (--proxy-header), then runs
 * the TLS handshake (ctx not NULL) within timeout_ms, filling in res->tls.
 * Returns 0 with *tls set (NULL without TLS), or records the failure in res
 * (END_ERROR, END_TLS_FAILED, ...) and returns its code; *tls is then NULL. */
int connect_session_open(const struct connect_config *cfg, int fd, const sockit_addr *peer,
			 sockit_tls_ctx *ctx, int timeout_ms, sockit_tls **tls,
			 struct connect_result *res);

/* ---- relay_tcp.c, relay_udp.c: on a connected socket they do not own -------- */

/* What a relay needs besides the config: the socket, a signalfd for the
 * stop signals (-1: none), the peer (for messages) and, with --tls, the
 * TLS connection over sock (handshake done), through which all bytes go. */
struct connect_link {
	int sock;
	int sigfd;
	const sockit_addr *peer;
	sockit_tls *tls;
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
