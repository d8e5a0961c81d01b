-- name: revoke_token
-- Idempotent: revoking a token twice keeps one row.
INSERT IGNORE INTO revoked_tokens (jti, user_id, expires_at)
VALUES (%(jti)s, %(user_id)s, %(expires_at)s);

-- name: live_among
-- Which of the given session ids (a non-empty tuple) still let their access
-- tokens in: the session exists, has not ended, and its user still exists.
-- Any other (ended, user gone, never existed) is revoked.
SELECT s.session_id AS jti
FROM sessions s JOIN users u ON u.user_id = s.user_id
WHERE s.session_id IN %(jtis)s AND s.ended_at IS NULL;

-- name: delete_expired_revocations
-- A revoked token past its expiry is refused anyway; its row can go.
DELETE FROM revoked_tokens WHERE expires_at < %(now)s;
