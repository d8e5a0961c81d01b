-- name: insert_audit
-- One operator action (details: a short JSON object, never a secret).
INSERT INTO audit_log (action, actor, user_id, details, created_at)
VALUES (%(action)s, %(actor)s, %(user_id)s, %(details)s, %(created_at)s);
