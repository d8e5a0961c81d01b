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
