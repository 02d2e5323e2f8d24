# trialchain build. `make` builds the daemon and the tool into build/bin;
# `make test` builds everything under ASan/UBSan in build/asan and runs every
# suite; `make demo` runs a local 4-node consortium end to end.
#
# Sources are found by directory, so a new module needs no Makefile edit:
#   consensus/*.c   -> libpbft.a   (libc only; `make core-libc-only` proves it)
#   node/*.c        -> libnode.a   (all but main.c) + trialchain-node
#   tools/*.c       -> trialchain
#   tests/unit/test_*.c  -> one cmocka binary each
#   tests/sim/*.c   -> sim         tests/fuzz/fuzz_*.c -> corpus replayers
#   tests/lib/*.c   -> shared test helpers, linked into every test binary

BUILD ?= build
SAN   ?= 0
CC    ?= gcc
V     ?= 0

GEN := $(BUILD)/gen
OBJ := $(BUILD)/obj
BIN := $(BUILD)/bin

ifeq ($(V),0)
Q := @
else
Q :=
endif

WARN := -std=c17 -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes \
	-Wmissing-prototypes -Wformat=2 -Wcast-align -Wvla -Wundef \
	-Wimplicit-fallthrough -Wnull-dereference -Wwrite-strings -Werror
ifneq ($(findstring gcc,$(notdir $(CC))),)
WARN += -Wlogical-op -Wduplicated-cond
endif
CORE_WARN := -Wconversion -Wsign-conversion

OPT := -O2 -g
ifeq ($(SAN),1)
OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=all
endif

PKGS := libnng libsodium leveldb libprotobuf-c jansson
DEFS := -D_GNU_SOURCE
INC  := -Iconsensus/include -Inode -Itools -I$(GEN) -Itests/lib
CFLAGS_ALL := $(WARN) $(OPT) $(DEFS) $(INC) -MMD -MP
LDLIBS := -lnng -lsodium -lleveldb -lprotobuf-c -ljansson -lpthread -lm
LDFLAGS_ALL := $(OPT)

PROTOS := $(sort $(wildcard proto/*.proto))
PB_C   := $(patsubst proto/%.proto,$(GEN)/%.pb-c.c,$(PROTOS))
PB_H   := $(PB_C:.c=.h)
PB_O   := $(patsubst $(GEN)/%.c,$(OBJ)/gen/%.o,$(PB_C))

CORE_SRC := $(sort $(wildcard consensus/*.c))
NODE_SRC := $(filter-out node/main.c,$(sort $(wildcard node/*.c)))
TOOL_SRC := $(sort $(wildcard tools/*.c))
TLIB_SRC := $(sort $(wildcard tests/lib/*.c))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
SIM_SRC  := $(sort $(wildcard tests/sim/*.c))
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
BENCH_SRC := $(sort $(wildcard tests/bench/*.c))

CORE_O := $(CORE_SRC:%.c=$(OBJ)/%.o)
NODE_O := $(NODE_SRC:%.c=$(OBJ)/%.o)
TOOL_O := $(TOOL_SRC:%.c=$(OBJ)/%.o)
TOOL_MAIN_O := $(OBJ)/tools/trialchain.o
TOOLLIB_O := $(filter-out $(TOOL_MAIN_O),$(TOOL_O))
TLIB_O := $(TLIB_SRC:%.c=$(OBJ)/%.o)
SIM_O  := $(SIM_SRC:%.c=$(OBJ)/%.o)

LIBPBFT := $(BUILD)/lib/libpbft.a
LIBNODE := $(BUILD)/lib/libnode.a
LIBTOOL := $(BUILD)/lib/libtctool.a

UNIT_BIN := $(patsubst tests/unit/%.c,$(BIN)/%,$(UNIT_SRC))
FUZZ_REPLAY := $(patsubst tests/fuzz/%.c,$(BIN)/%_replay,$(FUZZ_SRC))
BENCH_BIN := $(patsubst tests/bench/%.c,$(BIN)/%,$(BENCH_SRC))

# Generated headers and objects are kept: deleting them as intermediates
# would make the next invocation rebuild everything.
.SECONDARY:

.PHONY: all deps test test-build check demo sim sim-mutants bench fuzz chaos \
	format format-check clean core-libc-only

all: deps $(BIN)/trialchain-node $(BIN)/trialchain

deps:
	@scripts/deps.sh build

# ---- generated protobuf-c code -------------------------------------------
$(GEN)/%.pb-c.c $(GEN)/%.pb-c.h: proto/%.proto
	@mkdir -p $(GEN)
	$(Q)protoc-c --proto_path=proto --c_out=$(GEN) $<

$(OBJ)/gen/%.o: $(GEN)/%.c | $(PB_H)
	@mkdir -p $(dir $@)
	$(Q)$(CC) -std=c17 $(OPT) -I$(GEN) -MMD -MP -c $< -o $@

# ---- our code --------------------------------------------------------------
$(OBJ)/consensus/%.o: consensus/%.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS_ALL) $(CORE_WARN) -c $< -o $@

$(OBJ)/%.o: %.c | $(PB_H)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS_ALL) -c $< -o $@

$(LIBPBFT): $(CORE_O)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(LIBNODE): $(NODE_O) $(PB_O)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

# tools/*.c but main, so tests and fuzzers link the tool's parsers too.
$(LIBTOOL): $(TOOLLIB_O)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN)/trialchain-node: $(OBJ)/node/main.o $(LIBNODE) $(LIBPBFT)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS_ALL) $^ $(LDLIBS) -o $@

$(BIN)/trialchain: $(TOOL_MAIN_O) $(LIBTOOL) $(LIBNODE) $(LIBPBFT)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS_ALL) $^ $(LDLIBS) -o $@

# The consensus core must link with libc alone: a tiny program that touches
# the public API, linked without any other library.
core-libc-only: $(LIBPBFT)
	@mkdir -p $(BIN)
	$(Q)$(CC) $(CFLAGS_ALL) $(CORE_WARN) tests/lib/core_link/main.c \
		$(LIBPBFT) $(filter -fsanitize%,$(OPT)) -o $(BIN)/core-libc-only
	$(Q)$(BIN)/core-libc-only
	@! (ldd $(BIN)/core-libc-only | grep -Ev 'libc\.so|linux-vdso|ld-linux|libasan|libubsan|libm\.so|libgcc_s|libstdc\+\+|libpthread|libdl|librt' ) \
		|| (echo "consensus core links more than libc" >&2; exit 1)
	@echo "core-libc-only: consensus core links with libc alone"

# ---- tests -----------------------------------------------------------------
$(BIN)/test_%: $(OBJ)/tests/unit/test_%.o $(TLIB_O) $(LIBTOOL) $(LIBNODE) $(LIBPBFT)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS_ALL) $^ $(LDLIBS) -lcmocka -o $@

$(BIN)/sim: $(SIM_O) $(TLIB_O) $(LIBNODE) $(LIBPBFT)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS_ALL) $^ $(LDLIBS) -o $@

$(BIN)/fuzz_%_replay: $(OBJ)/tests/fuzz/fuzz_%.o $(OBJ)/tests/fuzz/replay_main.o \
		$(TLIB_O) $(LIBTOOL) $(LIBNODE) $(LIBPBFT)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS_ALL) $^ $(LDLIBS) -o $@

$(BIN)/bench_%: $(OBJ)/tests/bench/bench_%.o $(TLIB_O) $(LIBTOOL) $(LIBNODE) $(LIBPBFT)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS_ALL) $^ $(LDLIBS) -o $@

$(OBJ)/tests/fuzz/replay_main.o: tests/fuzz/replay_main.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS_ALL) -c $< -o $@

test-build: $(BIN)/trialchain-node $(BIN)/trialchain $(UNIT_BIN) $(BIN)/sim \
	$(FUZZ_REPLAY) core-libc-only

# `make test`: everything under ASan/UBSan, then the runner prints one
# "N passed, N failed" line and fails if anything failed.
test:
	@scripts/deps.sh test
	$(Q)$(MAKE) --no-print-directory BUILD=build/asan SAN=1 test-build -j2
	$(Q)BUILD=build/asan scripts/run-tests.sh

check: test

sim:
	@scripts/deps.sh build
	$(Q)$(MAKE) --no-print-directory BUILD=build/asan SAN=1 build/asan/bin/sim -j2
	$(Q)build/asan/bin/sim $(if $(SEED),--seed $(SEED)) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(NODES),--nodes $(NODES))

sim-mutants:
	@scripts/deps.sh build
	$(Q)scripts/sim-mutants.sh

demo: all
	@scripts/deps.sh demo
	$(Q)scripts/demo.sh

bench:
	@scripts/deps.sh build
	$(Q)$(MAKE) --no-print-directory all $(BENCH_BIN) -j2
	$(Q)scripts/bench.sh

fuzz:
	@scripts/deps.sh test
	$(Q)scripts/fuzz.sh

chaos:
	@scripts/deps.sh test
	$(Q)$(MAKE) --no-print-directory BUILD=build/asan SAN=1 test-build -j2
	$(Q)BUILD=build/asan scripts/chaos.sh

FMT_SRC = $(shell git ls-files '*.c' '*.h')
format:
	$(Q)clang-format -i $(FMT_SRC)

format-check:
	$(Q)clang-format --dry-run -Werror $(FMT_SRC)

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
