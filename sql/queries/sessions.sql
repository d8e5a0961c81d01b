-- name: insert_session
INSERT INTO sessions (session_id, user_id, device_id, refresh_hash, refresh_expires_at,
                      created_at, last_used_at)
VALUES (%(session_id)s, %(user_id)s, %(device_id)s, %(refresh_hash)s, %(refresh_expires_at)s,
        %(created_at)s, %(created_at)s);

-- name: lock_session_by_refresh
-- The live session whose current refresh token hashes to refresh_hash; locks
-- its row, so two refreshes with one token take turns (the second finds the
-- token already replaced, and so a reuse).
SELECT s.session_id, s.user_id, s.device_id, s.refresh_expires_at, s.ended_at
FROM sessions s
WHERE s.refresh_hash = %(refresh_hash)s
FOR UPDATE;

-- name: rotate_refresh
UPDATE sessions
SET refresh_hash = %(refresh_hash)s, refresh_expires_at = %(refresh_expires_at)s,
    last_used_at = %(now)s
WHERE session_id = %(session_id)s AND ended_at IS NULL;

-- name: insert_used_refresh
INSERT IGNORE INTO used_refresh_tokens (token_hash, session_id, expires_at)
VALUES (%(token_hash)s, %(session_id)s, %(expires_at)s);

-- name: get_used_refresh
SELECT session_id FROM used_refresh_tokens WHERE token_hash = %(token_hash)s;

-- name: end_session
-- Ends one live session; the row count says whether there was one.
UPDATE sessions SET ended_at = %(now)s
WHERE session_id = %(session_id)s AND ended_at IS NULL;

-- name: end_session_of_user
-- Ends one live session of user_id (someone else's is not found).
UPDATE sessions SET ended_at = %(now)s
WHERE session_id = %(session_id)s AND user_id = %(user_id)s AND ended_at IS NULL;

-- name: live_sessions_of_user
SELECT session_id, device_id, created_at, last_used_at
FROM sessions
WHERE user_id = %(user_id)s AND ended_at IS NULL AND refresh_expires_at > %(now)s
ORDER BY created_at, session_id;

-- name: lock_live_session_ids_of_user
SELECT session_id FROM sessions
WHERE user_id = %(user_id)s AND ended_at IS NULL
FOR UPDATE;

-- name: touch_session
UPDATE sessions SET last_used_at = %(now)s WHERE session_id = %(session_id)s;

-- name: delete_old_refresh_tokens
-- A used refresh token past its session's refresh lifetime can go.
DELETE FROM used_refresh_tokens WHERE expires_at < %(now)s;
