"""Every setting of the chat server, in one place.

Each setting is a Tornado option (``--port=9000``) and can also be given as an
environment variable named ``CHAT_`` plus the option name in upper case
(``CHAT_PORT=9000``). A command-line flag wins over the environment, which wins
over the default. ``load_settings()`` checks every value and raises
``SettingsError`` with a message naming the bad setting.
"""

import dataclasses
import logging
import os
import secrets
import urllib.parse

from tornado.options import OptionParser

log = logging.getLogger("chat.settings")

ROOT = os.path.dirname(os.path.abspath(__file__))


class SettingsError(Exception):
    pass


@dataclasses.dataclass(frozen=True)
class DatabaseUrl:
    host: str
    port: int
    user: str
    password: str
    database: str

    @classmethod
    def parse(cls, url):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("mysql", "mariadb") or not parts.path.strip("/"):
            raise SettingsError(
                "CHAT_DATABASE_URL must look like mysql://user:password@host:3306/database"
            )
        try:
            port = parts.port or 3306
        except ValueError:
            raise SettingsError("CHAT_DATABASE_URL has an invalid port") from None
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=port,
            user=urllib.parse.unquote(parts.username or "root"),
            password=urllib.parse.unquote(parts.password or ""),
            database=parts.path.strip("/"),
        )

    def __repr__(self):
        # Never let the password reach a log line through a repr.
        return f"DatabaseUrl({self.user}@{self.host}:{self.port}/{self.database})"


@dataclasses.dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8888
    database: DatabaseUrl = DatabaseUrl("127.0.0.1", 3306, "root", "", "chat")
    db_pool_size: int = 20
    jwt_secret: str = dataclasses.field(default="", repr=False)
    token_ttl: int = 86400
    bcrypt_rounds: int = 12
    signup_grants: str = "open"
    admin_key: str = dataclasses.field(default="", repr=False)
    allowed_origins: tuple = ()
    join_price: int = 150
    invite_ttl: int = 86400
    login_attempts: int = 10
    login_window: int = 300
    max_body_bytes: int = 65536
    redis_url: str = dataclasses.field(default="", repr=False)
    ws_auth_timeout: float = 10.0
    ws_ping_interval: float = 30.0
    token_recheck: float = 30.0
    ws_max_buffer_bytes: int = 1048576
    behind_proxy: bool = False
    debug: bool = False


def _define_options():
    parser = OptionParser()
    d = parser.define
    d("host", default="127.0.0.1", help="address to listen on")
    d("port", default=8888, type=int, help="port to listen on")
    d("database_url", default="mysql://root@127.0.0.1:3306/chat", help="MySQL/MariaDB URL")
    d(
        "db_pool_size",
        default=20,
        type=int,
        help="most database connections (a quarter for transactions, the rest for reads)",
    )
    d("jwt_secret", default="", help="HS256 secret (generated into var/ when empty)")
    d("token_ttl", default=86400, type=int, help="seconds a login token lives")
    d("bcrypt_rounds", default=12, type=int, help="bcrypt cost (production: 12)")
    d(
        "signup_grants",
        default="open",
        help="open: registration may set availCoins/isPrime; operator: only the admin API may",
    )
    d("admin_key", default="", help="X-Admin-Key for the operator grants API")
    d(
        "allowed_origins",
        default="",
        help="comma-separated WebSocket origins allowed besides the server's own",
    )
    d("join_price", default=150, type=int, help="coins a non-prime member pays per extra room")
    d("invite_ttl", default=86400, type=int, help="seconds an invitation lives")
    d("login_attempts", default=10, type=int, help="login attempts per identifier per window")
    d("login_window", default=300, type=int, help="seconds of the login rate window")
    d("max_body_bytes", default=65536, type=int, help="largest request body or frame")
    d("redis_url", default="", help="redis://host:port/db for fan-out across processes")
    d("ws_auth_timeout", default=10.0, type=float, help="seconds to send the auth frame")
    d("ws_ping_interval", default=30.0, type=float, help="seconds between WebSocket pings")
    d(
        "token_recheck",
        default=30.0,
        type=float,
        help="seconds within which a logout the broker lost still takes effect",
    )
    d(
        "ws_max_buffer_bytes",
        default=1048576,
        type=int,
        help="pending output after which a slow WebSocket client is dropped",
    )
    d(
        "behind_proxy",
        default=False,
        type=bool,
        help="trust X-Real-IP / X-Forwarded-* (only when a proxy is the sole way in)",
    )
    d("debug", default=False, type=bool, help="Tornado debug mode (never in production)")
    return parser


def _apply_environment(parser, environ):
    for name in parser.as_dict():
        value = environ.get("CHAT_" + name.upper())
        if value is None:
            continue
        try:
            parser.parse_command_line(["settings", f"--{name}={value}"], final=False)
        except Exception as exc:
            raise SettingsError(f"CHAT_{name.upper()}: {exc}") from None


def _jwt_secret(configured, var_dir):
    if configured:
        if len(configured.encode()) < 32:
            raise SettingsError("CHAT_JWT_SECRET must be at least 32 bytes long")
        return configured
    path = os.path.join(var_dir, "jwt_secret")
    if os.path.exists(path):
        with open(path, encoding="ascii") as f:
            secret = f.read().strip()
        log.info("CHAT_JWT_SECRET is not set; using the secret kept in %s", path)
        return secret
    os.makedirs(var_dir, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(secret + "\n")
    log.warning("CHAT_JWT_SECRET is not set; generated one and kept it in %s", path)
    return secret


def load_settings(argv=None, environ=None, var_dir=None):
    """Read flags and CHAT_* variables into a checked, immutable Settings."""
    environ = os.environ if environ is None else environ
    parser = _define_options()
    _apply_environment(parser, environ)
    for arg in list(argv or [])[1:]:
        try:
            parser.parse_command_line(["server.py", arg], final=False)
        except Exception as exc:
            raise SettingsError(f"{arg.split('=')[0]}: {exc}") from None
    o = parser.as_dict()
    return build_settings(o, var_dir or os.path.join(ROOT, "var"))


def build_settings(o, var_dir):
    """Check raw option values and turn them into Settings."""

    def positive(name, minimum=1):
        if o[name] < minimum:
            raise SettingsError(f"CHAT_{name.upper()} must be at least {minimum}")
        return o[name]

    if not 0 <= o["port"] <= 65535:
        raise SettingsError("CHAT_PORT must be between 0 and 65535")
    if not 4 <= o["bcrypt_rounds"] <= 31:
        raise SettingsError("CHAT_BCRYPT_ROUNDS must be between 4 and 31")
    if o["bcrypt_rounds"] < 10:
        log.warning(
            "CHAT_BCRYPT_ROUNDS=%d is for tests only; production uses 12", o["bcrypt_rounds"]
        )
    if o["signup_grants"] not in ("open", "operator"):
        raise SettingsError("CHAT_SIGNUP_GRANTS must be 'open' or 'operator'")
    if o["admin_key"] and len(o["admin_key"]) < 16:
        raise SettingsError("CHAT_ADMIN_KEY must be at least 16 characters long")
    if o["redis_url"] and not o["redis_url"].startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError("CHAT_REDIS_URL must start with redis://, rediss:// or unix://")
    if o["join_price"] < 0:
        raise SettingsError("CHAT_JOIN_PRICE must not be negative")
    origins = tuple(x.strip().rstrip("/") for x in o["allowed_origins"].split(",") if x.strip())
    for origin in origins:
        if not origin.startswith(("http://", "https://")):
            raise SettingsError(f"CHAT_ALLOWED_ORIGINS: {origin!r} is not an http(s) origin")
    return Settings(
        host=o["host"],
        port=o["port"],
        database=DatabaseUrl.parse(o["database_url"]),
        db_pool_size=positive("db_pool_size"),
        jwt_secret=_jwt_secret(o["jwt_secret"], var_dir),
        token_ttl=positive("token_ttl", 60),
        bcrypt_rounds=o["bcrypt_rounds"],
        signup_grants=o["signup_grants"],
        admin_key=o["admin_key"],
        allowed_origins=origins,
        join_price=o["join_price"],
        invite_ttl=positive("invite_ttl", 60),
        login_attempts=positive("login_attempts"),
        login_window=positive("login_window"),
        max_body_bytes=positive("max_body_bytes", 1024),
        redis_url=o["redis_url"],
        ws_auth_timeout=o["ws_auth_timeout"],
        ws_ping_interval=o["ws_ping_interval"],
        token_recheck=o["token_recheck"],
        ws_max_buffer_bytes=positive("ws_max_buffer_bytes", 65536),
        behind_proxy=o["behind_proxy"],
        debug=o["debug"],
    )
