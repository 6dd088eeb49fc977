-- mod_claude schema, migration 0005: rate limits counted across nodes
-- (rate_limits.store: postgres). One row per counted name and UTC minute.
CREATE TABLE IF NOT EXISTS claude_rate_minutes (
    key       text NOT NULL,     -- 'u:<sub>' or 'g:<group>'
    minute    bigint NOT NULL,   -- minutes since the epoch
    requests  bigint NOT NULL DEFAULT 0,
    tokens    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (key, minute)
);

-- Count one request for every key, or none: false when any key is at its
-- requests or tokens limit for the minute (0 = unlimited). Old minutes are
-- dropped on the way.
CREATE OR REPLACE FUNCTION claude_rate_take(p_keys text[], p_minute bigint, p_rpm bigint[],
                                            p_tpm bigint[])
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    i integer;
    row_req bigint;
    row_tok bigint;
BEGIN
    FOR i IN 1..coalesce(array_length(p_keys, 1), 0) LOOP
        INSERT INTO claude_rate_minutes (key, minute) VALUES (p_keys[i], p_minute)
        ON CONFLICT DO NOTHING;
        SELECT requests, tokens INTO row_req, row_tok FROM claude_rate_minutes
         WHERE key = p_keys[i] AND minute = p_minute FOR UPDATE;
        IF (p_rpm[i] > 0 AND row_req >= p_rpm[i]) OR (p_tpm[i] > 0 AND row_tok >= p_tpm[i]) THEN
            RETURN false;  -- the caller's transaction is one statement: nothing was counted
        END IF;
    END LOOP;
    UPDATE claude_rate_minutes SET requests = requests + 1
     WHERE key = ANY (p_keys) AND minute = p_minute;
    DELETE FROM claude_rate_minutes WHERE key = ANY (p_keys) AND minute < p_minute - 1;
    RETURN true;
END
$$;

INSERT INTO claude_migrations (version) VALUES (5) ON CONFLICT DO NOTHING;
