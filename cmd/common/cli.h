/* cli.h -- bounded parsing and messages shared by the subcommands. */
#ifndef SOCKIT_CLI_H
#define SOCKIT_CLI_H

#include <stdint.h>

/* Each subcommand: parses argv (argv[0] is the subcommand's name), runs,
 * returns the process exit code: 0 ok, 1 runtime failure, 2 usage error. */
int cmd_serve(int argc, char **argv);
int cmd_connect(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* Conventions of every command (README's "Exit codes"): exit 0 success,
 * 1 runtime failure (lost output included), 2 usage error; a command
 * stopped by SIGINT/SIGTERM/SIGHUP prints what it has, then dies of the
 * signal (the shell sees 128 + signo).  Messages: "sockit CMD: ..." on
 * stderr, usage errors name the bad argument and end "Try 'sockit CMD
 * --help'." */

#include <stddef.h>

/* Whole-string parsers: no sign surprises, no trailing junk, range
 * checked.  Return 0, or -1 (malformed or out of range); the size and
 * duration parsers return -2 for a number with an unknown unit.  The
 * cli_opt_* forms below print the one message for each kind. */
int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
int cli_parse_int(const char *s, int min, int max, int *out);

/* A duration: "500ms", "2s", "1.5s", "1m", "1h", "250us"; a bare number is
 * seconds.  Result in milliseconds (microseconds are rounded up), at most
 * max_ms. */
int cli_parse_duration_ms(const char *s, uint64_t max_ms, uint64_t *out);

/* The same in microseconds, exact: "50us", "1ms", "0". */
int cli_parse_duration_us(const char *s, uint64_t max_us, uint64_t *out);

/* A size: "1024", "64k", "64K", "64KiB", "1M", "1MiB", "1G" (every step
 * 1024; "kB"/"MB" are refused as ambiguous).  At most max. */
int cli_parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* A port number 0..65535 (allow_zero) or 1..65535, or a service name from
 * /etc/services ("http"), as nc takes it. */
int cli_parse_port(const char *s, int allow_zero, int *out);

/* A HOST argument, the same forms in every command: a name, an IPv4 or
 * IPv6 literal, or an IPv6 literal in brackets ("[::1]", as URLs write it).
 * Returns s, or the bracketed literal unwrapped into buf, or NULL when the
 * brackets are malformed ("[::1", "[]"). */
const char *cli_host(const char *s, char *buf, size_t len);

/* Parse an option's value; on failure print the usage error naming opt
 * ("-p", "--max-bytes", "PORT") and the value, and return 2. */
int cli_opt_u64(const char *cmd, const char *opt, const char *s, uint64_t min, uint64_t max,
		uint64_t *out);
int cli_opt_int(const char *cmd, const char *opt, const char *s, int min, int max, int *out);
int cli_opt_duration(const char *cmd, const char *opt, const char *s, uint64_t max_ms,
		     uint64_t *out);
int cli_opt_duration_us(const char *cmd, const char *opt, const char *s, uint64_t max_us,
			uint64_t *out);
int cli_opt_size(const char *cmd, const char *opt, const char *s, uint64_t min, uint64_t max,
		 uint64_t *out);
int cli_opt_port(const char *cmd, const char *opt, const char *s, int allow_zero, int *out);

/* Sizes and durations printed in the units the parsers take: "64KiB",
 * "1MiB", "1000"; "500ms", "2s", "1.5s", "1m", "1h".  Return snprintf's. */
int cli_format_size(char *buf, size_t len, uint64_t v);
int cli_format_duration(char *buf, size_t len, uint64_t ms);
/* Microseconds: "50us", or as cli_format_duration for whole milliseconds. */
int cli_format_duration_us(char *buf, size_t len, uint64_t us);

/* The usage error for getopt_long's answer c (':' a missing value, '?' an
 * unknown option) at argv word `word`; returns 2. */
int cli_bad_option(const char *cmd, int c, const char *word);

/* Prints "sockit VERSION" on stdout (--version of every subcommand). */
void cli_print_version(void);

/* Prints "sockit CMD: MESSAGE\nTry 'sockit CMD --help'.\n" to stderr and
 * returns 2, for `return cli_usage(...)`. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A runtime failure: "sockit CMD: MESSAGE" on stderr; returns 1. */
int cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The last step of every command: closes stdout and returns rc, or, if
 * anything written to stdout was lost (closed, /dev/full, EIO), says so
 * and returns 1 (rc when rc already reports a failure).  Also for --help
 * and --version.  cmd NULL: the top-level "sockit". */
int cli_stdout_done(const char *cmd, int rc);

/* write(2) until all len bytes are written: 0, or -errno (EINTR retried). */
int cli_write_all(int fd, const void *buf, size_t len);

/* Ends the process by signo with its default action (after flushing
 * stdio), so the parent sees the signal: the shell's 128 + signo. */
void cli_die_of_signal(int signo) __attribute__((noreturn));

#endif /* SOCKIT_CLI_H */
