# tokend - build, run, test, bench. See README.md.
.DEFAULT_GOAL := all
SHELL := /bin/bash

BUILD   ?= build
PKGS    := libh2o-evloop libsodium yajl libpq libcurl openssl
VERSION := 0.1.0

# libFuzzer targets (tests/fuzz): clang's -fsanitize=fuzzer; `make test` runs them over their
# seed corpora (t_22_fuzz.sh), so they are part of DEB_PKGS.
FUZZ_DEB_PKGS := clang-14 libfuzzer-14-dev
# The PKCS#11 master key provider: p11-kit's header and proxy module, SoftHSM2 for the tests
# (t_43_pkcs11.sh) and pkcs11-tool (opensc) to check the key's attributes from outside.
P11_DEB_PKGS := libp11-kit-dev p11-kit-modules softhsm2 opensc
# Debian packages the build, `make run` and `make test` need (checked with dpkg -s).
DEB_PKGS := build-essential pkg-config libh2o-evloop-dev libssl-dev libpq-dev libyajl-dev \
            libsodium-dev check libcurl4-openssl-dev postgresql postgresql-contrib \
            nghttp2-client curl jq openssl procps prometheus python3-h2 gdb util-linux \
            python3-yaml systemd $(P11_DEB_PKGS) $(FUZZ_DEB_PKGS)
BENCH_DEB_PKGS := nghttp2-client postgresql-contrib
# `make test-ha` and `make bench-ha` (issue #17, tests/ha/): Patroni with one etcd member, and
# pgBackRest for the backup test. Not in DEB_PKGS: `make test` and `make run` do not need them.
HA_DEB_PKGS := patroni etcd-server pgbackrest python3-etcd python3-psycopg2

# Read when this Makefile is read: on a fresh machine the -dev packages are not there yet, so
# every target that installs them (run, test, bench, asan, coverage) builds in a sub-make
# started after `deps` (see `build`), which reads these again.
PKG_CONFIG ?= pkg-config
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
# PKCS#11 (--master-key-pkcs11): p11-kit's pkcs11.h and its proxy module as the default
# module; the module itself is dlopen()ed, nothing is linked (master_key_pkcs11.c).
P11_CFLAGS := $(shell $(PKG_CONFIG) --cflags p11-kit-1 2>/dev/null) \
              -DTOK_PKCS11_PROXY='"$(or $(shell $(PKG_CONFIG) --variable=proxy_module p11-kit-1 2>/dev/null),p11-kit-proxy.so)"'
CHECK_LIBS := $(shell $(PKG_CONFIG) --libs check 2>/dev/null)

OPT     ?= -O2
CFLAGS  += $(OPT) -std=c11 -g -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
           -Wmissing-prototypes -Wformat=2 -fstack-protector-strong -U_FORTIFY_SOURCE \
           -D_FORTIFY_SOURCE=2 -fPIE -MMD -MP -D_GNU_SOURCE -DH2O_USE_LIBUV=0 \
           -DTOKEND_VERSION='"$(VERSION)"' -Iinclude -I$(BUILD)/gen $(PKG_CFLAGS) $(P11_CFLAGS) $(EXTRA_CFLAGS)
LDFLAGS += -pie -Wl,-z,relro,-z,now $(EXTRA_LDFLAGS)
LDLIBS  += $(PKG_LIBS) -lpthread

LIB_SRCS  := $(filter-out service/%_main.c,$(wildcard service/*.c service/*/*.c))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
UNIT_SRCS := $(wildcard tests/unit/check_*.c)
UNIT_OBJS := $(UNIT_SRCS:%.c=$(BUILD)/obj/%.o)
TOOLS_SRCS := $(wildcard tests/tools/*.c)
TOOLS     := $(TOOLS_SRCS:tests/tools/%.c=$(BUILD)/%)
BINS      := $(BUILD)/tokend $(BUILD)/tokenctl

.PHONY: all build deps e2e-deps lint-deps run test unit integration asan coverage bench clean stop-db \
        ha-deps test-ha bench-ha \
        fmt fuzz fuzz-deps fuzz-build fuzz-targets
all: $(BINS) $(BUILD)/check_unit $(TOOLS)

# deps, then BUILD_GOALS in a sub-make whose pkg-config flags see what deps installed.
BUILD_GOALS ?= all
build: deps
	@$(MAKE) --no-print-directory $(BUILD_GOALS)

# ---- dependencies -----------------------------------------------------------
deps:
	@missing=""; for p in $(DEB_PKGS); do \
	    dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	    echo "deps: installing$$missing"; \
	    SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The browser test (tests/e2e): Debian's chromium, best effort (without it t_20_e2e.sh prints
# SKIPPED), and playwright-core from tests/e2e/package-lock.json.
E2E_DEB_PKGS := chromium
e2e-deps:
	@dpkg -s $(E2E_DEB_PKGS) >/dev/null 2>&1 || { SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    --no-install-recommends $(E2E_DEB_PKGS) || echo "e2e-deps: WARNING: chromium cannot be installed: the browser test will be SKIPPED"; }
	@[ tests/e2e/node_modules/.package-lock.json -nt tests/e2e/package-lock.json ] || \
	    (cd tests/e2e && npm ci --no-audit --no-fund)

# The contract and packaging linters (@redocly/cli, ajv, dockerfilelint) from the committed
# package-lock.json files; `npm ci` installs exactly those versions (from npm's cache when offline).
LINT_NODE_DIRS := tests/openapi tests/docker tests/contracts tests/brands
lint-deps:
	@for d in $(LINT_NODE_DIRS); do \
	    [ $$d/node_modules/.package-lock.json -nt $$d/package-lock.json ] || \
	    (cd $$d && npm ci --no-audit --no-fund) || exit 1; done

# ---- build ------------------------------------------------------------------
$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/tokend: $(BUILD)/obj/service/tokend_main.o $(LIB_OBJS)
	@echo "  LD      $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tokenctl: $(BUILD)/obj/service/tokenctl_main.o $(LIB_OBJS)
	@echo "  LD      $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%: $(BUILD)/obj/tests/tools/%.o $(LIB_OBJS)
	@echo "  LD      $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
# made through the pattern rule above, so make would delete them as intermediates and
# rebuild the tools on every run
.SECONDARY: $(TOOLS_SRCS:%.c=$(BUILD)/obj/%.o)

# The suite list is generated from the test files, so adding a suite is one file.
$(BUILD)/gen/suites.h: $(UNIT_SRCS)
	@mkdir -p $(dir $@)
	@grep -ho '^Suite \*tok_[a-z0-9_]*_suite(void)' $(filter-out tests/unit/check_main.c,$^) \
	    | sed -E 's/^Suite \*(tok_[a-z0-9_]*_suite)\(void\)/TOK_SUITE(\1)/' > $@.tmp && mv $@.tmp $@

# The schema version this build needs: the number of the newest sql/NNN_*.sql.
$(BUILD)/gen/schema_version.h: $(wildcard sql/*.sql)
	@mkdir -p $(dir $@)
	@v=$$(ls sql/ | sed -nE 's/^([0-9]{3})_.*\.sql$$/\1/p' | sort -n | tail -n 1); \
	    printf '#define TOK_SCHEMA_VERSION %d\n' "$$((10#$${v:-0}))" > $@.tmp && mv $@.tmp $@

# The OpenAPI document as a C string, so GET /v1/openapi.json does no file I/O. '?' is escaped
# because -std=c11 reads trigraphs.
$(BUILD)/gen/openapi_json.h: docs/openapi.json
	@mkdir -p $(dir $@)
	@{ printf 'static const char tok_openapi_json[] =\n'; \
	   sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/?/\\?/g' -e 's/^/    "/' -e 's/$$/\\n"/' $<; \
	   printf '    "";\n'; } > $@.tmp && mv $@.tmp $@

# The IIN table rows from the one brand data file (the element's iin.json is built from them).
$(BUILD)/gen/iin_rows.h: service/vault/iin_ranges.tsv scripts/gen-iin-rows.sh
	@mkdir -p $(dir $@)
	@./scripts/gen-iin-rows.sh $< > $@.tmp && mv $@.tmp $@

$(LIB_OBJS): | $(BUILD)/gen/schema_version.h
$(BUILD)/obj/service/vault/iin_table.o: $(BUILD)/gen/iin_rows.h
$(BUILD)/obj/service/http/health.o: $(BUILD)/gen/schema_version.h
$(BUILD)/obj/service/http/openapi.o: $(BUILD)/gen/openapi_json.h
$(BUILD)/obj/tests/unit/check_main.o: $(BUILD)/gen/suites.h
$(BUILD)/obj/tests/unit/%.o: CFLAGS += -I$(BUILD)/gen -Wno-missing-prototypes

$(BUILD)/check_unit: $(UNIT_OBJS) $(LIB_OBJS)
	@echo "  LD      $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(CHECK_LIBS)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# ---- run --------------------------------------------------------------------
run: build
	@BUILD=$(BUILD) ./scripts/dev-run.sh

stop-db:
	@BUILD=$(BUILD) ./scripts/dev-run.sh stop-db

# ---- tests ------------------------------------------------------------------
test: deps e2e-deps lint-deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) ./tests/run-all.sh

unit: all
	@$(BUILD)/check_unit

integration: all
	@BUILD=$(BUILD) ./tests/integration/run.sh

# Replication and failover (issue #17, docs/replication.md): a Patroni cluster (primary and
# synchronous standby, one etcd) in a temp dir, fault tests under load, backup and restore.
ha-deps:
	@$(MAKE) --no-print-directory DEB_PKGS="$(HA_DEB_PKGS)" deps

test-ha: build ha-deps
	@BUILD=$(BUILD) ./tests/ha/run.sh

SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
asan: deps
	@$(MAKE) --no-print-directory BUILD=build/asan all OPT="-O1" \
	    EXTRA_CFLAGS="$(SAN)" EXTRA_LDFLAGS="$(SAN)"
	@BUILD=build/asan CK_FORK=no TOKEND_TEST_SANITIZER=1 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1 ./tests/run-all.sh

coverage: deps
	@$(MAKE) --no-print-directory BUILD=build/coverage all OPT="-Og" \
	    EXTRA_CFLAGS="--coverage" EXTRA_LDFLAGS="--coverage"
	@BUILD=build/coverage ./tests/run-all.sh

bench: build
	@BUILD=$(BUILD) ./bench/run.sh

# bench/run.sh's ratio on a Patroni cluster whose commits wait for a synchronous standby
bench-ha: build ha-deps
	@BUILD=$(BUILD) ./bench/ha.sh

# ---- fuzzing (tests/fuzz/README.md) ------------------------------------------
# One libFuzzer binary per tests/fuzz/fuzz_<name>.c, linked against the library compiled
# with clang-14 and the fuzzer's coverage instrumentation in its own tree (build/fuzz).
# `make fuzz FUZZ_S=N` runs each target N seconds over its corpus (new inputs go to
# build/fuzz/corpus/<name>, the checked-in seeds stay as they are).
FUZZ_CC    ?= clang-14
FUZZ_BUILD ?= build/fuzz
FUZZ_S     ?= 60
FUZZ_SRCS  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS  := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/%)
FUZZ_SAN   := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
fuzz-deps:
	@$(MAKE) --no-print-directory DEB_PKGS="$(FUZZ_DEB_PKGS)" deps

fuzz-build: fuzz-deps
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) OPT=-O1 \
	    EXTRA_CFLAGS="$(FUZZ_SAN) -fsanitize=fuzzer-no-link" EXTRA_LDFLAGS="$(FUZZ_SAN)" fuzz-targets

fuzz-targets: $(FUZZ_BINS)

# the library as an archive, so each target links only the objects it reaches
$(BUILD)/libtokend.a: $(LIB_OBJS)
	@echo "  AR      $@"
	@rm -f $@ && ar rcs $@ $^

$(BUILD)/fuzz_%: $(BUILD)/obj/tests/fuzz/fuzz_%.o $(BUILD)/libtokend.a
	@echo "  LD      $@"
	@$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)
$(BUILD)/obj/tests/fuzz/%.o: CFLAGS += -Itests/fuzz
.SECONDARY: $(FUZZ_SRCS:%.c=$(BUILD)/obj/%.o)

fuzz: fuzz-build
	@FUZZ_BUILD=$(FUZZ_BUILD) tests/fuzz/run.sh --seconds $(FUZZ_S)

fmt:
	clang-format -i service/*.c service/*/*.c include/tokend/*.h include/tokend/*/*.h tests/unit/*.c

clean:
	rm -rf build
