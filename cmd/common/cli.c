/* cli.c -- bounded parsing and messages shared by the subcommands. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
 * multiplier (from table), rounding up fractions. */
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
		if (v > max - f)
			return -1;
		*out = v + f;
		return 0;
	}
	return -1;
}

int cli_parse_duration_ms(const char *s, uint64_t max_ms, uint64_t *out)
{
	/* Scaled in microseconds, then rounded up to milliseconds. */
	static const struct unit units[] = {
		{"", 1000000},	 {"s", 1000000},    {"ms", 1000},	  {"us", 1},
		{"m", 60000000}, {"min", 60000000}, {"h", 3600000000ull}, {NULL, 0},
	};
	uint64_t us;
	if (max_ms > UINT64_MAX / 1000 || parse_scaled(s, units, max_ms * 1000, &us) < 0)
		return -1;
	*out = (us + 999) / 1000;
	return 0;
}

int cli_parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	static const struct unit units[] = {
		{"", 1},	   {"b", 1},
		{"B", 1},	   {"k", 1024},
		{"K", 1024},	   {"KiB", 1024},
		{"kB", 1024},	   {"m", 1048576},
		{"M", 1048576},	   {"MiB", 1048576},
		{"MB", 1048576},   {"g", 1073741824},
		{"G", 1073741824}, {"GiB", 1073741824},
		{NULL, 0},
	};
	uint64_t v;
	if (parse_scaled(s, units, max, &v) < 0 || v < min)
		return -1;
	*out = v;
	return 0;
}

int cli_parse_port(const char *s, int allow_zero, int *out)
{
	return cli_parse_int(s, allow_zero ? 0 : 1, 65535, out);
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
