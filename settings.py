"""Every setting of the chat server, in one table: the ``Settings`` dataclass.

Each field of ``Settings`` is one setting: its name, type and default, and in
its ``setting(...)`` declaration the help text and the checks. That one
declaration makes the Tornado option (``--port=9000``), the environment
variable (``CHAT_PORT=9000``), the checked value in ``Settings`` and the row of
the README's configuration table (``python settings.py --markdown``; a test
keeps the README equal to it). A command-line flag wins over the environment,
which wins over the default. ``load_settings()`` checks every value and raises
``SettingsError`` with a message naming the bad setting.

To add a setting, add a field::

    new_thing: int = setting(5, "what it does, for the README", checks=[at_least(1)])

then ``python settings.py --markdown`` and paste the table into the README
(between the ``settings:begin`` / ``settings:end`` markers).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import secrets
import sys
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from tornado.options import OptionParser

from chat.auth.ratelimit import Rate, parse_rates

log = logging.getLogger("chat.settings")

ROOT = os.path.dirname(os.path.abspath(__file__))
README_BEGIN = "<!-- settings:begin -->"
README_END = "<!-- settings:end -->"

T = TypeVar("T")


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
    def parse(cls, url: str) -> DatabaseUrl:
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

    def __repr__(self) -> str:
        # Never let the password reach a log line through a repr.
        return f"DatabaseUrl({self.user}@{self.host}:{self.port}/{self.database})"


# --- checks -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Check:
    """One rule of a setting: ``ok(value)``, else ``CHAT_NAME <complaint>``.

    ``doc`` is how the README's table states the rule. With ``warn_only`` a
    value breaking the rule is logged, not refused.
    """

    doc: str
    ok: Callable[[Any], bool]
    complaint: str
    warn_only: bool = False

    def __call__(self, env_name: str, value: Any) -> None:
        if self.ok(value):
            return
        if self.warn_only:
            log.warning("%s=%s %s", env_name, value, self.complaint)
        else:
            raise SettingsError(f"{env_name} {self.complaint}")


def between(low: int, high: int) -> Check:
    return Check(f"{low}–{high}", lambda v: low <= v <= high, f"must be between {low} and {high}")


def at_least(minimum: float) -> Check:
    return Check(f"≥ {minimum}", lambda v: v >= minimum, f"must be at least {minimum}")


def not_negative() -> Check:
    return Check("≥ 0", lambda v: v >= 0, "must not be negative")


def one_of(*choices: str) -> Check:
    return Check(
        " or ".join(f"`{c}`" for c in choices),
        lambda v: v in choices,
        "must be " + " or ".join(f"{c!r}" for c in choices),
    )


def empty_or_at_least_chars(length: int) -> Check:
    return Check(
        f"empty or ≥ {length} characters",
        lambda v: not v or len(v) >= length,
        f"must be at least {length} characters long",
    )


def empty_or_at_least_bytes(length: int) -> Check:
    return Check(
        f"empty or ≥ {length} bytes",
        lambda v: not v or len(v.encode()) >= length,
        f"must be at least {length} bytes long",
    )


def empty_or_starting(*prefixes: str) -> Check:
    listed = ", ".join(prefixes[:-1]) + " or " + prefixes[-1]
    return Check(
        "empty or " + ", ".join(f"`{p}`" for p in prefixes),
        lambda v: not v or v.startswith(prefixes),
        f"must start with {listed}",
    )


def for_tests_below(minimum: int, production: int) -> Check:
    """A warning, not a refusal: values below ``minimum`` are for tests."""
    return Check(
        f"below {minimum} for tests only",
        lambda v: v >= minimum,
        f"is for tests only; production uses {production}",
        warn_only=True,
    )


# --- conversions from the option's text to the setting's value ----------------------------


def _origins(text: str) -> tuple[str, ...]:
    origins = tuple(x.strip().rstrip("/") for x in text.split(",") if x.strip())
    for origin in origins:
        if not origin.startswith(("http://", "https://")):
            raise SettingsError(f"CHAT_ALLOWED_ORIGINS: {origin!r} is not an http(s) origin")
    return origins


def _metrics_access(text: str) -> tuple[Any, ...]:
    """``on``: every address; ``off``: none; else the addresses and networks listed."""
    value = text.strip().lower()
    if value == "on":
        return (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
    if value == "off":
        return ()
    networks = []
    for item in value.split(","):
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise SettingsError(
                f"CHAT_METRICS: {item.strip()!r} is not on, off, an address or a network"
            ) from None
    return tuple(networks)


def _public_origin(text: str) -> str:
    origin = text.strip().rstrip("/")
    if origin and not _origins(origin):
        raise SettingsError(f"CHAT_PUBLIC_ORIGIN: {origin!r} is not an http(s) origin")
    return origin


def _stored_secret(var_dir: str, name: str) -> str:
    """The secret kept in ``var_dir/name`` (mode 0600), generated there the first time."""
    path = os.path.join(var_dir, name)
    setting_name = env_name(name)
    if os.path.exists(path):
        with open(path, encoding="ascii") as f:
            secret = f.read().strip()
        log.debug("%s is not set; using the one kept in %s", setting_name, path)
        return secret
    os.makedirs(var_dir, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(secret + "\n")
    log.warning("%s is not set; generated one and kept it in %s", setting_name, path)
    return secret


def _stored_jwt_secret(var_dir: str) -> str:
    return _stored_secret(var_dir, "jwt_secret")


def _stored_admin_key(var_dir: str) -> str:
    return _stored_secret(var_dir, "admin_key")


def _rates(text: str) -> tuple[Rate, ...]:
    try:
        return parse_rates(text)
    except ValueError as exc:
        raise SettingsError(f"a rate limit: {exc}") from None


def _limit(text: str, help: str) -> Any:
    return setting(
        _rates(text),
        help,
        text=text,
        parse=_rates,
        accepted="`COUNT/SECONDS[,...]`",
    )


# --- the table ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Row:
    """How one field of ``Settings`` is given, checked and shown.

    ``option``: the flag's name when it is not the field's; ``text``: the
    option's default as given on the command line, with ``parse`` turning the
    text into the value, for settings whose value is not a plain
    str/int/float/bool; ``when_empty(var_dir)``: the value of a setting left
    empty; ``shown``: the default as the README states it; ``accepted``: the
    rule ``parse`` enforces, as the README states it.
    """

    help: str
    checks: Sequence[Check] = ()
    option: str | None = None
    text: str | None = None
    parse: Callable[[str], Any] | None = None
    when_empty: Callable[[str], Any] | None = None
    shown: str | None = None
    accepted: str | None = None


def setting(
    default: T,
    help: str,
    *,
    checks: Sequence[Check] = (),
    secret: bool = False,
    option: str | None = None,
    text: str | None = None,
    parse: Callable[[str], T] | None = None,
    when_empty: Callable[[str], T] | None = None,
    shown: str | None = None,
    accepted: str | None = None,
) -> T:
    """Declare one field of ``Settings``; a ``secret`` one never shows in its repr."""
    row = Row(help, tuple(checks), option, text, parse, when_empty, shown, accepted)
    field: T = dataclasses.field(default=default, repr=not secret, metadata={"row": row})
    return field


@dataclasses.dataclass(frozen=True)
class Settings:
    host: str = setting("127.0.0.1", "address to listen on")
    port: int = setting(8888, "port to listen on", checks=[between(0, 65535)])
    database: DatabaseUrl = setting(
        DatabaseUrl("127.0.0.1", 3306, "root", "", "chat"),
        "the database; created and migrated at start-up if needed",
        option="database_url",
        text="mysql://root@127.0.0.1:3306/chat",
        parse=DatabaseUrl.parse,
        accepted="`mysql://` or `mariadb://` URL naming a database",
    )
    db_pool_size: int = setting(
        20,
        "most database connections per process: half for transactions, the rest for "
        "reads (at least one each)",
        checks=[at_least(1)],
    )
    db_timeout: float = setting(
        1.5,
        "seconds to open a database connection or run one statement; past it the call is "
        "`503 unavailable` (a frozen or unreachable database answers 503 within about this)",
        checks=[at_least(0.05)],
    )
    db_acquire_timeout: float = setting(
        0.5,
        "seconds a call waits for a free pooled connection before `503 unavailable`",
        checks=[not_negative()],
    )
    db_start_wait: float = setting(
        30.0,
        "seconds start-up waits (retrying with backoff) for an unreachable database",
        checks=[not_negative()],
    )
    queue_delay_ms: float = setting(
        100.0,
        "queueing delay (arrival to start of work) past which new work is refused at "
        "once with `503 overloaded`",
        checks=[at_least(1)],
    )
    message_batch: int = setting(
        100, "most messages stored in one transaction (group commit)", checks=[at_least(1)]
    )
    drain_seconds: float = setting(
        10.0,
        "on SIGTERM, seconds requests and frames in flight may take; then their database "
        "work is rolled back and the process exits",
        checks=[not_negative()],
    )
    jwt_secret: str = setting(
        "",
        "HS256 secret; when unset, generated into `var/jwt_secret` (mode 0600, reused); "
        "every process needs the same",
        checks=[empty_or_at_least_bytes(32)],
        secret=True,
        when_empty=_stored_jwt_secret,
        shown="generated",
    )
    token_ttl: int = setting(900, "seconds an access token lives", checks=[at_least(60)])
    bcrypt_queue: int = setting(
        16,
        "bcrypt checks that may wait for a thread (more: `503 overloaded`)",
        checks=[at_least(0)],
    )
    refresh_ttl: int = setting(
        2592000,
        "seconds a refresh token lives",
        checks=[at_least(300)],
    )
    bcrypt_rounds: int = setting(
        12,
        "bcrypt cost for user and room passwords (below 10 only for tests)",
        checks=[between(4, 31), for_tests_below(10, 12)],
    )
    signup_grants: str = setting(
        "operator",
        "`open`: registration may set `availCoins` and `isPrime`; `operator`: only the "
        "admin API may",
        checks=[one_of("open", "operator")],
    )
    admin_key: str = setting(
        "",
        "`X-Admin-Key` of the operator API; when unset, generated into `var/admin_key`",
        checks=[empty_or_at_least_chars(16)],
        secret=True,
        when_empty=_stored_admin_key,
        shown="generated",
    )
    allowed_origins: tuple[str, ...] = setting(
        (),
        "comma-separated browser origins allowed by CORS and for WebSockets",
        text="",
        parse=_origins,
        accepted="`http://` or `https://` origins",
    )
    public_origin: str = setting(
        "",
        "origin browsers use (`https://chat.example`), trusted for WebSockets; empty: "
        "`http://CHAT_HOST:CHAT_PORT`",
        text="",
        parse=_public_origin,
        accepted="empty, or an `http://` or `https://` origin",
    )
    http_idle_timeout: float = setting(
        60.0,
        "seconds an idle HTTP connection stays open",
        checks=[at_least(1)],
    )
    join_price: int = setting(
        150, "coins a non-prime member pays for each room after the first", checks=[not_negative()]
    )
    invite_ttl: int = setting(86400, "seconds an invitation lives", checks=[at_least(60)])
    max_body_bytes: int = setting(
        65536, "largest request body or WebSocket frame", checks=[at_least(1024)]
    )
    redis_url: str = setting(
        "",
        "`redis://host:6379/0`: fan rooms out through Redis so several processes serve them",
        checks=[empty_or_starting("redis://", "rediss://", "unix://")],
        secret=True,
    )
    ws_auth_timeout: float = setting(10.0, "seconds a socket has to send its `auth` frame")
    ws_ping_interval: float = setting(30.0, "seconds between server pings on each socket (0: none)")
    token_recheck: float = setting(
        30.0,
        "a process hears of every logout through the broker at once; should the broker "
        "lose one (e.g. while Redis is down), the token is refused, and its sockets closed, "
        "within this many seconds",
    )
    ws_max_buffer_bytes: int = setting(
        1048576,
        "pending output after which a client that does not read is disconnected",
        checks=[at_least(65536)],
    )
    behind_proxy: bool = setting(
        False,
        "`true`: take the client's address and scheme from `X-Real-IP` / `X-Forwarded-*` "
        "(set it only when a reverse proxy is the sole way in; a client talking to the "
        "server directly could forge them)",
    )
    debug: bool = setting(False, "Tornado debug mode (never in production)")
    metrics: tuple[Any, ...] = setting(
        _metrics_access("on"),
        "who may read `GET /metrics`: `on` (anyone who reaches the server), `off` (no such "
        "path), or a comma-separated list of addresses and networks (`127.0.0.1,10.0.0.0/8`)",
        text="on",
        parse=_metrics_access,
        shown="`on`",
        accepted="`on`, `off`, or addresses / networks",
    )
    log_format: str = setting(
        "text",
        "`text`: lines for a terminal; `json`: one JSON object a line (time, level, logger, "
        "message, requestId; for requests also method, route, status, durationMs)",
        checks=[one_of("text", "json")],
    )
    log_level: str = setting(
        "INFO", "the least level logged", checks=[one_of("DEBUG", "INFO", "WARNING", "ERROR")]
    )
    rate_limits: str = setting(
        "on",
        "`off`: no rate limits (tests, benchmarks)",
        checks=[one_of("on", "off")],
    )
    limit_login_failures: tuple[Rate, ...] = _limit(
        "5/300,20/3600", "failed logins per account and client address"
    )
    limit_login_failures_address: tuple[Rate, ...] = _limit(
        "30/300,100/3600", "failed logins per client address, any account"
    )
    limit_logins_address: tuple[Rate, ...] = _limit(
        "20/60", "login attempts per client address (each costs a bcrypt check)"
    )
    limit_registrations_address: tuple[Rate, ...] = _limit(
        "10/3600", "registrations per client address"
    )
    limit_messages: tuple[Rate, ...] = _limit("10/10", "messages per user, HTTP and WebSocket")
    limit_typing: tuple[Rate, ...] = _limit("10/10", "typing frames per user")
    limit_subscribes: tuple[Rate, ...] = _limit("60/60", "subscribe frames per user")
    limit_ws_frames: tuple[Rate, ...] = _limit(
        "120/60", "frames of any type per WebSocket (this process)"
    )
    limit_ws_opens: tuple[Rate, ...] = _limit("30/60", "WebSockets opened per user")
    limit_invitations: tuple[Rate, ...] = _limit("20/3600", "invitations per user")
    limit_room_password_failures: tuple[Rate, ...] = _limit(
        "5/300,20/3600", "wrong room passwords per user"
    )
    limit_room_password_failures_room: tuple[Rate, ...] = _limit(
        "30/3600", "wrong room passwords per room, any user"
    )
    limit_friend_requests: tuple[Rate, ...] = _limit("30/3600", "friend requests per user")
    limit_admin_key_failures: tuple[Rate, ...] = _limit(
        "5/3600", "wrong `X-Admin-Key` values per client address"
    )
    ws_per_user: int = setting(
        10,
        "sockets per user per process (more: close 4008)",
        checks=[at_least(1)],
    )


def rows() -> list[tuple[str, str, type, Any, Row]]:
    """``(field, option, option type, option default, Row)`` for every setting, in order."""
    found: list[tuple[str, str, type, Any, Row]] = []
    for field in dataclasses.fields(Settings):
        row: Row = field.metadata["row"]
        option = row.option or field.name
        if row.parse is not None:
            found.append((field.name, option, str, row.text, row))
        else:
            found.append((field.name, option, type(field.default), field.default, row))
    return found


def env_name(option: str) -> str:
    return "CHAT_" + option.upper()


# --- loading ------------------------------------------------------------------------------


def _define_options() -> OptionParser:
    parser = OptionParser()
    for _, option, kind, default, row in rows():
        parser.define(option, default=default, type=kind, help=row.help)
    return parser


def _apply_environment(parser: OptionParser, environ: Mapping[str, str]) -> None:
    for name in parser.as_dict():
        value = environ.get(env_name(name))
        if value is None:
            continue
        try:
            parser.parse_command_line(["settings", f"--{name}={value}"], final=False)
        except Exception as exc:
            raise SettingsError(f"{env_name(name)}: {exc}") from None


def load_settings(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    var_dir: str | None = None,
) -> Settings:
    """Read flags and CHAT_* variables into a checked, immutable Settings."""
    environ = os.environ if environ is None else environ
    parser = _define_options()
    _apply_environment(parser, environ)
    for arg in list(argv or [])[1:]:
        try:
            parser.parse_command_line(["server.py", arg], final=False)
        except Exception as exc:
            raise SettingsError(f"{arg.split('=')[0]}: {exc}") from None
    return build_settings(parser.as_dict(), var_dir or os.path.join(ROOT, "var"))


def build_settings(options: Mapping[str, Any], var_dir: str) -> Settings:
    """Check raw option values and turn them into Settings."""
    values = {}
    for name, option, _, _, row in rows():
        value = options[option]
        for check in row.checks:
            check(env_name(option), value)
        if row.parse is not None:
            value = row.parse(value)
        if row.when_empty is not None and not value:
            value = row.when_empty(var_dir)
        values[name] = value
    return Settings(**values)


# --- the README's table -------------------------------------------------------------------


def _shown_default(default: Any, row: Row) -> str:
    if row.shown is not None:
        return row.shown
    if isinstance(default, bool):
        return "`true`" if default else "`false`"
    if default == "":
        return "empty"
    if isinstance(default, float) and default.is_integer():
        default = int(default)
    return f"`{default}`"


def markdown() -> str:
    """The configuration table as the README shows it, between its markers."""
    lines = [
        README_BEGIN,
        "| variable | default | accepted | meaning |",
        "|---|---|---|---|",
    ]
    for _, option, _, default, row in rows():
        if option.startswith("limit_"):
            continue  # one row for them all: docs/security.md lists and justifies each
        if option == "rate_limits":
            lines.append(
                "| `CHAT_LIMIT_*` | docs/security.md | `COUNT/SECONDS[,...]` | one per rate "
                "limit, e.g. `CHAT_LIMIT_MESSAGES` |"
            )
        rules = [c.doc for c in row.checks if not c.warn_only]
        accepted = "; ".join(rules + ([row.accepted] if row.accepted else []))
        help_text = row.help.replace("|", "\\|")
        lines.append(
            f"| `{env_name(option)}` | {_shown_default(default, row)} | {accepted} | {help_text} |"
        )
    lines.append(README_END)
    return "\n".join(lines) + "\n"


def readme_block(text: str) -> str:
    """The part of ``text`` between the settings markers, the markers included."""
    start = text.index(README_BEGIN)
    end = text.index(README_END, start) + len(README_END)
    return text[start:end] + "\n"


def main(argv: Sequence[str]) -> int:
    if list(argv[1:]) == ["--markdown"]:
        sys.stdout.write(markdown())
        return 0
    if list(argv[1:]) == ["--write-readme"]:
        path = os.path.join(ROOT, "README.md")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        text = text.replace(readme_block(text), markdown())
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return 0
    sys.stderr.write("usage: python settings.py --markdown | --write-readme\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
