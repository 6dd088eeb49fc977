-- mod_claude schema, migration 0003: the spend ledger, one append-only row
-- per metered request. Money is integer micro-USD.
CREATE TABLE IF NOT EXISTS claude_ledger (
    id              bigserial PRIMARY KEY,
    entry_id        text NOT NULL UNIQUE,          -- makes journal replays idempotent
    request_id      text NOT NULL,
    at              timestamptz NOT NULL DEFAULT now(),
    sub             text NOT NULL,
    email           text,
    groups          jsonb NOT NULL DEFAULT '[]',
    model_requested text,
    model_served    text,
    upstream        text,
    status          integer NOT NULL,
    input_tokens    bigint NOT NULL,
    output_tokens   bigint NOT NULL,
    cache_read_tokens  bigint NOT NULL,
    cache_write_tokens bigint NOT NULL,
    cost_micro_usd  bigint NOT NULL,
    partial         boolean NOT NULL
);
CREATE INDEX IF NOT EXISTS claude_ledger_sub_at ON claude_ledger (sub, at);

INSERT INTO claude_migrations (version) VALUES (3) ON CONFLICT DO NOTHING;
