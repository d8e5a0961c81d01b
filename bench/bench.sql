-- The benchmark's own statements: seeding a fresh chat_bench_* database in
-- bulk, and checking it afterwards. Loaded by bench/run.py with
-- chat.db.sqlfile; never used by the server.

-- name: seed_user
INSERT INTO users (user_id, device_id, name, phone, password_hash, avail_coins,
                   is_prime, free_join_used, created_at)
VALUES (%(user_id)s, %(device_id)s, %(name)s, %(phone)s, %(password_hash)s, %(avail_coins)s,
        %(is_prime)s, %(free_join_used)s, %(created_at)s);

-- name: seed_room
INSERT INTO rooms (room_id, name, owner_id, password_hash, capacity, member_count, last_seq,
                   created_at)
VALUES (%(room_id)s, %(name)s, %(owner_id)s, %(password_hash)s, 6, %(member_count)s, 0,
        %(created_at)s);

-- name: seed_member
INSERT INTO room_members (room_id, user_id, charged, joined_at)
VALUES (%(room_id)s, %(user_id)s, 0, %(joined_at)s);

-- name: seed_grant
-- The signup grant of a seeded balance, so that ledger sum = balance from the start.
INSERT INTO coin_ledger (user_id, delta, balance_after, reason, room_id, created_at)
VALUES (%(user_id)s, %(delta)s, %(delta)s, 'signup_grant', NULL, %(created_at)s);

-- name: count_overfull_rooms
-- Rooms holding more members than their capacity (or than 6), or whose
-- member_count disagrees with their membership rows.
SELECT COUNT(*) AS n FROM rooms r
LEFT JOIN (SELECT room_id, COUNT(*) AS members FROM room_members GROUP BY room_id) m
       ON m.room_id = r.room_id
WHERE COALESCE(m.members, 0) > r.capacity OR COALESCE(m.members, 0) > 6
   OR COALESCE(m.members, 0) <> r.member_count;

-- name: count_negative_balances
SELECT COUNT(*) AS n FROM users WHERE avail_coins < 0;

-- name: count_ledger_mismatches
-- Users whose ledger rows do not add up to their balance.
SELECT COUNT(*) AS n FROM users u
LEFT JOIN (SELECT user_id, SUM(delta) AS total FROM coin_ledger GROUP BY user_id) l
       ON l.user_id = u.user_id
WHERE COALESCE(l.total, 0) <> u.avail_coins;

-- name: count_double_charges
-- Memberships charged for that have no ledger row, or ledger charges without a
-- membership: either way a join was charged wrongly.
SELECT ABS((SELECT COUNT(*) FROM room_members WHERE charged > 0)
         - (SELECT COUNT(*) FROM coin_ledger WHERE reason = 'join_charge')) AS n;

-- name: count_paid_memberships
SELECT COUNT(*) AS n FROM room_members WHERE charged > 0;

-- name: count_seq_gaps
-- Rooms whose stored messages do not run 1..last_seq without a gap.
SELECT COUNT(*) AS n FROM rooms r
LEFT JOIN (SELECT room_id, COUNT(*) AS stored, MAX(seq) AS top FROM messages
           GROUP BY room_id) m ON m.room_id = r.room_id
WHERE COALESCE(m.stored, 0) <> r.last_seq OR COALESCE(m.top, 0) <> r.last_seq;

-- name: seed_session
-- A live session per seeded user: its tokens (issued by the bench) name it.
INSERT INTO sessions (session_id, user_id, device_id, refresh_hash, refresh_expires_at,
                      created_at, last_used_at)
VALUES (%(session_id)s, %(user_id)s, 'bench', %(refresh_hash)s, %(refresh_expires_at)s,
        %(created_at)s, %(created_at)s);
