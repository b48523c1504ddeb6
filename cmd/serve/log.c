/* serve_log.c -- one line per event on stderr, text or JSON, one write each. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "serve.h"

#define LINE_MAX_LEN 2048

static const char *const level_names[] = {"error", "warn", "info", "debug"};

struct line {
	char buf[LINE_MAX_LEN];
	size_t len;
};

static void put(struct line *l, const char *s, size_t n)
{
	size_t room = sizeof(l->buf) - 1 - l->len; /* keep one byte for '\n' */
	if (n > room)
		n = room;
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

static void puts_(struct line *l, const char *s)
{
	put(l, s, strlen(s));
}

static void putf(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct line *l, const char *fmt, ...)
{
	char tmp[LINE_MAX_LEN];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		put(l, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* A JSON string body: quotes, backslashes and control bytes escaped. */
static void put_json_str(struct line *l, const char *s)
{
	put(l, "\"", 1);
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			char e[2] = {'\\', (char)ch};
			put(l, e, 2);
		} else if (ch < 0x20) {
			putf(l, "\\u%04x", ch);
		} else {
			put(l, s, 1);
		}
	}
	put(l, "\"", 1);
}

static void begin(const struct serve_log *lg, struct line *l, enum log_level level, const char *msg)
{
	l->len = 0;
	if (lg->format == LOGF_JSON) {
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		putf(l,
		     "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\",\"msg\":",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		     ts.tv_nsec / 1000000, level_names[level]);
		put_json_str(l, msg);
	} else {
		puts_(l, "sockit: ");
		if (level != LOG_INFO) {
			puts_(l, level_names[level]);
			puts_(l, ": ");
		}
		puts_(l, msg);
	}
}

static void finish(const struct serve_log *lg, struct line *l)
{
	if (lg->format == LOGF_JSON) {
		if (l->len > sizeof(l->buf) - 2)
			l->len = sizeof(l->buf) - 2;
		l->buf[l->len++] = '}';
	}
	l->buf[l->len++] = '\n';
	const char *p = l->buf;
	size_t left = l->len;
	while (left > 0) {
		ssize_t n = write(STDERR_FILENO, p, left);
		if (n <= 0)
			return; /* EINTR is impossible for a blocked-signal worker; give up */
		p += n;
		left -= (size_t)n;
	}
}

static void vlog(const struct serve_log *lg, enum log_level level, const char *suffix,
		 const char *fmt, va_list ap)
{
	char msg[LINE_MAX_LEN / 2];
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n > 0 && suffix != NULL && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - (size_t)n, "%s", suffix);
	struct line l;
	begin(lg, &l, level, msg);
	finish(lg, &l);
}

void serve_log(const struct serve_log *lg, enum log_level level, const char *fmt, ...)
{
	if (level > lg->level)
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog(lg, level, NULL, fmt, ap);
	va_end(ap);
}

void serve_log_limited(const struct serve_log *lg, struct log_ratelimit *rl, uint64_t now_ms,
		       enum log_level level, const char *fmt, ...)
{
	if (level > lg->level)
		return;
	if (rl->last_ms != 0 && now_ms - rl->last_ms < 1000) {
		rl->suppressed++;
		return;
	}
	char suffix[64] = "";
	if (rl->suppressed > 0)
		snprintf(suffix, sizeof(suffix), " (%llu similar suppressed)",
			 (unsigned long long)rl->suppressed);
	rl->last_ms = now_ms ? now_ms : 1;
	rl->suppressed = 0;
	va_list ap;
	va_start(ap, fmt);
	vlog(lg, level, suffix, fmt, ap);
	va_end(ap);
}

void serve_log_fail(const struct serve_log *lg, const char *fmt, ...)
{
	char msg[LINE_MAX_LEN / 2];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct line l;
	if (lg->format == LOGF_JSON) {
		begin(lg, &l, LOG_ERROR, msg);
	} else {
		l.len = 0;
		puts_(&l, "sockit serve: ");
		puts_(&l, msg);
	}
	finish(lg, &l);
}

void serve_log_listening(const struct serve_log *lg, const char *proto, const char *addr,
			 const char *mode)
{
	struct line l;
	if (lg->format == LOGF_JSON) {
		begin(lg, &l, LOG_INFO, "listening");
		puts_(&l, ",\"proto\":");
		put_json_str(&l, proto);
		puts_(&l, ",\"addr\":");
		put_json_str(&l, addr);
		puts_(&l, ",\"mode\":");
		put_json_str(&l, mode);
	} else {
		char msg[256];
		snprintf(msg, sizeof(msg), "listening on %s %s (%s)", proto, addr, mode);
		begin(lg, &l, LOG_INFO, msg);
	}
	finish(lg, &l);
}

void serve_log_counters(const struct serve_log *lg, const struct serve_counters *c)
{
	struct line l;
	int json = lg->format == LOGF_JSON;
	begin(lg, &l, LOG_INFO, "counters");
#define SERVE_COUNTER_PUT(name)                                                                    \
	putf(&l, json ? ",\"%s\":%llu" : " %s=%llu", #name, (unsigned long long)c->name);
	SERVE_COUNTERS(SERVE_COUNTER_PUT)
#undef SERVE_COUNTER_PUT
	finish(lg, &l);
}
