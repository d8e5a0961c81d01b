-- name: insert_invitation
INSERT INTO invitations (token_hash, room_id, inviter_id, invitee_id, expires_at, created_at)
VALUES (%(token_hash)s, %(room_id)s, %(inviter_id)s, %(invitee_id)s, %(expires_at)s,
        %(created_at)s);

-- name: lock_invitation
-- Locks the invitation so that of two concurrent uses only one sees it unused.
SELECT invitation_id, room_id, invitee_id, expires_at, used_at
FROM invitations WHERE token_hash = %(token_hash)s FOR UPDATE;

-- name: use_invitation
UPDATE invitations SET used_at = %(used_at)s
WHERE invitation_id = %(invitation_id)s AND used_at IS NULL;
