"""Continuous compliance: the book as it stands, checked again between decisions (docs/monitoring.md).

Pre-trade rules (section 7) judge an order; these checks judge the open positions and accounts at today's prices:

* SYMBOL_CONCENTRATION: one symbol's exposure over its account's equity above risk.symbol_cap_share (or the
  account's own max_symbol_weight) - HIGH;
* GROUP_CONCENTRATION: a tail-dependent group's exposure (section 6) over its account's equity above the same
  cap - HIGH;
* SECTOR_CONCENTRATION: one sector's exposure over the portfolio's equity above risk.sector_cap_share - MEDIUM;
* DRAWDOWN: an account's drawdown from its peak at or past the first drawdown_protection threshold - LOW, MEDIUM,
  HIGH or CRITICAL for levels 1 to 4; REDUCING is HIGH;
* BREAKER: the VIX breaker out of ACTIVE (section 6) - MEDIUM hedged, HIGH reducing, CRITICAL halted;
* DELTA_DRIFT: an open short put whose |delta| at today's spot and IV has left the band it was opened in - MEDIUM;
* BUFFER: an account's cash after put collateral below its buffer share of equity (section 1) - HIGH.

Exposure is the shares held at market plus put collateral (strike x 100 x contracts). Each violation has a key
(check, account or portfolio, subject), so a watcher can tell a new violation from one that persists.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from allsuse import _core
from allsuse.errors import InvalidInputError
from allsuse.protocol.market import MarketData
from allsuse.protocol.positions import MULTIPLIER, Position

if TYPE_CHECKING:
    from allsuse.protocol.accounts import Account, Portfolio
    from allsuse.protocol.engine import Engine

LEVEL_SEVERITY = ("INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL")
BREAKER_SEVERITY = {"HEDGED": "MEDIUM", "REDUCING": "HIGH", "HALTED": "CRITICAL"}


@dataclass(frozen=True)
class Violation:
    """One broken limit of the book as it stands."""

    key: str
    code: str
    severity: str
    portfolio_id: str
    account_id: str
    message: str
    value: float
    limit: float


def _exposure(p: Position, market: MarketData) -> float:
    if p.kind == "stock":
        return abs(p.quantity) * market.bars_for(p.symbol).last_close
    if p.kind == "put" and p.quantity < 0:
        return -p.quantity * p.strike * MULTIPLIER
    return 0.0


def check(
    engine: Engine,
    portfolio: Portfolio,
    market: MarketData,
    today: dt.date,
    *,
    groups: dict[tuple[object, ...], list[tuple[str, ...]]] | None = None,
    marked: tuple[list[Account], list[float], float] | None = None,
) -> list[Violation]:
    """Every violation of the portfolio's accounts not merged away, on `market` as of `today`. `groups` caches the
    tail-dependent groups of a set of held symbols on this market (a sweep shares it across portfolios); `marked`
    gives those accounts with their equities and the portfolio's, when already marked."""
    doc = engine.config.doc
    risk = doc.section("risk")
    symbol_cap = risk.number("symbol_cap_share", low=0, high=1)
    sector_cap = risk.number("sector_cap_share", low=0, high=1)
    thresholds = doc.section("drawdown_protection").numbers("thresholds")
    if marked is None:
        merged = {gid for gid, g in portfolio.groups.items() if g.merged}
        live: list[Account] = [a for a in portfolio.accounts.values() if a.group_id not in merged]
        marked = (live, *engine.equities(portfolio, live, market, today)) if live else ([], [], 0.0)
    accounts, values, total = marked
    if not accounts:
        return []
    equity = {a.id: v for a, v in zip(accounts, values, strict=True)}
    pid = portfolio.id
    out: list[Violation] = []
    by_sector: dict[str, float] = {}
    live_ids = {a.id for a in accounts}
    out.extend(_drift([p for p in portfolio.positions.values() if p.account_id in live_ids], market, today, pid))
    for account in accounts:
        own = [p for p in portfolio.positions.values() if p.account_id == account.id]
        spec = engine.config.account(account.kind)
        cap = spec.max_symbol_weight if spec.max_symbol_weight is not None else symbol_cap
        eq = equity[account.id]
        by_symbol: dict[str, float] = {}
        collateral = 0.0
        for p in own:
            value = _exposure(p, market)
            by_symbol[p.symbol] = by_symbol.get(p.symbol, 0.0) + value
            sector = market.sectors.get(p.symbol, "unknown")
            by_sector[sector] = by_sector.get(sector, 0.0) + value
            if p.kind == "put" and p.quantity < 0:
                collateral += value
        if eq > 0:
            for symbol, value in sorted(by_symbol.items()):
                if value / eq > cap + 1e-12:
                    out.append(Violation(
                        f"SYMBOL_CONCENTRATION:{account.id}:{symbol}", "SYMBOL_CONCENTRATION", "HIGH", pid, account.id,
                        f"{symbol} is {value / eq:.1%} of {account.id}'s equity, above {cap:.0%}", value / eq, cap,
                    ))  # fmt: skip
            out.extend(_groups(engine, by_symbol, market, eq, cap, pid, account.id, {} if groups is None else groups))
            cash_after = float(account.balance) - collateral
            buffer = spec.buffer * eq
            if cash_after < buffer - 1e-6:
                out.append(Violation(
                    f"BUFFER:{account.id}", "BUFFER", "HIGH", pid, account.id,
                    f"cash after put collateral {cash_after:,.2f} is below the {spec.buffer:.0%} buffer "
                    f"({buffer:,.2f})", cash_after, buffer,
                ))  # fmt: skip
        peak = max(float(account.peak), eq)
        drawdown = (peak - eq) / peak if peak > 0 else 0.0
        level = sum(1 for t in thresholds if drawdown >= t - 1e-12)
        if level > 0 or account.state != "ACTIVE":
            severity = LEVEL_SEVERITY[min(level, 4)]
            if account.state != "ACTIVE":
                severity = max(severity, "HIGH", key=LEVEL_SEVERITY.index)
            out.append(Violation(
                f"DRAWDOWN:{account.id}", "DRAWDOWN", severity, pid, account.id,
                f"{account.id} is {drawdown:.1%} below its peak (protection level {level}), state {account.state}",
                drawdown, thresholds[0] if thresholds else 0.0,
            ))  # fmt: skip
    if total > 0:
        for sector, value in sorted(by_sector.items()):
            if value / total > sector_cap + 1e-12:
                out.append(Violation(
                    f"SECTOR_CONCENTRATION:{pid}:{sector}", "SECTOR_CONCENTRATION", "MEDIUM", pid, "",
                    f"sector {sector} is {value / total:.1%} of the portfolio's equity, above {sector_cap:.0%}",
                    value / total, sector_cap,
                ))  # fmt: skip
    if market.vix is not None:
        breaker = engine.tables.vix_breaker(float(market.vix))
        state = "HEDGED" if breaker.state == "ACTIVE" and breaker.hedged else breaker.state
        if state in BREAKER_SEVERITY:
            out.append(Violation(
                f"BREAKER:{pid}", "BREAKER", BREAKER_SEVERITY[state], pid, "",
                f"VIX {market.vix:g}: breaker {state}", float(market.vix), 0.0,
            ))  # fmt: skip
    return out


def _drift(positions: list[Position], market: MarketData, today: dt.date, pid: str) -> list[Violation]:
    """DELTA_DRIFT of every open short put with a band, its |delta| at today's spot and IV in one core call."""
    puts = []
    for p in positions:
        if p.kind != "put" or p.quantity >= 0 or p.band is None or p.expiry is None or p.expiry < today:
            continue
        try:
            puts.append((p, market.bars_for(p.symbol).last_close, market.iv_for(p.symbol)))
        except InvalidInputError:
            continue  # no IV (or bars) for the symbol today: nothing to judge the band with
    if not puts:
        return []
    n = len(puts)
    greeks = _core.bs_greeks_batch(
        "put",
        np.array([s for _, s, _ in puts]),
        np.array([p.strike for p, _, _ in puts]),
        np.array([p.years_to_expiry(today) for p, _, _ in puts]),
        np.array([v for _, _, v in puts]),
        np.full(n, market.rate),
        np.zeros(n),
    )
    out = []
    for (p, _, _), delta in zip(puts, np.abs(greeks[1]) * 100.0, strict=True):  # (price, delta, gamma, ...)
        assert p.band is not None
        low, high = p.band
        if not math.isfinite(delta) or low - 1e-9 <= delta <= high + 1e-9:
            continue
        out.append(Violation(
            f"DELTA_DRIFT:{p.account_id}:{p.id}", "DELTA_DRIFT", "MEDIUM", pid, p.account_id,
            f"{p.id} ({p.symbol} {p.strike:g} put) delta {delta:.0f} has left its band {low:.0f}-{high:.0f}",
            float(delta), high if delta > high else low,
        ))  # fmt: skip
    return out


def tail_groups(engine: Engine, held: list[str], market: MarketData) -> list[tuple[str, ...]]:
    """The tail-dependent groups (two or more symbols) that the held symbols fall into (section 6)."""
    out: list[tuple[str, ...]] = []
    placed: set[str] = set()
    for symbol in held:
        if symbol in placed:
            continue
        group = tuple(engine.tail_group(symbol, [s for s in held if s not in placed], market))
        placed.update(group)
        if len(group) > 1:
            out.append(group)
    return out


def _groups(
    engine: Engine,
    by_symbol: dict[str, float],
    market: MarketData,
    equity: float,
    cap: float,
    pid: str,
    account: str,
    cache: dict[tuple[object, ...], list[tuple[str, ...]]],
) -> list[Violation]:
    held = sorted(s for s, v in by_symbol.items() if v > 0)
    if len(held) < 2:
        return []
    key = tuple((s, len(market.bars_for(s)), market.bars_for(s).last_close) for s in held)
    found = cache.get(key)
    if found is None:
        found = cache[key] = tail_groups(engine, held, market)
    out = []
    for group in found:
        value = sum(by_symbol.get(s, 0.0) for s in group)
        if value / equity > cap + 1e-12:
            out.append(Violation(
                f"GROUP_CONCENTRATION:{account}:{'+'.join(group)}", "GROUP_CONCENTRATION", "HIGH", pid, account,
                f"tail-dependent group {', '.join(group)} is {value / equity:.1%} of {account}'s equity, above "
                f"{cap:.0%}", value / equity, cap,
            ))  # fmt: skip
    return out


__all__ = ["Violation", "check", "tail_groups"]
