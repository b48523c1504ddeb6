/* cli.c -- bounded parsing and messages shared by the subcommands. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "sockit.h"

int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	if (s == NULL || !isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int cli_parse_int(const char *s, int min, int max, int *out)
{
	if (s == NULL)
		return -1;
	const char *p = s[0] == '-' ? s + 1 : s;
	if (!isdigit((unsigned char)p[0]))
		return -1;
	errno = 0;
	char *end;
	long v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = (int)v;
	return 0;
}

/* Parses "<digits>[.<digits>]<suffix>" into a value scaled by the suffix's
 * multiplier (from table), rounding up fractions.  -1: malformed or out of
 * range; -2: a well-formed number with a suffix the table does not know. */
struct unit {
	const char *name;
	uint64_t mult;
};

static int parse_scaled(const char *s, const struct unit *units, uint64_t max, uint64_t *out)
{
	if (s == NULL || !isdigit((unsigned char)s[0]))
		return -1;
	uint64_t whole = 0, frac = 0, frac_div = 1;
	const char *p = s;
	for (; isdigit((unsigned char)*p); p++) {
		uint64_t d = (uint64_t)(*p - '0');
		if (whole > (UINT64_MAX - d) / 10)
			return -1;
		whole = whole * 10 + d;
	}
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -1;
		for (; isdigit((unsigned char)*p); p++) {
			if (frac_div >= 1000000000ull)
				continue; /* ignore digits past 1e-9 */
			frac = frac * 10 + (uint64_t)(*p - '0');
			frac_div *= 10;
		}
	}
	for (const struct unit *u = units; u->name != NULL; u++) {
		if (strcmp(p, u->name) != 0)
			continue;
		if (whole > max / u->mult)
			return -1;
		uint64_t v = whole * u->mult;
		/* frac * mult / frac_div, rounded up, without overflow */
		uint64_t f = (frac * (u->mult % frac_div) + frac_div - 1) / frac_div +
			     frac * (u->mult / frac_div);
		if (frac != 0 && f == 0)
			f = 1;
		if (f > max || v > max - f)
			return -1;
		*out = v + f;
		return 0;
	}
	return *p != '\0' && p != s ? -2 : -1;
}

int cli_parse_duration_ms(const char *s, uint64_t max_ms, uint64_t *out)
{
	/* Scaled in microseconds, then rounded up to milliseconds. */
	static const struct unit units[] = {
		{"", 1000000},	 {"s", 1000000},    {"ms", 1000},	  {"us", 1},
		{"m", 60000000}, {"min", 60000000}, {"h", 3600000000ull}, {NULL, 0},
	};
	uint64_t us;
	if (max_ms > UINT64_MAX / 1000)
		return -1;
	int rc = parse_scaled(s, units, max_ms * 1000, &us);
	if (rc < 0)
		return rc;
	*out = (us + 999) / 1000;
	return 0;
}

int cli_parse_duration_us(const char *s, uint64_t max_us, uint64_t *out)
{
	static const struct unit units[] = {
		{"", 1000000},	 {"s", 1000000},    {"ms", 1000},	  {"us", 1},
		{"m", 60000000}, {"min", 60000000}, {"h", 3600000000ull}, {NULL, 0},
	};
	return parse_scaled(s, units, max_us, out);
}

int cli_parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	/* One rule, the same as cli_format_size() prints: every step is 1024,
	 * k = K = KiB.  kB and MB are refused: they mean 1000 to many people. */
	static const struct unit units[] = {
		{"", 1},	   {"B", 1},	      {"k", 1024},	   {"K", 1024},
		{"KiB", 1024},	   {"m", 1048576},    {"M", 1048576},	   {"MiB", 1048576},
		{"g", 1073741824}, {"G", 1073741824}, {"GiB", 1073741824}, {NULL, 0},
	};
	uint64_t v;
	int rc = parse_scaled(s, units, max, &v);
	if (rc < 0)
		return rc;
	if (v < min)
		return -1;
	*out = v;
	return 0;
}

int cli_parse_port(const char *s, int allow_zero, int *out)
{
	if (s != NULL && isalpha((unsigned char)s[0])) {
		/* A service name, as nc takes it: "http", "echo". */
		struct servent sb, *se = NULL;
		char buf[1024];
		if (getservbyname_r(s, NULL, &sb, buf, sizeof(buf), &se) != 0 || se == NULL)
			return -1;
		*out = ntohs((uint16_t)se->s_port);
		return 0;
	}
	return cli_parse_int(s, allow_zero ? 0 : 1, 65535, out);
}

const char *cli_host(const char *s, char *buf, size_t len)
{
	if (s == NULL || s[0] != '[')
		return s;
	size_t n = strlen(s);
	if (n < 3 || s[n - 1] != ']' || n - 2 >= len || memchr(s + 1, ']', n - 2) != NULL)
		return NULL;
	memcpy(buf, s + 1, n - 2);
	buf[n - 2] = '\0';
	return buf;
}

/* ---- Option values: one message per kind ---------------------------------- */

static int bad_value(const char *cmd, const char *kind, const char *opt, const char *s,
		     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int bad_value(const char *cmd, const char *kind, const char *opt, const char *s,
		     const char *fmt, ...)
{
	char why[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return cli_usage(cmd, "invalid %s '%s' for %s: %s", kind, s == NULL ? "" : s, opt, why);
}

int cli_opt_u64(const char *cmd, const char *opt, const char *s, uint64_t min, uint64_t max,
		uint64_t *out)
{
	if (cli_parse_u64(s, min, max, out) == 0)
		return 0;
	return bad_value(cmd, "number", opt, s, "expected %llu..%llu", (unsigned long long)min,
			 (unsigned long long)max);
}

int cli_opt_int(const char *cmd, const char *opt, const char *s, int min, int max, int *out)
{
	if (cli_parse_int(s, min, max, out) == 0)
		return 0;
	return bad_value(cmd, "number", opt, s, "expected %d..%d", min, max);
}

int cli_opt_duration(const char *cmd, const char *opt, const char *s, uint64_t max_ms,
		     uint64_t *out)
{
	int rc = cli_parse_duration_ms(s, max_ms, out);
	if (rc == 0)
		return 0;
	char max[32];
	cli_format_duration(max, sizeof(max), max_ms);
	if (rc == -2)
		return bad_value(cmd, "duration", opt, s,
				 "unknown unit (use us, ms, s, m or h: 500ms, 2s, 1.5m; a bare "
				 "number is seconds)");
	return bad_value(cmd, "duration", opt, s,
			 "expected 0..%s, as 500ms, 2s, 1.5m (a bare number is seconds)", max);
}

int cli_opt_duration_us(const char *cmd, const char *opt, const char *s, uint64_t max_us,
			uint64_t *out)
{
	int rc = cli_parse_duration_us(s, max_us, out);
	if (rc == 0)
		return 0;
	char max[32];
	cli_format_duration_us(max, sizeof(max), max_us);
	if (rc == -2)
		return bad_value(cmd, "duration", opt, s,
				 "unknown unit (use us, ms, s, m or h: 50us, 2ms; a bare number "
				 "is seconds)");
	return bad_value(cmd, "duration", opt, s, "expected 0..%s, as 50us or 1ms", max);
}

int cli_opt_size(const char *cmd, const char *opt, const char *s, uint64_t min, uint64_t max,
		 uint64_t *out)
{
	int rc = cli_parse_size(s, min, max, out);
	if (rc == 0)
		return 0;
	if (rc == -2)
		return bad_value(cmd, "size", opt, s,
				 "unknown unit (use k, M or G, 1024 each step: 1024, 64k, 1M; "
				 "KiB, MiB, GiB mean the same)");
	char lo[32], hi[32];
	cli_format_size(lo, sizeof(lo), min);
	cli_format_size(hi, sizeof(hi), max);
	return bad_value(cmd, "size", opt, s, "expected %s..%s", lo, hi);
}

int cli_opt_port(const char *cmd, const char *opt, const char *s, int allow_zero, int *out)
{
	if (cli_parse_port(s, allow_zero, out) == 0)
		return 0;
	if (s != NULL && isalpha((unsigned char)s[0]))
		return bad_value(cmd, "port", opt, s, "no such service in /etc/services");
	return bad_value(cmd, "port", opt, s, "expected %d..65535 or a service name",
			 allow_zero ? 0 : 1);
}

/* ---- Formatting: the same units as the parsers take ----------------------- */

int cli_format_size(char *buf, size_t len, uint64_t v)
{
	/* No TiB: cli_parse_size takes none (1 TiB prints as 1024GiB). */
	static const char *const names[] = {"", "KiB", "MiB", "GiB"};
	unsigned i = 0;
	while (i + 1 < sizeof(names) / sizeof(names[0]) && v != 0 && v % 1024 == 0) {
		v /= 1024;
		i++;
	}
	return snprintf(buf, len, "%llu%s", (unsigned long long)v, names[i]);
}

int cli_format_duration_us(char *buf, size_t len, uint64_t us)
{
	if (us % 1000 == 0 && us != 0)
		return cli_format_duration(buf, len, us / 1000);
	return snprintf(buf, len, "%lluus", (unsigned long long)us);
}

int cli_format_duration(char *buf, size_t len, uint64_t ms)
{
	if (ms != 0 && ms % 3600000 == 0)
		return snprintf(buf, len, "%lluh", (unsigned long long)(ms / 3600000));
	if (ms != 0 && ms % 60000 == 0)
		return snprintf(buf, len, "%llum", (unsigned long long)(ms / 60000));
	if (ms >= 1000 && ms % 100 == 0) {
		if (ms % 1000 == 0)
			return snprintf(buf, len, "%llus", (unsigned long long)(ms / 1000));
		return snprintf(buf, len, "%llu.%llus", (unsigned long long)(ms / 1000),
				(unsigned long long)(ms % 1000 / 100));
	}
	return snprintf(buf, len, "%llums", (unsigned long long)ms);
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "sockit %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'sockit %s --help'.\n", cmd);
	return 2;
}

int cli_bad_option(const char *cmd, int c, const char *word)
{
	if (word == NULL)
		word = "?";
	if (c == ':')
		return cli_usage(cmd, "option '%s' needs a value", word);
	if (optopt != 0)
		return cli_usage(cmd, "unknown option '-%c'", optopt);
	return cli_usage(cmd, "unknown option '%s'", word);
}

void cli_print_version(void)
{
	printf("sockit %s\n", sockit_version());
}

int cli_error(const char *cmd, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fflush(stdout);
	fprintf(stderr, "sockit %s: %s\n", cmd, msg);
	return 1;
}

int cli_stdout_done(const char *cmd, int rc)
{
	/* fclose, not fflush: only close(2) reports some errors (NFS, and a
	 * closed descriptor 1, which fflush of an empty buffer never notices). */
	int bad = ferror(stdout);
	int err = fclose(stdout) != 0 ? errno : 0;
	if (err != 0 || bad) {
		/* An earlier failed write's errno is gone by now: then EIO. */
		fprintf(stderr, "sockit%s%s: cannot write to standard output: %s\n",
			cmd != NULL ? " " : "", cmd != NULL ? cmd : "",
			sockit_strerror(-(err != 0 ? err : EIO)));
		return rc == 0 || rc == 2 ? 1 : rc;
	}
	return rc;
}

int cli_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void cli_die_of_signal(int signo)
{
	fflush(stdout);
	fflush(stderr);
	signal(signo, SIG_DFL);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, signo);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	raise(signo);
	_exit(128 + signo); /* only if the signal did not end the process */
}
