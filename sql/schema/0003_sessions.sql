-- Sessions (one login on one device) with their rotating refresh tokens, and
-- the audit trail of operator actions.
--
-- Run it by hand after 0002 with:
--   mysql -u root chat < sql/schema/0003_sessions.sql
-- Run again on an up-to-date database it succeeds and changes nothing.
-- Forward-only: never edit this file once it has landed; add a new one.

-- refresh_hash is the SHA-256 of the session's one current refresh token (the
-- token itself is never stored). user_id has no foreign key on purpose: a
-- session whose user is gone must stay findable, to be refused.
CREATE TABLE IF NOT EXISTS sessions (
    session_id          CHAR(32)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    user_id             VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
    device_id           VARCHAR(128) NULL,
    refresh_hash        BINARY(32)   NOT NULL,
    refresh_expires_at  DATETIME(3)  NOT NULL,
    created_at          DATETIME(3)  NOT NULL,
    last_used_at        DATETIME(3)  NOT NULL,
    ended_at            DATETIME(3)  NULL,
    UNIQUE KEY sessions_refresh (refresh_hash),
    KEY sessions_user (user_id, ended_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Refresh tokens already exchanged: presenting one again is a reuse, which
-- ends its session (RFC 9700 section 4.14.2). Kept until the session's
-- refresh tokens would have expired anyway.
CREATE TABLE IF NOT EXISTS used_refresh_tokens (
    token_hash      BINARY(32)   NOT NULL PRIMARY KEY,
    session_id      CHAR(32)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    expires_at      DATETIME(3)  NOT NULL,
    KEY used_refresh_tokens_expiry (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- What operators did (grants of coins and prime, ...), one row per action.
CREATE TABLE IF NOT EXISTS audit_log (
    audit_id        BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    action          VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    actor           VARCHAR(64)  NOT NULL,
    user_id         VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_general_ci NULL,
    details         VARCHAR(1024) NOT NULL,
    created_at      DATETIME(3)  NOT NULL,
    KEY audit_log_user (user_id, audit_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

INSERT IGNORE INTO schema_migrations (version, name) VALUES (3, '0003_sessions');
