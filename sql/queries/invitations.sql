-- name: insert_invitation
INSERT INTO invitations (token_hash, room_id, inviter_id, invitee_id, expires_at, created_at)
VALUES (%(token_hash)s, %(room_id)s, %(inviter_id)s, %(invitee_id)s, %(expires_at)s,
        %(created_at)s);

-- name: lock_invitations
-- Locks the invitations of a batch of joins (token_hashes: a non-empty tuple),
-- so that of two concurrent uses of one only the first sees it unused.
SELECT invitation_id, token_hash, room_id, invitee_id, expires_at, used_at
FROM invitations WHERE token_hash IN %(token_hashes)s ORDER BY token_hash FOR UPDATE;

-- name: use_invitations
-- Run under lock_invitations. invitation_ids is a non-empty tuple.
UPDATE invitations SET used_at = %(used_at)s
WHERE invitation_id IN %(invitation_ids)s AND used_at IS NULL;
