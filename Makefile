# Makefile -- the only build file.
#
#   make            the binary and the library      make run      the server on 127.0.0.1:1234
#   make check      the fast loop: unit tests and the black-box suite once (no root, no valgrind)
#   make test       the full gate CI runs: deps, gcc and clang -Werror, format, scan-build,
#                   fuzz corpora replayed, unit tests plain, under ASan+UBSan and valgrind,
#                   a 30 s soak (epoll), the black-box suite on both backends
#   make fuzz       every libFuzzer target for FUZZ_SECONDS (tests/fuzz/README.md)
#   make soak       serve under mixed, hostile load for DURATION (60s; 30m, 1h) on BACKEND
#                   (auto, io_uring, epoll), then checks RSS, fds, counters, exit; build/soak/
#   make bench      sockit against the peer servers      make install / uninstall / format / clean
#                   (install: the binary, the libraries, the headers, man/ and the bash completion)
#
# One test: `make check T=tests/blackbox/test_serve_once.py::test_name` (pytest's node id),
# or a unit binary by hand: `make unit-bins && build/tests/test_addr`.

VERSION := $(shell sed -n 's/^\#define SOCKIT_VERSION "\(.*\)"/\1/p' include/sockit.h)
SOVERSION := $(word 1,$(subst ., ,$(VERSION)))

CC ?= cc
BUILD ?= build
PREFIX ?= /usr/local
DESTDIR ?=
PYTEST ?= pytest-3

CFLAGS ?= -O2 -g
WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla
ifeq ($(WERROR),1)
WARN += -Werror
endif
ifeq ($(SAN),1)
CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif
# The fuzz build (make fuzz, in build/fuzz): clang, libFuzzer's coverage, ASan+UBSan.
ifeq ($(FUZZ),1)
CC := clang
CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
	-fno-sanitize-recover=undefined
endif
BASE_CFLAGS := -std=gnu11 -D_GNU_SOURCE -pthread -fPIC -MMD -MP $(WARN) $(CFLAGS)
# lib/ sees only itself and include/; its symbols are hidden unless SOCKIT_API marks them.
LIB_CFLAGS := $(BASE_CFLAGS) -fvisibility=hidden -DSOCKIT_BUILDING -Iinclude -Ilib
# cmd/ sees the public headers, lib/internal.h and cmd/common; a command's own
# header sits beside its sources.
CMD_CFLAGS := $(BASE_CFLAGS) -Iinclude -Ilib -Icmd/common
TEST_CFLAGS := $(CMD_CFLAGS) -Icmd/serve -Icmd/connect -Icmd/bench -Itests/unit
LIBS := -pthread -lm

LIB_SRC := $(wildcard lib/*.c lib/loop/*.c)
CMD_SRC := $(wildcard cmd/*.c cmd/*/*.c)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
EXAMPLE_SRC := $(wildcard examples/*.c)
C_FILES := $(sort $(wildcard include/*.h lib/*.[ch] lib/*/*.[ch] cmd/*.[ch] cmd/*/*.[ch] \
	tests/unit/*.[ch] tests/fuzz/*.[ch] examples/*.c bench/peers/*.c bench/loadgen/*.c))

LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CMD_OBJ := $(CMD_SRC:%.c=$(BUILD)/obj/%.o)
# Unit tests may test any cmd/ module but main.
CMD_TESTABLE := $(filter-out $(BUILD)/obj/cmd/main.o,$(CMD_OBJ))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
EXAMPLE_BIN := $(EXAMPLE_SRC:examples/%.c=$(BUILD)/examples/%)

.PHONY: all run check test unit-bins examples check-format format install uninstall \
	bench clean deps fuzz fuzz-bins fuzz-check scan analyze soak
.DELETE_ON_ERROR:

all: $(BUILD)/sockit $(BUILD)/libsockit.a $(BUILD)/libsockit.so $(BUILD)/sockit.pc

$(BUILD)/obj/lib/%.o: lib/%.c Makefile
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -c -o $@ $<

$(BUILD)/obj/cmd/%.o: cmd/%.c Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CMD_CFLAGS) -c -o $@ $<

$(BUILD)/libsockit.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libsockit.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libsockit.so.$(SOVERSION) $(LDFLAGS) -o $@ $^ $(LIBS)

# The binary speaks TLS (serve --tls-cert): it links libsockit_tls and OpenSSL;
# libsockit itself stays libc-only.  TLS_LIBS is set below.
$(BUILD)/sockit: $(CMD_OBJ) $(BUILD)/libsockit_tls.a $(BUILD)/libsockit.a
	$(CC) $(LDFLAGS) -o $@ $(CMD_OBJ) $(BUILD)/libsockit_tls.a $(BUILD)/libsockit.a $(TLS_LIBS) \
		$(LIBS)

$(BUILD)/sockit.pc: sockit.pc.in include/sockit.h Makefile
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@

# A unit test links the library, the testable cmd/ modules and cmocka; extra
# linker flags (e.g. -Wl,--wrap=send) come from tests/unit/<name>.ldflags.
# (cmd/ modules call libsockit_tls, so it is linked too.)
$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libsockit_tls.a $(BUILD)/libsockit.a $(CMD_TESTABLE) \
		Makefile
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $(LDFLAGS) -o $@ $< $(CMD_TESTABLE) $(BUILD)/libsockit_tls.a \
		$(BUILD)/libsockit.a $(shell cat tests/unit/$*.ldflags 2>/dev/null) \
		$(shell pkg-config --libs cmocka) $(TLS_LIBS) $(LIBS)

$(BUILD)/examples/%: examples/%.c $(BUILD)/libsockit.a Makefile
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Iinclude $(LDFLAGS) -o $@ $< $(BUILD)/libsockit.a $(LIBS)

-include $(LIB_OBJ:.o=.d) $(CMD_OBJ:.o=.d) $(UNIT_BIN:=.d) $(EXAMPLE_BIN:=.d)

# ---- libsockit_tls (lib/tls/, include/sockit_tls.h): TLS on OpenSSL 3 ------------------
# A library of its own, so that libsockit stays libc-only.  Needs libssl-dev
# (scripts/deps.sh installs it for make test).  Its .so links clock.o in
# (hidden) since libsockit.so exports no sk_ names.  Its unit tests (test_tls*)
# read the certificates tests/blackbox/tlscerts.py writes to $(BUILD)/tests/tls-certs.
TLS_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard lib/tls/*.c))
TLS_LIBS := $(shell pkg-config --libs libssl libcrypto 2>/dev/null)
TLS_CERTS := $(BUILD)/tests/tls-certs/ca.pem
.PHONY: openssl-check install-tls uninstall-tls

all: $(BUILD)/libsockit_tls.a $(BUILD)/libsockit_tls.so $(BUILD)/sockit-tls.pc

openssl-check:
	@pkg-config --exists 'libssl >= 3.0' 'libcrypto >= 3.0' || { echo "libsockit_tls needs\
	 OpenSSL 3 found by pkg-config: apt-get install libssl-dev pkg-config (or scripts/deps.sh\
	 test)" >&2; exit 1; }

$(TLS_OBJ): LIB_CFLAGS += $(shell pkg-config --cflags libssl 2>/dev/null)
$(TLS_OBJ): | openssl-check

$(BUILD)/libsockit_tls.a: $(TLS_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libsockit_tls.so: $(TLS_OBJ) $(BUILD)/obj/lib/clock.o $(BUILD)/libsockit.so
	$(CC) -shared -Wl,-soname,libsockit_tls.so.$(SOVERSION) $(LDFLAGS) -o $@ $^ $(TLS_LIBS) \
		$(LIBS)

$(BUILD)/sockit-tls.pc: sockit-tls.pc.in include/sockit.h Makefile
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@

$(TLS_CERTS): tests/blackbox/tlscerts.py
	@rm -rf $(@D) $(@D).tmp
	python3 tests/blackbox/tlscerts.py $(@D).tmp
	mv $(@D).tmp $(@D)

$(BUILD)/tests/test_tls%: tests/unit/test_tls%.c $(BUILD)/libsockit_tls.a $(BUILD)/libsockit.a \
		Makefile | $(TLS_CERTS)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libsockit_tls.a $(BUILD)/libsockit.a \
		$(shell pkg-config --libs cmocka) $(TLS_LIBS) $(LIBS)

$(BUILD)/examples/tls_%: examples/tls_%.c $(BUILD)/libsockit_tls.a $(BUILD)/libsockit.a Makefile
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -Iinclude $(LDFLAGS) -o $@ $< $(BUILD)/libsockit_tls.a \
		$(BUILD)/libsockit.a $(TLS_LIBS) $(LIBS)

install: install-tls
install-tls: all
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 include/sockit_tls.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(BUILD)/libsockit_tls.a $(DESTDIR)$(PREFIX)/lib/libsockit_tls.a
	install -m 755 $(BUILD)/libsockit_tls.so $(DESTDIR)$(PREFIX)/lib/libsockit_tls.so.$(VERSION)
	ln -sf libsockit_tls.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libsockit_tls.so.$(SOVERSION)
	ln -sf libsockit_tls.so.$(SOVERSION) $(DESTDIR)$(PREFIX)/lib/libsockit_tls.so
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' sockit-tls.pc.in \
		> $(DESTDIR)$(PREFIX)/lib/pkgconfig/sockit-tls.pc
	chmod 644 $(DESTDIR)$(PREFIX)/lib/pkgconfig/sockit-tls.pc

uninstall: uninstall-tls
uninstall-tls:
	rm -f $(DESTDIR)$(PREFIX)/include/sockit_tls.h $(DESTDIR)$(PREFIX)/lib/libsockit_tls.* \
		$(DESTDIR)$(PREFIX)/lib/pkgconfig/sockit-tls.pc

-include $(TLS_OBJ:.o=.d)

unit-bins: $(UNIT_BIN)
examples: $(EXAMPLE_BIN)

run: $(BUILD)/sockit
	$(BUILD)/sockit serve

deps:
	@scripts/deps.sh test

# The fast loop: one compiler, no sanitizers, no valgrind, no root; T picks tests.
T ?= tests/blackbox
check: all unit-bins examples
	scripts/run-unit.sh $(BUILD)/tests
	SOCKIT_BIN=$(BUILD)/sockit $(PYTEST) -q -p no:cacheprovider $(T)

# The whole check, as CI runs it: dependencies, warnings as errors (gcc and
# clang), formatting, clang's and gcc's static analyzers, the fuzz targets (corpora
# replayed, a short run each), unit tests plain, under ASan+UBSan and under valgrind,
# a 30 s soak of the plain binary (on epoll, where RSS is flat; io_uring's steps:
# docs/DESIGN.md "Soak"), then the black-box suite against the
# ASan+UBSan binary (serve on its default backend, io_uring) and against the
# plain one (serve on epoll); the plain run's summary is the last line.
test: deps
	$(MAKE) --no-print-directory WERROR=1 all unit-bins examples
	$(MAKE) --no-print-directory WERROR=1 BUILD=build/asan SAN=1 all unit-bins
	$(MAKE) --no-print-directory WERROR=1 BUILD=build/clang CC=clang all unit-bins
	$(MAKE) --no-print-directory check-format
	$(MAKE) --no-print-directory scan
	$(MAKE) --no-print-directory analyze
	$(MAKE) --no-print-directory WERROR=1 fuzz-check
	scripts/run-unit.sh build/tests
	scripts/run-unit.sh build/asan/tests
	scripts/run-unit.sh --valgrind build/tests
	$(MAKE) --no-print-directory soak DURATION=30s BACKEND=epoll
	SOCKIT_BIN=build/asan/sockit $(PYTEST) -q -p no:cacheprovider tests/blackbox
	SOCKIT_TEST_BACKEND=epoll $(PYTEST) -q -p no:cacheprovider tests/blackbox

# ---- Fuzzing (tests/fuzz/, tests/fuzz/README.md): libFuzzer, clang ASan+UBSan -------------
# `make fuzz` runs every target (or FUZZ_TARGETS) for FUZZ_SECONDS each, one
# after the other, FUZZ_JOBS processes per target, and prints a table of
# executions and coverage; a crash's input lands in tests/fuzz/crashes/TARGET/
# with the command that reproduces it.  `make fuzz-check` (in make test)
# replays every corpus file through every target, then fuzzes each for
# FUZZ_CHECK_SECONDS.  Targets link libsockit and the cmd/ modules but main.
FUZZ_SECONDS ?= 60
FUZZ_CHECK_SECONDS ?= 4
FUZZ_JOBS ?= 1
FUZZ_ALL := $(patsubst tests/fuzz/%.c,%,$(filter-out tests/fuzz/fuzz.c,$(wildcard tests/fuzz/*.c)))
FUZZ_TARGETS ?= $(FUZZ_ALL)
FUZZ_BIN := $(FUZZ_ALL:%=$(BUILD)/fuzzers/%)
FUZZ_MAKE := $(MAKE) --no-print-directory BUILD=build/fuzz FUZZ=1 fuzz-bins

fuzz:
	@$(FUZZ_MAKE)
	scripts/fuzz.sh run build/fuzz/fuzzers $(FUZZ_SECONDS) $(FUZZ_JOBS) $(FUZZ_TARGETS)

fuzz-check:
	@$(FUZZ_MAKE)
	scripts/fuzz.sh check build/fuzz/fuzzers $(FUZZ_CHECK_SECONDS) 1 $(FUZZ_ALL)

fuzz-bins: $(FUZZ_BIN)
ifneq ($(FUZZ),1)
	$(error fuzz-bins is built by make fuzz (FUZZ=1, BUILD=build/fuzz))
endif

$(BUILD)/obj/tests/fuzz/fuzz.o: tests/fuzz/fuzz.c tests/fuzz/fuzz.h Makefile
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -c -o $@ $<

$(BUILD)/fuzzers/%: tests/fuzz/%.c $(BUILD)/obj/tests/fuzz/fuzz.o $(BUILD)/libsockit_tls.a \
		$(BUILD)/libsockit.a $(CMD_TESTABLE) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -Itests/fuzz -fsanitize=fuzzer,address,undefined -o $@ $< \
		$(BUILD)/obj/tests/fuzz/fuzz.o $(CMD_TESTABLE) $(BUILD)/libsockit_tls.a \
		$(BUILD)/libsockit.a $(TLS_LIBS) $(LIBS)

-include $(FUZZ_BIN:=.d) $(BUILD)/obj/tests/fuzz/fuzz.d

# ---- Soak (tests/soak/soak.py): serve under mixed, hostile load ---------------------------
# Three servers side by side (once + UDP, line over TLS, echo behind PROXY)
# get `sockit bench` in every mode plus hostile clients (slow readers,
# never-readers, resets, garbage, long lines, floods past --max-conns and
# --udp-rate) for DURATION; their RSS, fds, CPU and /metrics are sampled.
# It fails (naming the check) unless bench saw no error, RSS grew < 5% after
# the warm-up, fds and counters came back and add up, and SIGTERM exits 0.
# Table on stdout; plot, samples and logs in $(BUILD)/soak.  The checks'
# own tests (tests/soak/test_checks.py) run first.  The plain build: ASan's
# quarantine would read as a leak.
DURATION ?= 60s
BACKEND ?= auto
soak: all
	$(PYTEST) -q -p no:cacheprovider tests/soak
	python3 tests/soak/soak.py --sockit $(BUILD)/sockit --duration $(DURATION) \
		--backend $(BACKEND) --out $(BUILD)/soak

# ---- Static analysis: clang's analyzer over the whole build; any report fails --------
# A fresh build dir, so that every file is analysed; reports in build/scan/report.
scan:
	@rm -rf build/scan
	scan-build --status-bugs --use-cc=clang -o build/scan/report \
		$(MAKE) -s --no-print-directory -j2 BUILD=build/scan all unit-bins examples

# gcc's -fanalyzer, a second opinion (docs/DESIGN.md, "Static analysis"): at
# -O0, since -O1 folds away the very malloc/free pairs it checks; a finding
# fails the build.
analyze:
	$(MAKE) -s --no-print-directory -j2 WERROR=1 BUILD=build/analyzer \
		CFLAGS='-O0 -g -fanalyzer' all unit-bins

check-format:
	@bad=$$(clang-format --dry-run --Werror $(C_FILES) 2>&1 | \
		sed -n 's/^\([^:]*\):[0-9]*:[0-9]*: error.*/\1/p' | sort -u); \
	if [ -n "$$bad" ]; then echo "not clang-formatted (run make format): $$bad"; exit 1; fi; \
	echo "format: ok"

format:
	clang-format -i $(C_FILES)

install: all install-man install-completion
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include \
		$(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(BUILD)/sockit $(DESTDIR)$(PREFIX)/bin/sockit
	install -m 644 include/sockit.h include/sockit_loop.h include/sockit_proxy.h \
		$(DESTDIR)$(PREFIX)/include/
	install -m 644 $(BUILD)/libsockit.a $(DESTDIR)$(PREFIX)/lib/libsockit.a
	install -m 755 $(BUILD)/libsockit.so $(DESTDIR)$(PREFIX)/lib/libsockit.so.$(VERSION)
	ln -sf libsockit.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libsockit.so.$(SOVERSION)
	ln -sf libsockit.so.$(SOVERSION) $(DESTDIR)$(PREFIX)/lib/libsockit.so
	@# written here, not copied from $(BUILD): that one may hold an older PREFIX
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' sockit.pc.in \
		> $(DESTDIR)$(PREFIX)/lib/pkgconfig/sockit.pc
	chmod 644 $(DESTDIR)$(PREFIX)/lib/pkgconfig/sockit.pc

uninstall: uninstall-man uninstall-completion
	rm -f $(DESTDIR)$(PREFIX)/bin/sockit $(DESTDIR)$(PREFIX)/include/sockit.h \
		$(DESTDIR)$(PREFIX)/include/sockit_loop.h $(DESTDIR)$(PREFIX)/include/sockit_proxy.h \
		$(DESTDIR)$(PREFIX)/lib/libsockit.* \
		$(DESTDIR)$(PREFIX)/lib/pkgconfig/sockit.pc

# The manual pages (man/, mdoc; tests/blackbox/test_man.py lints them and checks them
# against --help and include/) and the bash completion: plain files, no build needed.
MANDIR ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
MAN1 := $(wildcard man/*.1)
MAN3 := $(wildcard man/*.3)
.PHONY: install-man uninstall-man install-completion uninstall-completion

install-man:
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3
	install -m 644 $(MAN1) $(DESTDIR)$(MANDIR)/man1/
	install -m 644 $(MAN3) $(DESTDIR)$(MANDIR)/man3/

uninstall-man:
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MAN1))) \
		$(addprefix $(DESTDIR)$(MANDIR)/man3/,$(notdir $(MAN3)))

install-completion:
	install -d $(DESTDIR)$(BASHCOMPDIR)
	install -m 644 contrib/bash-completion/sockit $(DESTDIR)$(BASHCOMPDIR)/sockit

uninstall-completion:
	rm -f $(DESTDIR)$(BASHCOMPDIR)/sockit

# Side-by-side comparison with the peer servers (bench/README.md).  run.py
# builds the C peers and bench/loadgen/lg2 into $(BUILD)/bench itself (with
# -Wall -Wextra -Werror).  QUICK=1 makes a smoke run of the harness (one
# workload of each kind); BENCH_ARGS passes more, e.g.
# BENCH_ARGS="--servers epoll,sockit --workloads tls,unix".
bench: all
	@scripts/deps.sh bench
	python3 bench/run.py --sockit $(BUILD)/sockit --bindir $(BUILD)/bench $(if $(QUICK),--quick) \
		$(BENCH_ARGS)

clean:
	rm -rf $(BUILD)
