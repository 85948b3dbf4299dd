"""A backtest of the weekly protocol over daily bars of one underlying (every account trades it).

Option prices come from Black-Scholes at IV = VIX/100 on dates the VIX file covers, else 1.1 x the 20-day
historical volatility. Every decision comes from the same Engine the service uses; the backtest approves every
decision the rules did not reject (it simulates the protocol, not the humans around it).
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from allsuse import indicators, risk
from allsuse.errors import InvalidInputError
from allsuse.protocol.accounts import Portfolio, money
from allsuse.protocol.engine import Decision, Engine
from allsuse.protocol.market import Bars, MarketData
from allsuse.protocol.positions import MULTIPLIER, Position
from allsuse.protocol.trust import TrustBook

REQUIRED_COLUMNS = ("date", "open", "high", "low", "close", "volume")


def _parse_date(text: str, path: Path, line: int, column: str = "date") -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInputError(
            f"{path.name}: line {line}: {column} {text!r} is not an ISO date (YYYY-MM-DD)", column, "bad date"
        ) from None


def load_bars(path: Path) -> Bars:
    """Reads a CSV with date, open, high, low, close, volume columns (any order, extra columns ignored).
    A missing column, an unparsable row or unsorted dates raise InvalidInputError with the line number."""
    try:
        handle = path.open(newline="")
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot be read ({exc.strerror})", "data", "unreadable") from None
    with handle:
        reader = csv.DictReader(handle)
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise InvalidInputError(
                f"{path.name}: line 1: missing column(s) {', '.join(missing)}", missing[0], "missing"
            )
        reader.fieldnames = header
        dates: list[dt.date] = []
        rows: list[list[float]] = []
        for line, row in enumerate(reader, start=2):
            day = _parse_date(row["date"] or "", path, line)
            values = []
            for col in REQUIRED_COLUMNS[1:]:
                raw = (row.get(col) or "").strip()
                try:
                    v = float(raw)
                except ValueError:
                    raise InvalidInputError(
                        f"{path.name}: line {line}: {col} {raw!r} is not a number", col, "bad number"
                    ) from None
                if not math.isfinite(v) or (col != "volume" and v <= 0) or v < 0:
                    raise InvalidInputError(
                        f"{path.name}: line {line}: {col} {raw!r} is out of range", col, "out of range"
                    )
                values.append(v)
            if values[1] < values[2]:
                raise InvalidInputError(f"{path.name}: line {line}: high is below low", "high", "below low")
            if dates and day <= dates[-1]:
                raise InvalidInputError(
                    f"{path.name}: line {line}: date {day} is not after {dates[-1]} (dates must be sorted)",
                    "date",
                    "unsorted",
                )
            dates.append(day)
            rows.append(values)
    if not rows:
        raise InvalidInputError(f"{path.name}: no data rows", "data", "empty")
    arr = np.asarray(rows, dtype=np.float64)
    return Bars(tuple(dates), arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy(), arr[:, 3].copy(), arr[:, 4].copy())


def load_vix(path: Path) -> dict[dt.date, float]:
    """Reads a CSV with a date column and a VIX close column (vix_close or close)."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        column = "vix_close" if "vix_close" in header else "close" if "close" in header else None
        if "date" not in header or column is None:
            raise InvalidInputError(
                f"{path.name}: line 1: needs date and vix_close (or close) columns", "vix", "columns"
            )
        reader.fieldnames = header
        out: dict[dt.date, float] = {}
        previous: dt.date | None = None
        for line, row in enumerate(reader, start=2):
            day = _parse_date(row["date"] or "", path, line)
            if previous is not None and day <= previous:
                raise InvalidInputError(f"{path.name}: line {line}: dates must be sorted", "date", "unsorted")
            try:
                v = float(row[column] or "")
            except ValueError:
                raise InvalidInputError(
                    f"{path.name}: line {line}: {column} is not a number", column, "bad number"
                ) from None
            if not math.isfinite(v) or v <= 0:
                raise InvalidInputError(f"{path.name}: line {line}: {column} must be > 0", column, "out of range")
            out[day] = v
            previous = day
    return out


@dataclass
class _Ledger:
    """What the backtest records as it goes."""

    equity: dict[str, list[float]] = field(default_factory=dict)
    week_types: dict[str, dict[str, int]] = field(default_factory=dict)
    actions: dict[str, int] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    # Accounts that held a position at some close this week (the others had an idle week, W-IDL).
    active_this_week: set[str] = field(default_factory=set)


class Backtest:
    """Runs the weekly protocol day by day over one underlying."""

    def __init__(
        self,
        bars: Bars,
        *,
        symbol: str,
        capital: float,
        vix: dict[dt.date, float] | None = None,
        seed: int = 0,
    ) -> None:
        if not math.isfinite(capital) or capital <= 0:
            raise InvalidInputError.of("capital", f"must be > 0, got {capital}")
        self.bars = bars
        self.symbol = symbol
        self.capital = capital
        self.vix = vix or {}
        self.seed = seed
        override = (symbol,)
        self.engine = Engine(trust=TrustBook(), symbols={"gen": override, "rev": override, "com": override})
        cfg = self.engine.config
        self._entry_days = {
            kind: {d for label in ("green", "red", "chop") for d in cfg.entry_rule(kind, label).entry_days}
            for kind in ("gen", "rev", "com")
        }
        hv = indicators.hist_vol(bars.close, 20)
        self._iv_fallback = 1.1 * hv
        self._pos_ids = 0

    def _iv(self, i: int) -> tuple[float, float | None]:
        day = self.bars.dates[i]
        if day in self.vix:
            return self.vix[day] / 100.0, self.vix[day]
        hv = float(self._iv_fallback[i])
        return (hv if math.isfinite(hv) and hv > 0 else 0.2), None

    def run(self, start: dt.date, end: dt.date) -> dict[str, Any]:
        """Simulates [start, end] and returns the JSON-ready result."""
        if end < start:
            raise InvalidInputError.of("end", f"must not be before start ({end} < {start})")
        dates = np.array(self.bars.dates, dtype="datetime64[D]")
        first = int(np.searchsorted(dates, np.datetime64(start, "D")))
        last = int(np.searchsorted(dates, np.datetime64(end, "D"), side="right")) - 1
        warmup = 60
        first = max(first, warmup)
        if last < first:
            raise InvalidInputError.of("start", f"needs {warmup} bars of history before the first simulated day")
        t0 = dt.datetime.combine(self.bars.dates[first], dt.time(9, 30))
        portfolio = Portfolio.create("backtest", self.capital, t0)
        ledger = _Ledger()
        daily_equity: list[float] = []
        daily_dates: list[dt.date] = []
        for i in range(first, last + 1):
            day = self.bars.dates[i]
            iv, vix = self._iv(i)
            market = MarketData(bars={self.symbol: self.bars.upto(day)}, iv={self.symbol: iv}, vix=vix)
            as_of = dt.datetime.combine(day, dt.time(15, 45))
            held = {p.account_id for p in portfolio.positions.values()}
            for account in list(portfolio.accounts.values()):
                if portfolio.groups[account.group_id].merged:
                    continue
                if account.id not in held and day.weekday() not in self._entry_days[account.kind]:
                    # An account holding only cash on a day that is no entry day under any label: the engine
                    # would answer NO_TRADE, and its equity (hence its drawdown state) cannot have moved.
                    ledger.actions["NO_TRADE"] = ledger.actions.get("NO_TRADE", 0) + 1
                    continue
                decision = self.engine.decide(portfolio, account.id, self.symbol, as_of, market)
                self._execute(portfolio, decision, market, day, ledger)
                if decision.week_type:
                    counts = ledger.week_types.setdefault(account.id, {})
                    counts[decision.week_type] = counts.get(decision.week_type, 0) + 1
            for pos in portfolio.positions.values():
                ledger.active_this_week.add(pos.account_id)
            self._settle_expiries(portfolio, market, day, ledger)
            week_end = i == last or self.bars.dates[i + 1].isocalendar()[1] != day.isocalendar()[1]
            if week_end:
                self._week_end(portfolio, market, day, ledger)
            quarter_end = day.month in (3, 6, 9, 12) and (i == last or self.bars.dates[i + 1].month != day.month)
            if quarter_end:
                for tx in portfolio.reinvest_quarter(dt.datetime.combine(day, dt.time(16, 0))):
                    ledger.events.append(
                        {
                            "date": day.isoformat(),
                            "event": tx.kind,
                            "account": tx.account_id,
                            "amount": str(tx.amount),
                        }
                    )
            total = 0.0
            for account in portfolio.accounts.values():
                eq = self.engine.account_equity(portfolio, account, market, day) + float(account.leaps)
                ledger.equity.setdefault(account.id, [math.nan] * len(daily_dates)).append(eq)
                total += eq
            daily_equity.append(total)
            daily_dates.append(day)
        return self._result(portfolio, ledger, daily_dates, daily_equity, start, end)

    # --- execution -------------------------------------------------------------------------------------
    def _next_id(self) -> str:
        self._pos_ids += 1
        return f"pos-{self._pos_ids}"

    def _execute(self, portfolio: Portfolio, d: Decision, market: MarketData, day: dt.date, ledger: _Ledger) -> None:
        ledger.actions[d.action] = ledger.actions.get(d.action, 0) + 1
        at = d.as_of
        order = d.order
        if d.outcome == "REJECTED" or d.action in ("HOLD", "NO_TRADE"):
            return
        if d.action in ("OPEN_PUT", "OPEN_CALL") and order is not None:
            pos = Position(
                self._next_id(),
                d.account_id,
                d.symbol,
                order.kind,
                -float(order.contracts),
                day,
                order.strike,
                order.expiry,
                order.limit_price,
                iv=market.iv_for(d.symbol),
            )
            portfolio.positions[pos.id] = pos
            portfolio.book_pnl(
                d.account_id,
                order.limit_price * MULTIPLIER * order.contracts,
                at,
                f"premium: sold {order.contracts} {order.kind} {order.strike:g} exp {order.expiry}",
            )
        elif d.action == "CLOSE" and d.position_id in portfolio.positions:
            self._close(portfolio, portfolio.positions[d.position_id], market, day, at, "close")
        elif d.action == "ROLL" and d.position_id in portfolio.positions and order is not None:
            old = portfolio.positions[d.position_id]
            self._close(portfolio, old, market, day, at, "roll: close")
            pos = Position(
                self._next_id(),
                d.account_id,
                d.symbol,
                order.kind,
                -float(order.contracts),
                day,
                order.strike,
                order.expiry,
                order.limit_price,
                iv=market.iv_for(d.symbol),
            )
            portfolio.positions[pos.id] = pos
            portfolio.book_pnl(
                d.account_id,
                order.limit_price * MULTIPLIER * order.contracts,
                at,
                f"roll: sold {order.contracts} {order.kind} {order.strike:g} exp {order.expiry}",
            )
            ledger.events.append(
                {
                    "date": day.isoformat(),
                    "event": "roll",
                    "account": d.account_id,
                    "from": old.strike,
                    "to": order.strike,
                }
            )
        elif d.action == "REDUCE" and d.position_id in portfolio.positions and order is not None:
            pos = portfolio.positions[d.position_id]
            self._close(portfolio, pos, market, day, at, "reduce", contracts=order.contracts)
            ledger.events.append(
                {"date": day.isoformat(), "event": "reduce", "account": d.account_id, "contracts": order.contracts}
            )
        elif d.action == "ACCEPT_ASSIGNMENT" and d.position_id in portfolio.positions:
            self._assign(portfolio, portfolio.positions[d.position_id], day, at, ledger)

    def _close(
        self,
        portfolio: Portfolio,
        pos: Position,
        market: MarketData,
        day: dt.date,
        at: dt.datetime,
        why: str,
        *,
        contracts: float | None = None,
    ) -> None:
        """Buys back `contracts` of a short option (all of them by default) at today's mark."""
        n = -pos.quantity if contracts is None else contracts
        cost = pos.mark(market.bars_for(pos.symbol).last_close, market.iv_for(pos.symbol), day, market.rate)
        portfolio.book_pnl(
            pos.account_id,
            -cost * MULTIPLIER * n,
            at,
            f"{why}: bought back {n:g} {pos.kind} {pos.strike:g} at {cost:.2f}",
        )
        pos.quantity += n
        if pos.quantity >= 0:
            del portfolio.positions[pos.id]

    def _assign(self, portfolio: Portfolio, opt: Position, day: dt.date, at: dt.datetime, ledger: _Ledger) -> None:
        shares = -opt.quantity * MULTIPLIER
        account = portfolio.account(opt.account_id)
        del portfolio.positions[opt.id]
        if opt.kind == "put":
            account.balance -= money(opt.strike * shares)
            portfolio._record(
                at,
                "assignment",
                account.id,
                -money(opt.strike * shares),
                f"put assigned: bought {shares:g} shares at {opt.strike:g}",
            )
            existing = [
                p
                for p in portfolio.positions.values()
                if p.account_id == account.id and p.kind == "stock" and p.symbol == opt.symbol
            ]
            if existing:
                s = existing[0]
                total = s.quantity + shares
                s.cost_basis = (s.cost_basis * s.quantity + opt.strike * shares) / total
                s.quantity = total
            else:
                stock = Position(self._next_id(), account.id, opt.symbol, "stock", shares, day, cost_basis=opt.strike)
                portfolio.positions[stock.id] = stock
        else:
            stocks = [
                p
                for p in portfolio.positions.values()
                if p.account_id == account.id and p.kind == "stock" and p.symbol == opt.symbol
            ]
            if not stocks:
                return
            s = stocks[0]
            sold = min(shares, s.quantity)
            proceeds = opt.strike * sold
            gain = (opt.strike - s.cost_basis) * sold
            account.balance += money(proceeds - gain)
            portfolio._record(
                at,
                "assignment",
                account.id,
                money(proceeds - gain),
                f"call assigned: sold {sold:g} shares at {opt.strike:g}",
            )
            portfolio.book_pnl(account.id, gain, at, f"call assignment gain over cost basis {s.cost_basis:.2f}")
            s.quantity -= sold
            if s.quantity <= 0:
                del portfolio.positions[s.id]
        ledger.events.append(
            {
                "date": day.isoformat(),
                "event": f"{opt.kind}_assignment",
                "account": account.id,
                "strike": opt.strike,
                "shares": shares,
            }
        )

    def _settle_expiries(self, portfolio: Portfolio, market: MarketData, day: dt.date, ledger: _Ledger) -> None:
        """Options at or past expiry that no decision handled: ITM ones are assigned, the rest expire."""
        spot = market.bars_for(self.symbol).last_close
        at = dt.datetime.combine(day, dt.time(16, 0))
        for pos in list(portfolio.positions.values()):
            if not pos.is_option or pos.expiry is None or pos.expiry > day:
                continue
            itm = (pos.kind == "put" and spot < pos.strike) or (pos.kind == "call" and spot > pos.strike)
            if itm:
                self._assign(portfolio, pos, day, at, ledger)
            else:
                del portfolio.positions[pos.id]

    def _week_end(self, portfolio: Portfolio, market: MarketData, day: dt.date, ledger: _Ledger) -> None:
        at = dt.datetime.combine(day, dt.time(16, 5))
        for account in portfolio.accounts.values():
            if portfolio.groups[account.group_id].merged:
                continue
            counts = ledger.week_types.setdefault(account.id, {})
            if account.id not in ledger.active_this_week:
                counts["W-IDL"] = counts.get("W-IDL", 0) + 1
            # The simulated operator: a REDUCING account whose drawdown is back under its cap is reset at the
            # week's end (in the service a person does this; PROTOCOL section 5).
            if account.state == "REDUCING":
                equity = self.engine.account_equity(portfolio, account, market, day)
                peak = max(float(account.peak), equity)
                drawdown = (peak - equity) / peak if peak > 0 else 0.0
                if drawdown < self.engine.config.account(account.kind).max_drawdown:
                    self.engine.reset_account(portfolio, account.id)
                    ledger.events.append({"date": day.isoformat(), "event": "operator_reset", "account": account.id})
        ledger.active_this_week.clear()
        for group in portfolio.check_forks(at):
            ledger.events.append(
                {
                    "date": day.isoformat(),
                    "event": "fork",
                    "group": group.id,
                    "accounts": list(group.account_ids),
                }
            )
        for group in list(portfolio.groups.values()):
            if group.parent_id is None or group.merged:
                continue
            total = sum(
                self.engine.account_equity(portfolio, portfolio.accounts[i], market, day) for i in group.account_ids
            )
            if total >= self.engine.config.doc.section("merging").number("threshold", low=0):
                for pos in [p for p in portfolio.positions.values() if p.account_id in group.account_ids]:
                    if pos.is_option:
                        self._close(portfolio, pos, market, day, at, "merge")
                    else:
                        acct = portfolio.account(pos.account_id)
                        acct.balance += money(pos.quantity * market.bars_for(pos.symbol).last_close)
                        del portfolio.positions[pos.id]
        for group in portfolio.check_merges(at):
            ledger.events.append({"date": day.isoformat(), "event": "merge", "group": group.id})

    # --- result ----------------------------------------------------------------------------------------
    def _result(
        self,
        portfolio: Portfolio,
        ledger: _Ledger,
        dates: list[dt.date],
        equity: list[float],
        start: dt.date,
        end: dt.date,
    ) -> dict[str, Any]:
        eq = np.asarray(equity)
        daily = eq[1:] / eq[:-1] - 1.0 if eq.size > 1 else np.zeros(0)
        metrics = risk.metrics(daily, periods_per_year=252) if daily.size >= 2 else {}
        accounts: dict[str, Any] = {}
        week_ends = [
            i
            for i in range(len(dates))
            if i == len(dates) - 1 or dates[i + 1].isocalendar()[1] != dates[i].isocalendar()[1]
        ]
        for account_id, series in ledger.equity.items():
            s = np.asarray(series)
            weekly = s[week_ends]
            valid = weekly[np.isfinite(weekly) & (weekly > 0)]
            wr = valid[1:] / valid[:-1] - 1.0 if valid.size > 1 else np.zeros(0)
            finite = s[np.isfinite(s)]
            peak = np.maximum.accumulate(finite) if finite.size else finite
            dd = float(np.max((peak - finite) / peak)) if finite.size else 0.0
            acct = portfolio.accounts[account_id]
            accounts[account_id] = {
                "type": acct.kind,
                "group": acct.group_id,
                "final_equity": round(float(finite[-1]) if finite.size else 0.0, 2),
                "mean_weekly_return": float(np.mean(wr)) if wr.size else 0.0,
                "weekly_returns": [round(float(x), 6) for x in wr],
                "max_drawdown": round(dd, 6),
                "week_types": dict(sorted(ledger.week_types.get(account_id, {}).items())),
                "state": acct.state,
                "leaps": str(acct.leaps),
            }
        forks = [e for e in ledger.events if e["event"] == "fork"]
        merges = [e for e in ledger.events if e["event"] == "merge"]
        return {
            "symbol": self.symbol,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "first_day": dates[0].isoformat() if dates else None,
            "last_day": dates[-1].isoformat() if dates else None,
            "capital": self.capital,
            "seed": self.seed,
            "final_equity": round(float(eq[-1]), 2) if eq.size else self.capital,
            "total_return": float(eq[-1] / self.capital - 1.0) if eq.size else 0.0,
            "accounts": accounts,
            "actions": dict(sorted(ledger.actions.items())),
            "forks": forks,
            "merges": merges,
            "events": ledger.events,
            "metrics": {k: (None if not math.isfinite(v) else v) for k, v in metrics.items()},
            "transactions": len(portfolio.transactions),
            "ledger_cash": str(sum((a.balance for a in portfolio.accounts.values()), Decimal("0.00"))),
        }


def simulate(
    data: Path,
    *,
    start: dt.date,
    end: dt.date,
    capital: float,
    vix: Path | None = None,
    symbol: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Runs the backtest on a CSV of daily bars (and optionally a VIX CSV); returns the JSON-ready result."""
    bars = load_bars(data)
    vix_map = load_vix(vix) if vix is not None else None
    name = symbol or data.stem.split("_")[0].upper()
    return Backtest(bars, symbol=name, capital=capital, vix=vix_map, seed=seed).run(start, end)
