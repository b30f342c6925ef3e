from common.ttlcache import TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def counting(values: dict[str, str | None]):
    loads: list[str] = []

    def load(key: str) -> str | None:
        loads.append(key)
        return values.get(key)

    return load, loads


def test_a_fresh_entry_is_answered_without_loading_and_an_expired_one_is_loaded_again():
    clock = Clock()
    load, loads = counting({"a": "1"})
    cache: TtlCache[str, str | None] = TtlCache(load, ttl_s=10, clock=clock)
    assert (cache.get("a"), cache.get("a"), cache.peek("a")) == ("1", "1", "1")
    assert loads == ["a"]
    clock.now += 10
    assert cache.peek("a") is None
    assert cache.get("a") == "1"
    assert loads == ["a", "a"]


def test_a_value_keep_refuses_is_loaded_every_time():
    load, loads = counting({})
    cache: TtlCache[str, str | None] = TtlCache(
        load, ttl_s=10, clock=Clock(), keep=lambda value: value is not None
    )
    assert cache.get("missing") is None and cache.get("missing") is None
    assert loads == ["missing", "missing"]


def test_invalidate_and_clear_forget_entries():
    load, loads = counting({"a": "1", "b": "2"})
    cache: TtlCache[str, str | None] = TtlCache(load, ttl_s=10, clock=Clock())
    cache.get("a"), cache.get("b")
    cache.invalidate("a")
    assert (cache.peek("a"), cache.peek("b")) == (None, "2")
    cache.clear()
    assert cache.peek("b") is None
    assert loads == ["a", "b"]


def test_no_ttl_caches_nothing():
    load, loads = counting({"a": "1"})
    cache: TtlCache[str, str | None] = TtlCache(load, ttl_s=0, clock=Clock())
    cache.get("a"), cache.get("a")
    assert loads == ["a", "a"] and cache.peek("a") is None
