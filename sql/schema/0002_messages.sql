-- Room messages. seq is 1, 2, 3, ... per room, taken from rooms.last_seq in
-- the transaction that stores the message.
--
-- Run it by hand after 0001 with:
--   mysql -u root chat < sql/schema/0002_messages.sql
-- Run again on an up-to-date database it succeeds and changes nothing.
-- Forward-only: never edit this file once it has landed; add a new one.

CREATE TABLE IF NOT EXISTS messages (
    message_id      BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    room_id         CHAR(16)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    seq             BIGINT UNSIGNED NOT NULL,
    sender_id       VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
    content         TEXT         NOT NULL,
    client_msg_id   VARCHAR(64)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    created_at      DATETIME(3)  NOT NULL,
    UNIQUE KEY messages_room_seq (room_id, seq),
    UNIQUE KEY messages_client_id (room_id, sender_id, client_msg_id),
    CONSTRAINT messages_room_fk FOREIGN KEY (room_id) REFERENCES rooms (room_id),
    CONSTRAINT messages_sender_fk FOREIGN KEY (sender_id) REFERENCES users (user_id),
    CONSTRAINT messages_seq_positive CHECK (seq >= 1)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

INSERT IGNORE INTO schema_migrations (version, name) VALUES (2, '0002_messages');
