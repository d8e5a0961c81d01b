-- name: insert_user
-- Fails with a duplicate-key error when the userId or the phone is taken.
INSERT INTO users (user_id, device_id, name, phone, password_hash, avail_coins,
                   is_prime, free_join_used, created_at)
VALUES (%(user_id)s, %(device_id)s, %(name)s, %(phone)s, %(password_hash)s, %(avail_coins)s,
        %(is_prime)s, FALSE, %(created_at)s);

-- name: get_user
-- One user by userId, with the password hash (for logging in); no lock.
SELECT user_id, device_id, name, phone, password_hash, avail_coins, is_prime,
       free_join_used, created_at
FROM users WHERE user_id = %(user_id)s;

-- name: get_profile
-- What a user's own profile shows (everything but the password hash); no lock.
SELECT user_id, device_id, name, phone, avail_coins, is_prime, free_join_used, created_at
FROM users WHERE user_id = %(user_id)s;

-- name: public_profiles_among
-- What anyone may see of several users (user_ids: a non-empty tuple); no lock.
SELECT user_id, name, is_prime, created_at FROM users WHERE user_id IN %(user_ids)s;

-- name: get_user_by_phone
-- One user by phone; no lock.
SELECT user_id, device_id, name, phone, password_hash, avail_coins, is_prime,
       free_join_used, created_at
FROM users WHERE phone = %(phone)s;

-- name: lock_user
-- Locks the user's row for the rest of the transaction: balance, prime flag
-- and free join are decided under this lock.
SELECT user_id, device_id, name, phone, avail_coins, is_prime, free_join_used, created_at
FROM users WHERE user_id = %(user_id)s FOR UPDATE;

-- name: add_coins
-- Adds (or with a negative amount, takes) coins; never below zero: affects
-- no row when the balance is short, which the caller must check.
UPDATE users SET avail_coins = avail_coins + %(amount)s
WHERE user_id = %(user_id)s AND avail_coins + %(amount)s >= 0;

-- name: lock_users_for_joins
-- Locks the users of a batch of joins (user_ids: a non-empty tuple) in
-- user_id order, after their rooms: balance, prime flag and free join are
-- decided under these locks.
SELECT user_id, avail_coins, is_prime, free_join_used
FROM users WHERE user_id IN %(user_ids)s ORDER BY user_id FOR UPDATE;

-- name: take_coins
-- Takes amount from each of user_ids (a non-empty tuple) that can pay it; run
-- under lock_users_for_joins, which saw that all can: the caller checks that
-- every row was affected.
UPDATE users SET avail_coins = avail_coins - %(amount)s
WHERE user_id IN %(user_ids)s AND avail_coins >= %(amount)s;

-- name: use_free_joins
-- Run under lock_users_for_joins. user_ids is a non-empty tuple.
UPDATE users SET free_join_used = TRUE WHERE user_id IN %(user_ids)s;

-- name: set_prime
UPDATE users SET is_prime = %(is_prime)s WHERE user_id = %(user_id)s;

-- name: lock_user_pair
-- Locks both users' rows, in user_id order, at the start of every write on
-- their friend requests or friendship: such writes on one pair run one at a
-- time, and two pairs never lock in opposite orders. Returns the users found.
SELECT user_id FROM users
WHERE user_id IN (%(a)s, %(b)s)
ORDER BY user_id
FOR UPDATE;

-- name: set_password_hash
UPDATE users SET password_hash = %(password_hash)s WHERE user_id = %(user_id)s;
