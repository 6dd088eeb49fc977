# mod_claude: top-level Makefile.
#
#   make                 build both modules (no root needed)
#   make install         install them the Debian way (a2enmod claude_gateway)
#   make check           C unit tests and fuzz corpus replay
#   make test            everything CI runs: format, unit, fuzz replay, integration
#   make run             a local gateway with embedded defaults (see README)
#   make SANITIZE=1 ...  ASan + UBSan build of modules and unit tests
#   make format / format-check

.DEFAULT_GOAL := all
include apxs.mk
include audit.mk

PYTHON   ?= /usr/bin/python3
DESTDIR  ?=
MODS_AVAILABLE ?= $(DESTDIR)/etc/apache2/mods-available
CONF_AVAILABLE ?= $(DESTDIR)/etc/apache2/conf-available
APR_CFLAGS := $(shell apr-1-config --cflags --cppflags --includes 2>/dev/null) \
              $(shell apu-1-config --includes 2>/dev/null)
APR_LIBS   := $(shell apr-1-config --link-ld --libs 2>/dev/null) \
              $(shell apu-1-config --link-ld 2>/dev/null)
CHECK_LIBS := $(shell $(PKGCONFIG) --libs check 2>/dev/null)

CC ?= cc
UNIT_CFLAGS := $(WARN) -std=gnu11 -g -O1 $(APR_CFLAGS) -I$(CG_DIR) -I$(CG_DIR)/otlp -I$(CS_DIR)
ifeq ($(SANITIZE),1)
UNIT_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif
UNIT_LIBS := $(APR_LIBS) -ljansson -lyaml -lcrypto -lprotobuf-c -lz -lm $(CHECK_LIBS)

MODULES := $(CG_DIR)/mod_claude_gateway.la $(CS_DIR)/mod_claude_spend.la
UNIT_SRCS := $(wildcard t/unit/*.c)
FUZZ_SRCS := $(wildcard t/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst t/fuzz/%.c,build/%,$(FUZZ_SRCS))
C_FILES := $(filter-out $(CG_DIR)/cg_schema.h,$(wildcard $(CG_DIR)/*.[ch] $(CS_DIR)/*.[ch] t/unit/*.[ch] t/fuzz/*.[ch])) \
           $(wildcard audit/*.[ch])

.PHONY: all install check unit fuzz-replay test integration run format format-check \
        check-pure clean deps

all: $(MODULES) build/claude-auditlog

build:
	mkdir -p build

build/unit_tests: $(UNIT_SRCS) $(CG_PURE) $(CS_PURE) $(CG_HDRS) $(CS_HDRS) $(AUDIT_PURE) $(AUDIT_HDRS) | build
	$(CC) $(UNIT_CFLAGS) -I audit -o $@ $(UNIT_SRCS) $(CG_PURE) $(CS_PURE) $(AUDIT_PURE) $(UNIT_LIBS)

build/fuzz_%: t/fuzz/fuzz_%.c t/fuzz/standalone.c $(CG_PURE) $(CS_PURE) | build
	$(CC) $(UNIT_CFLAGS) -o $@ $< t/fuzz/standalone.c $(CG_PURE) $(CS_PURE) $(APR_LIBS) -ljansson -lyaml -lcrypto -lprotobuf-c -lz -lm

unit: build/unit_tests
	CK_FORK=yes build/unit_tests

fuzz-replay: $(FUZZ_BINS)
	@set -e; for b in $(FUZZ_BINS); do n=$${b#build/fuzz_}; \
	    $$b t/fuzz/corpus/$$n; done

# PURE files must not include httpd headers: they are built without httpd.
check-pure:
	@bad=$$(grep -lE '#include[[:space:]]+[<"](httpd|http_[a-z_]+|util_[a-z_]+|ap_[a-z_]+)\.h' \
	    $(CG_PURE) $(CS_PURE) $(CG_PURE:.c=.h) $(CS_PURE:.c=.h) || true); \
	if [ -n "$$bad" ]; then echo "httpd header in a PURE file: $$bad"; exit 1; fi

check: check-pure unit fuzz-replay

integration: all
	cd t/integration && $(PYTHON) -m pytest -ra -p no:cacheprovider $(PYTEST_ARGS) .

deps:
	bash tools/install-deps.sh
	bash tools/install-claude.sh >/dev/null

# The README's test command: installs what is missing, then everything CI runs.
test: deps
	$(MAKE) format-check
	$(MAKE) all
	$(MAKE) check
	$(MAKE) integration

install: all
	$(APXS) -i -n claude_gateway $(CG_DIR)/mod_claude_gateway.la
	$(APXS) -i -n claude_spend $(CS_DIR)/mod_claude_spend.la
	install -d $(MODS_AVAILABLE)
	install -m 644 conf/claude_gateway.load conf/claude_gateway.conf \
	    conf/claude_spend.load conf/claude_spend.conf $(MODS_AVAILABLE)/
	install -D -m 755 build/claude-auditlog $(DESTDIR)/usr/local/bin/claude-auditlog
	install -d $(CONF_AVAILABLE)
	install -m 644 conf/claude-gateway-log.conf conf/claude-spend-admin.conf $(CONF_AVAILABLE)/
	install -D -m 644 conf/claude-gateway-policy.yaml \
	    $(DESTDIR)/usr/share/doc/mod-claude/examples/claude-gateway-policy.yaml
	install -D -m 644 conf/claude-gateway-vhost.conf.example \
	    $(DESTDIR)/usr/share/doc/mod-claude/examples/claude-gateway-vhost.conf

run:
	bash tools/run-local.sh

# The benchmark harness (bench/run.py) on a few hundred requests per target,
# and one short round of bench/ab.py (bare against the gateway), then its
# --pool over that round written out:
# prints the table, never fails on the figures, only when the harness breaks.
.PHONY: bench-smoke
bench-smoke: all
	$(PYTHON) bench/run.py --smoke
	$(PYTHON) bench/ab.py --smoke --out build/ab-smoke.json
	$(PYTHON) bench/ab.py --pool build/ab-smoke.json build/ab-smoke.json

format:
	clang-format -i $(C_FILES)

format-check:
	clang-format --dry-run --Werror $(C_FILES)

clean:
	rm -rf build $(CG_DIR)/.libs $(CS_DIR)/.libs $(CG_DIR)/cg_schema.h
	rm -f $(CG_DIR)/*.lo $(CG_DIR)/*.la $(CG_DIR)/*.slo $(CG_DIR)/*.o
	rm -f $(CS_DIR)/*.lo $(CS_DIR)/*.la $(CS_DIR)/*.slo $(CS_DIR)/*.o
	rm -rf $(CG_DIR)/otlp/.libs $(CG_DIR)/otlp/*.pb-c.[ch] $(CG_DIR)/otlp/*.lo $(CG_DIR)/otlp/*.slo \
	    $(CG_DIR)/otlp/*.o
