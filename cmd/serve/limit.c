/* limit.c -- who may connect, how often: allow/deny, per-IP counts, UDP rate. */
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "serve.h"

/* An IP as a hashable key: IPv4-mapped IPv6 folds into IPv4.  A Unix
 * sender's address is hashed into one (KEY_UNIX), a UID is one (KEY_UID). */
enum { KEY_UNIX = 1, KEY_UID = 2 };
struct ip_key {
	uint8_t family; /* 4 or 6, KEY_*, 0 for none */
	uint8_t addr[16];
};

/* Two FNV-1a hashes of a Unix address's name: a path, or an abstract name
 * such as an autobound "\0" and 5 hex digits. */
static void unix_key_of(const sockit_addr *a, struct ip_key *k)
{
	const struct sockaddr_un *su = (const struct sockaddr_un *)&a->ss;
	size_t off = offsetof(struct sockaddr_un, sun_path);
	size_t n = a->len > off ? a->len - off : 0;
	uint64_t h[2] = {1469598103934665603ull, 0x84222325cbf29ce4ull};
	for (size_t i = 0; i < n && i < sizeof(su->sun_path); i++)
		for (int j = 0; j < 2; j++)
			h[j] = (h[j] ^ (uint8_t)su->sun_path[i]) * 1099511628211ull;
	k->family = KEY_UNIX;
	memcpy(k->addr, h, sizeof(h));
}

static void ip_key_of(const sockit_addr *a, struct ip_key *k)
{
	memset(k, 0, sizeof(*k));
	if (a->ss.ss_family == AF_UNIX) {
		unix_key_of(a, k);
	} else if (a->ss.ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&a->ss;
		k->family = 4;
		memcpy(k->addr, &s4->sin_addr, 4);
	} else if (a->ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a->ss;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			k->family = 4;
			memcpy(k->addr, s6->sin6_addr.s6_addr + 12, 4);
		} else {
			k->family = 6;
			memcpy(k->addr, s6->sin6_addr.s6_addr, 16);
		}
	}
}

/* FNV-1a over the key. */
static uint64_t ip_key_hash(const struct ip_key *k)
{
	uint64_t h = 1469598103934665603ull;
	size_t n = k->family == 4 ? 4 : 16;
	h = (h ^ k->family) * 1099511628211ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ k->addr[i]) * 1099511628211ull;
	return h;
}

static int ip_key_eq(const struct ip_key *a, const struct ip_key *b)
{
	return a->family == b->family && memcmp(a->addr, b->addr, 16) == 0;
}

int serve_acl_allows(const struct serve_config *cfg, const sockit_addr *a)
{
	if (a->ss.ss_family == AF_UNIX)
		return 1;
	for (size_t i = 0; i < cfg->ndeny; i++)
		if (sockit_cidr_match(&cfg->deny[i], a) == 1)
			return 0;
	if (cfg->nallow == 0)
		return 1;
	for (size_t i = 0; i < cfg->nallow; i++)
		if (sockit_cidr_match(&cfg->allow[i], a) == 1)
			return 1;
	return 0;
}

/* ---- Per-IP connection counts: chained hash, one mutex ---------------- */

#define IP_BUCKETS 4096

struct ip_entry {
	struct ip_entry *next;
	uint64_t count;
	uint32_t bucket;
	struct ip_key key;
};

struct ip_table {
	pthread_mutex_t mu;
	uint64_t limit;
	struct ip_entry *buckets[IP_BUCKETS];
};

struct ip_table *ip_table_new(uint64_t limit)
{
	struct ip_table *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	pthread_mutex_init(&t->mu, NULL);
	t->limit = limit;
	return t;
}

void ip_table_free(struct ip_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < IP_BUCKETS; i++) {
		struct ip_entry *e = t->buckets[i];
		while (e != NULL) {
			struct ip_entry *next = e->next;
			free(e);
			e = next;
		}
	}
	pthread_mutex_destroy(&t->mu);
	free(t);
}

static struct ip_entry *acquire_key(struct ip_table *t, const struct ip_key *kp)
{
	struct ip_key k = *kp;
	uint32_t b = (uint32_t)(ip_key_hash(&k) % IP_BUCKETS);
	struct ip_entry *e;
	pthread_mutex_lock(&t->mu);
	for (e = t->buckets[b]; e != NULL; e = e->next)
		if (ip_key_eq(&e->key, &k))
			break;
	if (e == NULL) {
		e = calloc(1, sizeof(*e));
		if (e != NULL) {
			e->key = k;
			e->bucket = b;
			e->next = t->buckets[b];
			t->buckets[b] = e;
		}
	}
	if (e != NULL && e->count >= t->limit)
		e = NULL;
	else if (e != NULL)
		e->count++;
	pthread_mutex_unlock(&t->mu);
	return e;
}

struct ip_entry *ip_table_acquire(struct ip_table *t, const sockit_addr *a)
{
	struct ip_key k;
	ip_key_of(a, &k);
	return acquire_key(t, &k);
}

struct ip_entry *ip_table_acquire_uid(struct ip_table *t, uid_t uid)
{
	struct ip_key k;
	memset(&k, 0, sizeof(k));
	k.family = KEY_UID;
	memcpy(k.addr, &uid, sizeof(uid));
	return acquire_key(t, &k);
}

void ip_table_release(struct ip_table *t, struct ip_entry *e)
{
	pthread_mutex_lock(&t->mu);
	if (--e->count == 0) {
		struct ip_entry **pp = &t->buckets[e->bucket];
		while (*pp != e)
			pp = &(*pp)->next;
		*pp = e->next;
		free(e);
	}
	pthread_mutex_unlock(&t->mu);
}

/* ---- UDP rate: token buckets in a fixed open-addressed table ---------- */

#define RATE_SLOTS 4096 /* power of two */
#define RATE_PROBE 8
#define MILLI 1000u

struct rate_slot {
	struct ip_key key;
	uint64_t last_ms;
	uint64_t tokens; /* in thousandths of a datagram */
};

struct rate_table {
	uint64_t rate; /* datagrams per second; also the burst */
	struct rate_slot slots[RATE_SLOTS];
};

struct rate_table *rate_table_new(uint64_t per_second)
{
	struct rate_table *t = calloc(1, sizeof(*t));
	if (t != NULL)
		t->rate = per_second;
	return t;
}

void rate_table_free(struct rate_table *t)
{
	free(t);
}

int rate_table_allow(struct rate_table *t, const sockit_addr *a, uint64_t now_ms)
{
	struct ip_key k;
	ip_key_of(a, &k);
	size_t base = (size_t)ip_key_hash(&k) & (RATE_SLOTS - 1);
	struct rate_slot *s = NULL, *oldest = NULL;
	for (size_t i = 0; i < RATE_PROBE; i++) {
		struct rate_slot *c = &t->slots[(base + i) & (RATE_SLOTS - 1)];
		if (c->key.family != 0 && ip_key_eq(&c->key, &k)) {
			s = c;
			break;
		}
		if (oldest == NULL || c->key.family == 0 ||
		    (oldest->key.family != 0 && c->last_ms < oldest->last_ms))
			oldest = c;
	}
	uint64_t full = t->rate * MILLI;
	if (s == NULL) {
		s = oldest; /* a new source, or evict the least recently seen */
		s->key = k;
		s->tokens = full;
		s->last_ms = now_ms;
	} else if (now_ms > s->last_ms) {
		uint64_t gap = now_ms - s->last_ms; /* ms * per-second = thousandths */
		uint64_t add = gap >= 1000 ? full : gap * t->rate;
		s->tokens = s->tokens + add > full ? full : s->tokens + add;
		s->last_ms = now_ms;
	}
	if (s->tokens < MILLI)
		return 0;
	s->tokens -= MILLI;
	return 1;
}
