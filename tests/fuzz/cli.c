/* cli.c -- fuzz the bounded parsers of cmd/common/cli.c: numbers, sizes, durations, ports, hosts.
 *
 * Properties: nothing out of [min, max] is ever accepted; whatever is
 * accepted prints (cli_format_*) in a form that parses back to the same
 * value; a plain reading computed here with 128-bit arithmetic (digits,
 * an optional fraction rounded up, a unit) gives the same answer, error
 * kind (-1 / -2) included, for up to 9 decimals; the millisecond parser is
 * the microsecond one rounded up; a numeric port is cli_parse_int's;
 * cli_host unwraps [brackets] and nothing else.
 */
#include <ctype.h>

#include "cli.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	fuzz_quiet();
	return 0;
}

typedef unsigned __int128 u128;

struct unit {
	const char *name;
	uint64_t mult;
};

/* Written out again from cli.h's contract, as an oracle. */
static const struct unit time_units[] = {
	{"", 1000000},	 {"s", 1000000},    {"ms", 1000},	  {"us", 1},
	{"m", 60000000}, {"min", 60000000}, {"h", 3600000000ull}, {NULL, 0},
};
static const struct unit size_units[] = {
	{"", 1},	   {"B", 1},	      {"k", 1024},	   {"K", 1024},
	{"KiB", 1024},	   {"m", 1048576},    {"M", 1048576},	   {"MiB", 1048576},
	{"g", 1073741824}, {"G", 1073741824}, {"GiB", 1073741824}, {NULL, 0},
};

/* The plain reading: 0 with *out, -1, or -2 (unknown unit); *exact = 0
 * when digits past the ninth decimal were dropped (then only bounds are
 * checked). */
static int reference(const char *s, const struct unit *units, uint64_t max, uint64_t *out,
		     int *exact)
{
	*exact = 1;
	if (!isdigit((unsigned char)s[0]))
		return -1;
	u128 whole = 0, frac = 0, div = 1;
	const char *p = s;
	for (; isdigit((unsigned char)*p); p++) {
		whole = whole * 10 + (u128)(*p - '0');
		if (whole > UINT64_MAX)
			return -1;
	}
	if (*p == '.') {
		if (!isdigit((unsigned char)*++p))
			return -1;
		for (int n = 0; isdigit((unsigned char)*p); p++, n++) {
			if (n >= 9) {
				*exact = 0;
				continue;
			}
			frac = frac * 10 + (u128)(*p - '0');
			div *= 10;
		}
	}
	for (const struct unit *u = units; u->name != NULL; u++) {
		if (strcmp(p, u->name) != 0)
			continue;
		u128 v = whole * u->mult + (frac * u->mult + div - 1) / div;
		if (v > max)
			return -1;
		*out = (uint64_t)v;
		return 0;
	}
	return -2;
}

static void check_u64(const char *s, uint64_t min, uint64_t max)
{
	uint64_t v = 0, back = 0;
	int rc = cli_parse_u64(s, min, max, &v);
	FUZZ_CHECK(rc == 0 || rc == -1);
	/* All digits and in range: accepted, as strtoull reads it. */
	u128 ref = 0;
	int digits = s[0] != '\0' && strspn(s, "0123456789") == strlen(s), over = 0;
	for (const char *p = s; digits && *p != '\0'; p++) {
		ref = ref * 10 + (u128)(*p - '0');
		if (ref > UINT64_MAX)
			over = 1, ref = (u128)UINT64_MAX + 1;
	}
	FUZZ_CHECK((rc == 0) == (digits && !over && ref >= min && ref <= max));
	if (rc == 0) {
		char text[32];
		FUZZ_CHECK(v == (uint64_t)ref);
		snprintf(text, sizeof(text), "%llu", (unsigned long long)v);
		FUZZ_CHECK(cli_parse_u64(text, min, max, &back) == 0 && back == v);
		uint64_t sz;
		FUZZ_CHECK(cli_parse_size(s, min, max, &sz) == 0 && sz == v);
	}
}

static void check_int(const char *s, int min, int max)
{
	int v = 0, back = 0;
	int rc = cli_parse_int(s, min, max, &v);
	FUZZ_CHECK(rc == 0 || rc == -1);
	if (rc == 0) {
		char text[32];
		FUZZ_CHECK(v >= min && v <= max);
		snprintf(text, sizeof(text), "%d", v);
		FUZZ_CHECK(cli_parse_int(text, min, max, &back) == 0 && back == v);
		FUZZ_CHECK(s[0] == '-' || isdigit((unsigned char)s[0]));
	}
}

static void check_size(const char *s, uint64_t min, uint64_t max)
{
	uint64_t v = 0, want = 0, back = 0;
	int exact, rc = cli_parse_size(s, min, max, &v);
	int ref = reference(s, size_units, max, &want, &exact);
	if (ref == 0 && want < min)
		ref = -1;
	FUZZ_CHECK(rc == 0 || rc == -1 || rc == -2);
	FUZZ_CHECK(rc == ref || !exact);
	if (rc == 0) {
		char text[64];
		FUZZ_CHECK(v >= min && v <= max && (!exact || v == want));
		FUZZ_CHECK(cli_format_size(text, sizeof(text), v) > 0);
		FUZZ_CHECK(cli_parse_size(text, min, max, &back) == 0 && back == v);
	}
}

static void check_durations(const char *s, uint64_t max_ms)
{
	uint64_t ms = 0, us = 0, want = 0, back = 0;
	char text[64];
	int exact, rc_ms = cli_parse_duration_ms(s, max_ms, &ms);
	FUZZ_CHECK(rc_ms == 0 || rc_ms == -1 || rc_ms == -2);
	if (max_ms > UINT64_MAX / 1000) {
		FUZZ_CHECK(rc_ms == -1);
		return;
	}
	int rc_us = cli_parse_duration_us(s, max_ms * 1000, &us);
	int ref = reference(s, time_units, max_ms * 1000, &want, &exact);
	FUZZ_CHECK(rc_us == ref || !exact);
	FUZZ_CHECK(rc_ms == rc_us); /* ms is us rounded up, within max * 1000 us */
	if (rc_us == 0) {
		FUZZ_CHECK(us <= max_ms * 1000 && (!exact || us == want));
		FUZZ_CHECK(ms == (us + 999) / 1000 && ms <= max_ms);
		FUZZ_CHECK(cli_format_duration_us(text, sizeof(text), us) > 0);
		FUZZ_CHECK(cli_parse_duration_us(text, max_ms * 1000, &back) == 0 && back == us);
		FUZZ_CHECK(cli_format_duration(text, sizeof(text), ms) > 0);
		FUZZ_CHECK(cli_parse_duration_ms(text, max_ms, &back) == 0 && back == ms);
	}
}

static void check_port_host(const char *s)
{
	int p = -7, q = -7;
	for (int zero = 0; zero <= 1; zero++) {
		int rc = cli_parse_port(s, zero, &p);
		FUZZ_CHECK(rc == 0 || rc == -1);
		if (rc == 0)
			FUZZ_CHECK(p >= 0 && p <= 65535);
		if (!isalpha((unsigned char)s[0]))
			FUZZ_CHECK(rc == cli_parse_int(s, zero ? 0 : 1, 65535, &q) &&
				   (rc != 0 || p == q));
	}
	char buf[16];
	const char *h = cli_host(s, buf, sizeof(buf));
	if (s[0] != '[') {
		FUZZ_CHECK(h == s);
	} else if (h != NULL) {
		size_t n = strlen(h);
		FUZZ_CHECK(h == buf && n > 0 && n < sizeof(buf) && strchr(h, ']') == NULL);
		FUZZ_CHECK(strncmp(s + 1, h, n) == 0 && strcmp(s + 1 + n, "]") == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t maxes[] = {
		0,
		1,
		999,
		1000,
		65535,
		1u << 30,
		86400000ull * 365,
		UINT64_MAX / 1000,
		UINT64_MAX / 1000 + 1,
		UINT64_MAX - 1,
		UINT64_MAX,
	};
	if (size < 2 || size > 100)
		return 0;
	uint64_t max = maxes[data[0] % (sizeof(maxes) / sizeof(maxes[0]))];
	uint64_t min = data[1] % 4 == 0 ? 0 : data[1] % 4 == 1 ? 1 : max / (data[1] | 1);
	char *s = fuzz_cstr(data + 2, size - 2);
	check_u64(s, min, max);
	check_int(s, min > 1000 ? -(int)(min % 100000) : (int)min - 5, (int)(max % 2000000000));
	check_size(s, min, max);
	check_durations(s, max);
	check_port_host(s);
	free(s);
	return 0;
}
