-- Friendships: one row per pair, user_a < user_b under the users' collation.

-- name: get_friendship
-- The pair's friendship, if any; run under lock_user_pair.
SELECT user_a, user_b, created_at FROM friendships
WHERE (user_a = %(a)s AND user_b = %(b)s) OR (user_a = %(b)s AND user_b = %(a)s);

-- name: insert_friendship
-- The database orders the pair, under the same collation as the
-- friendships_ordered check. Inserts no row unless both users exist.
INSERT INTO friendships (user_a, user_b, created_at)
SELECT MIN(user_id), MAX(user_id), %(created_at)s
FROM users WHERE user_id IN (%(a)s, %(b)s)
HAVING COUNT(*) = 2;

-- name: list_friends
-- The public profile columns of a user's friends, by userId.
SELECT u.user_id, u.name, u.is_prime, u.created_at
FROM friendships f JOIN users u ON u.user_id = f.user_b
WHERE f.user_a = %(user_id)s
UNION ALL
SELECT u.user_id, u.name, u.is_prime, u.created_at
FROM friendships f JOIN users u ON u.user_id = f.user_a
WHERE f.user_b = %(user_id)s
ORDER BY user_id;
