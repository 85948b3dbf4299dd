"""Stress tests of a book: what named market shocks and the worst historical window would do to it, by full
revaluation, per account and in total (AssessRisk's `stress`, and reports).

A named scenario (protocol.yaml `stress.scenarios`) moves every underlying by `move` and multiplies every implied
volatility by `vix_multiplier`, at once and today (no time passes): each option is priced again by Black-Scholes at
the shocked spot and IV, stock at the shocked spot. The historical replay takes the `historical_window_days`-day
compounded joint returns of the scenario history (the window ES uses) and revalues the book over each window with
IV moving against the price as in the ES scenarios (section 6); the worst window is reported with its dates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from allsuse import _core
from allsuse.errors import InvalidInputError
from allsuse.protocol.market import MarketData
from allsuse.protocol.positions import Position
from allsuse.protocol.settings import ProtocolConfig

if TYPE_CHECKING:
    from allsuse.protocol.accounts import Portfolio
    from allsuse.protocol.engine import Engine

HISTORICAL = "worst_{days}_day_window"


@dataclass(frozen=True)
class StressScenario:
    """A named shock: every underlying moves by `move` (a fraction), every IV is multiplied by `vix_multiplier`."""

    name: str
    move: float
    vix_multiplier: float = 1.0

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise InvalidInputError.of("stress.name", "must not be empty")
        if not (np.isfinite(self.move) and -1.0 < self.move <= 10.0):
            raise InvalidInputError.of(f"stress.scenarios.{self.name}.move", f"must be in (-1, 10], got {self.move}")
        if not (np.isfinite(self.vix_multiplier) and 0.0 < self.vix_multiplier <= 20.0):
            raise InvalidInputError.of(
                f"stress.scenarios.{self.name}.vix_multiplier", f"must be in (0, 20], got {self.vix_multiplier}"
            )


@dataclass(frozen=True)
class StressResult:
    """One scenario's P&L: in total and per account (dollars, and as a share of the equity it falls on)."""

    scenario: str
    pnl: float
    share_of_equity: float
    accounts: dict[str, float] = field(default_factory=dict)
    account_shares: dict[str, float] = field(default_factory=dict)
    historical: bool = False
    window: tuple[dt.date, dt.date] | None = None


def scenarios_of(config: ProtocolConfig) -> tuple[StressScenario, ...]:
    """The named scenarios of protocol.yaml, in file order."""
    section = config.doc.section("stress").section("scenarios")
    out = []
    for name in section.keys():  # noqa: SIM118 (a Section is not a dict)
        one = section.section(name)
        out.append(StressScenario(name, one.number("move"), one.number("vix_multiplier")))
    return tuple(out)


def window_days(config: ProtocolConfig) -> int:
    """The length in sessions of the historical window replayed."""
    return int(config.doc.section("stress").number("historical_window_days", low=1, high=60))


def _shares(pnl: dict[str, float], equity: dict[str, float]) -> dict[str, float]:
    return {a: (v / equity[a] if equity.get(a, 0.0) > 0 else 0.0) for a, v in pnl.items()}


def shock(
    positions: Sequence[Position],
    market: MarketData,
    today: dt.date,
    scenarios: Iterable[StressScenario],
    *,
    equity: float,
    account_equity: dict[str, float],
) -> list[StressResult]:
    """The P&L of `positions` under each named scenario, per account and in total."""
    quotes = {p.symbol: (market.bars_for(p.symbol).last_close, market.iv_for(p.symbol)) for p in positions}
    base = {p.id: p.market_value(*quotes[p.symbol], today, market.rate) for p in positions}
    out = []
    for s in scenarios:
        by_account = dict.fromkeys(sorted({p.account_id for p in positions}), 0.0)
        for p in positions:
            spot, iv = quotes[p.symbol]
            after = p.market_value(spot * (1.0 + s.move), iv * s.vix_multiplier, today, market.rate)
            by_account[p.account_id] += after - base[p.id]
        total = float(sum(by_account.values()))
        out.append(
            StressResult(
                s.name,
                total,
                total / equity if equity > 0 else 0.0,
                by_account,
                _shares(by_account, account_equity),
            )
        )
    return out


def worst_window(
    positions: Sequence[Position],
    market: MarketData,
    today: dt.date,
    returns: np.ndarray,
    *,
    days: int,
    iv_move_sensitivity: float,
    equity: float,
    account_equity: dict[str, float],
    symbols: Sequence[str],
) -> StressResult | None:
    """The worst `days`-session window of the joint daily `returns` (rows oldest first, columns `symbols`, ending
    on the last bar of the first symbol) replayed on the book; None when the history is shorter than one window."""
    rows = returns.shape[0]
    if not positions or rows < days:
        return None
    growth = np.cumprod(np.vstack([np.ones((1, returns.shape[1])), 1.0 + returns]), axis=0)
    windows = np.ascontiguousarray(growth[days:] / growth[:-days] - 1.0)  # window k covers rows k .. k+days-1
    index = {s: i for i, s in enumerate(symbols)}
    spot = [market.bars_for(s).last_close for s in symbols]
    iv = [market.iv_for(s) for s in symbols]
    replay = _core.ScenarioSet(
        windows, spot=spot, iv=iv, iv_move_sensitivity=iv_move_sensitivity, horizon=days / 365.0, rate=market.rate
    )
    by_account: dict[str, np.ndarray] = {}
    for account in sorted({p.account_id for p in positions}):
        own = [p for p in positions if p.account_id == account]
        by_account[account] = replay.book_pnl(
            kind=[p.kind for p in own],
            underlying=[index[p.symbol] for p in own],
            quantity=[p.quantity for p in own],
            strike=[p.strike if p.is_option else 1.0 for p in own],
            t=[p.years_to_expiry(today) if p.is_option else 1.0 for p in own],
        )
    total = np.sum(list(by_account.values()), axis=0)
    k = int(np.argmin(total))
    dates = market.bars_for(symbols[0]).dates[-rows:]  # the day each return row ends on
    start, end = dates[k], dates[k + days - 1]
    pnl = {a: float(v[k]) for a, v in by_account.items()}
    worst = float(total[k])
    return StressResult(
        HISTORICAL.format(days=days),
        worst,
        worst / equity if equity > 0 else 0.0,
        pnl,
        _shares(pnl, account_equity),
        historical=True,
        window=(start, end),
    )


def stress_portfolio(engine: Engine, portfolio: Portfolio, market: MarketData, today: dt.date) -> list[StressResult]:
    """Every named scenario of the engine's configuration and the worst historical window, on the positions of
    every account not merged away, against the portfolio's and each account's equity at market."""
    merged = {gid for gid, g in portfolio.groups.items() if g.merged}
    accounts = [a for a in portfolio.accounts.values() if a.group_id not in merged]
    live = {a.id for a in accounts}
    positions = [p for p in portfolio.positions.values() if p.account_id in live]
    if not positions:
        return []
    values, equity = engine.equities(portfolio, accounts, market, today)
    account_equity = {a.id: v for a, v in zip(accounts, values, strict=True)}
    out = shock(positions, market, today, scenarios_of(engine.config), equity=equity, account_equity=account_equity)
    symbols = sorted({p.symbol for p in positions})
    replay = worst_window(
        positions,
        market,
        today,
        engine.historical_returns(symbols, market),
        days=window_days(engine.config),
        iv_move_sensitivity=engine.config.doc.section("scenarios").number("iv_move_sensitivity"),
        equity=equity,
        account_equity=account_equity,
        symbols=symbols,
    )
    return [*out, *([replay] if replay is not None else [])]


__all__ = [
    "StressResult",
    "StressScenario",
    "scenarios_of",
    "shock",
    "stress_portfolio",
    "window_days",
    "worst_window",
]
