-- mod_claude schema, migration 0007: admission by lease and settlement in
-- batches, so the database is not on the path of every request (issue #8).
--
-- A lease is one row of claude_reservations, named by its lease id, that a
-- child reserves for several requests at once and admits from locally. Each
-- request it admits holds its estimate out of the lease; settling the
-- request takes that estimate back off the row, and the child hands the
-- unused part back when it retires the lease. A lease row that reaches zero
-- is gone. Spent + reserved therefore still bounds everything admitted, and
-- the cap is still overshot by less than one request (see claude_admit_lease).

-- Admission by lease: claude_admit's caps and checks, then, when every
-- capped period has room, a reservation of
--     greatest(estimate, least(want, headroom / 2))
-- where headroom is the least room left over the capped periods. Half the
-- room at most, so other children and nodes still find some; never less
-- than this request's estimate, so what is admitted is covered. A lease is
-- only granted while spent + reserved < cap, as a single request was.
-- p_return/p_return_micro give back the unused part of the lease this one
-- replaces, in the same transaction, before the room is measured.
-- Rows: one per period with the figures before this lease; granted is the
-- lease's amount (0: refused, or no capped period so nothing reserved).
CREATE OR REPLACE FUNCTION claude_admit_lease(p_principal text, p_groups text[], p_keys text[],
                                              p_estimate bigint, p_want bigint, p_lease text,
                                              p_ttl_s integer, p_mode text, p_return text,
                                              p_return_micro bigint)
RETURNS TABLE (period text, cap_cents bigint, spent_micro bigint, reserved_micro bigint,
               admitted boolean, granted bigint)
LANGUAGE plpgsql AS $$
DECLARE
    periods text[] := ARRAY['daily', 'weekly', 'monthly'];
    caps bigint[] := ARRAY[NULL, NULL, NULL]::bigint[];
    spents bigint[] := ARRAY[0, 0, 0]::bigint[];
    oks boolean[] := ARRAY[true, true, true];
    i integer;
    lim bigint;
    spent bigint;
    found_cap boolean;
    reserved bigint;
    room numeric := NULL;
    all_ok boolean := true;
    g bigint := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(7243002, hashtext(p_principal));
    IF p_return IS NOT NULL AND p_return_micro > 0 THEN
        UPDATE claude_reservations r SET micro_usd = r.micro_usd - p_return_micro
         WHERE r.request_id = p_return AND r.principal = p_principal;
        DELETE FROM claude_reservations r
         WHERE r.request_id = p_return AND r.principal = p_principal AND r.micro_usd <= 0;
    END IF;
    DELETE FROM claude_reservations r
     WHERE r.principal = p_principal AND r.expires_at <= now();
    SELECT coalesce(sum(r.micro_usd), 0) INTO reserved
      FROM claude_reservations r WHERE r.principal = p_principal;
    FOR i IN 1..3 LOOP
        found_cap := false;
        SELECT l.amount_cents INTO lim FROM claude_spend_limits l
         WHERE l.scope_type = 'user' AND l.scope_id = p_principal AND l.period = periods[i];
        IF FOUND THEN
            found_cap := true;
        ELSIF p_mode = 'max' THEN
            SELECT l.amount_cents INTO lim FROM claude_spend_limits l
             WHERE l.scope_type = 'rbac_group' AND l.scope_id = ANY (p_groups)
               AND l.period = periods[i]
             ORDER BY l.amount_cents DESC NULLS FIRST, l.seq LIMIT 1;
            found_cap := FOUND;
        ELSE
            SELECT l.amount_cents INTO lim FROM claude_spend_limits l
             WHERE l.scope_type = 'rbac_group' AND l.scope_id = ANY (p_groups)
               AND l.period = periods[i]
             ORDER BY l.amount_cents ASC NULLS LAST, l.seq LIMIT 1;
            found_cap := FOUND;
        END IF;
        IF NOT found_cap THEN
            SELECT l.amount_cents INTO lim FROM claude_spend_limits l
             WHERE l.scope_type = 'organization' AND l.period = periods[i];
            found_cap := FOUND;
        END IF;
        caps[i] := CASE WHEN found_cap THEN lim END;
        SELECT coalesce(max(s.micro_usd), 0) INTO spent FROM claude_spend s
         WHERE s.principal = p_principal AND s.period_key = p_keys[i];
        spents[i] := spent;
        IF caps[i] IS NOT NULL THEN
            -- numeric: a cap of 18 digits of cents overflows bigint in micro-USD
            oks[i] := spents[i] + reserved < caps[i]::numeric * 10000;
            room := least(coalesce(room, caps[i]::numeric * 10000 - spents[i] - reserved),
                          caps[i]::numeric * 10000 - spents[i] - reserved);
        END IF;
        all_ok := all_ok AND oks[i];
    END LOOP;
    IF all_ok AND room IS NOT NULL AND p_lease IS NOT NULL THEN
        g := greatest(p_estimate, least(p_want::numeric, floor(room / 2)))::bigint;
        INSERT INTO claude_reservations (request_id, principal, micro_usd, expires_at)
        VALUES (p_lease, p_principal, g, now() + make_interval(secs => p_ttl_s))
        ON CONFLICT (request_id) DO NOTHING;
    END IF;
    FOR i IN 1..3 LOOP
        period := periods[i];
        cap_cents := caps[i];
        spent_micro := spents[i];
        reserved_micro := reserved;
        admitted := oks[i];
        granted := g;
        RETURN NEXT;
    END LOOP;
END
$$;

-- Settlement of a batch of requests in one transaction: the ledger rows,
-- and only for rows that are new (a replayed journal line changes nothing)
-- the period totals, the principals' last-seen identity and the end of
-- their holds: a per-request reservation (lease NULL: rows of older
-- versions) is deleted, a lease gives back the request's estimate. Then
-- the returns (unused lease parts, holds of requests that produced nothing)
-- and the removal of leases that reached zero. Returns the rows inserted.
CREATE OR REPLACE FUNCTION claude_settle(p_entry text[], p_request text[], p_at bigint[],
                                         p_sub text[], p_email text[], p_groups text[],
                                         p_model_req text[], p_model_srv text[],
                                         p_upstream text[], p_status integer[],
                                         p_in bigint[], p_out bigint[], p_cr bigint[],
                                         p_cw bigint[], p_cost bigint[], p_partial boolean[],
                                         p_day text[], p_week text[], p_month text[],
                                         p_lease text[], p_held bigint[],
                                         p_ret_lease text[], p_ret_micro bigint[])
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint := 0;
BEGIN
    -- data-modifying CTEs all run, once, whether or not the last SELECT reads them
    WITH r AS (
        SELECT * FROM unnest(p_entry, p_request, p_at, p_sub, p_email, p_groups, p_model_req,
                             p_model_srv, p_upstream, p_status, p_in, p_out, p_cr, p_cw, p_cost,
                             p_partial, p_day, p_week, p_month, p_lease, p_held)
            AS t(entry_id, request_id, at_us, sub, email, groups, model_requested, model_served,
                 upstream, status, input_tokens, output_tokens, cache_read_tokens,
                 cache_write_tokens, cost_micro_usd, partial, k_day, k_week, k_month, lease,
                 held)
    ), ins AS (
        INSERT INTO claude_ledger (entry_id, request_id, at, sub, email, groups, model_requested,
                                   model_served, upstream, status, input_tokens, output_tokens,
                                   cache_read_tokens, cache_write_tokens, cost_micro_usd, partial)
        SELECT entry_id, request_id,
               CASE WHEN at_us IS NULL THEN now()
                    ELSE to_timestamp(at_us / 1000000.0) END,
               sub, email, coalesce(groups, '[]')::jsonb, model_requested, model_served,
               upstream, status, input_tokens, output_tokens, cache_read_tokens,
               cache_write_tokens, cost_micro_usd, partial
          FROM r
        ON CONFLICT (entry_id) DO NOTHING
        RETURNING entry_id
    ), nr AS (
        SELECT r.* FROM r JOIN ins USING (entry_id)
    ), tot AS (
        INSERT INTO claude_spend AS s (principal, period_key, micro_usd)
        SELECT nr.sub, k.key, sum(nr.cost_micro_usd) FROM nr,
               LATERAL unnest(ARRAY[nr.k_day, nr.k_week, nr.k_month]) AS k(key)
         WHERE k.key IS NOT NULL
         GROUP BY nr.sub, k.key
        ON CONFLICT (principal, period_key) DO UPDATE
           SET micro_usd = s.micro_usd + EXCLUDED.micro_usd, updated_at = now()
    ), who AS (
        INSERT INTO claude_principals AS w (principal, email, groups)
        SELECT DISTINCT ON (nr.sub) nr.sub, nr.email, coalesce(nr.groups, '[]')::jsonb FROM nr
         ORDER BY nr.sub, nr.at_us DESC NULLS LAST
        ON CONFLICT (principal) DO UPDATE
           SET email = EXCLUDED.email, groups = EXCLUDED.groups, updated_at = now()
         WHERE (w.email, w.groups) IS DISTINCT FROM (EXCLUDED.email, EXCLUDED.groups)
    ), held AS (
        DELETE FROM claude_reservations c
         WHERE c.request_id IN (SELECT r.entry_id FROM r WHERE r.lease IS NULL)
    ), back AS (
        UPDATE claude_reservations c SET micro_usd = c.micro_usd - d.amount
          FROM (SELECT x.lease, sum(x.amount) AS amount FROM (
                    SELECT nr.lease, nr.held AS amount FROM nr
                     WHERE nr.lease IS NOT NULL AND nr.held > 0
                    UNION ALL
                    SELECT t.lease, t.amount
                      FROM unnest(p_ret_lease, p_ret_micro) AS t(lease, amount)
                     WHERE t.amount > 0) x
                 GROUP BY x.lease) d
         WHERE c.request_id = d.lease
    )
    SELECT count(*) INTO n FROM ins;
    DELETE FROM claude_reservations c
     WHERE c.micro_usd <= 0
       AND (c.request_id = ANY (p_ret_lease) OR c.request_id = ANY (p_lease));
    RETURN n;
END
$$;

INSERT INTO claude_migrations (version) VALUES (7) ON CONFLICT DO NOTHING;
