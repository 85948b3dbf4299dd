"""A backtest of the weekly protocol over daily bars of one underlying (every account trades it, with its
concentration limit raised to its deployment target, PROTOCOL section 8).

Option prices come from Black-Scholes at IV = VIX/100 on dates the VIX file covers, else the VIX proxy of section 6
(the underlying's 20-day realised volatility x 1.2), and the result says which days used which. Every decision
comes from the same Engine the service uses; the backtest executes every decision the rules did not reject (it
simulates the protocol, not the humans around it) and records what it did with the money (deployment).
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
from allsuse.orchestration.nyse import FIRST_YEAR, LAST_YEAR
from allsuse.protocol import settings
from allsuse.protocol.accounts import Portfolio, money
from allsuse.protocol.drawdown import allowed_exposure
from allsuse.protocol.engine import Decision, Engine, Order
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


# A volatility index in percentage points: the VIX closed between 9.1 and 82.7 from 1990 to 2024; a file whose
# values leave [1, 150] holds something else (prices, or volatility as a fraction).
VIX_RANGE = (1.0, 150.0)


def load_vix(path: Path) -> dict[dt.date, float]:
    """Reads a CSV with a date column and a VIX close column (vix_close or close). A missing or unreadable file,
    a malformed row or values that are not a volatility index in points raise InvalidInputError naming them."""
    try:
        handle = path.open(newline="")
    except OSError as exc:
        raise InvalidInputError(f"--vix {path}: cannot be read ({exc.strerror})", "vix", "unreadable") from None
    with handle:
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
            if not VIX_RANGE[0] <= v <= VIX_RANGE[1]:
                raise InvalidInputError(
                    f"{path.name}: line {line}: {column} {v:g} is not a volatility index in points (expected "
                    f"{VIX_RANGE[0]:g}..{VIX_RANGE[1]:g}; prices or fractions are refused)",
                    column,
                    "not a volatility index",
                )
            out[day] = v
            previous = day
    if not out:
        raise InvalidInputError(f"{path.name}: no data rows", "vix", "empty")
    return out


@dataclass
class _Ledger:
    """What the backtest records as it goes."""

    equity: dict[str, list[float]] = field(default_factory=dict)
    # Share of the account's equity committed at the day's close (put collateral and held shares), per day.
    deployment: dict[str, list[float]] = field(default_factory=dict)
    portfolio_deployment: list[float] = field(default_factory=list)
    week_types: dict[str, dict[str, int]] = field(default_factory=dict)
    actions: dict[str, int] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    # Each distinct warning (by account, symbol and instrument): [first text, first date, last date, days].
    warnings: dict[str, list[Any]] = field(default_factory=dict)
    # Accounts that held a position at some close this week (the others had an idle week, W-IDL).
    active_this_week: set[str] = field(default_factory=set)
    # Executed decisions per account.
    trades: dict[str, int] = field(default_factory=dict)
    # (day, "vix" or "proxy") per simulated day.
    vol_sources: list[tuple[dt.date, str]] = field(default_factory=list)


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
        config: settings.ProtocolConfig | None = None,
    ) -> None:
        if not math.isfinite(capital) or capital <= 0:
            raise InvalidInputError.of("capital", f"must be > 0, got {capital}")
        self.bars = bars
        self.symbol = symbol
        self.capital = capital
        self.vix = vix or {}
        self.seed = seed
        override = (symbol,)
        config = config or settings.default()  # a sweep's point passes its own
        # One symbol per account: its concentration limit is its deployment target (section 8, at most 0.95).
        self.max_symbol_weight = {kind: min(config.account(kind).target_share, 0.95) for kind in ("gen", "rev", "com")}
        self.engine = Engine(
            config,
            trust=TrustBook(),
            symbols={"gen": override, "rev": override, "com": override},
            max_symbol_weights=self.max_symbol_weight,
        )
        cfg = self.engine.config
        self._entry_days = {
            kind: {d for label in ("green", "red", "chop") for d in cfg.entry_rule(kind, label).entry_days}
            for kind in ("gen", "rev", "com")
        }
        self._cash_settled = symbol in cfg.doc.strings("cash_settled")
        window = int(cfg.doc.number("vix_proxy_window", low=2))
        self._proxy_ratio = cfg.doc.number("vix_proxy_ratio", low=0)
        self._hv = indicators.hist_vol(bars.close, window)
        self._pos_ids = 0

    def _iv(self, i: int) -> tuple[float, float | None, str]:
        """(IV, VIX or None, source): VIX/100 where the VIX file covers the day, else the proxy (section 6)."""
        day = self.bars.dates[i]
        if day in self.vix:
            return self.vix[day] / 100.0, self.vix[day], "vix"
        hv = float(self._hv[i])
        return (hv * self._proxy_ratio if math.isfinite(hv) and hv > 0 else 0.2), None, "proxy"

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
            iv, vix, source = self._iv(i)
            ledger.vol_sources.append((day, source))
            market = MarketData(
                bars={self.symbol: self.bars.upto(day)}, iv={self.symbol: iv}, vix=vix, iv_source={self.symbol: source}
            )
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
                for _ in range(3):
                    decision = self.engine.decide(portfolio, account.id, self.symbol, as_of, market)
                    for text in decision.warnings:
                        seen = ledger.warnings.setdefault(text.split(" needs ")[0], [text, day.isoformat(), "", 0])
                        seen[2] = day.isoformat()
                        seen[3] += 1
                    self._execute(portfolio, decision, market, day, ledger)
                    if decision.week_type:
                        counts = ledger.week_types.setdefault(account.id, {})
                        counts[decision.week_type] = counts.get(decision.week_type, 0) + 1
                    # A position closed for profit (or at a stop) frees its capital, and shares just bought (or a
                    # Com-Acc's reinvestment put) leave their covered call to write: the account is decided again
                    # the same day, as a person would.
                    executed = decision.outcome != "REJECTED"
                    flat = not any(p.account_id == account.id for p in portfolio.positions.values())
                    again = (decision.action == "CLOSE" and flat) or decision.action == "BUY_SHARES"
                    again = again or (decision.action == "OPEN_PUT" and account.kind == "com")
                    if not (executed and again):
                        break
            for pos in portfolio.positions.values():
                ledger.active_this_week.add(pos.account_id)
            self._record_deployment(portfolio, market, day, ledger)
            self._settle_expiries(portfolio, market, day, ledger)
            week_end = i == last or self.bars.dates[i + 1].isocalendar()[1] != day.isocalendar()[1]
            if week_end:
                self._week_end(portfolio, market, day, ledger)
            in_calendar = FIRST_YEAR <= day.year <= LAST_YEAR
            if in_calendar and day.month in (3, 6, 9, 12) and (i == last or self.bars.dates[i + 1].month != day.month):
                # Acts only on the quarter's last NYSE trading day (PROTOCOL section 1).
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
            accounts = list(portfolio.accounts.values())
            # Every account's equity at the close, each position marked once.
            closing, _ = self.engine.equities(portfolio, accounts, market, day, portfolio_too=False)
            for account, equity in zip(accounts, closing, strict=True):
                eq = equity + float(account.leaps)
                if eq - float(account.leaps) > float(account.peak):
                    account.peak = money(eq - float(account.leaps))  # the equity high-water mark at the close
                ledger.equity.setdefault(account.id, [math.nan] * len(daily_dates)).append(eq)
                total += eq
            daily_equity.append(total)
            daily_dates.append(day)
        return self._result(portfolio, ledger, daily_dates, daily_equity, start, end)

    def _record_deployment(self, portfolio: Portfolio, market: MarketData, day: dt.date, ledger: _Ledger) -> None:
        """Share of each account's equity, and of the portfolio's, committed at the close: put collateral plus
        held shares at market (section 8's deployment)."""
        spot = market.bars_for(self.symbol).last_close
        committed: dict[str, float] = {}
        for p in portfolio.positions.values():
            committed[p.account_id] = (
                committed.get(p.account_id, 0.0)
                + p.collateral()
                + (max(p.exposure(spot), 0.0) if p.kind == "stock" else 0.0)
            )
        total_committed = 0.0
        total_equity = 0.0
        n = len(ledger.portfolio_deployment)
        live = [a for a in portfolio.accounts.values() if not portfolio.groups[a.group_id].merged]
        closing, _ = self.engine.equities(portfolio, live, market, day, portfolio_too=False)
        for account, equity in zip(live, closing, strict=True):
            eq = equity + float(account.leaps)
            used = committed.get(account.id, 0.0)
            ledger.deployment.setdefault(account.id, [math.nan] * n).append(used / eq if eq > 0 else 0.0)
            total_committed += used
            total_equity += eq
        ledger.portfolio_deployment.append(total_committed / total_equity if total_equity > 0 else 0.0)

    # --- execution -------------------------------------------------------------------------------------
    def _next_id(self) -> str:
        self._pos_ids += 1
        return f"pos-{self._pos_ids}"

    def _execute(self, portfolio: Portfolio, d: Decision, market: MarketData, day: dt.date, ledger: _Ledger) -> None:
        """Fills every order of an executed decision (children and legs alike) at its limit, then lets the engine
        commit the decision's effects (rate window, freezes, cuts, REDUCING)."""
        ledger.actions[d.action] = ledger.actions.get(d.action, 0) + 1
        at = d.as_of
        order = d.order
        if d.outcome == "REJECTED" or d.action in ("HOLD", "NO_TRADE"):
            return
        ledger.trades[d.account_id] = ledger.trades.get(d.account_id, 0) + 1
        if d.action in ("OPEN_PUT", "OPEN_CALL") and order is not None:
            self._open(portfolio, d, order, market, day, "premium")
        elif d.action == "BUY_SHARES" and order is not None:
            self._buy_shares(portfolio, d.account_id, d.symbol, order.contracts, order.limit_price, day, at)
        elif d.action == "CLOSE" and d.position_id in portfolio.positions:
            pos = portfolio.positions[d.position_id]
            if pos.kind != "stock":
                self._close(portfolio, pos, market, day, at, "close")
            for leg in d.orders:
                if leg.kind == "stock":
                    self._sell_shares(portfolio, d.account_id, d.symbol, float(leg.contracts), market, at)
        elif d.action == "ROLL" and d.position_id in portfolio.positions and order is not None:
            old = portfolio.positions[d.position_id]
            self._close(portfolio, old, market, day, at, "roll: close")
            self._open(portfolio, d, order, market, day, "roll")
            ledger.events.append(
                {
                    "date": day.isoformat(),
                    "event": "roll",
                    "account": d.account_id,
                    "from": old.strike,
                    "to": order.strike,
                }
            )
        elif d.action == "REDUCE" and order is not None and order.kind == "stock":
            self._sell_shares(portfolio, d.account_id, d.symbol, float(order.contracts), market, at)
        elif d.action == "REDUCE" and d.position_id in portfolio.positions and order is not None:
            pos = portfolio.positions[d.position_id]
            self._close(portfolio, pos, market, day, at, "reduce", contracts=order.contracts)
            ledger.events.append(
                {"date": day.isoformat(), "event": "reduce", "account": d.account_id, "contracts": order.contracts}
            )
        elif d.action == "ACCEPT_ASSIGNMENT" and d.position_id in portfolio.positions:
            self._expire_in_the_money(portfolio, portfolio.positions[d.position_id], market, day, at, ledger)
        self.engine.commit(d, portfolio)

    def _open(
        self, portfolio: Portfolio, d: Decision, order: Order, market: MarketData, day: dt.date, why: str
    ) -> None:
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
            band=order.band,
        )
        portfolio.open_position(
            pos, d.as_of, f"{why}: sold {order.contracts} {order.kind} {order.strike:g} exp {order.expiry}"
        )

    @staticmethod
    def _lots(portfolio: Portfolio, account_id: str, symbol: str) -> list[Position]:
        return [
            p
            for p in portfolio.positions.values()
            if p.account_id == account_id and p.kind == "stock" and p.symbol == symbol and p.quantity > 0
        ]

    def _buy_shares(
        self,
        portfolio: Portfolio,
        account_id: str,
        symbol: str,
        shares: float,
        price: float,
        day: dt.date,
        at: dt.datetime,
    ) -> None:
        """Com-Acc's round lots at today's price (a lot of its own, cost basis the price)."""
        lot = Position(self._next_id(), account_id, symbol, "stock", shares, day, cost_basis=price)
        portfolio.open_position(lot, at, f"round lots: bought {shares:g} {symbol} at {price:g}")

    def _sell_shares(
        self, portfolio: Portfolio, account_id: str, symbol: str, shares: float, market: MarketData, at: dt.datetime
    ) -> None:
        """Sells `shares` of the account's lots in `symbol` at today's close, first lot first (realises P&L)."""
        price = market.bars_for(symbol).last_close
        left = shares
        for lot in self._lots(portfolio, account_id, symbol):
            if left <= 0:
                break
            n = min(left, lot.quantity)
            portfolio.close_position(lot.id, price, at, f"stop-loss: sold {n:g} {symbol} at {price:g}", quantity=n)
            left -= n

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
        cost = pos.mark(market.bars_for(pos.symbol).last_close, market.iv_for(pos.symbol), day, market.rate)
        n = -pos.quantity if contracts is None else contracts
        portfolio.close_position(
            pos.id, round(cost, 6), at, f"{why}: bought back {n:g} {pos.kind} {pos.strike:g} at {cost:.2f}", quantity=n
        )

    def _expire_in_the_money(
        self, portfolio: Portfolio, opt: Position, market: MarketData, day: dt.date, at: dt.datetime, ledger: _Ledger
    ) -> None:
        """An in-the-money option at expiry: an index option is cash-settled (the short pays the intrinsic value,
        no units change hands); a stock option is assigned (section 3)."""
        spot = market.bars_for(opt.symbol).last_close
        if self._cash_settled:
            intrinsic = max(opt.strike - spot, 0.0) if opt.kind == "put" else max(spot - opt.strike, 0.0)
            portfolio.close_position(
                opt.id,
                round(intrinsic, 6),
                at,
                f"cash settlement: {-opt.quantity:g} {opt.kind} {opt.strike:g} at {spot:g}",
                kind="settlement",
            )
            ledger.events.append(
                {
                    "date": day.isoformat(),
                    "event": f"{opt.kind}_cash_settlement",
                    "account": opt.account_id,
                    "strike": opt.strike,
                    "intrinsic": round(intrinsic, 4),
                }
            )
            return
        shares = -opt.quantity * MULTIPLIER
        account = portfolio.account(opt.account_id)
        if opt.kind == "put" and account.reinvest_cash > 0:
            # A Com-Acc's reinvestment put assigned: that cash is now shares.
            account.reinvest_cash = max(account.reinvest_cash - money(opt.strike * shares), money(0))
        held = sum(p.quantity for p in self._lots(portfolio, opt.account_id, opt.symbol))
        if opt.kind == "call" and held < shares:
            # A call without the shares to deliver (only after a stop-loss sold them): bought back at intrinsic.
            portfolio.close_position(opt.id, round(max(spot - opt.strike, 0.0), 6), at, "call bought back at expiry")
            return
        portfolio.assign(
            opt.id,
            at,
            f"{opt.kind} assigned: {shares:g} shares at {opt.strike:g}",
            stock_id=self._next_id() if opt.kind == "put" else None,
        )
        ledger.events.append(
            {
                "date": day.isoformat(),
                "event": f"{opt.kind}_assignment",
                "account": opt.account_id,
                "strike": opt.strike,
                "shares": shares,
            }
        )

    def _settle_expiries(self, portfolio: Portfolio, market: MarketData, day: dt.date, ledger: _Ledger) -> None:
        """Options at or past expiry that no decision handled: ITM ones settle (cash or assignment), the rest
        expire worthless (their premium is realised)."""
        spot = market.bars_for(self.symbol).last_close
        at = dt.datetime.combine(day, dt.time(16, 0))
        for pos in list(portfolio.positions.values()):
            if not pos.is_option or pos.expiry is None or pos.expiry > day:
                continue
            itm = (pos.kind == "put" and spot < pos.strike) or (pos.kind == "call" and spot > pos.strike)
            if itm:
                self._expire_in_the_money(portfolio, pos, market, day, at, ledger)
            else:
                portfolio.expire_position(pos.id, at)

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
            equity = self.engine.account_equity(portfolio, account, market, day)
            peak = max(float(account.peak), equity)
            drawdown = (peak - equity) / peak if peak > 0 else 0.0
            spec = self.engine.config.account(account.kind)
            if account.state == "REDUCING" and drawdown < spec.max_drawdown:
                self.engine.reset_account(portfolio, account.id)
                ledger.events.append({"date": day.isoformat(), "event": "operator_reset", "account": account.id})
            elif self._locked_in_cash(portfolio, account.id, account.kind, peak, equity, market):
                # Flat in cash, and the drawdown budget no longer buys one contract or round lot: the account
                # cannot earn its way back to its old peak, so the operator starts a new episode at its equity.
                self.engine.reset_account(portfolio, account.id, new_peak=equity)
                ledger.events.append(
                    {"date": day.isoformat(), "event": "operator_reset_rebased", "account": account.id}
                )
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
        marks = {
            p.id: round(p.mark(market.bars_for(p.symbol).last_close, market.iv_for(p.symbol), day, market.rate), 6)
            for p in portfolio.positions.values()
        }
        for group in portfolio.check_merges(at, marks):
            ledger.events.append({"date": day.isoformat(), "event": "merge", "group": group.id})

    def _locked_in_cash(
        self, portfolio: Portfolio, account_id: str, kind: str, peak: float, equity: float, market: MarketData
    ) -> bool:
        """Flat, below its peak, and allowed less than one unit (strike ~ spot x 100) by the drawdown budget."""
        if equity <= 0 or equity >= peak or any(p.account_id == account_id for p in portfolio.positions.values()):
            return False
        spec = self.engine.config.account(kind)
        k = self.engine.config.doc.section("drawdown_budget").number("multiplier", low=0)
        allowed = allowed_exposure(peak, equity, spec.max_drawdown, k)
        unit = market.bars_for(self.symbol).last_close * MULTIPLIER
        return allowed * min(spec.target_share, self.max_symbol_weight[kind]) * equity < unit

    # --- result ----------------------------------------------------------------------------------------
    @staticmethod
    def _vol_ranges(sources: list[tuple[dt.date, str]]) -> list[dict[str, str]]:
        """Consecutive days with the same volatility source, as {from, to, source} ranges."""
        ranges: list[dict[str, str]] = []
        for day, source in sources:
            if ranges and ranges[-1]["source"] == source:
                ranges[-1]["to"] = day.isoformat()
            else:
                ranges.append({"from": day.isoformat(), "to": day.isoformat(), "source": source})
        return ranges

    @staticmethod
    def _share_stats(series: list[float]) -> dict[str, float]:
        s = np.asarray(series, dtype=np.float64)
        s = s[np.isfinite(s)]
        if not s.size:
            return {"mean": 0.0, "max": 0.0}
        return {"mean": round(float(np.mean(s)), 6), "max": round(float(np.max(s)), 6)}

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
            trades = ledger.trades.get(account_id, 0)
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
                "deployment": self._share_stats(ledger.deployment.get(account_id, [])),
                "trades": trades,
                "symbols": [self.symbol],
                "max_symbol_weight": self.max_symbol_weight[acct.kind],
            }
        forks = [e for e in ledger.events if e["event"] == "fork"]
        merges = [e for e in ledger.events if e["event"] == "merge"]
        vol_source = self._vol_ranges(ledger.vol_sources)
        proxy_days = sum(1 for _, s in ledger.vol_sources if s == "proxy")
        return {
            "symbol": self.symbol,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "first_day": dates[0].isoformat() if dates else None,
            "last_day": dates[-1].isoformat() if dates else None,
            "capital": self.capital,
            "seed": self.seed,
            "settlement": "cash" if self._cash_settled else "physical",
            "single_underlying": (
                f"every account trades {self.symbol} alone, its concentration limit raised to its deployment "
                "target (" + ", ".join(f"{k} {w:.0%}" for k, w in self.max_symbol_weight.items()) + ")"
            ),
            "final_equity": round(float(eq[-1]), 2) if eq.size else self.capital,
            "total_return": float(eq[-1] / self.capital - 1.0) if eq.size else 0.0,
            "deployment": self._share_stats(ledger.portfolio_deployment),
            "accounts": accounts,
            "actions": dict(sorted(ledger.actions.items())),
            "warnings": [
                f"{text} (on {days} decision days, {first} .. {last})"
                for text, first, last, days in ledger.warnings.values()
            ],
            "vol_source": vol_source,
            "proxy_days": proxy_days,
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
    config: settings.ProtocolConfig | None = None,
) -> dict[str, Any]:
    """Runs the backtest on a CSV of daily bars (and optionally a VIX CSV); returns the JSON-ready result.
    `config` replaces the protocol file's configuration (None: settings.default())."""
    vix_map = load_vix(vix) if vix is not None else None
    bars = load_bars(data)
    name = symbol or data.stem.split("_")[0].upper()
    return Backtest(bars, symbol=name, capital=capital, vix=vix_map, seed=seed, config=config).run(start, end)
