"""Stress tests of a book (allsuse.protocol.stress, AssessRisk's `stress`): named shocks revalued in full against
QuantLib's Black-Scholes prices, per account and in total; the worst historical window of a constructed history;
the configuration's scenarios and their validation."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import QuantLib as ql  # noqa: N813

from allsuse.protocol import Bars, Engine, MarketData, Portfolio, Position
from allsuse.protocol import settings as protocol_settings
from allsuse.protocol.stress import StressScenario, scenarios_of, shock, stress_portfolio, worst_window

TODAY = dt.date(2024, 3, 7)
EXPIRY = dt.date(2024, 3, 15)


def ql_value(kind: str, spot: float, strike: float, iv: float, rate: float, today: dt.date, expiry: dt.date) -> float:
    """QuantLib's Black-Scholes price (its Black calculator on the forward), over the Actual/365 time plus one hour
    the engine marks with (QuantLib's own dates are whole days)."""
    t = (expiry - today).days / 365.0 + 1.0 / (365.0 * 24.0)
    discount = float(np.exp(-rate * t))
    option = ql.Option.Put if kind == "put" else ql.Option.Call
    return float(
        ql.BlackCalculator(
            ql.PlainVanillaPayoff(option, strike), spot / discount, iv * float(np.sqrt(t)), discount
        ).value()
    )


def market(closes: dict[str, np.ndarray], iv: dict[str, float], rate: float = 0.01) -> MarketData:
    n = len(next(iter(closes.values())))
    days = tuple(TODAY - dt.timedelta(days=n - 1 - k) for k in range(n))
    bars = {s: Bars(days, c, c, c, c, np.full(n, 1e6)) for s, c in closes.items()}
    return MarketData(bars=bars, iv=iv, rate=rate)


def book() -> Portfolio:
    p = Portfolio.create("st", 1_000_000, dt.datetime(2024, 1, 2, 9, 30))
    p.positions["a"] = Position("a", "st/gen-1", "AAA", "put", -3.0, TODAY, 48.0, EXPIRY, 1.0)
    p.positions["b"] = Position("b", "st/com-1", "BBB", "stock", 200.0, TODAY, cost_basis=79.0)
    p.positions["c"] = Position("c", "st/rev-1", "BBB", "call", -1.0, TODAY, 85.0, EXPIRY, 0.5)
    return p


def test_a_named_shock_is_the_book_repriced_at_the_shocked_spot_and_iv() -> None:
    m = market({"AAA": np.full(30, 50.0), "BBB": np.full(30, 80.0)}, {"AAA": 0.4, "BBB": 0.25})
    p = book()
    positions = list(p.positions.values())
    crash = StressScenario("crash", -0.40, 3.0)
    (r,) = shock(positions, m, TODAY, [crash], equity=1_000_000.0, account_equity={"st/gen-1": 400_000.0})
    put_before = ql_value("put", 50.0, 48.0, 0.4, 0.01, TODAY, EXPIRY)
    put_after = ql_value("put", 30.0, 48.0, 1.2, 0.01, TODAY, EXPIRY)
    call_before = ql_value("call", 80.0, 85.0, 0.25, 0.01, TODAY, EXPIRY)
    call_after = ql_value("call", 48.0, 85.0, 0.75, 0.01, TODAY, EXPIRY)
    gen = -300.0 * (put_after - put_before)
    com = 200.0 * (48.0 - 80.0)
    rev = -100.0 * (call_after - call_before)
    assert r.accounts["st/gen-1"] == pytest.approx(gen, rel=1e-9)
    assert r.accounts["st/com-1"] == pytest.approx(-6_400.0, rel=1e-12) and com == -6_400.0
    assert r.accounts["st/rev-1"] == pytest.approx(rev, rel=1e-9)
    assert r.pnl == pytest.approx(gen + com + rev, rel=1e-9) and r.pnl < 0
    assert r.share_of_equity == pytest.approx(r.pnl / 1_000_000.0)
    assert r.account_shares["st/gen-1"] == pytest.approx(gen / 400_000.0)
    assert r.account_shares["st/com-1"] == 0.0  # no equity given for it: no share
    # A pure volatility spike hurts the short options and leaves the stock alone.
    (spike,) = shock(positions, m, TODAY, [StressScenario("v", 0.0, 2.5)], equity=1e6, account_equity={})
    assert spike.accounts["st/com-1"] == 0.0 and spike.accounts["st/gen-1"] < 0 and spike.accounts["st/rev-1"] < 0


def test_the_worst_window_is_found_and_replayed() -> None:
    rng = np.random.default_rng(3)
    returns = rng.normal(0.0005, 0.01, size=(120, 1))
    returns[70:75, 0] = [-0.03, -0.04, -0.02, -0.05, -0.01]  # the worst five sessions, rows 70..74
    close = 100.0 * np.cumprod(np.concatenate([[1.0], 1.0 + returns[:, 0]]))
    m = market({"AAA": close}, {"AAA": 0.3})
    stock = Position("s", "x/com-1", "AAA", "stock", 100.0, TODAY, cost_basis=90.0)
    r = worst_window(
        [stock], m, TODAY, returns, days=5, iv_move_sensitivity=5.0, equity=50_000.0,
        account_equity={"x/com-1": 20_000.0}, symbols=["AAA"],
    )  # fmt: skip
    assert r is not None and r.historical and r.scenario == "worst_5_day_window"
    spot = float(close[-1])
    expected = 100.0 * spot * (float(np.prod(1.0 + returns[70:75, 0])) - 1.0)
    assert r.pnl == pytest.approx(expected, rel=1e-9)
    dates = m.bars["AAA"].dates[-120:]
    assert r.window == (dates[70], dates[74])
    assert r.share_of_equity == pytest.approx(expected / 50_000.0)
    assert r.account_shares["x/com-1"] == pytest.approx(expected / 20_000.0)
    assert worst_window([stock], m, TODAY, returns[:4], days=5, iv_move_sensitivity=5.0, equity=1.0,
                        account_equity={}, symbols=["AAA"]) is None  # fmt: skip


def test_stress_portfolio_runs_the_configured_scenarios_then_the_replay() -> None:
    rng = np.random.default_rng(5)
    closes = {s: 50.0 * np.cumprod(1.0 + rng.normal(0, 0.01, 300)) for s in ("AAA", "BBB")}
    m = market(closes, {"AAA": 0.4, "BBB": 0.25})
    engine, p = Engine(), book()
    results = stress_portfolio(engine, p, m, TODAY)
    names = [r.scenario for r in results]
    assert names == ["2008", "2020", "flash_crash", "volatility_spike", "rate_shock", "worst_5_day_window"]
    by = {r.scenario: r for r in results}
    assert by["2008"].pnl < by["flash_crash"].pnl < 0
    for r in results:
        assert sum(r.accounts.values()) == pytest.approx(r.pnl, rel=1e-12, abs=1e-9)
    accounts = list(p.accounts.values())
    values, equity = engine.equities(p, accounts, m, TODAY)
    assert by["2008"].share_of_equity == pytest.approx(by["2008"].pnl / equity)
    gen = dict(zip([a.id for a in accounts], values, strict=True))["st/gen-1"]
    assert by["2008"].account_shares["st/gen-1"] == pytest.approx(by["2008"].accounts["st/gen-1"] / gen)
    assert stress_portfolio(engine, Portfolio.create("e", 1000, dt.datetime(2024, 1, 2)), m, TODAY) == []


def test_configured_scenarios_are_validated(tmp_path: Path) -> None:
    config = protocol_settings.default()
    assert [s.name for s in scenarios_of(config)][:2] == ["2008", "2020"]
    assert scenarios_of(config)[0] == StressScenario("2008", -0.40, 3.0)
    text = protocol_settings.PROTOCOL_FILE.read_text()
    bad = tmp_path / "protocol.yaml"
    bad.write_text(
        text.replace("flash_crash: {move: -0.10, vix_multiplier: 2.0}", "flash_crash: {move: -0.10, vix_multiplier: 0}")
    )
    with pytest.raises(protocol_settings.ConfigError) as err:
        protocol_settings.load_validated(bad)
    assert "stress.scenarios.flash_crash.vix_multiplier" in str(err.value)
    added = tmp_path / "more.yaml"
    added.write_text(text.replace("    rate_shock:", "    my_shock: {move: -0.5, vix_multiplier: 5}\n    rate_shock:"))
    assert "my_shock" in [s.name for s in scenarios_of(protocol_settings.load_validated(added))]
