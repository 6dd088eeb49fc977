-- mod_claude schema, migration 0008: settlement of fresh batches.
--
-- A batch the writer queued itself holds only new entry ids, so its rows
-- are appended as they are with COPY, in the transaction that then calls
-- claude_settle_sums with what claude_settle works out per row, summed by
-- the writer: one total per principal and period, one identity per
-- principal, one release per lease, each sorted so concurrent batches lock
-- in one order. Should an entry be in the ledger already, the unique index
-- fails the COPY, and the writer settles that batch with claude_settle,
-- which counts only the rows it inserts.

-- The ledger's bigserial key was read by nothing and cost every row a
-- sequence step and a third index entry; entry_id (unique, time-ordered)
-- identifies a row.
ALTER TABLE claude_ledger DROP COLUMN IF EXISTS id;

-- The ledger is read by time range (the cost report), across principals;
-- rows arrive in time order, so a BRIN index on at serves those scans for
-- a few pages, where the (sub, at) btree cost every row an index entry.
CREATE INDEX IF NOT EXISTS claude_ledger_at_brin ON claude_ledger USING brin (at);
DROP INDEX IF EXISTS claude_ledger_sub_at;

CREATE OR REPLACE FUNCTION claude_settle_sums(p_tot_principal text[], p_tot_key text[],
                                              p_tot_micro bigint[],
                                              p_who text[], p_who_email text[],
                                              p_who_groups text[],
                                              p_reserved text[],
                                              p_lease text[], p_lease_micro bigint[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO claude_spend AS s (principal, period_key, micro_usd)
    SELECT * FROM unnest(p_tot_principal, p_tot_key, p_tot_micro)
    ON CONFLICT (principal, period_key) DO UPDATE
       SET micro_usd = s.micro_usd + EXCLUDED.micro_usd, updated_at = now();

    INSERT INTO claude_principals AS w (principal, email, groups)
    SELECT t.principal, t.email, t.groups::jsonb
      FROM unnest(p_who, p_who_email, p_who_groups) AS t(principal, email, groups)
    ON CONFLICT (principal) DO UPDATE
       SET email = EXCLUDED.email, groups = EXCLUDED.groups, updated_at = now()
     WHERE (w.email, w.groups) IS DISTINCT FROM (EXCLUDED.email, EXCLUDED.groups);

    IF cardinality(p_reserved) > 0 THEN
        DELETE FROM claude_reservations c WHERE c.request_id = ANY (p_reserved);
    END IF;
    IF cardinality(p_lease) > 0 THEN
        UPDATE claude_reservations c SET micro_usd = c.micro_usd - d.amount
          FROM unnest(p_lease, p_lease_micro) AS d(lease, amount)
         WHERE c.request_id = d.lease;
        DELETE FROM claude_reservations c
         WHERE c.request_id = ANY (p_lease) AND c.micro_usd <= 0;
    END IF;
END
$$;

INSERT INTO claude_migrations (version) VALUES (8) ON CONFLICT DO NOTHING;
