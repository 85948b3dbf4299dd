"""Market data without the per-bar tax: packed columns read in the core, the snapshot cache, the store's market
history (SQLite and PostgreSQL) and how a request's market is resolved from the snapshot and the history."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import pickle
import threading
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from allsuse.errors import InvalidInputError
from allsuse.protocol import Engine, Portfolio
from allsuse.protocol.market import Bars
from allsuse.server.convert import (
    EPOCH_ORDINAL,
    MAX_BARS,
    bars_from_columns,
    columns_out,
    market_in,
)
from allsuse.server.marketdata import MarketHistory, Markets, SnapshotCache
from allsuse.store import Store
from allsuse.store import market as stored
from allsuse.v1 import decision_pb2
from tests.market_support import THURSDAY, at, green
from tests.rpc_support import green_market


def packed(snapshot: decision_pb2.MarketSnapshot) -> decision_pb2.MarketSnapshot:
    """The same snapshot with every symbol's bars sent as packed columns."""
    out = decision_pb2.MarketSnapshot()
    out.CopyFrom(snapshot)
    for sm in out.symbols:
        bars = market_in(decision_pb2.MarketSnapshot(symbols=[sm])).bars[sm.symbol]
        del sm.bars[:]
        sm.columns.CopyFrom(columns_out(bars))
    return out


def columns_of(**overrides: list[float] | list[int]) -> decision_pb2.BarColumns:
    base = columns_out(green(THURSDAY))
    for name, values in overrides.items():
        field = getattr(base, name)
        del field[:]
        field.extend(values)
    return base


def refused(snapshot: decision_pb2.MarketSnapshot) -> InvalidInputError:
    with pytest.raises(InvalidInputError) as err:
        market_in(snapshot)
    return err.value


# --- conversion ------------------------------------------------------------------------------------------------


def test_packed_columns_and_bar_messages_give_the_same_market_data() -> None:
    old = green_market(THURSDAY)
    new = packed(old)
    assert not new.symbols[0].bars and len(new.symbols[0].columns.days) == len(old.symbols[0].bars)
    a, b = market_in(old), market_in(new)
    assert a.bars["NVDA"] == b.bars["NVDA"]
    assert a.bars["NVDA"].dates == b.bars["NVDA"].dates  # derived lazily from the day numbers
    assert np.array_equal(a.bars["NVDA"].days, b.bars["NVDA"].days)
    assert (a.iv, a.vix, a.rate, a.sectors, a.chains, a.earnings) == (
        b.iv,
        b.vix,
        b.rate,
        b.sectors,
        b.chains,
        b.earnings,
    )
    assert new.ByteSize() < old.ByteSize() * 0.8  # and smaller on the wire


def test_a_decision_on_packed_columns_equals_one_on_bar_messages() -> None:
    old = green_market(THURSDAY)
    decisions = []
    for snapshot in (old, packed(old)):
        portfolio = Portfolio.create("p1", 1_000_000, at(THURSDAY) - dt.timedelta(days=30))
        decisions.append(Engine().decide(portfolio, "p1/gen-1", "NVDA", at(THURSDAY), market_in(snapshot)))
    a, b = (dataclasses.asdict(d) for d in decisions)
    assert a == b
    assert decisions[0].order is not None  # a real decision (a put opened), not two empty ones


def test_bars_from_columns_build_dates_only_when_asked() -> None:
    bars, _ = bars_from_columns(columns_of().SerializeToString(), "columns")
    assert bars is not None
    assert bars._dates is None  # nothing per bar built yet
    assert bars.upto(THURSDAY) is bars and bars.last_close == float(bars.close[-1]) and bars._dates is None
    assert bars.dates[-1] == THURSDAY and len(bars.dates) == len(bars)
    assert bars.tail(10).dates == bars.dates[-10:]
    with pytest.raises(AttributeError):
        bars.close = bars.open  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(bars)) == bars and copy.deepcopy(bars) == bars


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"close": [float("nan")] * 300}, "close[0]", "must be a finite number, got nan"),
        ({"open": [-1.0] * 300}, "open[0]", "must be > 0, got -1"),
        ({"volume": [-1.0] * 300}, "volume[0]", "must be >= 0, got -1"),
        ({"high": [1e8] * 300}, "high[0]", "must be <= 1e+07, got 1e+08"),
        ({"low": [1e6] * 300}, "high[0]", "is below low"),
        ({"close": [1.0] * 299}, "close", "has 299 entries, days has 300"),
        ({"days": [19_000 + i for i in range(299)] + [19_000]}, "days[299]", "2022-01-08 is not after 2022-11-02"),
    ],
)
def test_bad_columns_are_refused_naming_the_field(
    overrides: dict[str, list[float] | list[int]], field: str, reason: str
) -> None:
    snapshot = decision_pb2.MarketSnapshot(
        symbols=[decision_pb2.SymbolMarket(symbol="NVDA", iv=0.4, columns=columns_of(**overrides))]
    )
    err = refused(snapshot)
    assert err.field == f"market.symbols[0].columns.{field}"
    assert reason in str(err)


def test_too_many_bars_and_both_forms_are_refused() -> None:
    n = MAX_BARS + 1
    days = list(range(n))
    big = decision_pb2.BarColumns(
        days=days, open=[1.0] * n, high=[1.0] * n, low=[1.0] * n, close=[1.0] * n, volume=[0.0] * n
    )
    err = refused(decision_pb2.MarketSnapshot(symbols=[decision_pb2.SymbolMarket(symbol="X", iv=0.3, columns=big)]))
    assert err.field == "market.symbols[0].columns.days" and str(MAX_BARS) in str(err)
    both = green_market(THURSDAY)
    both.symbols[0].columns.CopyFrom(columns_of())
    err = refused(both)
    assert err.field == "market.symbols[0].columns" and "not be sent together with bars" in str(err)
    empty = decision_pb2.MarketSnapshot(symbols=[decision_pb2.SymbolMarket(symbol="X", iv=0.3)])
    assert refused(empty).field == "market.symbols[0].bars"  # without the server's history bars are required


# --- the snapshot cache ----------------------------------------------------------------------------------------


class NoHistory(MarketHistory):
    """A history that holds nothing (the cache tests need no store)."""

    def __init__(self) -> None:
        super().__init__(lambda: None)  # type: ignore[arg-type,return-value]

    def _fresh(self) -> None:
        return None


def test_the_same_snapshot_is_converted_once_and_served_from_the_cache() -> None:
    registry = CollectorRegistry()
    markets = Markets(SnapshotCache(2, registry), NoHistory())
    snapshot = packed(green_market(THURSDAY))
    first = markets.resolve(snapshot, at(THURSDAY), ("NVDA",))
    second = markets.resolve(snapshot, at(THURSDAY), ("NVDA",))
    assert second.bars["NVDA"] is first.bars["NVDA"]  # the same converted object
    assert (markets.cache.hits, markets.cache.misses) == (1, 1)
    assert registry.get_sample_value("allsuse_market_snapshot_cache_total", {"result": "hit"}) == 1.0
    assert registry.get_sample_value("allsuse_market_snapshot_cache_total", {"result": "miss"}) == 1.0
    other = green_market(THURSDAY, iv=0.5)  # another content: another entry
    markets.resolve(other, at(THURSDAY))
    markets.resolve(green_market(THURSDAY, iv=0.6), at(THURSDAY))
    assert len(markets.cache) == 2  # bounded: the least recently used went
    markets.resolve(snapshot, at(THURSDAY))
    assert markets.cache.misses == 4
    assert registry.get_sample_value("allsuse_market_snapshot_cache_entries") == 2.0


def test_a_bad_snapshot_is_never_cached_and_fails_every_time() -> None:
    markets = Markets(SnapshotCache(8), NoHistory())
    bad = decision_pb2.MarketSnapshot(
        symbols=[decision_pb2.SymbolMarket(symbol="NVDA", iv=0.4, columns=columns_of(close=[float("nan")] * 300))]
    )
    for _ in range(2):
        with pytest.raises(InvalidInputError, match=r"columns\.close\[0\]"):
            markets.resolve(bad, at(THURSDAY))
    assert len(markets.cache) == 0


def test_the_cache_is_safe_across_threads() -> None:
    markets = Markets(SnapshotCache(4), NoHistory())
    snapshots = [packed(green_market(THURSDAY, iv=0.3 + i / 100)) for i in range(3)]
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for i in range(60):
                m = markets.resolve(snapshots[i % 3], at(THURSDAY))
                assert m.iv["NVDA"] == pytest.approx(0.3 + (i % 3) / 100)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert markets.cache.hits + markets.cache.misses == 8 * 60
    assert markets.cache.misses <= 8 * 3  # each content converted at most once per thread that raced for it


# --- the store's market history (SQLite and PostgreSQL) ---------------------------------------------------------


def rows_of(bars: Bars) -> list[stored.BarRow]:
    return list(
        zip(
            (bars.days - EPOCH_ORDINAL).tolist(),
            bars.open.tolist(),
            bars.high.tolist(),
            bars.low.tolist(),
            bars.close.tolist(),
            bars.volume.tolist(),
            strict=True,
        )
    )


def test_bars_are_idempotent_by_symbol_and_day(store_url: str) -> None:
    rows = rows_of(green(THURSDAY))
    with Store(store_url) as store:
        first = store.write(lambda tx: stored.put_bars(tx, "NVDA", rows[:200], replace=False, actor="t"))
        assert first == stored.PublishCounts(inserted=200)
        again = store.write(lambda tx: stored.put_bars(tx, "NVDA", rows, replace=False, actor="t"))
        assert again == stored.PublishCounts(inserted=100, unchanged=200)
        assert store.write(lambda tx: stored.put_bars(tx, "NVDA", rows, replace=False, actor="t")).unchanged == 300
        changed = list(rows)
        changed[150] = (changed[150][0], *(x * 1.01 for x in changed[150][1:5]), changed[150][5])
        with pytest.raises(stored.MarketConflictError) as err:
            store.write(lambda tx: stored.put_bars(tx, "NVDA", changed, replace=False, actor="t"))
        assert err.value.index == 150 and stored.day_text(rows[150][0]) in str(err.value)
        assert store.read(lambda c: stored.read_bars(c, "NVDA")) == rows  # all or nothing: unchanged
        fixed = store.write(lambda tx: stored.put_bars(tx, "NVDA", changed, replace=True, actor="t"))
        assert fixed == stored.PublishCounts(replaced=1, unchanged=299)
        assert store.read(lambda c: stored.read_bars(c, "NVDA")) == changed
        assert store.read(lambda c: stored.read_bars(c, "NVDA", rows[10][0], rows[19][0])) == changed[10:20]
        actions = [e.action for e in store.audit_entries(limit=100)]
        assert actions.count("market.bars") == 3  # the no-op publish wrote nothing, not even an audit entry
        assert store.verify_audit().ok


def test_quotes_are_idempotent_and_the_vix_is_market_wide(store_url: str) -> None:
    day = THURSDAY.toordinal() - EPOCH_ORDINAL
    with Store(store_url) as store:
        quotes = {"NVDA": {"iv": 0.4, "sector": "tech"}, stored.MARKET_WIDE: {"vix": 18.0}}
        assert store.write(lambda tx: stored.put_quotes(tx, day, quotes, replace=False, actor="t")).inserted == 2
        assert store.write(lambda tx: stored.put_quotes(tx, day, quotes, replace=False, actor="t")).unchanged == 2
        other = {"NVDA": {"iv": 0.5, "sector": "tech"}}
        with pytest.raises(stored.MarketConflictError):
            store.write(lambda tx: stored.put_quotes(tx, day, other, replace=False, actor="t"))
        assert store.write(lambda tx: stored.put_quotes(tx, day, other, replace=True, actor="t")).replaced == 1
        assert store.read(lambda c: stored.read_quotes(c, "NVDA")) == [(day, {"iv": 0.5, "sector": "tech"})]


def test_history_serves_bars_as_of_a_day_and_sees_other_processes(store_url: str) -> None:
    bars = green(THURSDAY)
    rows = rows_of(bars)
    with Store(store_url) as store, Store(store_url) as other:
        history = MarketHistory(lambda: store, bars=100, refresh_seconds=0.0)
        assert history.bars("NVDA", THURSDAY) is None
        other.write(lambda tx: stored.put_bars(tx, "NVDA", rows[:-5], replace=False, actor="t"))
        other.write(
            lambda tx: stored.put_quotes(
                tx, rows[0][0], {"NVDA": {"iv": 0.45, "sector": "tech"}, "": {"vix": 17.0}}, replace=False, actor="t"
            )
        )
        got = history.bars("NVDA", THURSDAY)  # written through another Store: seen on the next lookup
        assert got is not None and len(got) == 100 and got.days[-1] == bars.days[-6]
        assert history.bars("NVDA", THURSDAY) is got  # the slice is built once
        older = history.bars("NVDA", bars.dates[200])
        assert (
            older is not None and older.dates[-1] == bars.dates[200] and older == bars.upto(bars.dates[200]).tail(100)
        )
        assert history.bars("NVDA", bars.dates[0] - dt.timedelta(days=1)) is None
        quote = history.quote("NVDA", THURSDAY)
        assert quote is not None and quote.iv == 0.45 and history.vix(THURSDAY) == 17.0
        assert history.vix(bars.dates[0] - dt.timedelta(days=1)) is None
        other.write(lambda tx: stored.put_bars(tx, "NVDA", rows[-5:], replace=False, actor="t"))
        latest = history.bars("NVDA", THURSDAY)
        assert latest is not None and latest.dates[-1] == THURSDAY


def test_a_request_without_bars_is_filled_from_history(tmp_path: Path) -> None:
    bars = market_in(green_market(THURSDAY)).bars["NVDA"]
    with Store(tmp_path / "a.db") as store:
        store.write(lambda tx: stored.put_bars(tx, "NVDA", rows_of(bars), replace=False, actor="t"))
        store.write(
            lambda tx: stored.put_quotes(
                tx,
                bars.days[0] - EPOCH_ORDINAL,
                {"NVDA": {"iv": 0.45, "sector": "tech"}, "": {"vix": 18.0}},
                replace=False,
                actor="t",
            )
        )
        markets = Markets(SnapshotCache(8), MarketHistory(lambda: store, bars=520, refresh_seconds=0.0))
        from_history = markets.resolve(decision_pb2.MarketSnapshot(), at(THURSDAY), ("NVDA",))
        explicit = market_in(green_market(THURSDAY))
        assert from_history.bars["NVDA"] == explicit.bars["NVDA"]
        assert (from_history.iv, from_history.vix, from_history.sectors) == (
            explicit.iv,
            explicit.vix,
            explicit.sectors,
        )
        # a symbol sent with its IV but no bars keeps the IV it was sent with
        partial = decision_pb2.MarketSnapshot(symbols=[decision_pb2.SymbolMarket(symbol="NVDA", iv=0.3)])
        assert markets.resolve(partial, at(THURSDAY)).iv["NVDA"] == 0.3
        unknown = decision_pb2.MarketSnapshot(symbols=[decision_pb2.SymbolMarket(symbol="AMD", iv=0.3)])
        with pytest.raises(InvalidInputError, match=r"^market\.symbols\[0\]\.bars: .*no history of AMD"):
            markets.resolve(unknown, at(THURSDAY))
        assert "AMD" not in markets.resolve(decision_pb2.MarketSnapshot(), at(THURSDAY), ("AMD",)).bars


def test_a_window_of_bars_is_the_slice_of_every_column_sharing_memory() -> None:
    bars = green(THURSDAY)
    n = len(bars)
    window = bars.window(5, n - 2)
    expected = Bars(
        bars.dates[5 : n - 2],
        bars.open[5 : n - 2],
        bars.high[5 : n - 2],
        bars.low[5 : n - 2],
        bars.close[5 : n - 2],
        bars.volume[5 : n - 2],
    )
    assert window == expected and window.dates == expected.dates and len(window) == n - 7
    assert np.shares_memory(window.close, bars.close)
    assert bars.window(0, n) is bars
    assert len(bars.window(3, 3)) == 0
    with pytest.raises(AttributeError):
        window.close = bars.close  # type: ignore[misc]
