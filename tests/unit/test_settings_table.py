"""The settings table drives the README's configuration table, and every option."""

import os

import settings as settings_module

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_readme_shows_the_settings_table() -> None:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    assert settings_module.readme_block(readme) == settings_module.markdown(), (
        "README.md's configuration table is out of date: run `python settings.py --write-readme`"
    )


def test_every_setting_is_an_option_with_the_settings_default(tmp_path) -> None:
    secret = "s" * 32
    loaded = settings_module.load_settings(
        ["server.py"], environ={"CHAT_JWT_SECRET": secret}, var_dir=str(tmp_path)
    )
    # The admin key, when unset, is generated into var_dir (as the JWT secret would be).
    assert loaded == settings_module.Settings(jwt_secret=secret, admin_key=loaded.admin_key)
    for _, option, _, _, _ in settings_module.rows():
        if option.startswith("limit_"):  # one CHAT_LIMIT_* row; docs/security.md lists each
            assert "`CHAT_LIMIT_*`" in settings_module.markdown()
            continue
        assert settings_module.env_name(option) in settings_module.markdown()
