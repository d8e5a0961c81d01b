-- name: take_message_seq
-- Takes the room's next seq if the sender is a member: locks the room row
-- until commit, which serializes the senders of one room with each other and
-- with its joins and leaves (rooms is read first, so the lock order is the
-- one leave_room takes). The new seq is LAST_INSERT_ID(), which the driver
-- returns as the statement's insert id. Affects no row when the room does not
-- exist or the sender is not a member. A rollback gives the number back: no gap.
UPDATE rooms r STRAIGHT_JOIN room_members m
    ON m.room_id = r.room_id AND m.user_id = %(user_id)s
SET r.last_seq = LAST_INSERT_ID(r.last_seq + 1)
WHERE r.room_id = %(room_id)s;

-- name: insert_message
-- Fails with a duplicate key on (room_id, sender_id, client_msg_id) when the
-- sender already stored this clientMsgId in the room.
INSERT INTO messages (room_id, seq, sender_id, content, client_msg_id, created_at)
VALUES (%(room_id)s, %(seq)s, %(sender_id)s, %(content)s, %(client_msg_id)s, %(created_at)s);

-- name: get_message_by_client_id
-- The message a sender stored in a room under a clientMsgId; no lock.
SELECT message_id, room_id, seq, sender_id, content, client_msg_id, created_at
FROM messages
WHERE room_id = %(room_id)s AND sender_id = %(sender_id)s AND client_msg_id = %(client_msg_id)s;

-- name: room_access_among
-- For each of a non-empty tuple of room_ids, its latest seq and which of a
-- non-empty tuple of user_ids are its members (a row each, or one row with
-- member NULL); no row for a room that does not exist. No lock.
SELECT r.room_id, r.last_seq, m.user_id AS member
FROM rooms r
LEFT JOIN room_members m ON m.room_id = r.room_id AND m.user_id IN %(user_ids)s
WHERE r.room_id IN %(room_ids)s;

-- name: list_messages_ascending
-- Up to `limit` messages with after < seq < before, oldest first; served by
-- the unique key messages_room_seq. No lock.
SELECT message_id, room_id, seq, sender_id, content, client_msg_id, created_at
FROM messages
WHERE room_id = %(room_id)s AND seq > %(after)s AND seq < %(before)s
ORDER BY seq
LIMIT %(limit)s;

-- name: list_messages_descending
-- Up to `limit` messages with after < seq < before, newest first (the caller
-- reverses them); served by messages_room_seq. No lock.
SELECT message_id, room_id, seq, sender_id, content, client_msg_id, created_at
FROM messages
WHERE room_id = %(room_id)s AND seq > %(after)s AND seq < %(before)s
ORDER BY seq DESC
LIMIT %(limit)s;

-- name: lock_rooms_for_messages
-- Locks the rooms of a batch of messages, in room_id order, and returns their
-- latest seq. SKIP LOCKED: a room whose row another transaction holds (a
-- join, a leave, a client holding it) is left out rather than waited for, so
-- one stuck room never stalls the others' messages; existing_rooms tells a
-- room left out from one that does not exist. room_ids is a non-empty tuple.
SELECT room_id, last_seq FROM rooms WHERE room_id IN %(room_ids)s
ORDER BY room_id FOR UPDATE SKIP LOCKED;

-- name: lock_rooms_for_messages_waiting
-- lock_rooms_for_messages for the slow lane: waits for each room's lock (at
-- most innodb_lock_wait_timeout) instead of leaving the room out; a room
-- left out does not exist. room_ids is a non-empty tuple.
SELECT room_id, last_seq FROM rooms WHERE room_id IN %(room_ids)s
ORDER BY room_id FOR UPDATE;

-- name: existing_rooms
-- Which of a non-empty tuple of room_ids exist; a plain read that takes and
-- waits for no lock.
SELECT room_id FROM rooms WHERE room_id IN %(room_ids)s;

-- name: members_among
-- Which (room_id, user_id) pairs of a non-empty tuple are memberships. Run
-- under lock_rooms_for_messages: joins and leaves wait for those locks.
SELECT room_id, user_id FROM room_members WHERE (room_id, user_id) IN %(pairs)s;

-- name: insert_messages
-- A batch of messages (Transaction.insert_returning repeats the VALUES row
-- once per message) and their new ids, in one round trip. Fails with a
-- duplicate key as insert_message does.
INSERT INTO messages (room_id, seq, sender_id, content, client_msg_id, created_at)
VALUES (%(room_id)s, %(seq)s, %(sender_id)s, %(content)s, %(client_msg_id)s, %(created_at)s)
RETURNING message_id, room_id, seq;

-- name: sync_last_seq
-- After a batch insert, sets each room's counter to its latest stored seq;
-- run under lock_rooms_for_messages. room_ids is a non-empty tuple.
UPDATE rooms r
SET r.last_seq = (SELECT MAX(m.seq) FROM messages m WHERE m.room_id = r.room_id)
WHERE r.room_id IN %(room_ids)s;
