"""chat/util/lru.py: a bounded mapping that forgets the entry used longest ago."""

from chat.util.lru import Lru


def test_the_oldest_entry_goes_past_the_size() -> None:
    cache: Lru[str, int] = Lru(2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("c", 3)
    assert "a" not in cache and len(cache) == 2
    assert (cache.get("b"), cache.get("c")) == (2, 3)


def test_setting_an_entry_again_makes_it_the_newest() -> None:
    cache: Lru[str, int] = Lru(2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("a", 10)
    cache.put("c", 3)
    assert "b" not in cache
    assert (cache.get("a"), cache.get("c")) == (10, 3)


def test_get_makes_an_entry_the_newest() -> None:
    cache: Lru[str, int] = Lru(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)
    assert "a" in cache and "b" not in cache


def test_missing_keys_pop_and_clear() -> None:
    cache: Lru[str, int] = Lru(3)
    assert cache.get("x") is None and cache.get("x", 7) == 7
    assert "x" not in cache  # a miss adds nothing
    cache.put("x", 1)
    cache.put("y", 2)
    assert cache.pop("x") == 1 and cache.pop("x") is None and "x" not in cache
    cache.clear()
    assert len(cache) == 0 and "y" not in cache
