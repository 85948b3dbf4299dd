"""The decision engine (PROTOCOL section 10): for (account, symbol, as-of) it labels the market, reads the week
type and protocol level of any open position, chooses an action, sizes and prices it, measures ES before and
after by full revaluation, runs every compliance rule, gates approval by trust and explains itself.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from allsuse import _core, indicators, pricing, risk
from allsuse.errors import InvalidInputError
from allsuse.protocol import settings
from allsuse.protocol.accounts import Account, Portfolio
from allsuse.protocol.market import Bars, MarketData, this_weeks_friday
from allsuse.protocol.market_label import MarketLabel, market_label
from allsuse.protocol.positions import MULTIPLIER, Position
from allsuse.protocol.trust import TrustBook
from allsuse.protocol.week_type import WeekType, describe_week
from allsuse.rules import Compliance, RuleBook, RuleResult

_KIND_CODE = {"stock": risk.STOCK, "call": risk.CALL, "put": risk.PUT}
ACTIONS = ("OPEN_PUT", "OPEN_CALL", "ROLL", "CLOSE", "HOLD", "ACCEPT_ASSIGNMENT", "REDUCE", "NO_TRADE")
TRUST_KIND = {
    "OPEN_PUT": "entry",
    "OPEN_CALL": "entry",
    "ROLL": "roll",
    "CLOSE": "exit",
    "HOLD": "exit",
    "ACCEPT_ASSIGNMENT": "exit",
    "REDUCE": "risk_reduction",
    "NO_TRADE": "entry",
}


@dataclass(frozen=True)
class Order:
    """The order a decision proposes (None for HOLD and NO_TRADE)."""

    kind: str  # put, call or stock
    side: str  # sell_to_open, buy_to_close, roll
    strike: float
    expiry: dt.date | None
    contracts: int
    limit_price: float
    delta: float  # absolute, whole numbers (40 = 0.40)
    premium: float  # dollars for the whole order


@dataclass(frozen=True)
class Decision:
    """What an account should do now, and why."""

    id: int
    account_id: str
    symbol: str
    as_of: dt.datetime
    label: str
    label_confidence: float
    week_type: str | None
    protocol_level: int
    action: str
    order: Order | None
    es_before: float
    es_after: float
    compliance: tuple[RuleResult, ...]
    outcome: str
    requires_approval: bool
    confidence: float
    trust_kind: str
    explanation: str
    account_state: str
    idempotency_key: str | None = None
    position_id: str | None = None

    @property
    def strike(self) -> float | None:
        """The order's strike, if any."""
        return self.order.strike if self.order else None

    @property
    def contracts(self) -> int:
        """The order's contracts (0 without an order)."""
        return self.order.contracts if self.order else 0

    @property
    def delta(self) -> float | None:
        """The order's absolute delta in whole numbers."""
        return self.order.delta if self.order else None


@dataclass
class _AccountRuntime:
    """Per-account engine state: drawdown protection, frozen entries, recent orders."""

    protection: tuple[int, float, int, int] = (0, 0.0, -(2**62), 0)
    frozen_until: dt.date | None = None
    orders: deque[dt.datetime] = field(default_factory=deque)
    # Protection level at which each position was last cut, so a level cuts a position once.
    cut_at: dict[str, int] = field(default_factory=dict)


class Engine:
    """Decides for (account, symbol, as-of). Thresholds come from config/protocol.yaml, rules from rules.yaml."""

    def __init__(
        self,
        config: settings.ProtocolConfig | None = None,
        rules: RuleBook | None = None,
        trust: TrustBook | None = None,
        symbols: dict[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.config = config or settings.default()
        self._symbols = dict(symbols or {})
        self.rules = rules or RuleBook.load()
        self.trust = trust or TrustBook()
        self._ids = itertools.count(1)
        self._runtime: dict[str, _AccountRuntime] = {}
        self._seen: dict[str, Decision] = {}
        self._labels: dict[tuple[Any, ...], MarketLabel] = {}
        self._label_text: dict[int, tuple[MarketLabel, str]] = {}
        self._scenario_cache: dict[tuple[Any, ...], np.ndarray] = {}
        self.system_state = "ACTIVE"

    # --- helpers over configuration -------------------------------------------------------------------
    def allowed_symbols(self, account_kind: str) -> tuple[str, ...]:
        """Symbols an account type may trade: the override given to the engine, else config."""
        return self._symbols.get(account_kind, self.config.account(account_kind).symbols)

    def _sec(self, name: str) -> settings.Section:
        return self.config.doc.section(name)

    def _runtime_of(self, account_id: str) -> _AccountRuntime:
        return self._runtime.setdefault(account_id, _AccountRuntime())

    # --- account measures -------------------------------------------------------------------------------
    @staticmethod
    def positions_of(portfolio: Portfolio, account_id: str, symbol: str | None = None) -> list[Position]:
        """Open positions of an account (optionally on one symbol)."""
        return [
            p
            for p in portfolio.positions.values()
            if p.account_id == account_id and (symbol is None or p.symbol == symbol)
        ]

    def account_equity(self, portfolio: Portfolio, account: Account, market: MarketData, today: dt.date) -> float:
        """Cash plus the market value of the account's positions (short options count as liabilities)."""
        value = float(account.balance)
        for p in self.positions_of(portfolio, account.id):
            value += p.market_value(market.bars_for(p.symbol).last_close, market.iv_for(p.symbol), today, market.rate)
        return value

    def portfolio_equity(self, portfolio: Portfolio, market: MarketData, today: dt.date) -> float:
        """Cash, LEAPS and positions at market of every account not merged away, in one pass over positions."""
        total = 0.0
        for account in portfolio.accounts.values():
            if not portfolio.groups[account.group_id].merged:
                total += float(account.balance + account.leaps)
        for p in portfolio.positions.values():
            if not portfolio.groups[portfolio.accounts[p.account_id].group_id].merged:
                total += p.market_value(
                    market.bars_for(p.symbol).last_close, market.iv_for(p.symbol), today, market.rate
                )
        return total

    def _vix(self, market: MarketData) -> tuple[float, bool, str]:
        v = self._sec("vix_breakers")
        if market.vix is None:
            return 1.0, False, "ACTIVE"
        return _core.vix_breaker(
            float(market.vix),
            v.number("hedged_at"),
            v.number("hedged_multiplier"),
            v.number("reducing_at"),
            v.number("halted_at"),
        )

    def _protection(self, account: Account, equity: float, day: dt.date) -> tuple[int, float]:
        d = self._sec("drawdown_protection")
        rt = self._runtime_of(account.id)
        peak = max(float(account.peak), equity)
        drawdown = max(0.0, (peak - equity) / peak) if peak > 0 else 0.0
        thresholds = d.numbers("thresholds", 4)
        multipliers = d.numbers("multipliers", 5)
        rt.protection = _core.step_protection(
            rt.protection,
            drawdown,
            day.toordinal(),
            (thresholds[0], thresholds[1], thresholds[2], thresholds[3]),
            (multipliers[0], multipliers[1], multipliers[2], multipliers[3], multipliers[4]),
            d.number("step_down_recovery"),
            d.number("off_recovery"),
            int(d.number("max_adjustments_per_day", low=0)),
        )
        return rt.protection[0], drawdown

    def _atr(self, bars: Bars, period: int) -> float | None:
        if len(bars.dates) <= period:
            return None
        value = float(indicators.atr(bars.high, bars.low, bars.close, period)[-1])
        return value if math.isfinite(value) and value > 0 else None

    # --- scenarios and ES -------------------------------------------------------------------------------
    def _scenarios(self, symbols: list[str], market: MarketData) -> np.ndarray:
        """The last N daily joint simple returns of `symbols` (aligned on their common last dates); kept per set of
        symbols and last bars, since every decision of the day revalues over the same history."""
        key = tuple((s, len(market.bars_for(s).dates), market.bars_for(s).last_close) for s in symbols)
        cached = self._scenario_cache.get(key)
        if cached is None:
            cached = self._build_scenarios(symbols, market)
            cached.setflags(write=False)
            if len(self._scenario_cache) > 64:
                self._scenario_cache.clear()
            self._scenario_cache[key] = cached
        return cached

    def _build_scenarios(self, symbols: list[str], market: MarketData) -> np.ndarray:
        n = int(self._sec("risk").number("scenario_days", low=1))
        columns = []
        for s in symbols:
            close = market.bars_for(s).close
            r = close[1:] / close[:-1] - 1.0
            columns.append(r[-n:])
        length = min(len(c) for c in columns)
        if length < 1:
            raise InvalidInputError.of("bars", "need at least two closes per symbol for scenarios")
        return np.column_stack([c[-length:] for c in columns]).astype(np.float64)

    def book_pnl(self, positions: list[Position], market: MarketData, today: dt.date, symbols: list[str]) -> np.ndarray:
        """P&L of `positions` in each historical scenario of `symbols` (the last N joint daily returns), by full
        revaluation over a 1-day horizon with IV moving against the price. P&L is additive across positions, so
        the engine values the book once and a proposed order once, then sizes without revaluing again."""
        returns = self._scenarios(symbols, market)
        if not positions:
            return np.zeros(returns.shape[0])
        index = {s: i for i, s in enumerate(symbols)}
        scen = self._sec("scenarios")
        horizon = scen.number("horizon_days", low=0) / 365.0
        iv_now = np.array([market.iv_for(s) for s in symbols])
        # IV moves against the price, in proportion to the move; it never falls below 10% of today's IV.
        relative = np.maximum(-scen.number("iv_move_sensitivity") * returns, -0.9)
        vol_shifts = relative * iv_now[None, :]
        # The core's revaluation is called directly: the engine built every input itself (positions validated on
        # entry, scenarios from checked bars), and the facade's checks cost more than the revaluation for a small book.
        n = len(positions)
        kind = np.fromiter((_KIND_CODE[p.kind] for p in positions), dtype=np.int64, count=n)
        und = np.fromiter((index[p.symbol] for p in positions), dtype=np.int64, count=n)
        qty = np.fromiter((p.quantity for p in positions), dtype=np.float64, count=n)
        mult = np.where(kind == _KIND_CODE["stock"], 1.0, MULTIPLIER)
        strike = np.fromiter((p.strike if p.is_option else 1.0 for p in positions), dtype=np.float64, count=n)
        t = np.fromiter(
            (p.years_to_expiry(today) if p.is_option else 1.0 for p in positions), dtype=np.float64, count=n
        )
        vol = iv_now[und]
        spot = np.array([market.bars_for(s).last_close for s in symbols])
        pnl, _, _ = _core.revalue(
            kind,
            und,
            qty,
            mult,
            strike,
            t,
            vol,
            np.full(n, market.rate),
            np.zeros(n),
            spot,
            np.ascontiguousarray(returns),
            np.ascontiguousarray(vol_shifts),
            horizon,
            self._es_level(),
        )
        return pnl

    def _es_level(self) -> float:
        return self._sec("risk").number("es_confidence", low=0.5, high=0.9999)

    def es_of(self, pnl: np.ndarray) -> float:
        """ES at the configured level (PROTOCOL section 6) of a scenario P&L vector."""
        return risk.expected_shortfall(pnl, self._es_level())

    def portfolio_es(
        self, positions: list[Position], market: MarketData, today: dt.date, extra: Position | None = None
    ) -> float:
        """1-day ES(97.5%) of the positions (plus `extra`) by full revaluation over historical scenarios."""
        book_positions = [*positions, *([extra] if extra else [])]
        if not book_positions:
            return 0.0
        symbols = sorted({p.symbol for p in book_positions})
        return self.es_of(self.book_pnl(book_positions, market, today, symbols))

    # --- public API -------------------------------------------------------------------------------------
    def decide(
        self,
        portfolio: Portfolio,
        account_id: str,
        symbol: str,
        as_of: dt.datetime,
        market: MarketData,
        *,
        idempotency_key: str | None = None,
        roll_available: bool | None = None,
    ) -> Decision:
        """The decision for one account and symbol at `as_of`. A repeated idempotency key returns the earlier
        decision (R16) without a new order."""
        if idempotency_key is not None and idempotency_key in self._seen:
            return self._seen[idempotency_key]
        account = portfolio.account(account_id)
        today = as_of.date()
        bars = market.bars_for(symbol).upto(today)
        view = MarketData(
            bars={s: b.upto(today) for s, b in market.bars.items()},
            iv=market.iv,
            vix=market.vix,
            rate=market.rate,
            sectors=market.sectors,
            chains=market.chains,
            earnings=market.earnings,
        )
        label = self._label(symbol, bars, view.iv_for(symbol))
        decision = _Deciding(self, portfolio, account, symbol, as_of, view, bars, label, idempotency_key).run(
            roll_available
        )
        if idempotency_key is not None:
            self._seen[idempotency_key] = decision
        if decision.order is not None and decision.outcome != "REJECTED":
            self._runtime_of(account_id).orders.append(as_of)
        return decision

    def record_outcome(self, decision: Decision, right: bool, on: dt.date) -> float:
        """Moves the trust of the decision's kind: +0.02 x confidence when it was right, -0.01 x confidence
        when not. Returns the new trust score."""
        return self.trust.record(decision.trust_kind, right, decision.confidence, on)

    def _label(self, symbol: str, bars: Bars, iv: float) -> MarketLabel:
        """The market label of the last bar; the same bars and IV give the same label, so it is kept for the day
        (every account of a portfolio asks for it)."""
        last = bars.dates[-1] if bars.dates else None
        key = (symbol, last, len(bars.dates), iv, float(bars.close[-1]) if bars.dates else 0.0)
        cached = self._labels.get(key)
        if cached is None:
            cached = market_label(bars.close, iv, bars.volume, self.config)
            if len(self._labels) > 256:
                self._labels.clear()
            self._labels[key] = cached
        return cached

    def _explained(self, label: MarketLabel) -> str:
        """The label's explanation line, built once per label."""
        text = self._label_text.get(id(label))
        if text is None or text[0] is not label:
            text = (label, label.explain())
            self._label_text[id(label)] = text
            if len(self._label_text) > 512:
                self._label_text.clear()
        return text[1]

    def export_state(self) -> dict[str, Any]:
        """Per-account runtime (drawdown protection, frozen entries, recent orders) and trust, as JSON-ready data,
        so a service can keep it with the portfolio and any replica can carry on from it."""
        return {
            "accounts": {
                account_id: {
                    "protection": list(rt.protection),
                    "frozen_until": rt.frozen_until.isoformat() if rt.frozen_until else None,
                    "orders": [t.isoformat() for t in rt.orders],
                    "cut_at": dict(rt.cut_at),
                }
                for account_id, rt in self._runtime.items()
            },
            "trust": {
                "scores": dict(self.trust.scores),
                "last_outcome": {k: v.isoformat() for k, v in self.trust.last_outcome.items()},
            },
        }

    def import_state(self, state: dict[str, Any]) -> None:
        """Restores what `export_state` produced."""
        for account_id, rt in (state.get("accounts") or {}).items():
            p = rt["protection"]
            frozen = rt.get("frozen_until")
            self._runtime[account_id] = _AccountRuntime(
                protection=(int(p[0]), float(p[1]), int(p[2]), int(p[3])),
                frozen_until=dt.date.fromisoformat(frozen) if frozen else None,
                orders=deque(dt.datetime.fromisoformat(t) for t in rt.get("orders", [])),
                cut_at={k: int(v) for k, v in (rt.get("cut_at") or {}).items()},
            )
        trust = state.get("trust") or {}
        self.trust.scores.update({k: float(v) for k, v in (trust.get("scores") or {}).items()})
        self.trust.last_outcome.update(
            {k: dt.date.fromisoformat(v) for k, v in (trust.get("last_outcome") or {}).items()}
        )

    def reset_account(self, portfolio: Portfolio, account_id: str) -> None:
        """An operator's reset of a REDUCING account back to ACTIVE."""
        portfolio.account(account_id).state = "ACTIVE"
        self._runtime_of(account_id).frozen_until = None


class _Deciding:
    """One decision in progress: gathers numbers and cites them in the explanation."""

    def __init__(
        self,
        engine: Engine,
        portfolio: Portfolio,
        account: Account,
        symbol: str,
        as_of: dt.datetime,
        market: MarketData,
        bars: Bars,
        label: MarketLabel,
        idempotency_key: str | None,
    ) -> None:
        self.e = engine
        self.p = portfolio
        self.a = account
        self.symbol = symbol
        self.as_of = as_of
        self.today = as_of.date()
        self.m = market
        self.bars = bars
        self.label = label
        self.key = idempotency_key
        self.spec = engine.config.account(account.kind)
        self.spot = bars.last_close
        self.iv = market.iv_for(symbol)
        self.notes: list[str] = [engine._explained(label)]
        self.equity = engine.account_equity(portfolio, account, market, self.today)
        self.portfolio_equity = engine.portfolio_equity(portfolio, market, self.today)
        self.protection_level, self.drawdown = engine._protection(account, self.equity, self.today)
        self.vix_mult, self.vix_hedged, self.vix_state = engine._vix(market)
        if self.drawdown >= self.spec.max_drawdown and account.state == "ACTIVE":
            account.state = "REDUCING"
            self.notes.append(
                f"drawdown={self.drawdown:.2%} reached the {self.spec.name} cap {self.spec.max_drawdown:.0%}: REDUCING"
            )
        self.week: WeekType | None = None
        self.level = 0

    # --- the flow ----------------------------------------------------------------------------------------
    def run(self, roll_available: bool | None) -> Decision:
        positions = self.e.positions_of(self.p, self.a.id, self.symbol)
        options = [p for p in positions if p.is_option and p.quantity < 0]
        stock = [p for p in positions if p.kind == "stock" and p.quantity > 0]
        cut = self._drawdown_cut(options)
        if cut is not None:
            return cut
        if options:
            return self._manage_option(options[0], stock[0] if stock else None, roll_available)
        if stock:
            return self._covered_call(stock[0])
        return self._entry()

    # --- drawdown protection on existing positions (PROTOCOL section 6) ------------------------------------
    def _drawdown_cut(self, options: list[Position]) -> Decision | None:
        """REDUCE when the account's drawdown protection asks to cut this symbol's short option: light cuts
        positions on symbols with annualised vol above 35% by 20%, moderate all by 40%, aggressive by 60%,
        emergency closes the 3 riskiest positions (vol x market value). Each level cuts a position once."""
        level = self.protection_level
        if not options:
            return None
        opt = options[0]
        rt = self.e._runtime_of(self.a.id)
        if level == 0:
            return self._budget_cut(opt, rt)
        if rt.cut_at.get(opt.id, 0) >= level:
            return None
        d = self.e._sec("drawdown_protection")
        names = ("none", "light", "moderate", "aggressive", "emergency")
        share = d.numbers("cuts", 5)[level]
        why = f"drawdown {self.drawdown:.2%}: protection {names[level]}"
        if level == 1:
            light = d.section("light_vol_cut")
            hv = float(indicators.hist_vol(self.bars.close, 20)[-1]) if len(self.bars.dates) > 21 else float("nan")
            if not (math.isfinite(hv) and hv > light.number("annual_vol_above")):
                return None
            share = light.number("cut", low=0, high=1)
            why += f", {self.symbol} annualised vol {hv:.0%} > {light.number('annual_vol_above'):.0%}"
        elif level == 4:
            held = [p for p in self.e.positions_of(self.p, self.a.id) if p.is_option and p.quantity < 0]
            risk_of = {
                p.id: self.m.iv_for(p.symbol)
                * abs(
                    p.market_value(
                        self.m.bars_for(p.symbol).last_close, self.m.iv_for(p.symbol), self.today, self.m.rate
                    )
                )
                for p in held
            }
            riskiest = sorted(risk_of, key=lambda k: -risk_of[k])[: int(d.number("emergency_close_count", low=0))]
            if opt.id not in riskiest:
                return None
            share = 1.0
            why += f": {opt.id} is among the {len(riskiest)} riskiest positions (vol x market value)"
        contracts = min(int(-opt.quantity), math.ceil(-opt.quantity * share - 1e-9))
        if contracts <= 0:
            return None
        rt.cut_at[opt.id] = level
        self.notes.append(f"{why}: cut {share:.0%} of {int(-opt.quantity)} contracts = {contracts}")
        return self._buy_back(opt, contracts, "REDUCE", "emergency" if level == 4 else "risk_reduction")

    def _budget_cut(self, opt: Position, rt: _AccountRuntime) -> Decision | None:
        """The drawdown budget: when committed exposure exceeds the allowed share of normal exposure
        (min(1, 4 x (equity - floor) / equity) of the 95% deployable), propose reducing this position by the
        excess share, at most once a day per position."""
        if self.equity <= 0:
            return None
        committed = self._committed()
        allowed = self._allowed_exposure()
        cap = allowed * self.e.config.doc.number("max_deployment") * self.equity
        key = f"budget:{opt.id}:{self.today.isoformat()}"
        if committed <= cap or committed <= 0 or key in rt.cut_at:
            return None
        share = (committed - cap) / committed
        contracts = min(int(-opt.quantity), math.ceil(-opt.quantity * share - 1e-9))
        if contracts <= 0:
            return None
        rt.cut_at[key] = 1
        self.notes.append(
            f"drawdown budget: exposure {committed:.2f} over the allowed {cap:.2f} ({allowed:.0%} of normal): "
            f"reduce {share:.0%} = {contracts} contracts"
        )
        return self._buy_back(opt, contracts, "REDUCE", "risk_reduction")

    # --- open short option ---------------------------------------------------------------------------------
    def _manage_option(self, opt: Position, stock: Position | None, roll_available: bool | None) -> Decision:
        lv = self.e._sec("protocol_levels")
        atr5 = self.e._atr(self.bars, int(lv.number("atr_period", low=1)))
        reference = opt.strike if opt.kind == "put" else (stock.cost_basis if stock else opt.strike)
        loss = opt.unrealised_loss(self.spot, self.iv, self.today, self.m.rate)
        if stock is not None:
            loss += stock.unrealised_loss(self.spot, self.iv, self.today)
        exc = lv.numbers("excursion", 3)
        lt = lv.numbers("loss", 3)
        self.level, x, loss_share = _core.protocol_level(
            reference,
            self.spot,
            atr5,
            loss,
            max(self.equity, 1e-9),
            (exc[0], exc[1], exc[2]),
            (lt[0], lt[1], lt[2]),
            lv.number("atr_fallback_share"),
        )
        atr_text = f"{atr5:.2f}" if atr5 is not None else f"fallback {lv.number('atr_fallback_share'):.0%} of spot"
        self.notes.append(
            f"level={self.level} excursion={x:.2f} ATR(5)={atr_text} loss={loss:.2f} ({loss_share:.2%} of equity)"
        )
        position_kind = "SHORT_PUT" if opt.kind == "put" else "SHORT_CALL"
        expiring = opt.expiry is not None and self.today >= opt.expiry
        can_roll = self._roll_available(opt) if roll_available is None else roll_available
        if expiring:
            move = self._week_move()
            self.week = describe_week(position_kind, move, can_roll, self.e.config)
            self.notes.append(
                f"week_type={self.week.code} ({self.week.name}) move={move:.2f}% roll_available={can_roll}"
            )
            return self._at_expiry(opt)
        if self.level >= 3:
            self.a.state = "REDUCING"
            self.notes.append("level 3 (preservation): close at a stop-loss; account goes REDUCING until reset")
            return self._close(opt, "emergency")
        if self.level == 2:
            self.e._runtime_of(self.a.id).frozen_until = opt.expiry
            self.notes.append("level 2 (recovery): new entries frozen on this account")
            if can_roll:
                return self._roll(opt)
            self.notes.append("no roll inside the band for a credit or an acceptable debit: close")
            return self._close(opt, "risk_reduction")
        if self.level == 1:
            rolls_now = self.a.kind == "gen" or (self.a.kind == "rev" and x >= lv.number("rev_roll_excursion"))
            if rolls_now and can_roll:
                return self._roll(opt)
            self.notes.append("level 1 (enhanced): roll prepared, holding")
            return self._decision("HOLD", None, confidence=self._conf("hold_enhanced"))
        decayed = 1.0 - opt.mark(self.spot, self.iv, self.today, self.m.rate) / max(opt.premium, 1e-12)
        take = lv.section("take_profit").number(self.a.kind, low=0, high=1)
        if decayed >= take:
            self.notes.append(f"premium decayed {decayed:.0%} >= take-profit {take:.0%}: close")
            return self._close(opt, "exit")
        self.notes.append(f"level 0 (normal): premium decayed {decayed:.0%} < {take:.0%}: hold")
        return self._decision("HOLD", None, confidence=self._conf("hold_normal"))

    def _conf(self, name: str) -> float:
        return self.e._sec("decision_confidence").number(name, low=0, high=1)

    def _week_move(self) -> float:
        """m = (close - previous Friday's close) / previous Friday's close x 100."""
        dates = self.bars.dates
        ref_idx = None
        week_start = self.today - dt.timedelta(days=self.today.weekday())
        for i in range(len(dates) - 1, -1, -1):
            if dates[i] < week_start:
                ref_idx = i
                break
        if ref_idx is None:
            return 0.0
        ref = float(self.bars.close[ref_idx])
        return (self.spot - ref) / ref * 100.0

    def _at_expiry(self, opt: Position) -> Decision:
        assert self.week is not None
        code = self.week.code
        itm = (opt.kind == "put" and self.spot < opt.strike) or (opt.kind == "call" and self.spot > opt.strike)
        conf = self.week.confidence
        if code == "P-DD":
            self.a.state = "REDUCING"
            self.notes.append("deep drawdown: protocol level 3, close and go REDUCING")
            return self._close(opt, "emergency")
        if code in ("P-RO", "C-RO", "C-REC") and itm:
            return self._roll(opt)
        if itm:
            self.notes.append(
                f"in the money at expiry (spot {self.spot:.2f} vs strike {opt.strike:.2f}): {self.week.action}"
            )
            return self._decision("ACCEPT_ASSIGNMENT", None, confidence=conf, position_id=opt.id)
        self.notes.append(f"out of the money at expiry: {self.week.action}")
        return self._decision("HOLD", None, confidence=conf, position_id=opt.id)

    def _roll_available(self, opt: Position) -> bool:
        """A roll is available when next week's expiry offers a strike inside the band for a net credit or a debit
        of at most 50% of the original credit."""
        band = self._band(opt.kind)
        if band is None or opt.expiry is None:
            return False
        expiry = opt.expiry + dt.timedelta(days=7)
        t = max((expiry - self.today).days, 1) / 365.0
        choice = self._pick_strike(opt.kind, t, band, (band[0] + band[1]) / 2)
        if choice is None:
            return False
        new_premium = float(pricing.bs_price(opt.kind, self.spot, choice[0], t, self.iv, self.m.rate))
        close_cost = opt.mark(self.spot, self.iv, self.today, self.m.rate)
        debit = close_cost - new_premium
        limit = self.e._sec("week_types").number("roll_max_debit_share", low=0) * opt.premium
        return debit <= limit

    # --- orders --------------------------------------------------------------------------------------------
    def _band(self, kind: str) -> tuple[float, float] | None:
        if kind == "call":
            cc = self.e._sec("covered_calls")
            recovering = self.week is not None and self.week.code == "C-REC"
            b = cc.numbers("recovery_band" if recovering else "band", 2)
            return (b[0], b[1])
        return self.e.config.entry_rule(self.a.kind, self.label.label).band

    def _pick_strike(
        self, kind: str, t: float, band: tuple[float, float], target: float
    ) -> tuple[float, float, float] | None:
        """(strike, abs delta, mid) from the given chain, or from a synthetic Black-Scholes chain."""
        quotes = self.m.chains.get(self.symbol, {}).get(kind)
        if quotes:
            strikes = np.array([q.strike for q in quotes], dtype=np.float64)
            ivs = np.array([q.iv for q in quotes], dtype=np.float64)
            deltas = np.abs(np.asarray(pricing.bs_greeks(kind, self.spot, strikes, t, ivs, self.m.rate)["delta"])) * 100
            picked = _core.select_strike(kind, strikes, np.ascontiguousarray(deltas), band[0], band[1], target)
            if picked is None:
                return None
            q = quotes[picked[0]]
            return picked[1], picked[2], (q.bid + q.ask) / 2
        choice = _core.select_synthetic_strike(kind, self.spot, t, self.iv, self.m.rate, 0.0, band[0], band[1], target)
        if choice is None:
            return None
        mid = float(pricing.bs_price(kind, self.spot, choice[0], t, self.iv, self.m.rate))
        return choice[0], choice[1], mid

    def _regime(self) -> tuple[str, float]:
        ar = self.e._sec("atr_regime")
        atr14 = self.e._atr(self.bars, int(ar.number("period", low=1)))
        pct = (atr14 / self.spot * 100.0) if atr14 is not None else self.e.config.doc.number("atr_regime_fallback_pct")
        up = ar.numbers("upper_pct", 4)
        mult = ar.numbers("size_multiplier", 5)
        regime, m = _core.atr_regime(pct, (up[0], up[1], up[2], up[3]), (mult[0], mult[1], mult[2], mult[3], mult[4]))
        self.notes.append(f"ATR(14)={pct:.2f}% of spot: regime {regime}, size x{m}")
        return regime, m

    def _entry(self) -> Decision:
        rule = self.e.config.entry_rule(self.a.kind, self.label.label)
        weekday = self.today.weekday()
        if rule.band is None or not rule.entry_days:
            self.notes.append(f"{self.spec.name} makes no new entries in {self.label.label.title()}")
            return self._decision("NO_TRADE", None, confidence=self.label.confidence)
        if weekday not in rule.entry_days:
            days = ",".join(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[d] for d in rule.entry_days)
            self.notes.append(
                f"not an entry day for {self.spec.name} in {self.label.label.title()} (entry days {days})"
            )
            return self._decision("NO_TRADE", None, confidence=self.label.confidence)
        frozen = self.e._runtime_of(self.a.id).frozen_until
        if frozen is not None and self.today <= frozen:
            self.notes.append(f"new entries frozen until {frozen} (protocol level 2)")
            return self._decision("NO_TRADE", None, confidence=self.label.confidence)
        return self._open("put", rule.band, rule.size_middle)

    def _covered_call(self, stock: Position) -> Decision:
        cover = 1.0
        if self.protection_level >= 2:
            cover = self.e._sec("sizing").number("covered_call_cap_share", low=0, high=1)
            self.notes.append(f"drawdown protection level {self.protection_level}: cover at most {cover:.0%}")
        band = self._band("call")
        assert band is not None
        return self._open("call", band, 0.0, shares=stock.quantity, cover=cover)

    def _open(
        self,
        kind: str,
        band: tuple[float, float],
        size_share: float,
        *,
        shares: float = 0.0,
        cover: float = 1.0,
    ) -> Decision:
        regime, m_atr = self._regime()
        target = _core.delta_target(band[0], band[1], regime)
        expiry = this_weeks_friday(self.today)
        dte = (expiry - self.today).days
        t = dte / 365.0
        picked = self._pick_strike(kind, t, band, target)
        if picked is None:
            self.notes.append(f"no strike inside the band {band[0]:.0f}-{band[1]:.0f}")
            return self._decision("NO_TRADE", None, confidence=self.label.confidence)
        strike, delta, mid = picked
        self.notes.append(
            f"strike {strike:g} delta={delta:.1f} (target {target:.1f} in band {band[0]:.0f}-{band[1]:.0f}) "
            f"expiry {expiry} DTE={dte} mid={mid:.2f} IV={self.iv:.3f}"
        )
        prot_mult = self.e._sec("drawdown_protection").numbers("multipliers", 5)[self.protection_level]
        if kind == "call":
            contracts = _core.size_covered_calls(shares, cover, MULTIPLIER)
            sizing_note = f"cover floor({shares:g}/100) x {cover:.0%} = {contracts}"
        else:
            budget_info = self._put_budget(strike, size_share, m_atr, prot_mult)
            contracts, sizing_note = budget_info
        self.notes.append(f"sizing: {sizing_note}")
        held = self._all_positions()
        symbols = sorted({p.symbol for p in held} | {self.symbol})
        base = self.e.book_pnl(held, self.m, self.today, symbols)
        es_before = self.e.es_of(base) if held else 0.0
        one = Position("proposed", self.a.id, self.symbol, kind, -1.0, self.today, strike, expiry, mid, iv=self.iv)
        unit = self.e.book_pnl([one], self.m, self.today, symbols)
        es_after = es_before
        limit_es = self.e._sec("risk").number("es_budget_share") * self.portfolio_equity
        while contracts > 0:
            es_after = self.e.es_of(base + contracts * unit)
            if es_after <= limit_es or kind == "call":
                break
            contracts -= 1
            self.notes.append(f"ES after {es_after:.2f} over budget {limit_es:.2f}: resize to {contracts}")
        if contracts == 0:
            self.notes.append("zero contracts: no trade (never rounded up to one)")
            return self._decision("NO_TRADE", None, confidence=self.label.confidence, es=(es_before, es_before))
        self.notes.append(f"ES(97.5%) before={es_before:.2f} after={es_after:.2f} budget={limit_es:.2f}")
        limit_price = round(mid, 2)
        order = Order(
            kind,
            "sell_to_open",
            strike,
            expiry,
            contracts,
            limit_price,
            delta,
            round(limit_price * MULTIPLIER * contracts, 2),
        )
        action = "OPEN_PUT" if kind == "put" else "OPEN_CALL"
        ctx = self._context("entry", order, dte, es_after, reduces=False)
        return self._decision(action, order, confidence=self.label.confidence, ctx=ctx, es=(es_before, es_after))

    def _committed(self) -> float:
        """Exposure the account has committed: put collateral plus stock at market."""
        held = self.e.positions_of(self.p, self.a.id)
        return sum(p.collateral() + (max(p.exposure(self.spot), 0.0) if p.kind == "stock" else 0.0) for p in held)

    def _allowed_exposure(self) -> float:
        """The drawdown budget: min(1, k x (equity - floor) / equity) of normal exposure (PROTOCOL section 6)."""
        if self.equity <= 0:
            return 0.0
        k = self.e._sec("drawdown_budget").number("multiplier", low=0)
        peak = max(float(self.a.peak), self.equity)
        return _core.allowed_exposure(peak, self.equity, self.spec.max_drawdown, k)

    def _put_budget(self, strike: float, size_share: float, m_atr: float, prot_mult: float) -> tuple[int, str]:
        committed = self._committed()
        free_cash = self._free_cash()
        allowed = self._allowed_exposure()
        deploy_cap = allowed * self.e.config.doc.number("max_deployment") * self.equity - committed
        free_for_budget = max(0.0, min(free_cash, deploy_cap))
        existing = sum(p.exposure(self.spot) for p in self.e.positions_of(self.p, self.a.id, self.symbol))
        # Under a REDUCING/HALTED breaker the order is sized as if ACTIVE and R11 rejects it, so the decision
        # cites the breaker instead of an unexplained zero.
        m_vix = self.vix_mult if self.vix_state == "ACTIVE" else 1.0
        budget, contracts, binding = _core.size_put(
            self.equity,
            free_for_budget,
            strike,
            size_share,
            self.e._sec("risk").number("symbol_cap_share"),
            max(existing, 0.0),
            m_atr,
            prot_mult,
            m_vix,
            MULTIPLIER,
        )
        note = (
            f"budget=min({size_share:.1%} x {self.equity:.2f}, 25% cap - {existing:.2f}, free {free_for_budget:.2f})"
            f" x ATR {m_atr} x drawdown {prot_mult} x VIX {m_vix} = {budget:.2f} ({binding} binds; "
            f"drawdown budget allows {allowed:.0%} of normal exposure); contracts=floor({budget:.2f}/"
            f"({strike:g} x 100))={contracts}"
        )
        return contracts, note

    def _roll(self, opt: Position) -> Decision:
        band = self._band(opt.kind)
        if band is None:
            band_sec = self.e._sec("covered_calls").numbers("recovery_band", 2)
            band = (band_sec[0], band_sec[1])
        assert opt.expiry is not None
        expiry = opt.expiry + dt.timedelta(days=7) if opt.expiry > self.today else this_weeks_friday(self.today)
        dte = (expiry - self.today).days
        picked = self._pick_strike(opt.kind, max(dte, 1) / 365.0, band, (band[0] + band[1]) / 2)
        if picked is None:
            self.notes.append("no strike inside the band for the roll: close instead")
            return self._close(opt, "risk_reduction")
        strike, delta, mid = picked
        contracts = int(-opt.quantity)
        close_cost = opt.mark(self.spot, self.iv, self.today, self.m.rate)
        net = mid - close_cost
        self.notes.append(
            f"roll to {strike:g} expiring {expiry} (DTE {dte}) delta={delta:.1f}: new credit {mid:.2f} - "
            f"close {close_cost:.2f} = net {net:+.2f} per share"
        )
        order = Order(
            opt.kind,
            "roll",
            strike,
            expiry,
            contracts,
            round(mid, 2),
            delta,
            round(net * MULTIPLIER * contracts, 2),
        )
        reduces = strike <= opt.strike if opt.kind == "put" else True
        ctx = self._context("roll", order, dte, None, reduces=reduces)
        return self._decision(
            "ROLL", order, confidence=self._conf("roll"), ctx=ctx, position_id=opt.id, trust_kind="roll"
        )

    def _close(self, opt: Position, trust_kind: str) -> Decision:
        return self._buy_back(opt, int(-opt.quantity), "CLOSE", trust_kind)

    def _buy_back(self, opt: Position, contracts: int, action: str, trust_kind: str) -> Decision:
        """A CLOSE (every contract) or REDUCE (some) of a short option at today's mark."""
        cost = opt.mark(self.spot, self.iv, self.today, self.m.rate)
        order = Order(
            opt.kind,
            "buy_to_close",
            opt.strike,
            opt.expiry,
            contracts,
            round(cost, 2),
            abs(self._delta(opt)) * 100,
            -round(cost * MULTIPLIER * contracts, 2),
        )
        ctx = self._context("close" if action == "CLOSE" else "reduce", order, None, None, reduces=True)
        return self._decision(
            action, order, confidence=self._conf("close"), ctx=ctx, position_id=opt.id, trust_kind=trust_kind
        )

    def _delta(self, opt: Position) -> float:
        t = opt.years_to_expiry(self.today)
        return float(pricing.bs_greeks(opt.kind, self.spot, opt.strike, t, self.iv, self.m.rate)["delta"])

    def _all_positions(self) -> list[Position]:
        return [
            p for p in self.p.positions.values() if not self.p.groups[self.p.accounts[p.account_id].group_id].merged
        ]

    # --- compliance and the decision record ----------------------------------------------------------------
    def _context(
        self, kind: str, order: Order, dte: int | None, es_after: float | None, *, reduces: bool
    ) -> dict[str, Any]:
        rule = self.e.config.entry_rule(self.a.kind, self.label.label)
        band = self._band(order.kind) if order.kind in ("put", "call") else None
        account_positions = self.e.positions_of(self.p, self.a.id)
        symbol_exposure = sum(p.exposure(self.spot) for p in account_positions if p.symbol == self.symbol)
        added = order.strike * MULTIPLIER * order.contracts if (kind == "entry" and order.kind == "put") else 0.0
        sector = self.m.sectors.get(self.symbol, "unknown")
        sector_exposure = sum(
            p.exposure(self.m.bars_for(p.symbol).last_close)
            for p in self._all_positions()
            if self.m.sectors.get(p.symbol, "unknown") == sector
        )
        rt = self.e._runtime_of(self.a.id)
        while rt.orders and (self.as_of - rt.orders[0]).total_seconds() > 60:
            rt.orders.popleft()
        size_cap = (rule.size[1] if rule.size else 0.0) * self.equity
        earnings = None
        if self.m.earnings is not None:
            week_end = this_weeks_friday(self.today - dt.timedelta(days=1))
            earnings = any(self.today <= d <= week_end for d in self.m.earnings.get(self.symbol, []))
        chain_quote = None
        for q in self.m.chains.get(self.symbol, {}).get(order.kind, []):
            if q.strike == order.strike:
                chain_quote = {
                    "open_interest": q.open_interest,
                    "volume": q.volume,
                    "bid": q.bid,
                    "ask": q.ask,
                }
        mid = chain_quote and (chain_quote["bid"] + chain_quote["ask"]) / 2
        # A roll releases the collateral of the position it replaces.
        released = 0.0
        if kind == "roll":
            released = sum(p.collateral() for p in account_positions if p.symbol == self.symbol)
        return {
            "kind": kind,
            "account_id": self.a.id,
            "account_type": self.a.kind,
            "label": self.label.label,
            "symbol": self.symbol,
            "sector": sector,
            "delta": order.delta,
            "band_low": band[0] if band else None,
            "band_high": band[1] if band else None,
            "dte": dte,
            "weekday": self.today.weekday(),
            "entry_days": list(rule.entry_days) if order.kind == "put" else [self.today.weekday()],
            "allowed_symbols": list(self.e.allowed_symbols(self.a.kind)),
            "strike": order.strike,
            "contracts": order.contracts,
            "multiplier": MULTIPLIER,
            "free_cash": self._free_cash() + released,
            "notional": added,
            "size_cap": size_cap,
            "account_equity": self.equity,
            "symbol_exposure_after": symbol_exposure + added,
            "portfolio_equity": self.portfolio_equity,
            "sector_exposure_after": sector_exposure + added,
            "es_after": es_after if es_after is not None else 0.0,
            "account_state": self.a.state,
            "system_state": self.e.system_state,
            "vix_state": self.vix_state,
            "vix": self.m.vix,
            "reduces_exposure": reduces,
            "chain": chain_quote,
            "limit_price": order.limit_price,
            "mid": mid if mid else order.limit_price,
            "orders_last_minute": float(len(rt.orders)),
            "idempotency_seen": False,
            "earnings_in_week": earnings,
            "withdrawal_amount": None,
        }

    def _free_cash(self) -> float:
        """Cash after the buffer and after the collateral of open short puts."""
        held = sum(p.collateral() for p in self.e.positions_of(self.p, self.a.id))
        return max(0.0, float(self.a.balance) - self.spec.buffer * self.equity - held)

    def _decision(
        self,
        action: str,
        order: Order | None,
        *,
        confidence: float,
        ctx: dict[str, Any] | None = None,
        es: tuple[float, float] | None = None,
        position_id: str | None = None,
        trust_kind: str | None = None,
    ) -> Decision:
        compliance = self.e.rules.evaluate(ctx) if ctx is not None else Compliance((), "APPROVED")
        outcome = compliance.outcome
        final_action = action
        if outcome == "REJECTED" and action in ("OPEN_PUT", "OPEN_CALL", "ROLL"):
            final_action = "NO_TRADE" if action != "ROLL" else "CLOSE"
            failed = ", ".join(r.message for r in compliance.failures if r.severity == "CRITICAL")
            self.notes.append(f"rejected by {failed}")
            if final_action == "CLOSE":
                order = None
                final_action = "NO_TRADE"
        elif compliance.failures:
            self.notes.append("warnings: " + "; ".join(r.message for r in compliance.failures))
        kind = trust_kind or TRUST_KIND[final_action]
        requires = outcome == "REQUIRES_APPROVAL" or (
            final_action not in ("HOLD", "NO_TRADE") and self.e.trust.requires_approval(kind, confidence)
        )
        if final_action not in ("HOLD", "NO_TRADE"):
            self.notes.append(
                f"trust[{kind}]={self.e.trust.score(kind):.2f} confidence={confidence:.2f}: "
                + ("human approval required" if requires else "runs without approval")
            )
        es_before, es_after = es if es is not None else (0.0, 0.0)
        if ctx is not None and ctx.get("es_after") is not None and es is None:
            es_after = float(ctx["es_after"])
        return Decision(
            id=next(self.e._ids),
            account_id=self.a.id,
            symbol=self.symbol,
            as_of=self.as_of,
            label=self.label.label,
            label_confidence=self.label.confidence,
            week_type=self.week.code if self.week else None,
            protocol_level=self.level,
            action=final_action,
            order=order if final_action not in ("NO_TRADE", "HOLD") else None,
            es_before=es_before,
            es_after=es_after,
            compliance=compliance.results,
            outcome=outcome,
            requires_approval=requires,
            confidence=confidence,
            trust_kind=kind,
            explanation="; ".join(self.notes),
            account_state=self.a.state,
            idempotency_key=self.key,
            position_id=position_id,
        )
