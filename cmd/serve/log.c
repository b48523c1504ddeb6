/* log.c -- one line per event on stderr, text or JSON, one write each. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "serve.h"

#define LINE_MAX_LEN 2048
#define RATE_WINDOW_MS 1000 /* a limited message: at most one per window */

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

/* A quoted JSON string (cut, never inside an escape, if the line is full). */
static void put_json_str(struct line *l, const char *s)
{
	put(l, "\"", 1);
	size_t room = sizeof(l->buf) - 1 - l->len;
	size_t n = json_escape(l->buf + l->len, room, s);
	l->len += n < room ? n : room > 0 ? room - 1 : 0;
	put(l, "\"", 1);
}

/* ,"key":"value" -- a JSON field, for non-NULL values. */
static void put_field(struct line *l, const char *key, const char *value)
{
	if (value == NULL)
		return;
	putf(l, ",\"%s\":", key);
	put_json_str(l, value);
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

static void put_fields(const struct serve_log *lg, struct line *l, const struct log_fields *f)
{
	if (lg->format != LOGF_JSON || f == NULL)
		return;
	put_field(l, "event", f->event);
	if (f->fd >= 0)
		putf(l, ",\"fd\":%d", f->fd);
	put_field(l, "peer", f->peer);
	put_field(l, "reason", f->reason);
	if (f->cred != NULL)
		putf(l, ",\"pid\":%ld,\"uid\":%lu", (long)f->cred->pid,
		     (unsigned long)f->cred->uid);
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

static void vlog(const struct serve_log *lg, enum log_level level, const struct log_fields *f,
		 const char *fmt, va_list ap)
{
	char msg[LINE_MAX_LEN / 2];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	struct line l;
	begin(lg, &l, level, msg);
	put_fields(lg, &l, f);
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

void serve_log_event(const struct serve_log *lg, enum log_level level, const struct log_fields *f,
		     const char *fmt, ...)
{
	if (level > lg->level)
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog(lg, level, f, fmt, ap);
	va_end(ap);
}

/* ---- Rate-limited messages ---------------------------------------------- */

void log_ratelimit_flush(struct log_ratelimit *rl)
{
	if (rl->loop != NULL)
		sockit_timer_stop(rl->loop, &rl->timer);
	if (rl->suppressed == 0 || rl->lg == NULL)
		return;
	unsigned long long n = (unsigned long long)rl->suppressed;
	rl->suppressed = 0;
	char msg[256];
	snprintf(msg, sizeof(msg), "%llu more %s not shown (at most one line a second)", n,
		 rl->what);
	struct line l;
	begin(rl->lg, &l, rl->level, msg);
	if (rl->lg->format == LOGF_JSON) {
		put_field(&l, "event", "suppressed");
		putf(&l, ",\"count\":%llu", n);
		put_field(&l, "what", rl->what);
	}
	finish(rl->lg, &l);
}

static void on_ratelimit_timer(sockit_loop *loop, sockit_timer *t)
{
	(void)loop;
	log_ratelimit_flush(t->data);
}

void log_ratelimit_init(struct log_ratelimit *rl, const struct serve_log *lg, sockit_loop *loop,
			const char *what)
{
	memset(rl, 0, sizeof(*rl));
	rl->lg = lg;
	rl->loop = loop;
	rl->what = what;
	rl->level = LOG_WARN;
	sockit_timer_init(&rl->timer, on_ratelimit_timer, rl);
}

void serve_log_limited(struct log_ratelimit *rl, enum log_level level, const struct log_fields *f,
		       const char *fmt, ...)
{
	if (level > rl->lg->level)
		return;
	uint64_t now = sockit_loop_now_ms(rl->loop);
	if (rl->last_ms != 0 && now - rl->last_ms < RATE_WINDOW_MS) {
		/* The episode's count is printed when its window is over. */
		if (rl->suppressed++ == 0) {
			rl->level = level;
			sockit_timer_start(rl->loop, &rl->timer, rl->last_ms + RATE_WINDOW_MS - now,
					   0);
		}
		return;
	}
	rl->last_ms = now ? now : 1;
	va_list ap;
	va_start(ap, fmt);
	vlog(rl->lg, level, f, fmt, ap);
	va_end(ap);
}

/* ---- Fixed lines ----------------------------------------------------------- */

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
			 const char *mode, unsigned flags)
{
	int dualstack = (flags & LISTEN_DUALSTACK) != 0, sd = (flags & LISTEN_SYSTEMD) != 0;
	struct line l;
	if (lg->format == LOGF_JSON) {
		begin(lg, &l, LOG_INFO, "listening");
		put_field(&l, "proto", proto);
		put_field(&l, "addr", addr);
		put_field(&l, "mode", mode);
		if (dualstack)
			puts_(&l, ",\"dualstack\":true");
		if (sd)
			puts_(&l, ",\"systemd\":true");
	} else {
		char msg[256];
		snprintf(msg, sizeof(msg), "listening on %s %s (%s%s%s)", proto, addr, mode,
			 dualstack ? ", dualstack" : "", sd ? ", from systemd" : "");
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
