-- The operator API's listings (GET /api/admin/...): read-only, no locks, paged
-- by key (rows after the cursor, in key order; the caller asks for one more
-- row than it shows to know whether there is a next page).

-- name: admin_list_users
SELECT user_id, device_id, name, phone, avail_coins, is_prime, free_join_used, created_at
FROM users
WHERE user_id > %(after)s
ORDER BY user_id
LIMIT %(limit)s;

-- name: admin_search_users
-- prefix: a LIKE pattern matched against userId and phone; pattern: one
-- matched against the name. Both escape their wildcards with '\'.
SELECT user_id, device_id, name, phone, avail_coins, is_prime, free_join_used, created_at
FROM users
WHERE user_id > %(after)s
  AND (user_id LIKE %(prefix)s OR phone LIKE %(prefix)s OR name LIKE %(pattern)s)
ORDER BY user_id
LIMIT %(limit)s;

-- name: admin_user_ledger
SELECT entry_id, delta, balance_after, reason, room_id, created_at
FROM coin_ledger
WHERE user_id = %(user_id)s AND entry_id > %(after)s
ORDER BY entry_id
LIMIT %(limit)s;

-- name: admin_list_rooms
SELECT room_id, name, owner_id, capacity, member_count, last_seq, created_at
FROM rooms
WHERE room_id > %(after)s
ORDER BY room_id
LIMIT %(limit)s;

-- name: check_balances
-- `server.py check-ledger`: every user whose balance is not the sum of its
-- ledger rows. A full scan of users and coin_ledger; no lock.
SELECT u.user_id, u.avail_coins, COALESCE(l.total, 0) AS ledger_total
FROM users u
LEFT JOIN (SELECT user_id, SUM(delta) AS total FROM coin_ledger GROUP BY user_id) l
       ON l.user_id = u.user_id
WHERE u.avail_coins <> COALESCE(l.total, 0)
ORDER BY u.user_id;

-- name: check_room_members
-- `server.py check-ledger`: every room whose member_count is not its number of
-- membership rows, or whose members outnumber its capacity. No lock.
SELECT r.room_id, r.member_count, r.capacity, COUNT(m.user_id) AS members
FROM rooms r
LEFT JOIN room_members m ON m.room_id = r.room_id
GROUP BY r.room_id, r.member_count, r.capacity
HAVING r.member_count <> COUNT(m.user_id) OR COUNT(m.user_id) > r.capacity
ORDER BY r.room_id;

-- name: count_checked
-- How many users and rooms check-ledger looked at.
SELECT (SELECT COUNT(*) FROM users) AS users, (SELECT COUNT(*) FROM rooms) AS rooms;
