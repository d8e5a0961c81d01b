-- Friend requests. Every write to a pair's requests runs under lock_user_pair
-- (users.sql), which serializes sending, answering and withdrawing per pair.

-- name: insert_friend_request
-- A new pending request; its id is the insert id. The unique key
-- friend_requests_one_pending refuses a second pending one in the same direction.
INSERT INTO friend_requests (from_user_id, to_user_id, status, pending_flag, created_at)
VALUES (%(from_user_id)s, %(to_user_id)s, 'pending', 1, %(created_at)s);

-- name: get_friend_request
-- One request by id; no lock.
SELECT request_id, from_user_id, to_user_id, status, created_at, responded_at
FROM friend_requests WHERE request_id = %(request_id)s;

-- name: lock_friend_request
-- Locks one request by id; run under lock_user_pair of its two users.
SELECT request_id, from_user_id, to_user_id, status, created_at, responded_at
FROM friend_requests WHERE request_id = %(request_id)s FOR UPDATE;

-- name: lock_pending_friend_request
-- Locks the pending request from one user to the other, if there is one;
-- run under lock_user_pair, so none can appear before commit.
SELECT request_id, from_user_id, to_user_id, status, created_at, responded_at
FROM friend_requests
WHERE from_user_id = %(from_user_id)s AND to_user_id = %(to_user_id)s AND pending_flag = 1
FOR UPDATE;

-- name: answer_friend_request
-- Accepts or declines a pending request; affects no row when it is no longer
-- pending, which the caller must check.
UPDATE friend_requests
SET status = %(status)s, pending_flag = NULL, responded_at = %(responded_at)s
WHERE request_id = %(request_id)s AND status = 'pending';

-- name: delete_pending_friend_request
-- Withdraws a pending request; affects no row once it has been answered.
DELETE FROM friend_requests WHERE request_id = %(request_id)s AND status = 'pending';

-- name: list_friend_requests
-- A user's requests, newest first: incoming ones when incoming is true,
-- outgoing ones when outgoing is true, of one status or (status NULL) all.
SELECT request_id, from_user_id, to_user_id, status, created_at, responded_at
FROM friend_requests
WHERE to_user_id = %(user_id)s AND %(incoming)s
  AND (%(status)s IS NULL OR status = %(status)s)
UNION ALL
SELECT request_id, from_user_id, to_user_id, status, created_at, responded_at
FROM friend_requests
WHERE from_user_id = %(user_id)s AND %(outgoing)s
  AND (%(status)s IS NULL OR status = %(status)s)
ORDER BY request_id DESC;
