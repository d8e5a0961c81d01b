-- name: insert_ledger_entry
-- Written in the same transaction as the balance change it records.
INSERT INTO coin_ledger (user_id, delta, balance_after, reason, room_id, created_at)
VALUES (%(user_id)s, %(delta)s, %(balance_after)s, %(reason)s, %(room_id)s, %(created_at)s);
