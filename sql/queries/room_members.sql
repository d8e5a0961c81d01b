-- name: insert_membership
-- Fails with a duplicate key if the user is already a member.
INSERT INTO room_members (room_id, user_id, charged, joined_at)
VALUES (%(room_id)s, %(user_id)s, %(charged)s, %(joined_at)s);

-- name: delete_membership
DELETE FROM room_members WHERE room_id = %(room_id)s AND user_id = %(user_id)s;

-- name: list_members
-- A room's members in join order.
SELECT user_id FROM room_members WHERE room_id = %(room_id)s ORDER BY joined_at, user_id;

-- name: list_members_of_rooms
-- The members of several rooms (room_ids: a non-empty tuple): one row per
-- room, its userIds in join order joined by commas (a userId has none; six
-- of them fit in any group_concat_max_len); exact when run under those
-- rooms' locks. One row per room rather than per member: a batch of joins
-- reads and decodes a fifth of the rows.
SELECT room_id, GROUP_CONCAT(user_id ORDER BY joined_at, user_id SEPARATOR ',') AS members
FROM room_members WHERE room_id IN %(room_ids)s GROUP BY room_id;

-- name: lock_shared_room
-- One room both users are members of, or nothing. The shared locks on the two
-- membership rows keep a concurrent leave from taking effect before commit.
SELECT mine.room_id
FROM room_members mine
JOIN room_members theirs ON theirs.room_id = mine.room_id
WHERE mine.user_id = %(a)s AND theirs.user_id = %(b)s
LIMIT 1
LOCK IN SHARE MODE;
