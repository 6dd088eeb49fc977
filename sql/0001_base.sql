-- mod_claude schema, migration 0001: the migration ledger and a small
-- key/value store with expiry (device grants and rate-limit counters of the
-- sign-in flow live here so any number of httpd nodes serve one login).
-- Migrations are idempotent: every node may apply them at start.
CREATE TABLE IF NOT EXISTS claude_migrations (
    version    integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS claude_kv (
    key        text PRIMARY KEY,
    value      text NOT NULL,
    expires_at timestamptz
);
CREATE INDEX IF NOT EXISTS claude_kv_expires ON claude_kv (expires_at)
    WHERE expires_at IS NOT NULL;

INSERT INTO claude_migrations (version) VALUES (1) ON CONFLICT DO NOTHING;
