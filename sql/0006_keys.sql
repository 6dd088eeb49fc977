-- mod_claude schema, migration 0006: service keys for CI and internal apps.
-- A key is a principal ('key:<id>'): spend limits of scope user can name it.
-- Only SHA-256 hashes of secrets are stored; a rotation keeps the old secret
-- valid until valid_until.
CREATE TABLE IF NOT EXISTS claude_service_keys (
    id          text PRIMARY KEY,                 -- key_<24 hex>
    seq         bigserial NOT NULL UNIQUE,
    name        text NOT NULL,
    owner       text,
    groups      jsonb NOT NULL DEFAULT '[]',
    models      jsonb,                            -- NULL: what its groups allow
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text,
    expires_at  timestamptz,
    revoked_at  timestamptz
);

CREATE TABLE IF NOT EXISTS claude_service_key_secrets (
    hash        text PRIMARY KEY,                 -- hex SHA-256 of the secret
    key_id      text NOT NULL REFERENCES claude_service_keys (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    valid_until timestamptz                       -- set when rotated away
);
CREATE INDEX IF NOT EXISTS claude_service_key_secrets_key ON claude_service_key_secrets (key_id);

INSERT INTO claude_migrations (version) VALUES (6) ON CONFLICT DO NOTHING;
