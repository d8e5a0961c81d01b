-- name: revoke_token
-- Idempotent: revoking a token twice keeps one row.
INSERT IGNORE INTO revoked_tokens (jti, user_id, expires_at)
VALUES (%(jti)s, %(user_id)s, %(expires_at)s);

-- name: revoked_among
-- Which of the given token ids (a non-empty tuple) are revoked.
SELECT jti FROM revoked_tokens WHERE jti IN %(jtis)s;

-- name: delete_expired_revocations
-- A revoked token past its expiry is refused anyway; its row can go.
DELETE FROM revoked_tokens WHERE expires_at < %(now)s;
