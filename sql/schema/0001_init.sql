-- Accounts, rooms, memberships, invitations, the coin ledger, login-token
-- revocations and friend requests.
--
-- Run it by hand on an empty database with:
--   mysql -u root chat < sql/schema/0001_init.sql
-- The server applies it itself at start-up when schema_migrations lacks it.
-- Run again on an up-to-date database it succeeds and changes nothing.
-- Forward-only: never edit this file once it has landed; add a new one.

CREATE TABLE IF NOT EXISTS schema_migrations (
    version     INT UNSIGNED NOT NULL PRIMARY KEY,
    name        VARCHAR(255) NOT NULL,
    applied_at  DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- user_id is chosen by the client; its collation makes "Alice" and "alice"
-- the same account, so nobody can register a look-alike of someone else.
CREATE TABLE IF NOT EXISTS users (
    user_id         VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL PRIMARY KEY,
    device_id       VARCHAR(128) NOT NULL,
    name            VARCHAR(64)  NOT NULL,
    phone           VARCHAR(16)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    password_hash   CHAR(60)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    avail_coins     BIGINT       NOT NULL DEFAULT 0,
    is_prime        BOOLEAN      NOT NULL DEFAULT FALSE,
    free_join_used  BOOLEAN      NOT NULL DEFAULT FALSE,
    created_at      DATETIME(3)  NOT NULL,
    UNIQUE KEY users_phone (phone),
    CONSTRAINT users_coins_not_negative CHECK (avail_coins >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- member_count is kept in the same transaction as room_members, under the
-- room row's lock; the CHECK makes an overfull room impossible even for a
-- buggy caller. last_seq is the room's message counter.
CREATE TABLE IF NOT EXISTS rooms (
    room_id         CHAR(16)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    name            VARCHAR(64)  NOT NULL,
    owner_id        VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
    password_hash   CHAR(60)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    capacity        TINYINT UNSIGNED NOT NULL DEFAULT 6,
    member_count    TINYINT UNSIGNED NOT NULL DEFAULT 0,
    last_seq        BIGINT UNSIGNED  NOT NULL DEFAULT 0,
    created_at      DATETIME(3)  NOT NULL,
    KEY rooms_owner (owner_id),
    CONSTRAINT rooms_owner_fk FOREIGN KEY (owner_id) REFERENCES users (user_id),
    CONSTRAINT rooms_capacity_max CHECK (capacity BETWEEN 1 AND 6),
    CONSTRAINT rooms_not_overfull CHECK (member_count <= capacity)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS room_members (
    room_id         CHAR(16)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    user_id         VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
    charged         INT UNSIGNED NOT NULL DEFAULT 0,
    joined_at       DATETIME(3)  NOT NULL,
    PRIMARY KEY (room_id, user_id),
    KEY room_members_user (user_id, joined_at),
    CONSTRAINT room_members_room_fk FOREIGN KEY (room_id) REFERENCES rooms (room_id),
    CONSTRAINT room_members_user_fk FOREIGN KEY (user_id) REFERENCES users (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Only the SHA-256 of an invitation token is kept. used_at makes it single-use.
CREATE TABLE IF NOT EXISTS invitations (
    invitation_id   BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    token_hash      BINARY(32)   NOT NULL,
    room_id         CHAR(16)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    inviter_id      VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
    invitee_id      VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
    expires_at      DATETIME(3)  NOT NULL,
    used_at         DATETIME(3)  NULL,
    created_at      DATETIME(3)  NOT NULL,
    UNIQUE KEY invitations_token (token_hash),
    KEY invitations_room (room_id),
    KEY invitations_invitee (invitee_id),
    CONSTRAINT invitations_room_fk FOREIGN KEY (room_id) REFERENCES rooms (room_id),
    CONSTRAINT invitations_inviter_fk FOREIGN KEY (inviter_id) REFERENCES users (user_id),
    CONSTRAINT invitations_invitee_fk FOREIGN KEY (invitee_id) REFERENCES users (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Every change of a balance is a row here, written in the transaction that
-- changes users.avail_coins: per user, SUM(delta) = avail_coins.
CREATE TABLE IF NOT EXISTS coin_ledger (
    entry_id        BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id         VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
    delta           BIGINT       NOT NULL,
    balance_after   BIGINT       NOT NULL,
    reason          ENUM('signup_grant', 'join_charge', 'operator_grant') NOT NULL,
    room_id         CHAR(16)     CHARACTER SET ascii COLLATE ascii_bin NULL,
    created_at      DATETIME(3)  NOT NULL,
    KEY coin_ledger_user (user_id, entry_id),
    CONSTRAINT coin_ledger_user_fk FOREIGN KEY (user_id) REFERENCES users (user_id),
    CONSTRAINT coin_ledger_room_fk FOREIGN KEY (room_id) REFERENCES rooms (room_id),
    CONSTRAINT coin_ledger_balance_not_negative CHECK (balance_after >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Login tokens revoked by logout, kept until they would have expired anyway.
CREATE TABLE IF NOT EXISTS revoked_tokens (
    jti             CHAR(32)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    user_id         VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
    expires_at      DATETIME(3)  NOT NULL,
    KEY revoked_tokens_expiry (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- pending_flag is 1 while a request is pending and NULL afterwards, so the
-- unique key allows one pending request per direction and any number of old ones.
CREATE TABLE IF NOT EXISTS friend_requests (
    request_id      BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    from_user_id    VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
    to_user_id      VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
    status          ENUM('pending', 'accepted', 'declined') NOT NULL DEFAULT 'pending',
    pending_flag    TINYINT      NULL DEFAULT 1,
    created_at      DATETIME(3)  NOT NULL,
    responded_at    DATETIME(3)  NULL,
    UNIQUE KEY friend_requests_one_pending (from_user_id, to_user_id, pending_flag),
    KEY friend_requests_incoming (to_user_id, status),
    CONSTRAINT friend_requests_from_fk FOREIGN KEY (from_user_id) REFERENCES users (user_id),
    CONSTRAINT friend_requests_to_fk FOREIGN KEY (to_user_id) REFERENCES users (user_id),
    CONSTRAINT friend_requests_not_self CHECK (from_user_id <> to_user_id),
    CONSTRAINT friend_requests_flag CHECK ((status = 'pending') = (pending_flag IS NOT NULL))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One row per friendship, the smaller userId first.
CREATE TABLE IF NOT EXISTS friendships (
    user_a          VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
    user_b          VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
    created_at      DATETIME(3)  NOT NULL,
    PRIMARY KEY (user_a, user_b),
    KEY friendships_b (user_b),
    CONSTRAINT friendships_a_fk FOREIGN KEY (user_a) REFERENCES users (user_id),
    CONSTRAINT friendships_b_fk FOREIGN KEY (user_b) REFERENCES users (user_id),
    CONSTRAINT friendships_ordered CHECK (user_a < user_b)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

INSERT IGNORE INTO schema_migrations (version, name) VALUES (1, '0001_init');
