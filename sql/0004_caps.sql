-- mod_claude schema, migration 0004: spend caps. Money is integer micro-USD
-- in counters and integer cents in limits (the admin API's unit).

-- One cap per (scope, period), as the reference's spend_limits. scope_id is
-- the user's sub, the IdP group, or '' for the organization (a per-seat
-- default). amount_cents NULL means unlimited.
CREATE TABLE IF NOT EXISTS claude_spend_limits (
    id              text PRIMARY KEY,                    -- spl_<32 hex>
    seq             bigserial NOT NULL UNIQUE,           -- creation order, for paging
    scope_type      text NOT NULL CHECK (scope_type IN ('user', 'rbac_group', 'organization')),
    scope_id        text NOT NULL DEFAULT '',
    period          text NOT NULL CHECK (period IN ('daily', 'weekly', 'monthly')),
    amount_cents    bigint CHECK (amount_cents >= 0),
    currency        text NOT NULL DEFAULT 'USD',
    pooled_enabled  boolean NOT NULL DEFAULT false,      -- group + monthly only
    pooled_amount_cents bigint,
    pooled_paused   boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    created_by      text,
    UNIQUE (scope_type, scope_id, period)
);

-- Period-to-date spend per principal: 'YYYY-MM-DD', 'YYYY-Www', 'YYYY-MM'.
-- Updated in the statement that appends the ledger row, so totals and rows
-- never disagree.
CREATE TABLE IF NOT EXISTS claude_spend (
    principal   text NOT NULL,
    period_key  text NOT NULL,
    micro_usd   bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, period_key)
);

-- A group's shared monthly pot (pooled budgets).
CREATE TABLE IF NOT EXISTS claude_pooled_spend (
    rbac_group_id text NOT NULL,
    period_key    text NOT NULL,
    micro_usd     bigint NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rbac_group_id, period_key)
);

-- Estimated cost held by requests in flight. Settled (deleted) with the
-- ledger row; a crashed process's holds stop counting at expires_at.
CREATE TABLE IF NOT EXISTS claude_reservations (
    request_id  text PRIMARY KEY,
    principal   text NOT NULL,
    micro_usd   bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS claude_reservations_principal ON claude_reservations (principal);

-- Who a principal is, as last seen on a metered request (for /effective).
CREATE TABLE IF NOT EXISTS claude_principals (
    principal   text PRIMARY KEY,
    email       text,
    name        text,
    groups      jsonb NOT NULL DEFAULT '[]',
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Every change made through the admin API, append-only.
CREATE TABLE IF NOT EXISTS claude_admin_audit (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,
    action  text NOT NULL,
    target  text NOT NULL,
    before  jsonb,
    after   jsonb,
    reason  text
);
CREATE INDEX IF NOT EXISTS claude_admin_audit_at ON claude_admin_audit (at);

-- Admission: under a per-principal lock, the cap of each period (user row,
-- else the min or max of the user's group rows, else the organization row),
-- the settled spend and the live reservations; when every capped period
-- still has room (spent + reserved < cap), the estimate is reserved. With
-- estimates that bound a request's cost, concurrent requests overshoot a cap
-- by less than one request's cost. One row per period is returned.
CREATE OR REPLACE FUNCTION claude_admit(p_principal text, p_groups text[], p_keys text[],
                                        p_estimate bigint, p_request text, p_ttl_s integer,
                                        p_mode text)
RETURNS TABLE (period text, cap_cents bigint, limit_id text, source text,
               spent_micro bigint, reserved_micro bigint, admitted boolean)
LANGUAGE plpgsql AS $$
DECLARE
    periods text[] := ARRAY['daily', 'weekly', 'monthly'];
    i integer;
    lim record;
    reserved bigint;
    all_ok boolean := true;
    any_cap boolean := false;
BEGIN
    PERFORM pg_advisory_xact_lock(7243002, hashtext(p_principal));
    DELETE FROM claude_reservations r
     WHERE r.principal = p_principal AND r.expires_at <= now();
    SELECT coalesce(sum(r.micro_usd), 0) INTO reserved
      FROM claude_reservations r WHERE r.principal = p_principal;
    FOR i IN 1..3 LOOP
        period := periods[i];
        cap_cents := NULL; limit_id := NULL; source := NULL;
        SELECT l.id, l.amount_cents INTO lim FROM claude_spend_limits l
         WHERE l.scope_type = 'user' AND l.scope_id = p_principal AND l.period = periods[i];
        IF FOUND THEN
            limit_id := lim.id; cap_cents := lim.amount_cents; source := 'user';
        ELSE
            IF p_mode = 'max' THEN
                -- the least restrictive group cap; an unlimited one wins
                SELECT l.id, l.amount_cents INTO lim FROM claude_spend_limits l
                 WHERE l.scope_type = 'rbac_group' AND l.scope_id = ANY (p_groups)
                   AND l.period = periods[i]
                 ORDER BY l.amount_cents DESC NULLS FIRST, l.seq LIMIT 1;
            ELSE
                SELECT l.id, l.amount_cents INTO lim FROM claude_spend_limits l
                 WHERE l.scope_type = 'rbac_group' AND l.scope_id = ANY (p_groups)
                   AND l.period = periods[i]
                 ORDER BY l.amount_cents ASC NULLS LAST, l.seq LIMIT 1;
            END IF;
            IF FOUND THEN
                limit_id := lim.id; cap_cents := lim.amount_cents; source := 'rbac_group';
            ELSE
                SELECT l.id, l.amount_cents INTO lim FROM claude_spend_limits l
                 WHERE l.scope_type = 'organization' AND l.period = periods[i];
                IF FOUND THEN
                    limit_id := lim.id; cap_cents := lim.amount_cents; source := 'organization';
                END IF;
            END IF;
        END IF;
        SELECT coalesce(max(s.micro_usd), 0) INTO spent_micro FROM claude_spend s
         WHERE s.principal = p_principal AND s.period_key = p_keys[i];
        reserved_micro := reserved;
        -- numeric: a cap of 18 digits of cents overflows bigint in micro-USD
        admitted := cap_cents IS NULL OR spent_micro + reserved < cap_cents::numeric * 10000;
        IF cap_cents IS NOT NULL THEN
            any_cap := true;
        END IF;
        all_ok := all_ok AND admitted;
        RETURN NEXT;
    END LOOP;
    IF all_ok AND any_cap AND p_request IS NOT NULL THEN
        INSERT INTO claude_reservations (request_id, principal, micro_usd, expires_at)
        VALUES (p_request, p_principal, p_estimate, now() + make_interval(secs => p_ttl_s))
        ON CONFLICT (request_id) DO NOTHING;
    END IF;
END
$$;

INSERT INTO claude_migrations (version) VALUES (4) ON CONFLICT DO NOTHING;
