# gpupool - plain Makefile.
#
#   make            build/libgpupool.so, build/sim/*, build/gpupool
#   make test       the whole suite (unit, simulator, hook integration, fuzz replay)
#   make check      the same suite built and run under ASan + UBSan (build/asan)
#   make demo       two tenants sharing one simulated GPU
#   make bench      benchmarks; tables on stdout, JSON in bench/results/
#   make fuzz       run the libFuzzer targets for FUZZ_SECONDS each (needs clang)
#
# Every target first makes sure the Debian packages are there
# (scripts/install-deps installs them as root, or prints the apt-get line).

CUDA_HOME ?= /usr/local/cuda
B ?= build
CC ?= gcc
CFLAGS ?= -O2 -g
SAN ?=
ARCH := $(shell uname -m)
FUZZ_SECONDS ?= 60

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
BASE_CFLAGS := -std=c11 $(WARN) -D_GNU_SOURCE -fPIC -Iinclude -Isrc -I$(B)/gen \
	-isystem $(CUDA_HOME)/include -MMD -MP
# Parts are hidden by default; the simulator exports through its map instead.
HIDDEN := -fvisibility=hidden
ALL_CFLAGS = $(BASE_CFLAGS) $(SAN) $(CFLAGS)
LDLIBS := -ldl -lpthread
# What the daemons (sched, scaler, agent, webhook) link; --as-needed drops
# what a program does not use.  libevent_openssl and OpenSSL: the webhook's
# HTTPS.
DAEMON_LIBS := -Wl,--as-needed -levent_openssl -levent -lssl -lcrypto -ljansson -lyaml -lcurl \
	-lnghttp2 -lprotobuf-c -lrabbitmq -lm

obj = $(patsubst src/%.c,$(B)/obj/%.o,$(patsubst src/%.S,$(B)/obj/%.o,$(1)))

COMMON_SRC := $(wildcard src/common/*.c)
REGION_SRC := $(wildcard src/region/*.c)
HOOK_SRC := $(wildcard src/hook/*.c) $(wildcard src/hook/*_$(ARCH).S)
SIM_NVML_SRC := $(wildcard src/sim/nvml*.c)
SIM_CTL_SRC := src/sim/simctl.c
SIM_CUDA_SRC := $(filter-out $(SIM_NVML_SRC) $(SIM_CTL_SRC),$(wildcard src/sim/*.c))
CLI_SRC := $(wildcard src/cli/*.c)
NET_SRC := $(wildcard src/net/*.c)
PLACE_SRC := $(wildcard src/place/*.c)
SCHED_SRC := $(wildcard src/sched/*.c)
SCALER_SRC := $(wildcard src/scaler/*.c)
SWAP_SRC := $(wildcard src/swap/*.c)
AGENT_SRC := $(wildcard src/agent/*.c)
# proto/X.proto -> $(B)/gen/X.pb-c.{c,h} (protobuf-c), linked into libgpnet.a
PROTO := $(wildcard proto/*.proto)
GEN_C := $(patsubst proto/%.proto,$(B)/gen/%.pb-c.c,$(PROTO))
GEN_OBJ := $(patsubst $(B)/gen/%.c,$(B)/obj/gen/%.o,$(GEN_C))

COMMON_OBJ := $(call obj,$(COMMON_SRC))
REGION_OBJ := $(call obj,$(REGION_SRC))
HOOK_OBJ := $(call obj,$(HOOK_SRC))
SIM_CUDA_OBJ := $(call obj,$(SIM_CUDA_SRC))
SIM_NVML_OBJ := $(call obj,$(SIM_NVML_SRC))
SIM_CTL_OBJ := $(call obj,$(SIM_CTL_SRC))
CLI_OBJ := $(call obj,$(CLI_SRC))
NET_OBJ := $(call obj,$(NET_SRC)) $(GEN_OBJ)
PLACE_OBJ := $(call obj,$(PLACE_SRC))
SCHED_OBJ := $(call obj,$(SCHED_SRC))
SCALER_OBJ := $(call obj,$(SCALER_SRC))
SWAP_OBJ := $(call obj,$(SWAP_SRC))
AGENT_OBJ := $(call obj,$(AGENT_SRC))
# Internal archives, most dependent first (the order the linker needs).
# Programs link APP_PARTS; libgphook.a defines the driver's own symbols
# (cuMemAlloc_v2, ...), so only the tests of its internals may link it:
# anywhere else it would silently take the place of the driver.
APP_PARTS := $(B)/libgpagent.a $(B)/libgpsched.a $(B)/libgpplace.a $(B)/libgpswap.a \
	$(B)/libgpscaler.a $(B)/libgpnet.a $(B)/libgpcommon.a
PARTS := $(B)/libgpagent.a $(B)/libgpsched.a $(B)/libgpplace.a $(B)/libgpswap.a \
	$(B)/libgpscaler.a $(B)/libgpnet.a $(B)/libgphook.a $(B)/libgpcommon.a

HOOK_LIB := $(B)/libgpupool.so
SIM_CUDA := $(B)/sim/libcuda.so.1
SIM_NVML := $(B)/sim/libnvidia-ml.so.1
SIM_CTL := $(B)/sim/gpupool-simctl
CLI := $(B)/gpupool
DEPS_OK := $(B)/.deps-ok

.PHONY: all test check demo bench fuzz fuzzers clean deps
all: $(HOOK_LIB) $(SIM_CUDA) $(SIM_NVML) $(SIM_CTL) $(CLI)

# --- dependencies -----------------------------------------------------------
$(DEPS_OK): scripts/install-deps
	@mkdir -p $(@D)
	@scripts/install-deps
	@touch $@
deps: $(DEPS_OK)

# --- objects ----------------------------------------------------------------
# Generated protobuf code comes first: sources may include its headers.
$(B)/gen/%.pb-c.c $(B)/gen/%.pb-c.h: proto/%.proto | $(DEPS_OK)
	@mkdir -p $(@D)
	protoc-c --proto_path=proto --c_out=$(B)/gen $<
# Generated sources are kept, not deleted as intermediates after a build.
.SECONDARY: $(GEN_C) $(GEN_C:.c=.h)
$(B)/obj/gen/%.o: $(B)/gen/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(HIDDEN) -Wno-missing-prototypes -c $< -o $@
$(B)/obj/sim/%.o: src/sim/%.c | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c $< -o $@
$(B)/obj/%.o: src/%.c | $(DEPS_OK) $(GEN_C)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(HIDDEN) -c $< -o $@
$(B)/obj/%.o: src/%.S | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(HIDDEN) -c $< -o $@

# Internal archives: unit tests and programs pick only what they use.
$(B)/libgpcommon.a: $(COMMON_OBJ) $(REGION_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^
$(B)/libgphook.a: $(HOOK_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^
$(B)/libgpnet.a: $(NET_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^
$(B)/libgpsched.a: $(SCHED_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^
$(B)/libgpplace.a: $(PLACE_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^
$(B)/libgpscaler.a: $(SCALER_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^
$(B)/libgpagent.a: $(AGENT_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^
$(B)/libgpswap.a: $(SWAP_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

# --- the hook ---------------------------------------------------------------
# The export list is generated from the one list of interposed symbols,
# plus the two dl* stubs (dlsym.c, dlopen.c).
$(B)/hook.map: src/hook/hooks.def
	@mkdir -p $(@D)
	{ echo '{ global:'; echo ' dlsym;'; echo ' dlopen;'; \
	  sed -n 's/^HOOK_[A-Z]*(\([A-Za-z0-9_]*\)).*/ \1;/p' $<; \
	  echo ' local: *; };'; } > $@
$(HOOK_LIB): $(HOOK_OBJ) $(REGION_OBJ) $(COMMON_OBJ) $(B)/hook.map
	$(CC) $(SAN) -shared -Wl,-soname,libgpupool.so -Wl,-Bsymbolic-functions \
		-Wl,-z,defs -Wl,--version-script=$(B)/hook.map \
		-o $@ $(HOOK_OBJ) $(REGION_OBJ) $(COMMON_OBJ) $(LDLIBS)

# --- the simulator ----------------------------------------------------------
$(SIM_CUDA): $(SIM_CUDA_OBJ) $(COMMON_OBJ) src/sim/libcuda.map
	@mkdir -p $(@D)
	$(CC) $(SAN) -shared -Wl,-soname,libcuda.so.1 -Wl,-Bsymbolic -Wl,-z,defs \
		-Wl,--version-script=src/sim/libcuda.map \
		-o $@ $(SIM_CUDA_OBJ) $(COMMON_OBJ) $(LDLIBS)
	ln -sf libcuda.so.1 $(B)/sim/libcuda.so
$(SIM_NVML): $(SIM_NVML_OBJ) $(COMMON_OBJ) $(SIM_CUDA) src/sim/libnvidia-ml.map
	$(CC) $(SAN) -shared -Wl,-soname,libnvidia-ml.so.1 -Wl,-Bsymbolic -Wl,-z,defs \
		-Wl,--version-script=src/sim/libnvidia-ml.map -Wl,-rpath,'$$ORIGIN' \
		-o $@ $(SIM_NVML_OBJ) $(COMMON_OBJ) -L$(B)/sim -l:libcuda.so.1 $(LDLIBS)
	ln -sf libnvidia-ml.so.1 $(B)/sim/libnvidia-ml.so
# Fault injection into a simulated machine (docs/sim.md): linked with the
# simulated driver like NVML, RUNPATH $ORIGIN so it runs as is.
$(SIM_CTL): $(SIM_CTL_OBJ) $(COMMON_OBJ) $(SIM_CUDA)
	$(CC) $(SAN) -Wl,-rpath,'$$ORIGIN' -o $@ $(SIM_CTL_OBJ) $(COMMON_OBJ) \
		-L$(B)/sim -l:libcuda.so.1 $(LDLIBS)

# --- the command ------------------------------------------------------------
$(CLI): $(CLI_OBJ) $(APP_PARTS)
	$(CC) $(SAN) -o $@ $(CLI_OBJ) $(APP_PARTS) $(DAEMON_LIBS) $(LDLIBS)

# --- tests ------------------------------------------------------------------
# tests/unit/test_X.c       cmocka, linked with the internal archives
# tests/integration/*.c     programs on the simulator; test_* are cmocka
#                           drivers, the rest are workloads they start
# tests/fuzz/fuzz_X.c       libFuzzer targets; `make test` replays them
# tests/python/test_*.py    pytest, run by tests/run with /usr/bin/python3
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/%.c,$(B)/tests/%,$(UNIT_SRC))
ITEST_LIB_SRC := $(wildcard tests/integration/lib*.c)
ITEST_SRC := $(filter-out $(ITEST_LIB_SRC),$(wildcard tests/integration/*.c))
ITEST_BIN := $(patsubst tests/%.c,$(B)/tests/%,$(ITEST_SRC))
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(patsubst tests/%.c,$(B)/tests/%,$(FUZZ_SRC))
TEST_CFLAGS = $(BASE_CFLAGS) $(SAN) $(CFLAGS) -Itests -Wno-missing-prototypes

$(B)/tests/unit/%: tests/unit/%.c $(PARTS) | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(PARTS) -lcmocka $(DAEMON_LIBS) $(LDLIBS)
$(B)/tests/integration/%: tests/integration/%.c $(ITEST_LIB_SRC) $(B)/libgpcommon.a $(SIM_CUDA) $(SIM_NVML) | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< $(ITEST_LIB_SRC) $(B)/libgpcommon.a \
		-L$(B)/sim -lcuda -lnvidia-ml -lcmocka $(LDLIBS)
# tests/integration/dso/X.c -> libX.so, libraries test_hook_views dlopens:
# linked with the simulated driver, RUNPATH $ORIGIN (their siblings).
DSO_SRC := $(wildcard tests/integration/dso/*.c)
DSO := $(patsubst tests/integration/dso/%.c,$(B)/tests/integration/dso/lib%.so,$(DSO_SRC))
$(B)/tests/integration/dso/lib%.so: tests/integration/dso/%.c $(SIM_CUDA) | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -shared -o $@ $< -Wl,-rpath,'$$ORIGIN' -L$(B)/sim -lcuda $(LDLIBS)
$(B)/tests/integration/test_hook_views: $(DSO)
$(B)/tests/integration/test_sim_health: $(SIM_CTL)
$(B)/tests/integration/test_sim_timeline: $(SIM_CTL)
$(B)/tests/integration/test_hook_share: $(SIM_CTL)
$(B)/tests/fuzz/%: tests/fuzz/%.c tests/fuzz/replay.c $(PARTS) | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -o $@ $< tests/fuzz/replay.c $(PARTS) $(DAEMON_LIBS) $(LDLIBS)

TEST_BINS = $(UNIT_BIN) $(ITEST_BIN) $(FUZZ_BIN)
test: all $(TEST_BINS) $(B)/bench/autoscale
	@GP_BUILD=$(B) GP_SAN="$(SAN)" tests/run

check:
	@$(MAKE) --no-print-directory B=build/asan CFLAGS="-O1 -g" \
		SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" test

# --- demo and benchmarks ----------------------------------------------------
demo: all $(B)/tests/integration/tenant $(B)/tests/integration/simwl
	@GP_BUILD=$(B) scripts/demo

BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(patsubst bench/%.c,$(B)/bench/%,$(BENCH_SRC))
$(B)/bench/%: bench/%.c $(SIM_CUDA) $(APP_PARTS) | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) -O2 -g -o $@ $< $(APP_PARTS) -L$(B)/sim $(DAEMON_LIBS) -lcuda $(LDLIBS)
bench: all $(BENCH_BIN)
	@GP_BUILD=$(B) bench/run

# --- fuzzing with libFuzzer -------------------------------------------------
# `make fuzz` builds every tests/fuzz/fuzz_X.c with clang for libFuzzer in
# $(B)/fuzz (a build of its own: every part compiled with coverage
# instrumentation, ASan and UBSan, the generated protobuf code included) and
# runs each for FUZZ_SECONDS.  New inputs go to $(B)/fuzz/X.corpus, crashes
# to $(B)/fuzz/X-crash-*; tests/fuzz/X.dict, if there is one, is the
# dictionary.  FUZZ_TARGETS picks some (default all: fuzz_parse ...);
# FUZZ_ARGS are passed to every run (e.g. -jobs=2).
FUZZ_CC ?= clang
FUZZ_ARGS ?=
FUZZ_TARGETS ?= $(basename $(notdir $(FUZZ_SRC)))
FUZZ_SAN := -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer
FUZZER_BIN := $(patsubst %,$(B)/fuzzers/%,$(FUZZ_TARGETS))
fuzz: | $(DEPS_OK)
	@$(MAKE) --no-print-directory B=$(B)/fuzz CC=$(FUZZ_CC) CFLAGS="-O1 -g" \
		SAN="$(FUZZ_SAN)" fuzzers
	@for n in $(FUZZ_TARGETS); do \
	  d=tests/fuzz/$$n.dict; \
	  mkdir -p $(B)/fuzz/$$n.corpus; \
	  echo "fuzz: $$n for $(FUZZ_SECONDS) s"; \
	  $(B)/fuzz/fuzzers/$$n -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	    -print_final_stats=1 -artifact_prefix=$(B)/fuzz/$$n- \
	    $$([ -f $$d ] && echo -dict=$$d) $(FUZZ_ARGS) \
	    $(B)/fuzz/$$n.corpus tests/fuzz/corpus/$$n || exit 1; \
	done
# Only meaningful in the $(B)/fuzz build made above (clang, FUZZ_SAN).
fuzzers: $(FUZZER_BIN)
$(B)/fuzzers/%: tests/fuzz/%.c $(PARTS) | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -fsanitize=fuzzer -o $@ $< $(PARTS) $(DAEMON_LIBS) $(LDLIBS)

clean:
	rm -rf $(B)

-include $(shell find $(B)/obj $(B)/tests $(B)/bench -name '*.d' 2>/dev/null)
