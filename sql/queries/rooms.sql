-- name: insert_room
INSERT INTO rooms (room_id, name, owner_id, password_hash, capacity, member_count, last_seq,
                   created_at)
VALUES (%(room_id)s, %(name)s, %(owner_id)s, %(password_hash)s, %(capacity)s, 1, 0,
        %(created_at)s);

-- name: get_room
-- One room; no lock.
SELECT room_id, name, owner_id, capacity, member_count, created_at
FROM rooms WHERE room_id = %(room_id)s;

-- name: get_room_password
-- A room's password hash, for checking a join password; no lock.
SELECT password_hash FROM rooms WHERE room_id = %(room_id)s;

-- name: lock_room
-- Locks the room row, and the user's membership row if there is one: every
-- change of a room's membership happens under the room row's lock (this, or
-- lock_rooms_for_joins), so joins, leaves and the capacity check are
-- serialized per room. member_id is the user's userId as stored when a
-- member, NULL when not.
SELECT r.room_id, r.name, r.owner_id, r.capacity, r.member_count, r.created_at,
       m.user_id AS member_id
FROM rooms r
LEFT JOIN room_members m ON m.room_id = r.room_id AND m.user_id = %(user_id)s
WHERE r.room_id = %(room_id)s
FOR UPDATE;

-- name: lock_rooms_for_joins
-- Locks the rooms of a batch of joins (room_ids: a non-empty tuple) in
-- room_id order, before any user row, as every writer of memberships does.
SELECT room_id, name, owner_id, capacity, member_count, created_at
FROM rooms WHERE room_id IN %(room_ids)s ORDER BY room_id FOR UPDATE;

-- name: lock_free_rooms_for_joins
-- lock_rooms_for_joins, leaving out (SKIP LOCKED) the rooms whose row another
-- transaction holds: a batch of joins never waits for one stuck room.
SELECT room_id, name, owner_id, capacity, member_count, created_at
FROM rooms WHERE room_id IN %(room_ids)s ORDER BY room_id FOR UPDATE SKIP LOCKED;

-- name: add_seats
-- Takes seats in each of room_ids (a non-empty tuple) that has them free; run
-- under lock_rooms_for_joins, which saw that all have: the caller checks that
-- every row was affected.
UPDATE rooms SET member_count = member_count + %(seats)s
WHERE room_id IN %(room_ids)s AND member_count + %(seats)s <= capacity;

-- name: free_seat
UPDATE rooms SET member_count = member_count - 1
WHERE room_id = %(room_id)s AND member_count > 0;

-- name: list_rooms_of_user
-- The rooms a user is a member of, oldest membership first.
SELECT r.room_id, r.name, r.owner_id, r.capacity, r.member_count, r.created_at
FROM room_members m JOIN rooms r ON r.room_id = m.room_id
WHERE m.user_id = %(user_id)s
ORDER BY m.joined_at, r.room_id;

-- name: list_members_of_users_rooms
-- Every member of every room the user belongs to, in join order per room.
SELECT other.room_id, other.user_id
FROM room_members mine JOIN room_members other ON other.room_id = mine.room_id
WHERE mine.user_id = %(user_id)s
ORDER BY other.room_id, other.joined_at, other.user_id;
