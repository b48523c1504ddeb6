/* bench_reply.c -- fuzz bench's reply checker and ids (cmd/bench/codec.c) against a reference.
 *
 * Byte 0 is the request size, byte 1 lined and the prefix length, then
 * the prefix, 8 bytes of id, and the rest XORed onto the expected reply
 * (so zeros keep bytes right).  The reference reply is written here from
 * codec.h's contract: prefix + request, the request's first id_len bytes
 * the id in lowercase hex.  Properties: bench_reply_check is verified /
 * incomplete / mismatch exactly as a memcmp with the reference says;
 * bench_reply_match at any offset and length, bench_reply_diff and
 * bench_reply_expected agree with it; bench_id_parse reads back
 * bench_id_format; bench_id_next is + (1 << shift); bench_escape writes
 * only printable ASCII and stops before an escape that does not fit.
 */
#include "codec.h"
#include "fuzz.h"

static void check_ids(const struct bench_tmpl *tm, uint64_t id, unsigned shift)
{
	char txt[16], want[17];
	uint64_t mask = tm->id_len == 16 ? UINT64_MAX : (1ull << (4 * tm->id_len)) - 1, back = 0;
	bench_id_format(txt, tm->id_len, id);
	snprintf(want, sizeof(want), "%016llx", (unsigned long long)id);
	FUZZ_CHECK(memcmp(txt, want + 16 - tm->id_len, tm->id_len) == 0);
	FUZZ_CHECK(bench_id_parse(txt, tm->id_len, &back) == 0 && back == (id & mask));
	shift %= 4 * (unsigned)tm->id_len;
	bench_id_next(txt, tm->id_len, shift);
	FUZZ_CHECK(bench_id_parse(txt, tm->id_len, &back) == 0);
	FUZZ_CHECK(back == ((id + (1ull << shift)) & mask));
}

static void check_escape(const char *src, size_t n, size_t cap)
{
	char *dst = malloc(cap > 0 ? cap : 1);
	size_t took = bench_escape(dst, cap, src, n);
	FUZZ_CHECK(took <= n);
	if (cap > 0) {
		size_t len = strlen(dst);
		FUZZ_CHECK(len < cap);
		for (size_t i = 0; i < len; i++)
			FUZZ_CHECK(dst[i] >= 0x20 && dst[i] < 0x7f);
		FUZZ_CHECK(took == n || len + 4 >= cap); /* stopped for want of room */
	}
	free(dst);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 10 || size > 600)
		return 0;
	int lined = data[1] & 1;
	size_t req = 8u + (size_t)lined + data[0] % 64, plen = (data[1] >> 1) % 32;
	const uint8_t *p = data + 2, *end = data + size;
	if ((size_t)(end - p) < plen + 8)
		return 0;
	char *prefix = fuzz_dup(p, plen);
	uint64_t id;
	memcpy(&id, p + plen, 8);
	p += plen + 8;
	struct bench_tmpl tm;
	FUZZ_CHECK(bench_tmpl_init(&tm, req, lined, prefix, plen) == 0);
	FUZZ_CHECK(tm.reply_len == plen + req && tm.id_off == plen);
	FUZZ_CHECK(tm.id_len == (req - (size_t)lined < 16 ? req - (size_t)lined : 16));
	check_ids(&tm, id, data[0] >> 2);

	/* The reference: prefix, then the id's hex, letters, the newline. */
	char *ref = malloc(tm.reply_len);
	char idtxt[16];
	bench_id_format(idtxt, tm.id_len, id);
	memcpy(ref, prefix, plen);
	memcpy(ref + plen, idtxt, tm.id_len);
	for (size_t i = tm.id_len; i < req; i++)
		ref[plen + i] = (char)('a' + (i - tm.id_len) % 26);
	if (lined)
		ref[plen + req - 1] = '\n';

	/* The received bytes: the reference XOR the input, past its end the
	 * input itself; in an exact-size block. */
	size_t n = (size_t)(end - p);
	char *got = malloc(n > 0 ? n : 1);
	for (size_t i = 0; i < n; i++)
		got[i] = (char)(p[i] ^ (i < tm.reply_len ? (uint8_t)ref[i] : 0));
	size_t k = n < tm.reply_len ? n : tm.reply_len;
	int same = memcmp(got, ref, k) == 0;
	long rc = bench_reply_check(&tm, idtxt, got, n);
	FUZZ_CHECK(rc == (!same ? -1 : n < tm.reply_len ? -2 : (long)tm.reply_len));

	size_t diff = 0;
	while (diff < n && diff < tm.reply_len && got[diff] == ref[diff])
		diff++;
	FUZZ_CHECK(bench_reply_diff(&tm, idtxt, 0, got, n) == diff);
	size_t off = data[0] % (tm.reply_len + 1),
	       m = k < tm.reply_len - off ? k : tm.reply_len - off;
	FUZZ_CHECK(bench_reply_match(&tm, idtxt, off, got, m) == (memcmp(got, ref + off, m) == 0));
	char exp[128];
	size_t e = bench_reply_expected(&tm, idtxt, off, exp, sizeof(exp));
	FUZZ_CHECK(e == (tm.reply_len - off < sizeof(exp) ? tm.reply_len - off : sizeof(exp)));
	FUZZ_CHECK(memcmp(exp, ref + off, e) == 0);
	check_escape(got, n, data[1] % 64);

	free(got);
	free(ref);
	free(prefix);
	bench_tmpl_free(&tm);
	return 0;
}
