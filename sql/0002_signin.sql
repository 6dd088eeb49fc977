-- mod_claude schema, migration 0002: sign-in state shared by every httpd node.
-- Device grants are keyed by the SHA-256 of the device code (the code itself
-- is never stored); rows expire and are deleted when used.
CREATE TABLE IF NOT EXISTS claude_device_grants (
    device_hash   text PRIMARY KEY,            -- sha256 hex of the device code
    user_code     text NOT NULL UNIQUE,        -- 8 characters, no hyphen
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'approved', 'denied')),
    client_ip     text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    last_poll     timestamptz,
    sub           text,
    email         text,
    name          text,
    groups        jsonb,
    idp_refresh_token text                     -- handed to the client once, then deleted
);
CREATE INDEX IF NOT EXISTS claude_device_grants_expires ON claude_device_grants (expires_at);

-- Fixed-window rate-limit counters (device authorization, verification).
CREATE TABLE IF NOT EXISTS claude_rate (
    key          text PRIMARY KEY,
    window_start timestamptz NOT NULL,
    count        integer NOT NULL
);

-- Immediate offboarding: tokens of sub issued before revoked_before are refused.
CREATE TABLE IF NOT EXISTS claude_revocations (
    sub            text PRIMARY KEY,
    revoked_before timestamptz NOT NULL,
    reason         text,
    revoked_at     timestamptz NOT NULL DEFAULT now()
);

-- RFC 7009: one session (the token's sid) revoked until it would have expired.
CREATE TABLE IF NOT EXISTS claude_session_revocations (
    sid        text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);

-- RFC 7009 for refresh tokens: the IdP's token, known here only by its hash,
-- is refused by our refresh grant from now on.
CREATE TABLE IF NOT EXISTS claude_refresh_revocations (
    token_hash text PRIMARY KEY,
    revoked_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO claude_migrations (version) VALUES (2) ON CONFLICT DO NOTHING;
