-- name: insert_membership
-- Fails with a duplicate key if the user is already a member.
INSERT INTO room_members (room_id, user_id, charged, joined_at)
VALUES (%(room_id)s, %(user_id)s, %(charged)s, %(joined_at)s);

-- name: get_membership
-- Is the user a member? Under lock_room this answer holds until commit.
SELECT room_id, user_id, charged, joined_at
FROM room_members WHERE room_id = %(room_id)s AND user_id = %(user_id)s;

-- name: delete_membership
DELETE FROM room_members WHERE room_id = %(room_id)s AND user_id = %(user_id)s;

-- name: list_members
-- A room's members in join order.
SELECT user_id FROM room_members WHERE room_id = %(room_id)s ORDER BY joined_at, user_id;
