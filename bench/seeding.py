"""The bench database: created, seeded in bulk through SQL, dropped."""

import base64
import dataclasses
import datetime
import hashlib
import math
import os
import secrets

import bcrypt

from bench.processes import BENCH, ROOT
from chat.db import migrate, sqlfile

MSG_PHASES = {"http", "e2e", "e2e_http", "open", "overload", "stuck", "ceiling", "two"}


PASSWORD = "bench-password-1"


ROOM_PASSWORD = "room-password"


JOIN_PRICE = 150


ROOM_SIZE = 6


@dataclasses.dataclass
class Seeded:
    msg_rooms: list
    conn_rooms: list
    join_rooms: list
    join_users: list
    login_users: list


def session_id(user_id):
    """The seeded session of a bench user (its tokens carry it as ``sid``)."""
    return hashlib.md5(user_id.encode()).hexdigest()


class BenchDatabase:
    def __init__(self, server_url):
        self.url = dataclasses.replace(server_url, database="chat_bench_" + secrets.token_hex(4))
        with open(os.path.join(BENCH, "bench.sql"), encoding="utf-8") as f:
            self.queries = sqlfile.parse(f.read(), "bench/bench.sql")
        self.created = False

    def connect(self, database=True):
        return migrate.connect(self.url, self.url.database if database else None)

    def create(self):
        self.created = True
        migrate.migrate(self.url, os.path.join(ROOT, "sql", "schema"), create_database=True)

    def drop(self):
        if not self.created:
            return
        conn = self.connect(database=False)
        try:
            conn.cursor().execute(f"DROP DATABASE IF EXISTS `{self.url.database}`")
        finally:
            conn.close()

    def many(self, conn, name, rows):
        with conn.cursor() as cur:
            for i in range(0, len(rows), 2000):
                cur.executemany(self.queries[name].sql, rows[i : i + 2000])

    def _one_row(self, statement, database=True):
        conn = self.connect(database=database)
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
                return cur.fetchone()
        finally:
            conn.close()

    def count(self, name):
        return int(self._one_row(self.queries[name].sql)[0])

    def statements(self):
        """Statements the database server has run for its clients so far (all of them)."""
        return int(self._one_row("SHOW GLOBAL STATUS LIKE 'Questions'", database=False)[1])

    def version(self):
        return self._one_row("SELECT VERSION()", database=False)[0]

    def seed(self, args, rng):
        """Users, rooms and memberships for every phase, in bulk."""
        cheap = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
        room_hash = bcrypt.hashpw(
            ROOM_PASSWORD.encode(), bcrypt.gensalt(args.room_hash_cost)
        ).decode()
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        users, rooms, members, grants = [], [], [], []

        def user(user_id, prime=False, coins=0, free_join_used=False, password_hash=cheap):
            users.append(
                {
                    "user_id": user_id,
                    "device_id": "bench",
                    "name": user_id,
                    "phone": f"+1{len(users):010d}",
                    "password_hash": password_hash,
                    "avail_coins": coins,
                    "is_prime": prime,
                    "free_join_used": free_join_used,
                    "created_at": now,
                }
            )
            if coins:
                grants.append({"user_id": user_id, "delta": coins, "created_at": now})
            return user_id

        def room(prefix, index, member_ids, password_hash=cheap):
            room_id = base64.urlsafe_b64encode(rng.randbytes(12)).decode()
            rooms.append(
                {
                    "room_id": room_id,
                    "name": f"{prefix} {index}",
                    "owner_id": member_ids[0],
                    "password_hash": password_hash,
                    "member_count": len(member_ids),
                    "created_at": now,
                }
            )
            members.extend({"room_id": room_id, "user_id": m, "joined_at": now} for m in member_ids)
            return room_id, member_ids

        def full_rooms(prefix, sockets):
            made = []
            for r in range(math.ceil(sockets / ROOM_SIZE)):
                size = min(ROOM_SIZE, sockets - r * ROOM_SIZE)
                ids = [user(f"{prefix}{r}x{k}", prime=(k == 0)) for k in range(size)]
                made.append(room(prefix, r, ids))
            return made

        msg_rooms = full_rooms("m", args.rooms * ROOM_SIZE) if MSG_PHASES & set(args.phases) else []
        conn_rooms = full_rooms("c", args.conns) if "conns" in args.phases else []
        join_rooms, join_users = [], []
        if "joins" in args.phases:
            for r in range(args.join_rooms):
                owner = user(f"jo{r}", prime=True)
                join_rooms.append(room("j", r, [owner], password_hash=room_hash)[0])
            join_users = [
                user(f"ju{i}", coins=JOIN_PRICE * args.join_coins, free_join_used=True)
                for i in range(args.join_users)
            ]
        login_users = []
        if "http" in args.phases and args.login_users:
            costly = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(12)).decode()
            login_users = [user(f"li{i}", password_hash=costly) for i in range(args.login_users)]
        conn = self.connect()
        try:
            self.many(conn, "seed_user", users)
            self.many(conn, "seed_room", rooms)
            self.many(conn, "seed_member", members)
            self.many(conn, "seed_grant", grants)
            # Tokens name a live session (sql/schema/0003_sessions.sql).
            self.many(
                conn,
                "seed_session",
                [
                    {
                        "session_id": session_id(u["user_id"]),
                        "user_id": u["user_id"],
                        "refresh_hash": hashlib.sha256(u["user_id"].encode()).digest(),
                        "refresh_expires_at": now + datetime.timedelta(days=1),
                        "created_at": now,
                    }
                    for u in users
                ],
            )
        finally:
            conn.close()
        return Seeded(msg_rooms, conn_rooms, join_rooms, join_users, login_users)
