/* serve.h -- `sockit serve`: the config, the counters, the log, the limits, the framer. */
#ifndef SOCKIT_SERVE_H
#define SOCKIT_SERVE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sockit.h"
#include "sockit_loop.h"

enum serve_mode { MODE_ONCE, MODE_LINE, MODE_ECHO };
enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };
enum log_format { LOGF_TEXT, LOGF_JSON };
enum serve_backend { BACKEND_AUTO, BACKEND_IO_URING, BACKEND_EPOLL };

/* The sockets systemd passed (socket activation), adopted by
 * serve_sd_adopt(): one stream listener and/or one datagram socket, TCP,
 * UDP or Unix; -1 for none.  active: serve uses these instead of binding. */
struct serve_inherited {
	int active;
	int stream_fd, dgram_fd;
};

/* Everything the command line says, validated; read-only once running. */
struct serve_config {
	const char *host; /* brackets removed: host_buf, or argv */
	char host_buf[256];
	int family; /* AF_UNSPEC, or AF_INET / AF_INET6 for -4 / -6 */
	int port;
	enum serve_mode mode;
	int tcp, udp; /* which listeners */
	int workers;
	uint64_t max_conns; /* 0 until serve_run() derives it from RLIMIT_NOFILE */
	uint64_t max_conns_per_ip;
	uint64_t idle_timeout_ms; /* 0 = none */
	size_t max_bytes;
	size_t max_line;
	size_t max_pending;
	sockit_cidr *allow, *deny;
	size_t nallow, ndeny;
	const char *prefix;
	size_t prefix_len;
	uint64_t udp_rate; /* datagrams/s per source IP, 0 = unlimited */
	int dualstack;
	uint64_t drain_timeout_ms;
	int64_t coalesce_us; /* sockit_loop_coalesce() of each worker; -1 until parsed */
	enum log_level log_level;
	enum log_format log_format;
	enum serve_backend backend;
	/* -U PATH: the stream socket's path or "@name" (replaces -H/-p), its
	 * datagram one PATH.dgram; NULL for TCP/UDP.  --unix-mode: 0 = umask. */
	const char *unix_path;
	unsigned unix_mode;
	int host_given, port_given; /* typed, for socket activation's check */
	struct serve_inherited sd;  /* sockets from systemd (sd.c) */
	const char *metrics_host;   /* --metrics HOST (metrics_host_buf), or NULL: off */
	char metrics_host_buf[256];
	int metrics_port;
	int argc; /* the command line from "serve" on, for the upgrade */
	char **argv;
	/* TLS (tls.c): every TCP connection, when tls_cert is set */
	const char *tls_cert, *tls_key, *tls_client_ca;
	/* --proxy-protocol (proxy.c): a PROXY header first on every TCP connection */
	int proxy;
	sockit_cidr *proxy_from; /* --proxy-from: who may send one (none: anyone) */
	size_t nproxy_from;
	uint64_t proxy_timeout_ms; /* the header must come within this */
};

/* ---- Parsing (parse.c): argv -> config; prints only usage messages ------ */

void serve_config_defaults(struct serve_config *cfg);
/* Parses argv (argv[0] is "serve") into cfg.  Returns -1 to go on, 0 after
 * --help/--version (printed on stdout), 2 after a usage error (printed). */
int serve_parse(int argc, char **argv, struct serve_config *cfg);
void serve_config_free(struct serve_config *cfg);

/* ---- The line framer (frame.c): pure, no I/O, no allocation ------------- */

/* The first complete line of buf[0..len): its length including the '\n'
 * (a "\r\n" ending is part of the line), if the line without its '\n' is
 * at most max_line bytes.  -2: no '\n' yet and len <= max_line (incomplete);
 * -1: the line is longer than max_line (with or without a '\n' yet).
 * Reads at most max_line + 1 bytes. */
ssize_t line_frame(const char *buf, size_t len, size_t max_line);

/* ---- Counters ------------------------------------------------------------- */

/* The counters, in the order they are printed.  One X-macro so the struct,
 * the text line, the JSON object and the sum never disagree.  New ones go
 * at the end: the line's order is an interface. */
#define SERVE_COUNTERS(X)                                                                          \
	X(accepted)                                                                                \
	X(active)                                                                                  \
	X(refused_maxconns)                                                                        \
	X(refused_perip)                                                                           \
	X(refused_denied)                                                                          \
	X(closed_done)                                                                             \
	X(closed_eof)                                                                              \
	X(closed_reset)                                                                            \
	X(closed_timeout)                                                                          \
	X(closed_limit)                                                                            \
	X(bytes_in)                                                                                \
	X(bytes_out)                                                                               \
	X(dgrams_in)                                                                               \
	X(dgrams_out)                                                                              \
	X(dgrams_dropped_port)                                                                     \
	X(dgrams_dropped_rate)                                                                     \
	X(cpu_yields)                                                                              \
	X(closed_tls_plaintext)                                                                    \
	X(closed_tls_handshake)                                                                    \
	X(closed_tls_cert)                                                                         \
	X(closed_tls_timeout)                                                                      \
	X(closed_tls_reset)                                                                        \
	X(refused_proxy_from)                                                                      \
	X(closed_proxy_missing)                                                                    \
	X(closed_proxy_malformed)                                                                  \
	X(closed_proxy_oversized)                                                                  \
	X(closed_proxy_truncated)                                                                  \
	X(closed_proxy_timeout)                                                                    \
	X(proxy_local)

/* One worker's counters.  Written only by its own thread (plain add then a
 * relaxed store: no read-modify-write, no lock), read by any thread with
 * relaxed loads -- the one place an exporter reads. */
struct serve_counters {
#define SERVE_COUNTER_FIELD(name) uint64_t name;
	SERVE_COUNTERS(SERVE_COUNTER_FIELD)
#undef SERVE_COUNTER_FIELD
};

#define CTR_ADD(w, name, n)                                                                        \
	__atomic_store_n(&(w)->ctr.name, (w)->ctr.name + (uint64_t)(n), __ATOMIC_RELAXED)
#define CTR_SUB(w, name, n)                                                                        \
	__atomic_store_n(&(w)->ctr.name, (w)->ctr.name - (uint64_t)(n), __ATOMIC_RELAXED)

/* ---- Logging (log.c) ------------------------------------------------------ */

struct serve_log {
	enum log_level level;
	enum log_format format;
};

/* A Unix peer's credentials (SO_PEERCRED): per-UID limits, logs. */
struct peer_cred {
	pid_t pid;
	uid_t uid;
};

/* Structured fields of an event line (JSON keys; text shows only the
 * message).  NULL / -1 leave a field out. */
struct log_fields {
	const char *event; /* "accepted", "closed", "refused", ... */
	int fd;
	const char *peer; /* "127.0.0.1:5555", or "pid 123 uid 1000" */
	const char *reason;
	const struct peer_cred *cred; /* a Unix peer: JSON "pid", "uid" */
};

/* One line on stderr with one write(2).  Text: "sockit: [level: ]MSG";
 * JSON: {"time":..,"level":..,"msg":"MSG"[,fields]}.  Thread-safe. */
void serve_log(const struct serve_log *lg, enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void serve_log_event(const struct serve_log *lg, enum log_level level, const struct log_fields *f,
		     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* A repeated message, printed at most once a second per limiter; the
 * count of those suppressed is printed when the second is over (a timer
 * on the owner's loop) and by log_ratelimit_flush().  One thread only. */
struct log_ratelimit {
	const struct serve_log *lg;
	sockit_loop *loop;
	const char *what; /* "refused connections", for the suppressed line */
	sockit_timer timer;
	uint64_t last_ms;
	uint64_t suppressed;
	enum log_level level;
};
void log_ratelimit_init(struct log_ratelimit *rl, const struct serve_log *lg, sockit_loop *loop,
			const char *what);
void serve_log_limited(struct log_ratelimit *rl, enum log_level level, const struct log_fields *f,
		       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Prints the suppressed count, if any, and stops the timer. */
void log_ratelimit_flush(struct log_ratelimit *rl);

/* A runtime failure, printed at every level: text "sockit serve: MSG" (as
 * the other subcommands' errors), JSON an object at level "error". */
void serve_log_fail(const struct serve_log *lg, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The listening line, printed at every level: "listening on PROTO ADDR
 * (MODE[, dualstack][, from systemd])"; PROTO is tcp, udp, unix (stream)
 * or unixgram. */
enum { LISTEN_DUALSTACK = 1, LISTEN_SYSTEMD = 2 };
void serve_log_listening(const struct serve_log *lg, const char *proto, const char *addr,
			 const char *mode, unsigned flags);
/* The counters line, printed at every level. */
void serve_log_counters(const struct serve_log *lg, const struct serve_counters *c);

/* ---- Limits (limit.c): pure, no I/O --------------------------------------- */

/* 1 if the address may connect: no --deny matches, and some --allow
 * matches when any is given.  A Unix peer always may (no IP). */
int serve_acl_allows(const struct serve_config *cfg, const sockit_addr *a);

/* Per-IP connection counts shared by all workers, behind one mutex; only
 * touched when --max-conns-per-ip is set. */
struct ip_entry;
struct ip_table;
struct ip_table *ip_table_new(uint64_t limit);
void ip_table_free(struct ip_table *t);
/* Counts one more connection from a; returns its entry, or NULL when a is
 * at the limit (or out of memory). */
struct ip_entry *ip_table_acquire(struct ip_table *t, const sockit_addr *a);
/* The same per UID: --max-conns-per-ip for Unix peers. */
struct ip_entry *ip_table_acquire_uid(struct ip_table *t, uid_t uid);
void ip_table_release(struct ip_table *t, struct ip_entry *e);

/* Per-source datagram rate limit (token bucket, burst = rate), one table
 * per worker, fixed size: a source that finds no slot evicts the least
 * recently seen of its probe window. */
struct rate_table;
struct rate_table *rate_table_new(uint64_t per_second);
void rate_table_free(struct rate_table *t);
/* 1 if a datagram from a may pass at now_ms (and takes a token), else 0.
 * A Unix sender is keyed by its address (path or autobound name). */
int rate_table_allow(struct rate_table *t, const sockit_addr *a, uint64_t now_ms);

/* ---- Unix sockets (unix.c) ------------------------------------------------ */

/* "pid 123 uid 1000".  Returns the length, as snprintf. */
int peer_cred_format(const struct peer_cred *c, char *buf, size_t len);

/* ---- systemd (sd.c) ------------------------------------------------------- */

/* Socket activation: takes the sockets systemd passed, if any, into
 * cfg->sd, and checks that -H/-p/-U/-u/--udp-only agree with them.
 * Returns -1 to go on, 2 after a usage error, 1 after a runtime error
 * (printed). */
int serve_sd_adopt(struct serve_config *cfg);
/* Tells systemd (NOTIFY_SOCKET) that pid is now the main process: for an
 * upgrade that hands the sockets to a new process.  No-op outside systemd. */
void serve_notify_mainpid(pid_t pid);

/* ---- The server (run.c) --------------------------------------------------- */

/* Runs the configured server until a signal drains it.  Returns the exit
 * code: 0 clean stop, 1 runtime failure (printed). */
int serve_run(struct serve_config *cfg);

#endif /* SOCKIT_SERVE_H */
