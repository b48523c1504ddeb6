/* cli.h -- bounded parsing and messages shared by the subcommands. */
#ifndef SOCKIT_CLI_H
#define SOCKIT_CLI_H

#include <stdint.h>

/* Each subcommand: parses argv (argv[0] is the subcommand's name), runs,
 * returns the process exit code: 0 ok, 1 runtime failure, 2 usage error. */
int cmd_serve(int argc, char **argv);
int cmd_connect(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* Whole-string parsers: no sign surprises, no trailing junk, range
 * checked.  Return 0 or -1 (the caller names the option in its message). */
int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
int cli_parse_int(const char *s, int min, int max, int *out);

/* A duration: "500ms", "2s", "1.5s", "1m", "1h", "250us"; a bare number is
 * seconds.  Result in milliseconds (microseconds are rounded up), at most
 * max_ms. */
int cli_parse_duration_ms(const char *s, uint64_t max_ms, uint64_t *out);

/* A size: "1024", "64k", "64KiB", "1m", "1MiB" (k = 1024).  At most max. */
int cli_parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* A port number 0..65535 (allow_zero) or 1..65535. */
int cli_parse_port(const char *s, int allow_zero, int *out);

/* The usage error for getopt_long's answer c (':' a missing value, '?' an
 * unknown option) at argv word `word`; returns 2. */
int cli_bad_option(const char *cmd, int c, const char *word);

/* Prints "sockit VERSION" on stdout (--version of every subcommand). */
void cli_print_version(void);

/* Prints "sockit CMD: MESSAGE\nTry 'sockit CMD --help'.\n" to stderr and
 * returns 2, for `return cli_usage(...)`. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* SOCKIT_CLI_H */
