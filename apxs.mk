# apxs.mk: build rules for the two Apache modules, included by the Makefile.
#
# Each module is compiled and linked by apxs (libtool underneath), with the
# project's warning set and only the libraries that module needs. The PURE
# sources (no httpd headers) are listed apart so the unit tests and fuzzers
# can build them without apxs.

APXS      ?= apxs
PKGCONFIG ?= pkg-config

CG_DIR := mod_claude_gateway
CS_DIR := mod_claude_spend

# Logic files: APR, jansson, libyaml, OpenSSL only. Unit-tested and fuzzed without httpd.
CG_PURE := $(CG_DIR)/cg_util.c $(CG_DIR)/cg_body.c $(CG_DIR)/cg_jwt.c $(CG_DIR)/cg_claims.c \
           $(CG_DIR)/cg_yaml.c $(CG_DIR)/cg_policy.c $(CG_DIR)/cg_route.c
CS_PURE := $(CS_DIR)/cs_usage.c $(CS_DIR)/cs_price.c $(CS_DIR)/cs_period.c $(CS_DIR)/cs_caps.c
# provider translation: AWS SigV4, Bedrock, Vertex, Foundry, error hygiene
CG_PURE += $(CG_DIR)/cg_sigv4.c $(CG_DIR)/cg_provider.c $(CG_DIR)/cg_bedrock.c $(CG_DIR)/cg_vertex.c

# httpd glue.
CG_GLUE := $(CG_DIR)/mod_claude_gateway.c $(CG_DIR)/cg_config.c $(CG_DIR)/cg_handler.c \
           $(CG_DIR)/cg_db.c $(CG_DIR)/cg_oauth.c $(CG_DIR)/cg_revoke.c $(CG_DIR)/cg_upstream.c
CS_GLUE := $(CS_DIR)/mod_claude_spend.c $(CS_DIR)/cs_filter.c $(CS_DIR)/cs_admit.c

# rate limits per principal and group (the policy's rate_limits)
CG_PURE += $(CG_DIR)/cg_rl.c
CG_GLUE += $(CG_DIR)/cg_ratelimit.c
# service keys for CI and internal apps
CG_GLUE += $(CG_DIR)/cg_keys.c
# admin authentication, the spend admin API and /api/oauth/usage
CG_GLUE += $(CG_DIR)/cg_admin.c
CS_PURE += $(CS_DIR)/cs_limits.c
CS_GLUE += $(CS_DIR)/cs_admin.c

CG_SRCS := $(CG_GLUE) $(CG_PURE)
CS_SRCS := $(CS_GLUE) $(CS_PURE)
CG_HDRS := $(filter-out $(CG_DIR)/cg_schema.h,$(wildcard $(CG_DIR)/*.h))
CS_HDRS := $(wildcard $(CS_DIR)/*.h)

comma := ,
WARN := -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes -Wformat=2 \
        -Wno-missing-field-initializers
PQ_CFLAGS := $(shell $(PKGCONFIG) --cflags libpq 2>/dev/null)

# The module record is the only exported symbol besides the optional
# functions, which APR registers by name at run time.
APXS_CFLAGS := $(addprefix -Wc$(comma),$(WARN) -std=gnu11 -fvisibility=hidden $(PQ_CFLAGS))
ifeq ($(SANITIZE),1)
APXS_CFLAGS += -Wc,-fsanitize=address,undefined -Wc,-fno-omit-frame-pointer \
               -Wc,-fno-sanitize-recover=undefined
APXS_LDSAN  := -Wl,-fsanitize=address,undefined
endif

CG_LIBS := -ljansson -lyaml -lpq -lcrypto -lcurl -lm
CS_LIBS := -ljansson -lpq

SQL_FILES := $(sort $(wildcard sql/*.sql))

$(CG_DIR)/cg_schema.h: $(SQL_FILES) tools/sql2c.sh
	sh tools/sql2c.sh $@ $(SQL_FILES)

$(CG_DIR)/mod_claude_gateway.la: $(CG_SRCS) $(CG_HDRS) $(CG_DIR)/cg_schema.h
	$(APXS) -c -o $@ -I$(CG_DIR) $(APXS_CFLAGS) $(APXS_LDSAN) $(CG_SRCS) $(CG_LIBS)

$(CS_DIR)/mod_claude_spend.la: $(CS_SRCS) $(CS_HDRS) $(CG_DIR)/mod_claude_gateway.h
	$(APXS) -c -o $@ -I$(CS_DIR) -I$(CG_DIR) $(APXS_CFLAGS) $(APXS_LDSAN) $(CS_SRCS) $(CS_LIBS)
