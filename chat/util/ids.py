"""userIds compare without case, as the users table does: the one place that says so.

Code that compares, groups or looks up userIds uses these instead of calling
``.lower()`` itself, so the rule cannot drift between two places.
"""

from collections.abc import Iterable


def fold(user_id: str) -> str:
    """The form in which userIds compare: equal for two spellings of one user."""
    return user_id.lower()


def same_user(a: str, b: str) -> bool:
    return fold(a) == fold(b)


def has_member(user_ids: Iterable[str], user_id: str) -> bool:
    """Whether ``user_id`` is among ``user_ids``."""
    key = fold(user_id)
    return any(fold(u) == key for u in user_ids)
