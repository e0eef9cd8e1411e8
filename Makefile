# walletstream - see README.md.
#
#   make                 build build/walletstream (optimised)
#   make test            build under AddressSanitizer + UndefinedBehaviorSanitizer
#                        and run every test (tests/run)
#   make run             start the service on its embedded defaults
#   make bench           run the benchmarks (bench/replay.sh, bench/stream.sh)
#   make torture         20 rounds of kill -9 under load (ROUNDS=N to change)
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
OBJS      := $(SRCS:src/%.c=$(BUILD)/obj/%.o)
LIB_OBJS  := $(filter-out $(BUILD)/obj/main.o,$(OBJS))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNITS     := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_SRCS := $(wildcard tests/tools/*.c)
TOOLS     := $(TOOL_SRCS:tests/tools/%.c=$(BUILD)/tools/%)

.PHONY: all deps test unit run bench torture clean
all: deps $(BUILD)/walletstream

deps:
	$(Q)scripts/install-deps

$(BUILD)/walletstream: $(OBJS)
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/obj/%.o: src/%.c | $(BUILD)/obj
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c tests/unit/wstest.h $(LIB_OBJS) | $(BUILD)/tests
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS) -Isrc $(LDFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS)

# Test tools (tests/tools/): helper programs the end-to-end tests drive.
$(BUILD)/tools/%: tests/tools/%.c $(LIB_OBJS) | $(BUILD)/tools
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS) -Isrc $(LDFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS)

$(BUILD)/obj $(BUILD)/tests $(BUILD)/tools:
	$(Q)mkdir -p $@

unit: deps $(UNITS) $(TOOLS)

# The whole suite, under the sanitizers: unit tests, then end-to-end tests
# against the sanitized binary.
test:
	$(Q)scripts/install-deps
	$(Q)$(MAKE) --no-print-directory SANITIZE=address,undefined all unit
	$(Q)tests/run build/san

run: all
	$(Q)scripts/run

# The long crash torture (docs/TESTING.md "Crash torture"); ROUNDS=N to change.
torture: all
	$(Q)ROUNDS=$${ROUNDS:-20} WALLETSTREAM_BIN=build/walletstream python3 tests/e2e/test_torture.py

# Benchmarks (figures in docs/BENCHMARKS.md, raw results in bench/results/).
bench: all
	$(Q)bench/replay.sh
	$(Q)bench/stream.sh

clean:
	rm -rf build

-include $(OBJS:.o=.d)
