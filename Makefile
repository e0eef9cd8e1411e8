# walletstream - see README.md.
#
#   make                 build build/walletstream (optimised)
#   make test            build under AddressSanitizer + UndefinedBehaviorSanitizer
#                        and run every test (tests/run)
#   make run             start the service on its embedded defaults
#   make bench           run the benchmark suite (bench/run.sh; docs/BENCHMARKS.md)
#   make bench BENCH=api      only some steps: replay scale stream api
#   make bench QUICK=1        every step at small sizes (a smoke test, ~3 min)
#   make SANITIZE=address,undefined   any build with sanitizers (in build/san/)
#   make V=1             show the commands
#
# Compiler and linker flags of the libraries come from pkg-config; jsmn is
# a header-only library without a .pc file.

PKGS      := lmdb libmicrohttpd libxxhash rdkafka
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
CFLAGS    := -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) -pthread \
             $(shell pkg-config --cflags $(PKGS))
LDFLAGS   := $(if $(SANITIZE),-fsanitize=$(SANITIZE)) -pthread
LDLIBS    := $(shell pkg-config --libs $(PKGS))

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

.PHONY: all deps test unit run bench clean
all: deps $(BUILD)/walletstream

deps:
	$(Q)scripts/install-deps

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

$(BUILD)/obj $(BUILD)/tests:
	$(Q)mkdir -p $@

unit: deps $(UNITS)

# The whole suite, under the sanitizers: unit tests, then end-to-end tests
# against the sanitized binary.
test:
	$(Q)scripts/install-deps
	$(Q)$(MAKE) --no-print-directory SANITIZE=address,undefined all unit
	$(Q)tests/run build/san

run: all
	$(Q)scripts/run

# Benchmarks (figures in docs/BENCHMARKS.md, raw results in bench/results/).
bench: all
	$(Q)BENCH="$(BENCH)" QUICK="$(QUICK)" bench/run.sh

clean:
	rm -rf build

-include $(OBJS:.o=.d)
