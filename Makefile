# onramp — plain Makefile, explicit sources, outputs under build/.
#   make            build libraries and tools
#   make check      every test (runs `make deps` first when a package is missing)
#   make integration  the stack against the Linux kernel over tap and xdp (root; skips otherwise)
#   make demo       build and run the demo
#   make bench      benchmarks
#   make fuzz       fuzz the receive path for FUZZ_SECONDS (60); `check` runs it for 30
#   make docs       regenerate the README's parameter reference
#   make install PREFIX=/usr/local DESTDIR=    (and uninstall)
#   make launcher-check   test the onramp launcher and install
#   make SAN=address,undefined ...   sanitizer build (under build/san/)

CC	?= cc
PREFIX	?= /usr/local
DESTDIR	?=

ifeq ($(SAN),)
B	:= build
SANFLAGS :=
else
B	:= build/san
SANFLAGS := -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

# Debian packages the project needs; `make deps` installs what is missing. libclang-rt-dev
# holds libFuzzer's runtime, which clang only recommends.
DEB_PKGS := build-essential pkg-config clang libcmocka-dev libjson-c-dev liburing-dev \
	    libnl-3-dev libnl-route-3-dev libxdp-dev libbpf-dev ethtool iputils-ping \
	    libclang-rt-dev jq nftables python3 curl socat nginx-light iperf3 \
	    redis-server redis-tools sockperf wrk

INCLUDES := -Ishim/abi -Ienv -Ishim/pkt -Ishim/link -Ishim/stack -Ishim/cplane -Itests/lib
CFLAGS	 ?= -O2 -g
CFLAGS	 += -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	    -fPIC -fvisibility=hidden -D_GNU_SOURCE -MMD -MP $(INCLUDES) $(SANFLAGS) $(EXTRA_CFLAGS)
LDFLAGS	 += $(SANFLAGS)
LDLIBS	 := -lm -lpthread

# ---- libraries (one per folder; a unit test links exactly what it tests) ------------------
ENV_SRCS   := env/env.c
PKT_SRCS   := shim/pkt/pool.c
STACK_SRCS := shim/stack/region.c shim/stack/stack.c shim/stack/eth.c shim/stack/arp.c \
	      shim/stack/ip.c shim/stack/icmp.c shim/stack/udp.c shim/stack/sock.c \
	      shim/stack/tcp_in.c shim/stack/tcp_out.c shim/stack/tcp_sock.c shim/stack/tcp_timer.c \
	      shim/stack/tcp_cc.c shim/stack/tcp_rack.c shim/stack/tcp_info.c shim/stack/runtime.c
LINK_SRCS  := shim/link/loop.c shim/link/tap.c shim/link/xdp.c shim/link/shmem.c
CPLANE_SRCS := shim/cplane/cplane.c
SDUMP_LIB_SRCS := tools/stackdump/read.c tools/stackdump/dump.c tools/stackdump/json.c

LIB_ENV	  := $(B)/env/libonr_env.a
LIB_PKT	  := $(B)/shim/pkt/libonr_pkt.a
LIB_STACK := $(B)/shim/stack/libonr_stack.a
LIB_LINK  := $(B)/shim/link/libonr_link.a
LIB_CPLANE := $(B)/shim/cplane/libonr_cplane.a
LIB_SDUMP := $(B)/tools/stackdump/libstackdump.a

# What the real links and the control plane link against (programs that pull in tap.o, xdp.o
# or cplane.o; the unit tests over the loop link need none of it).
URING_LIBS = $(shell pkg-config --libs liburing 2>/dev/null || echo -luring)
XDP_LIBS   = $(shell pkg-config --libs libxdp libbpf 2>/dev/null || echo -lxdp -lbpf)
NL_CFLAGS  = $(shell pkg-config --cflags libnl-route-3.0 libnl-3.0 2>/dev/null)
NL_LIBS    = $(shell pkg-config --libs libnl-route-3.0 libnl-3.0 2>/dev/null || echo -lnl-route-3 -lnl-3)

obj = $(patsubst %.c,$(B)/%.o,$(1))

# ---- programs ------------------------------------------------------------------------------
STACKDUMP  := $(B)/tools/stackdump/stackdump
BENCH_POOL := $(B)/tools/bench/bench_pool
BENCH_TCP  := $(B)/tools/bench/bench_tcp
BENCH_LINK := $(B)/tools/bench/bench_link
XFER	   := $(B)/tests/integration/xfer
LIBONRAMP  := $(B)/libonramp.so
POLL_CHECK := $(B)/tests/intercept/poll_check
MT_CHECK   := $(B)/tests/intercept/mt_check
EPFORK_CHECK := $(B)/tests/intercept/epoll_fork_check
INFO_CHECK := $(B)/tests/intercept/info_check
OOB_CHECK  := $(B)/tests/intercept/oob_check
EXEC_CHECK := $(B)/tests/intercept/exec_check
LAUNCHER   := $(B)/tools/onramp/onramp

UNIT_TESTS := $(B)/tests/unit/env/test_params \
	      $(B)/tests/unit/pkt/test_pool \
	      $(B)/tests/unit/pkt/test_pool_wait \
	      $(B)/tests/unit/stack/test_region \
	      $(B)/tests/unit/stack/test_udp \
	      $(B)/tests/unit/stack/test_ipv4 \
	      $(B)/tests/unit/stack/test_tcp \
	      $(B)/tests/unit/stack/test_sock_wait \
	      $(B)/tests/unit/stack/test_tcp_features \
	      $(B)/tests/unit/stack/test_tcp_pressure \
	      $(B)/tests/unit/stack/test_tcp_urgent \
	      $(B)/tests/unit/stack/test_sock_info \
	      $(B)/tests/unit/tools/test_stackdump \
	      $(B)/tests/unit/cplane/test_cplane \
	      $(B)/tests/unit/link/test_tap \
	      $(B)/tests/unit/link/test_xdp

ALL := $(LIB_ENV) $(LIB_PKT) $(LIB_STACK) $(LIB_LINK) $(LIB_CPLANE) $(LIB_SDUMP) $(STACKDUMP) \
	$(BENCH_POOL) $(BENCH_TCP) $(BENCH_LINK) $(XFER) $(LAUNCHER) $(LIBONRAMP) $(POLL_CHECK) $(MT_CHECK) \
	$(EPFORK_CHECK) $(INFO_CHECK) $(EXEC_CHECK) $(OOB_CHECK)

.PHONY: all check unit integration docs docs-check demo bench install deps clean format fuzz fuzz-check
.PHONY: uninstall launcher-check
all: $(ALL)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(LIB_ENV): $(call obj,$(ENV_SRCS))
$(LIB_PKT): $(call obj,$(PKT_SRCS))
$(LIB_STACK): $(call obj,$(STACK_SRCS))
$(LIB_LINK): $(call obj,$(LINK_SRCS))
$(LIB_SDUMP): $(call obj,$(SDUMP_LIB_SRCS))
$(LIB_CPLANE): $(call obj,$(CPLANE_SRCS))
$(call obj,$(CPLANE_SRCS)): CFLAGS += $(NL_CFLAGS)
$(B)/%.a:
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# The xdp link's steering program, built for the kernel and linked into libonr_link.a as data
# (_binary_steer_bpf_o_start/_end; ld names them after the file, hence the cd): no file is
# needed at run time.
BPF_CFLAGS := -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -Wall -Werror -MMD -MP
$(B)/shim/link/steer.bpf.o: shim/link/steer.bpf.c
	@mkdir -p $(dir $@)
	clang $(BPF_CFLAGS) -c $< -o $@
$(B)/shim/link/steer_blob.o: $(B)/shim/link/steer.bpf.o
	cd $(dir $@) && $(LD) -r -b binary -z noexecstack -o steer_blob.o steer.bpf.o
$(LIB_LINK): $(B)/shim/link/steer_blob.o

$(STACKDUMP): $(call obj,tools/stackdump/main.c) $(LIB_SDUMP) $(LIB_ENV)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BENCH_POOL): $(call obj,tools/bench/bench_pool.c) $(LIB_PKT)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BENCH_TCP): $(call obj,tools/bench/bench_tcp.c) $(LIB_STACK) $(LIB_LINK) $(LIB_PKT) $(LIB_ENV)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BENCH_LINK): $(call obj,tools/bench/bench_link.c tests/lib/pool_mem.c) $(LIB_LINK) $(LIB_PKT)
	$(CC) $(LDFLAGS) -o $@ $^ $(URING_LIBS) $(XDP_LIBS) $(LDLIBS)

$(XFER): $(call obj,tests/integration/xfer.c) $(LIB_STACK) $(LIB_LINK) $(LIB_CPLANE) $(LIB_PKT) \
	$(LIB_ENV)
	$(CC) $(LDFLAGS) -o $@ $^ $(URING_LIBS) $(XDP_LIBS) $(NL_LIBS) $(LDLIBS)

# The launcher is a sh template with two paths filled in: here the build tree's library and
# profiles, in `install` the installed ones (keep in sync: tests/tools/test_onramp.sh).
LAUNCHER_SED = sed -e 's|@LIBONRAMP@|$(1)|g' -e 's|@PROFILE_DIR@|$(2)|g' tools/onramp/onramp.in
$(LAUNCHER): tools/onramp/onramp.in
	@mkdir -p $(dir $@)
	$(call LAUNCHER_SED,$(CURDIR)/$(LIBONRAMP),$(CURDIR)/env/profiles) > $@.tmp
	chmod 0755 $@.tmp && mv $@.tmp $@

# The preload library: the intercept layer over the stack. The version script, made from
# calls.def, exports exactly the interposed calls; everything else stays inside.
INTERCEPT_SRCS := $(wildcard shim/intercept/*.c)
$(call obj,$(INTERCEPT_SRCS)): CFLAGS += -Ishim/intercept
$(B)/libonramp.map: shim/intercept/calls.def
	@mkdir -p $(dir $@)
	{ echo '{ global:'; sed -n 's/^ONR_CALL([^,]*, *\([a-z_0-9]*\),.*/\1;/p' $<; \
	  echo 'local: *; };'; } > $@
$(LIBONRAMP): $(call obj,$(INTERCEPT_SRCS)) $(LIB_STACK) $(LIB_LINK) $(LIB_CPLANE) $(LIB_PKT) \
	$(LIB_ENV) $(B)/libonramp.map
	$(CC) $(LDFLAGS) -shared -Wl,--version-script=$(B)/libonramp.map -Wl,-z,now -Wl,-z,defs -o $@ \
		$(filter %.o %.a,$^) $(URING_LIBS) $(XDP_LIBS) $(NL_LIBS) -ldl $(LDLIBS)

# A test program that runs under the preload library (tests/integration/test_intercept.sh).
$(B)/tests/intercept/%_check: $(B)/tests/intercept/%_check.o
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# ---- unit tests (cmocka) -------------------------------------------------------------------
CMOCKA_LIBS = $(shell pkg-config --libs cmocka 2>/dev/null || echo -lcmocka)
JSONC_LIBS  = $(shell pkg-config --libs json-c 2>/dev/null || echo -ljson-c)
JSONC_CFLAGS = $(shell pkg-config --cflags json-c 2>/dev/null)
TESTLIB := $(call obj,tests/lib/pool_assert.c tests/lib/pool_mem.c)
STACKPAIR := $(call obj,tests/lib/stackpair.c)
FRAMES := $(call obj,tests/lib/frames.c)

$(B)/tests/unit/env/test_params: $(call obj,tests/unit/env/test_params.c) $(LIB_ENV)
$(B)/tests/unit/pkt/test_pool: $(call obj,tests/unit/pkt/test_pool.c) $(TESTLIB) $(LIB_PKT)
$(B)/tests/unit/pkt/test_pool_wait: $(call obj,tests/unit/pkt/test_pool_wait.c) $(TESTLIB) \
	$(LIB_PKT)
$(B)/tests/unit/stack/test_region: $(call obj,tests/unit/stack/test_region.c) $(TESTLIB) \
	$(LIB_STACK) $(LIB_PKT) $(LIB_ENV)
$(B)/tests/unit/stack/test_udp: $(call obj,tests/unit/stack/test_udp.c) $(STACKPAIR) \
	$(TESTLIB) $(LIB_STACK) $(LIB_LINK) $(LIB_PKT) $(LIB_ENV)
$(B)/tests/unit/stack/test_ipv4: $(call obj,tests/unit/stack/test_ipv4.c) $(STACKPAIR) \
	$(FRAMES) $(TESTLIB) $(LIB_STACK) $(LIB_LINK) $(LIB_PKT) $(LIB_ENV)
$(B)/tests/unit/stack/test_tcp: $(call obj,tests/unit/stack/test_tcp.c) $(STACKPAIR) \
	$(TESTLIB) $(LIB_STACK) $(LIB_LINK) $(LIB_PKT) $(LIB_ENV)
$(B)/tests/unit/stack/test_tcp_features: $(call obj,tests/unit/stack/test_tcp_features.c) \
	$(STACKPAIR) $(FRAMES) $(TESTLIB) $(LIB_STACK) $(LIB_LINK) $(LIB_PKT) $(LIB_ENV)
$(B)/tests/unit/stack/test_tcp_pressure: $(call obj,tests/unit/stack/test_tcp_pressure.c) \
	$(STACKPAIR) $(TESTLIB) $(LIB_STACK) $(LIB_LINK) $(LIB_PKT) $(LIB_ENV)
$(B)/tests/unit/stack/test_tcp_urgent: $(call obj,tests/unit/stack/test_tcp_urgent.c) \
	$(STACKPAIR) $(FRAMES) $(TESTLIB) $(LIB_STACK) $(LIB_LINK) $(LIB_PKT) $(LIB_ENV)
$(B)/tests/unit/stack/test_sock_info: $(call obj,tests/unit/stack/test_sock_info.c) \
	$(STACKPAIR) $(TESTLIB) $(LIB_STACK) $(LIB_LINK) $(LIB_PKT) $(LIB_ENV)
$(B)/tests/unit/stack/test_sock_wait: $(call obj,tests/unit/stack/test_sock_wait.c) \
	$(STACKPAIR) $(TESTLIB) $(LIB_STACK) $(LIB_LINK) $(LIB_PKT) $(LIB_ENV)
$(B)/tests/unit/tools/test_stackdump: $(call obj,tests/unit/tools/test_stackdump.c) \
	$(TESTLIB) $(LIB_SDUMP) $(LIB_STACK) $(LIB_PKT) $(LIB_ENV)
$(B)/tests/unit/tools/test_stackdump.o: CFLAGS += $(JSONC_CFLAGS)
$(B)/tests/unit/cplane/test_cplane: $(call obj,tests/unit/cplane/test_cplane.c) $(LIB_CPLANE)
$(B)/tests/unit/cplane/test_cplane: LDLIBS += $(NL_LIBS)
$(B)/tests/unit/link/test_tap: $(call obj,tests/unit/link/test_tap.c) $(TESTLIB) $(LIB_LINK) \
	$(LIB_PKT)
$(B)/tests/unit/link/test_tap: LDLIBS += $(URING_LIBS)
$(B)/tests/unit/link/test_xdp: $(call obj,tests/unit/link/test_xdp.c) $(TESTLIB) $(LIB_LINK) \
	$(LIB_PKT)
$(B)/tests/unit/link/test_xdp: LDLIBS += $(XDP_LIBS)
$(UNIT_TESTS):
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) $(JSONC_LIBS) $(LDLIBS)

unit: $(UNIT_TESTS) $(STACKDUMP)
	ONRAMP_BUILD=$(B) ONRAMP_SRC=$(CURDIR) ONRAMP_TEST_BULK_MIB=$(ONRAMP_TEST_BULK_MIB) \
		tests/run-unit.sh $(UNIT_TESTS)

# Network namespaces, veth pairs and taps of its own; tests/integration/lib.sh says how.
integration: all
	tests/integration/run.sh $(B)

check: deps
	$(MAKE) --no-print-directory all unit docs-check launcher-check
	$(MAKE) --no-print-directory integration
	$(MAKE) --no-print-directory SAN=address,undefined ONRAMP_TEST_BULK_MIB=8 unit
	$(MAKE) --no-print-directory fuzz-check

# ---- fuzzing (libFuzzer) -------------------------------------------------------------------
# clang compiles the sources again with ASan and UBSan (the libraries above are gcc's); the
# pool's gets and puts are wrapped by tests/fuzz/pool_poison.c so that ASan sees buffers come
# and go. New inputs collect in build/fuzz/corpus/; a crash leaves its input in build/fuzz/,
# and once fixed it goes to tests/fuzz/corpus/rx/ as a regression that every run replays.
FUZZ_CC		   := clang
FUZZ_SECONDS	   ?= 60
FUZZ_CHECK_SECONDS ?= 30
FUZZ_WARN := -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	     -D_GNU_SOURCE -MMD -MP $(INCLUDES) -Itests/fuzz
FUZZ_SAN  := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_WRAP := -Wl,--wrap=pkt_pool_get,--wrap=pkt_pool_get_burst,--wrap=pkt_pool_get_bulk \
	     -Wl,--wrap=pkt_pool_get_chain,--wrap=pkt_pool_put,--wrap=pkt_pool_put_burst
FUZZ_RX	      := build/fuzz/fuzz_rx
FUZZ_RX_SRCS  := tests/fuzz/fuzz_rx.c tests/fuzz/pool_poison.c \
		 $(filter-out shim/stack/region.c shim/stack/runtime.c,$(STACK_SRCS)) shim/link/loop.c \
		 $(PKT_SRCS) $(ENV_SRCS)
FUZZ_RX_SEEDS := build/fuzz/seeds/rx.stamp
FUZZ_RX_RUN    = mkdir -p build/fuzz/corpus/rx && $(FUZZ_RX) -max_len=20000 -timeout=10 \
		 -artifact_prefix=build/fuzz/ -print_final_stats=1 build/fuzz/corpus/rx \
		 build/fuzz/seeds/rx $(wildcard tests/fuzz/corpus/rx)

build/fuzz/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -g -O1 $(FUZZ_SAN) $(FUZZ_WARN) -c $< -o $@

$(FUZZ_RX): $(patsubst %.c,build/fuzz/%.o,$(FUZZ_RX_SRCS))
	$(FUZZ_CC) $(FUZZ_SAN) $(FUZZ_WRAP) -o $@ $^ $(LDLIBS)

build/fuzz/gen_rx_seeds: tests/fuzz/gen_rx_seeds.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -g -O1 $(FUZZ_WARN) -o $@ $<

$(FUZZ_RX_SEEDS): build/fuzz/gen_rx_seeds
	rm -rf build/fuzz/seeds/rx && mkdir -p build/fuzz/seeds/rx
	build/fuzz/gen_rx_seeds build/fuzz/seeds/rx && touch $@

fuzz: $(FUZZ_RX) $(FUZZ_RX_SEEDS)
	$(FUZZ_RX_RUN) -max_total_time=$(FUZZ_SECONDS)

fuzz-check: $(FUZZ_RX) $(FUZZ_RX_SEEDS)
	$(FUZZ_RX_RUN) -max_total_time=$(FUZZ_CHECK_SECONDS)

# ---- docs: the README's parameter reference comes from env/params.def ----------------------
docs: $(STACKDUMP)
	tools/gen-readme-params.sh $(STACKDUMP) README.md

docs-check: $(STACKDUMP)
	tools/gen-readme-params.sh --check $(STACKDUMP) README.md

# ---- demo and benchmarks -------------------------------------------------------------------
demo: deps
	$(MAKE) --no-print-directory all
	tools/demo/demo.sh $(B)

bench: $(BENCH_POOL) $(BENCH_TCP) $(BENCH_LINK) $(XFER) $(LIBONRAMP) $(LAUNCHER) $(STACKDUMP)
	$(BENCH_POOL)
	$(BENCH_TCP)
	$(BENCH_LINK)
	tools/bench/bench_veth.sh $(B)
	tools/bench/bench_apps.sh $(B)

# ---- install -------------------------------------------------------------------------------
INST_BIN      = $(DESTDIR)$(PREFIX)/bin
INST_LIB      = $(DESTDIR)$(PREFIX)/lib/onramp
INST_PROFILES = $(DESTDIR)$(PREFIX)/share/onramp/profiles
INST_INCLUDE  = $(DESTDIR)$(PREFIX)/include/onramp
INST_DOC      = $(DESTDIR)$(PREFIX)/share/doc/onramp
INST_HEADERS := shim/abi/stack_shm.h shim/abi/stats.def env/env.h env/params.def
PROFILES     := $(wildcard env/profiles/*.env)

# The installed launcher is the template again, with the installed library and profiles; the
# library goes in a folder of its own, not on the linker's path: only the launcher loads it.
install: all $(LIBONRAMP)
	install -d $(INST_BIN) $(INST_LIB) $(INST_PROFILES) $(INST_INCLUDE) $(INST_DOC)
	install -m 0755 $(STACKDUMP) $(INST_BIN)/stackdump
	$(call LAUNCHER_SED,$(PREFIX)/lib/onramp/libonramp.so,$(PREFIX)/share/onramp/profiles) \
		> $(INST_BIN)/onramp
	chmod 0755 $(INST_BIN)/onramp
	install -m 0755 $(LIBONRAMP) $(INST_LIB)/libonramp.so
	install -m 0644 $(PROFILES) $(INST_PROFILES)/
	install -m 0644 $(INST_HEADERS) $(INST_INCLUDE)/
	$(STACKDUMP) doc --markdown > $(INST_DOC)/parameters.md

# Removes what `install` put there, and the folders of ours it leaves empty.
uninstall:
	rm -f $(INST_BIN)/stackdump $(INST_BIN)/onramp $(INST_LIB)/libonramp.so \
		$(addprefix $(INST_PROFILES)/,$(notdir $(PROFILES))) \
		$(addprefix $(INST_INCLUDE)/,$(notdir $(INST_HEADERS))) $(INST_DOC)/parameters.md
	-rmdir $(INST_LIB) $(INST_PROFILES) $(DESTDIR)$(PREFIX)/share/onramp $(INST_INCLUDE) \
		$(INST_DOC) 2> /dev/null

# The launcher with a stand-in library and programs, and install/uninstall into a scratch
# DESTDIR (which builds everything `install` needs, libonramp.so too, but runs none of it).
launcher-check: $(LAUNCHER) $(STACKDUMP)
	+tests/tools/test_onramp.sh $(B)

# Installs only what is missing, so it is quick and quiet when everything is there.
deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
		| grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
