# walletstream - see README.md.
#
#   make                 build build/walletstream (optimised)
#   make test            build under AddressSanitizer + UndefinedBehaviorSanitizer
#                        and run every test (tests/run)
#   make run             start a local Kafka (KRaft, log in data/kafka) and the
#                        service against it (scripts/run)
#   make bench           run the benchmark suite (bench/run.sh; docs/BENCHMARKS.md)
#   make bench BENCH=api      only some steps: replay scale stream api
#   make bench QUICK=1        every step at small sizes (a smoke test, ~3 min)
#   make torture         20 rounds of kill -9 under load (ROUNDS=N to change)
#   make SANITIZE=address,undefined   any build with sanitizers (in build/san/)
#   make fuzz FUZZ_TIME=60   build the libFuzzer harnesses of fuzz/ with
#                        clang-14 (build/fuzz/) and run each for FUZZ_TIME s
#   make fuzz-cov        source coverage of the fuzz corpora (llvm-cov)
#   make fresh-check     make run and make test on a pristine Debian 12 root
#                        (debootstrap + chroot, as root; FRESH=run|test|all)
#   make V=1             show the commands
#
# Compiler and linker flags of the libraries come from pkg-config; jsmn is
# a header-only library without a .pc file.
#
# The commands a user types (make, make run, make test, make bench) first
# install what they need (scripts/install-deps build|run|test), then build
# in a second make: pkg-config is asked only there, once the packages are
# in place, never while this file is parsed on a machine that lacks them.

PKGS      := lmdb libmicrohttpd libxxhash rdkafka libcurl
CC        ?= cc
SANITIZE  ?=

ifeq ($(SANITIZE),)
  BUILD   := build
  OPT     := -O2 -g
else
  BUILD   := build/san
  OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=$(SANITIZE) -fno-sanitize-recover=all
endif

WARN      := -Wall -Wextra -Werror -Wshadow -Wconversion -Wno-sign-conversion \
             -Wno-format-truncation
# Deferred (=): expanded in recipes only, after install-deps has run.
CFLAGS     = -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) -pthread $(PKG_CFLAGS)
LDFLAGS   := $(if $(SANITIZE),-fsanitize=$(SANITIZE)) -pthread
LDLIBS     = $(PKG_LIBS)
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS))

ifeq ($(V),1)
  Q :=
  say = @true
else
  Q := @
  say = @printf '  %-6s %s\n' $(1) $(2)
endif

SRCS      := $(wildcard src/*.c)
ASMS      := $(wildcard src/*.S)
OBJS      := $(SRCS:src/%.c=$(BUILD)/obj/%.o) $(ASMS:src/%.S=$(BUILD)/obj/%.o)
LIB_OBJS  := $(filter-out $(BUILD)/obj/main.o,$(OBJS))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNITS     := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_SRCS := $(wildcard tests/tools/*.c)
TOOLS     := $(TOOL_SRCS:tests/tools/%.c=$(BUILD)/tools/%)

.PHONY: all binary deps test unit units run bench torture clean fuzz fuzz-build fuzz-cov fresh-check
SUBMAKE   := $(MAKE) --no-print-directory

all:
	$(Q)scripts/install-deps build
	$(Q)$(SUBMAKE) binary

binary: $(BUILD)/walletstream

deps:
	$(Q)scripts/install-deps test

$(BUILD)/walletstream: $(OBJS)
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/obj/%.o: src/%.c | $(BUILD)/obj
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

# Files embedded by the assembler (.incbin): see src/assets.S.
$(BUILD)/obj/%.o: src/%.S | $(BUILD)/obj
	$(call say,AS,$<)
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/obj/assets.o: src/dashboard.html src/openapi.json

$(BUILD)/tests/%: tests/unit/%.c tests/unit/wstest.h $(LIB_OBJS) | $(BUILD)/tests
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS) -Isrc $(LDFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS)

# Test tools (tests/tools/): helper programs the end-to-end tests drive.
$(BUILD)/tools/%: tests/tools/%.c $(LIB_OBJS) | $(BUILD)/tools
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS) -Isrc $(LDFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS)

$(BUILD)/obj $(BUILD)/tests $(BUILD)/tools:
	$(Q)mkdir -p $@

unit:
	$(Q)scripts/install-deps build
	$(Q)$(SUBMAKE) units

units: $(UNITS) $(TOOLS)

# The whole suite, under the sanitizers: unit tests, then end-to-end tests
# against the sanitized binary.
test:
	$(Q)scripts/install-deps test
	$(Q)$(SUBMAKE) SANITIZE=address,undefined binary units
	$(Q)tests/run build/san

# A real single-node Kafka under data/kafka and `walletstream run` against
# it, until Ctrl-C (scripts/run).
run:
	$(Q)scripts/install-deps run
	$(Q)$(SUBMAKE) binary
	$(Q)scripts/run

# The long crash torture (docs/TESTING.md "Crash torture"); ROUNDS=N to change.
torture:
	$(Q)scripts/install-deps test
	$(Q)$(SUBMAKE) binary
	$(Q)ROUNDS=$${ROUNDS:-20} WALLETSTREAM_BIN=build/walletstream python3 tests/e2e/test_torture.py

# Benchmarks (figures in docs/BENCHMARKS.md, raw results in bench/results/).
bench:
	$(Q)scripts/install-deps test
	$(Q)$(SUBMAKE) binary
	$(Q)BENCH="$(BENCH)" QUICK="$(QUICK)" bench/run.sh

# libFuzzer harnesses (fuzz/, docs/TESTING.md "Fuzzing"): the library
# built again with clang-14 and coverage instrumentation, as an archive so
# that each harness links only the modules it reaches.
FUZZ_CC    ?= clang-14
FUZZ_TIME  ?= 60
FUZZ_DIR   := build/fuzz
FUZZ_SAN   := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer \
             $(FUZZ_SAN) $(filter-out -Wno-format-truncation,$(WARN)) \
             -Wno-int-to-void-pointer-cast -pthread $(PKG_CFLAGS)
FUZZ_LIB_OBJS := $(filter-out $(FUZZ_DIR)/obj/main.o,$(SRCS:src/%.c=$(FUZZ_DIR)/obj/%.o)) \
             $(ASMS:src/%.S=$(FUZZ_DIR)/obj/%.o)
FUZZERS    := $(patsubst fuzz/%.c,$(FUZZ_DIR)/%,$(wildcard fuzz/fuzz_*.c))

fuzz-build: $(FUZZERS)

fuzz: fuzz-build
	$(Q)FUZZ_TIME=$(FUZZ_TIME) tests/fuzz_run

# Line and branch coverage of the corpora (llvm-cov), in build/fuzz-cov/.
fuzz-cov:
	$(Q)fuzz/coverage.sh

$(FUZZ_DIR)/obj/%.o: src/%.c | $(FUZZ_DIR)/obj
	$(call say,FUZZCC,$<)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(FUZZ_DIR)/obj/%.o: src/%.S $(wildcard src/*.html src/*.json) | $(FUZZ_DIR)/obj
	$(call say,FUZZAS,$<)
	$(Q)$(FUZZ_CC) -c -Isrc -o $@ $<

$(FUZZ_DIR)/libws.a: $(FUZZ_LIB_OBJS)
	$(call say,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(FUZZ_DIR)/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz.h $(FUZZ_DIR)/libws.a
	$(call say,FUZZLD,$@)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -Isrc -o $@ $< \
		$(FUZZ_DIR)/libws.a $(LDLIBS)

$(FUZZ_DIR)/obj:
	$(Q)mkdir -p $@

# The README's two commands on a pristine Debian 12 root (scripts/fresh-check,
# docs/TESTING.md "Fresh machine check"); needs root.
FRESH ?= all
fresh-check:
	$(Q)scripts/fresh-check $(FRESH)

clean:
	rm -rf build

-include $(OBJS:.o=.d) $(FUZZ_LIB_OBJS:.o=.d)
