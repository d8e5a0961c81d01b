"""settings.load_settings: flags, CHAT_* variables, defaults and checks."""

import stat

import pytest

import settings as settings_module
from chat.auth.ratelimit import Rate

JWT_SECRET = "settings-test-secret-" + "s" * 32


def load(tmp_path, *flags, **environ):
    return settings_module.load_settings(
        ["server.py", *flags], environ=environ, var_dir=str(tmp_path)
    )


@pytest.mark.parametrize(
    "flags,environ,complaint",
    [
        (["--port=70000"], {}, "CHAT_PORT"),
        (["--port=-1"], {}, "CHAT_PORT"),
        (["--port=eighty"], {}, None),
        ([], {"CHAT_PORT": "eighty"}, "CHAT_PORT"),
        (["--signup_grants=anyone"], {}, "CHAT_SIGNUP_GRANTS"),
        ([], {"CHAT_SIGNUP_GRANTS": "OPEN"}, "CHAT_SIGNUP_GRANTS"),
        (["--jwt_secret=too-short"], {}, "CHAT_JWT_SECRET"),
        ([], {"CHAT_JWT_SECRET": "x" * 31}, "CHAT_JWT_SECRET"),
        (["--database_url=postgres://root@127.0.0.1/chat"], {}, "CHAT_DATABASE_URL"),
        (["--database_url=mysql://root@127.0.0.1:3306/"], {}, "CHAT_DATABASE_URL"),
        (["--database_url=mysql://root@127.0.0.1:99999/chat"], {}, "CHAT_DATABASE_URL"),
        ([], {"CHAT_DATABASE_URL": "127.0.0.1:3306"}, "CHAT_DATABASE_URL"),
        (["--admin_key=short"], {}, "CHAT_ADMIN_KEY"),
        (["--bcrypt_rounds=3"], {}, "CHAT_BCRYPT_ROUNDS"),
        (["--redis_url=http://localhost"], {}, "CHAT_REDIS_URL"),
        (["--allowed_origins=example.com"], {}, "CHAT_ALLOWED_ORIGINS"),
        (["--limit_messages=0/10"], {}, "rate limit"),
        (["--limit_messages=ten"], {}, "rate limit"),
        (["--rate_limits=maybe"], {}, "CHAT_RATE_LIMITS"),
        (["--join_price=-1"], {}, "CHAT_JOIN_PRICE"),
        (["--no_such_setting=1"], {}, "no-such-setting"),
    ],
)
def test_bad_settings_are_refused(tmp_path, flags, environ, complaint):
    with pytest.raises(settings_module.SettingsError, match=complaint):
        load(tmp_path, *flags, **environ)


def test_settings_come_from_the_environment(tmp_path):
    s = load(
        tmp_path,
        CHAT_PORT="9001",
        CHAT_HOST="0.0.0.0",
        CHAT_SIGNUP_GRANTS="operator",
        CHAT_ADMIN_KEY="a" * 16,
        CHAT_JWT_SECRET=JWT_SECRET,
        CHAT_BCRYPT_ROUNDS="11",
        CHAT_DATABASE_URL="mysql://bob:p%40ss@db.example:3307/chatdb",
        CHAT_ALLOWED_ORIGINS="https://a.example, https://b.example/",
        CHAT_LIMIT_MESSAGES="5/10,100/3600",
        CHAT_WS_AUTH_TIMEOUT="2.5",
        CHAT_DEBUG="true",
        OTHER_PORT="1",
    )
    assert (s.port, s.host, s.signup_grants, s.admin_key, s.jwt_secret, s.bcrypt_rounds) == (
        9001,
        "0.0.0.0",
        "operator",
        "a" * 16,
        JWT_SECRET,
        11,
    )
    assert s.database == settings_module.DatabaseUrl("db.example", 3307, "bob", "p@ss", "chatdb")
    assert s.allowed_origins == ("https://a.example", "https://b.example")
    assert (s.limit_messages, s.ws_auth_timeout, s.debug) == (
        (Rate(5, 10.0), Rate(100, 3600.0)),
        2.5,
        True,
    )
    for secret in ("p@ss", JWT_SECRET, "a" * 16):
        assert secret not in repr(s)


def test_a_flag_wins_over_the_environment(tmp_path):
    s = load(
        tmp_path,
        "--port=9002",
        "--signup_grants=open",
        CHAT_PORT="9001",
        CHAT_SIGNUP_GRANTS="operator",
        CHAT_JWT_SECRET=JWT_SECRET,
    )
    assert (s.port, s.signup_grants) == (9002, "open")
    defaults = load(tmp_path, CHAT_JWT_SECRET=JWT_SECRET)
    assert (defaults.port, defaults.signup_grants, defaults.bcrypt_rounds) == (8888, "operator", 12)


def test_a_missing_jwt_secret_is_generated_once_and_kept(tmp_path):
    first = load(tmp_path)
    kept = tmp_path / "jwt_secret"
    assert kept.read_text().strip() == first.jwt_secret
    assert len(first.jwt_secret.encode()) >= 32
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert load(tmp_path).jwt_secret == first.jwt_secret
