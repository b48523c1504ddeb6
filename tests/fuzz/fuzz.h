/* fuzz.h -- what every libFuzzer target shares: exact-size copies, argv from bytes, checks.
 *
 * Each target is one .c file in tests/fuzz/ defining LLVMFuzzerTestOneInput
 * (and maybe LLVMFuzzerInitialize); `make fuzz` builds it with
 * -fsanitize=fuzzer,address,undefined against the library and the cmd/
 * modules, and tests/fuzz/corpus/<target>/ seeds it.  Inputs are copied to
 * heap blocks of exactly their size, so that ASan sees a read one byte past
 * the end; a broken property calls FUZZ_CHECK, which prints the condition
 * and aborts (libFuzzer then saves the input as a crash).
 */
#ifndef SOCKIT_FUZZ_H
#define SOCKIT_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sockit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A property that must hold: on failure prints where and what, then aborts. */
#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(fuzz_report, "%s:%d: property failed: %s\n", __FILE__, __LINE__,   \
				#cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* Where FUZZ_CHECK writes: the real stderr, even after fuzz_quiet(). */
extern FILE *fuzz_report;

/* Sends what the code under test prints on stdout and stderr (usage
 * messages, --help) to /dev/null.  It swaps the FILE pointers, not the
 * descriptors: libFuzzer's and the sanitizers' reports go to descriptor 2
 * and must stay visible.  Call once, from LLVMFuzzerInitialize. */
void fuzz_quiet(void);

/* data[0..size) as a NUL-terminated string in a block of exactly size + 1
 * bytes (an embedded NUL ends the string early).  free() it. */
char *fuzz_cstr(const uint8_t *data, size_t size);

/* data[0..size) in a block of exactly size bytes (malloc(1) when 0, never
 * read).  free() it. */
void *fuzz_dup(const uint8_t *data, size_t size);

/* argv for a command's parser: argv[0] = name, then the input split at NUL
 * bytes (at most FUZZ_MAX_WORDS words), each word its own exact-size block,
 * argv[argc] = NULL.  fuzz_argv_free releases all of it. */
#define FUZZ_MAX_WORDS 48
struct fuzz_argv {
	int argc;
	char **argv;  /* what the parser gets: getopt may reorder it */
	char **words; /* the same pointers, in input order, for freeing */
};
void fuzz_argv_make(struct fuzz_argv *a, const char *name, const uint8_t *data, size_t size);
void fuzz_argv_free(struct fuzz_argv *a);

/* 1 if a and b name the same endpoint: an IPv4-mapped IPv6 address counts as
 * its IPv4 address (the library prints it so), and an IPv4 address's scope
 * and flow label do not exist; Unix addresses compare by length and bytes. */
int fuzz_addr_same(const sockit_addr *a, const sockit_addr *b);

#endif /* SOCKIT_FUZZ_H */
