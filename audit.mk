# audit.mk: build rules for claude-auditlog, the tamper-evident piped logger
# of the audit log (see audit/claude-auditlog.c), included by the Makefile.
#
# A plain program, no apxs: libc and OpenSSL only. ca_chain.c is the PURE
# part, also linked into the unit tests.

AUDIT_DIR  := audit
AUDIT_PURE := $(AUDIT_DIR)/ca_chain.c
AUDIT_SRCS := $(AUDIT_DIR)/claude-auditlog.c $(AUDIT_PURE)
AUDIT_HDRS := $(AUDIT_DIR)/ca_chain.h

AUDIT_CFLAGS := $(WARN) -std=gnu11 -g -O2 -I$(AUDIT_DIR)
ifeq ($(SANITIZE),1)
AUDIT_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif

build/claude-auditlog: $(AUDIT_SRCS) $(AUDIT_HDRS) | build
	$(CC) $(AUDIT_CFLAGS) -o $@ $(AUDIT_SRCS) -lcrypto
