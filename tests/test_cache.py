"""allsuse.cache.TTLCache: LRU order and evictions, TTL expiry (default and per entry), counters,
delete/clear, use from 8 threads, and bad input naming the argument. No speed assertions here."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from allsuse.cache import TTLCache
from allsuse.errors import InvalidInputError

SHORT = 0.05  # seconds: a TTL that passes during SLEEP
SLEEP = 0.15
LONG = 3600.0


def stats(cache: TTLCache) -> tuple[int, int, int, int, int]:
    s = cache.stats()
    return s["hits"], s["misses"], s["evictions"], s["expirations"], s["size"]


def test_is_the_native_class() -> None:
    cache = TTLCache(4, 1.0)
    assert TTLCache.__module__ == "allsuse.cache"
    assert (cache.capacity, cache.ttl_seconds) == (4, 1.0)
    assert repr(cache) == "TTLCache(capacity=4, ttl_seconds=1.0, size=0)"
    with pytest.raises(TypeError):

        class Sub(TTLCache):
            pass


def test_get_put_roundtrip() -> None:
    cache = TTLCache(4, LONG)
    assert cache.get(b"k") is None
    cache.put(b"k", b"v")
    assert cache.get(b"k") == b"v"
    cache.put(b"", b"")  # empty key and value are ordinary bytes
    assert cache.get(b"") == b""
    big = bytes(range(256)) * 4096
    cache.put(b"big", big)
    assert cache.get(b"big") == big
    assert len(cache) == 3
    assert stats(cache) == (3, 1, 0, 0, 3)


def test_lru_order_and_eviction_counts() -> None:
    cache = TTLCache(3, LONG)
    for k in (b"a", b"b", b"c"):
        cache.put(k, k.upper())
    assert cache.get(b"a") == b"A"  # a is now the most recent; b the least
    cache.put(b"d", b"D")  # evicts b
    assert b"b" not in cache
    assert all(k in cache for k in (b"a", b"c", b"d"))
    cache.put(b"c", b"C2")  # overwrite: no eviction, c becomes most recent
    cache.put(b"e", b"E")  # evicts a (order now a < d < c)
    assert b"a" not in cache
    cache.put(b"f", b"F")  # evicts d
    assert [k for k in (b"a", b"b", b"c", b"d", b"e", b"f") if k in cache] == [b"c", b"e", b"f"]
    assert cache.get(b"c") == b"C2"
    assert stats(cache) == (2, 0, 3, 0, 3)


def test_contains_counts_nothing_and_keeps_order() -> None:
    cache = TTLCache(2, LONG)
    cache.put(b"a", b"1")
    cache.put(b"b", b"2")
    assert b"a" in cache  # a peek: a stays least recent
    assert b"zz" not in cache
    cache.put(b"c", b"3")
    assert b"a" not in cache
    assert stats(cache) == (0, 0, 1, 0, 2)


def test_default_ttl_expires() -> None:
    cache = TTLCache(10, SHORT)
    cache.put(b"a", b"1")
    cache.put(b"b", b"2")
    # (no check before the sleep: on a loaded machine SHORT may already have passed)
    time.sleep(SLEEP)
    assert len(cache) == 0  # len counts live entries only
    assert cache.get(b"a") is None
    assert stats(cache) == (0, 1, 0, 2, 0)


def test_rewriting_renews_and_expired_do_not_count_as_evictions() -> None:
    cache = TTLCache(2, SHORT)
    cache.put(b"a", b"1")
    cache.put(b"b", b"2", ttl_seconds=LONG)
    time.sleep(SLEEP)
    cache.put(b"c", b"3")  # a expired first, so there is room without evicting b
    assert b"b" in cache and b"c" in cache
    assert stats(cache) == (0, 0, 0, 1, 2)


def test_per_entry_ttl() -> None:
    cache = TTLCache(10, LONG)
    cache.put(b"short", b"s", ttl_seconds=SHORT)
    cache.put(b"long", b"l", ttl_seconds=LONG)
    cache.put(b"default", b"d")
    cache.put(b"renewed", b"r", ttl_seconds=SHORT)
    cache.put(b"renewed", b"r2")  # back to the default TTL
    cache.put(b"int_ttl", b"i", ttl_seconds=1)
    time.sleep(SLEEP)
    assert cache.get(b"short") is None
    assert cache.get(b"long") == b"l"
    assert cache.get(b"default") == b"d"
    assert cache.get(b"renewed") == b"r2"
    assert len(cache) == 4
    # "short" expired; "renewed" too only if the machine stalled past SHORT between its two writes
    assert cache.stats()["expirations"] in (1, 2)


def test_delete_and_clear() -> None:
    cache = TTLCache(4, LONG)
    cache.put(b"a", b"1")
    cache.put(b"b", b"2")
    assert cache.delete(b"a") is True
    assert cache.delete(b"a") is False
    assert cache.delete(b"never") is False
    assert len(cache) == 1
    cache.get(b"b")
    cache.clear()
    assert len(cache) == 0
    assert cache.get(b"b") is None
    # counters survive a clear; size does not
    assert stats(cache) == (1, 1, 0, 0, 0)
    cache.put(b"x", b"y")
    assert cache.get(b"x") == b"y"


def test_eight_threads_leave_a_consistent_state() -> None:
    capacity, per_thread_keys, rounds = 200, 100, 20
    cache = TTLCache(capacity, LONG)
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work(t: int) -> None:
        try:
            barrier.wait(timeout=10)
            for r in range(rounds):
                for i in range(per_thread_keys):
                    key = f"{t}:{i}".encode()
                    value = cache.get(key)
                    if value is None:
                        cache.put(key, key + b"=" + str(r).encode())
                    else:
                        assert value.startswith(key + b"=")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not errors
    assert not any(th.is_alive() for th in threads)
    hits, misses, evictions, expirations, size = stats(cache)
    assert hits + misses == 8 * rounds * per_thread_keys
    assert size == len(cache) == capacity
    assert expirations == 0
    # every miss inserted a key no other thread writes; all but `capacity` of them were evicted
    assert misses - evictions == capacity


def test_shared_keys_from_threads() -> None:
    cache = TTLCache(16, LONG)
    wrong: list[bytes | None] = []

    def work() -> None:
        for i in range(2000):
            key = str(i % 32).encode()
            cache.put(key, key)
            got = cache.get(key)
            if not (got is None or got == key):
                wrong.append(got)
            cache.delete(str((i + 7) % 32).encode())

    threads = [threading.Thread(target=work) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not wrong
    hits, misses, *_ = stats(cache)
    assert hits + misses == 8 * 2000
    assert len(cache) <= 16


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: TTLCache(0, 1.0), "capacity"),
        (lambda: TTLCache(-5, 1.0), "capacity"),
        (lambda: TTLCache(2.5, 1.0), "capacity"),
        (lambda: TTLCache(True, 1.0), "capacity"),
        (lambda: TTLCache("10", 1.0), "capacity"),
        (lambda: TTLCache(10, -1.0), "ttl_seconds"),
        (lambda: TTLCache(10, 0), "ttl_seconds"),
        (lambda: TTLCache(10, float("nan")), "ttl_seconds"),
        (lambda: TTLCache(10, float("inf")), "ttl_seconds"),
        (lambda: TTLCache(10, "1"), "ttl_seconds"),
        (lambda: TTLCache(10, 1.0).get("a"), "key"),
        (lambda: TTLCache(10, 1.0).get(bytearray(b"a")), "key"),
        (lambda: TTLCache(10, 1.0).put("a", b"v"), "key"),
        (lambda: TTLCache(10, 1.0).put(1, b"v"), "key"),
        (lambda: TTLCache(10, 1.0).put(b"a", "v"), "value"),
        (lambda: TTLCache(10, 1.0).put(b"a", None), "value"),
        (lambda: TTLCache(10, 1.0).put(b"a", b"v", ttl_seconds=-0.1), "ttl_seconds"),
        (lambda: TTLCache(10, 1.0).put(b"a", b"v", ttl_seconds=float("nan")), "ttl_seconds"),
        (lambda: TTLCache(10, 1.0).put(b"a", b"v", ttl_seconds="soon"), "ttl_seconds"),
        (lambda: TTLCache(10, 1.0).delete("a"), "key"),
        (lambda: "a" in TTLCache(10, 1.0), "key"),
    ],
)
def test_bad_input_names_the_argument(call: Callable[[], object], field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        call()
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_bad_put_changes_nothing() -> None:
    cache = TTLCache(1, LONG)
    cache.put(b"a", b"1")
    with pytest.raises(InvalidInputError):
        cache.put(b"b", b"2", ttl_seconds=-1)
    assert cache.get(b"a") == b"1"
    assert stats(cache) == (1, 0, 0, 0, 1)


def test_huge_capacity_and_ttl_are_fine() -> None:
    cache = TTLCache(10**30, 1e300)
    cache.put(b"a", b"1")
    assert cache.get(b"a") == b"1"
    assert cache.capacity == 2**64 - 1
