"""The front door stays small, and the paths the docs name exist."""

import os
import re

import pytest

import settings as settings_module

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
README_LIMIT = 10 * 1024
TOP_LEVEL = ("chat/", "sql/", "tests/", "bench/", "docs/", ".ci/")
TOP_FILES = {"server.py", "settings.py", "Makefile", "README.md", "pyproject.toml"}

VARIABLE = re.compile(r"\bCHAT_[A-Z0-9_]*[A-Z0-9]\b(?!_)")
CODE = re.compile(r"`([^`\s]+)`")
LINK = re.compile(r"\]\(([^)\s#]+)")


def documents() -> list[str]:
    found = ["README.md", os.path.join("bench", "README.md")]
    docs = os.path.join(ROOT, "docs")
    found += [
        os.path.join("docs", name) for name in sorted(os.listdir(docs)) if name.endswith(".md")
    ]
    return found


def named_paths(text: str) -> set[str]:
    """Repository paths written in backticks: chat/..., sql/..., server.py, ...

    Patterns (``chat/web/<area>.py``, ``sql/schema/NNNN_*.sql``) are not paths.
    """
    paths = set()
    for word in CODE.findall(text):
        word = word.rstrip(".,:;").split("::")[0]  # tests/x.py::test_name names tests/x.py
        if any(mark in word for mark in "<>*{}$") or "NNNN" in word:
            continue
        if word.startswith(TOP_LEVEL) or word in TOP_FILES:
            paths.add(word)
    return paths


def test_the_readme_is_a_front_door_of_at_most_10_kib() -> None:
    size = os.path.getsize(os.path.join(ROOT, "README.md"))
    assert size <= README_LIMIT, f"README.md is {size} bytes; move detail into docs/"


@pytest.mark.parametrize("document", documents())
def test_every_path_a_document_names_exists(document: str) -> None:
    with open(os.path.join(ROOT, document), encoding="utf-8") as f:
        text = f.read()
    missing = sorted(p for p in named_paths(text) if not os.path.exists(os.path.join(ROOT, p)))
    here = os.path.dirname(os.path.join(ROOT, document))
    for target in LINK.findall(text):
        if "://" not in target and not os.path.exists(os.path.join(here, target)):
            missing.append(target)
    assert not missing, f"{document} names paths that do not exist: {missing}"


def variables_read() -> set[str]:
    """Every CHAT_* variable: the settings, and any other the code, tests or Makefile read."""
    found = {settings_module.env_name(option) for _, option, _, _, _ in settings_module.rows()}
    sources = [os.path.join(ROOT, name) for name in ("Makefile", ".ci/run", "server.py")]
    for folder in ("chat", "tests", "bench"):
        for where, _, files in os.walk(os.path.join(ROOT, folder)):
            sources += [os.path.join(where, f) for f in files if f.endswith(".py")]
    for path in sources:
        if os.path.basename(path) != "test_docs.py":
            with open(path, encoding="utf-8") as f:
                found.update(VARIABLE.findall(f.read()))
    return found


@pytest.mark.parametrize("document", documents())
def test_every_setting_a_document_names_exists(document: str) -> None:
    with open(os.path.join(ROOT, document), encoding="utf-8") as f:
        named = set(VARIABLE.findall(f.read()))
    unknown = sorted(named - variables_read())
    assert not unknown, f"{document} names variables nothing reads: {unknown}"
