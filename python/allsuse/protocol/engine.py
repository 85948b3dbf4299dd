"""The decision engine (PROTOCOL section 10): for (account, symbol, as-of) it labels the market, reads the week
type and protocol level of any open position, chooses an action, sizes and prices it, measures ES before and
after by full revaluation, runs every compliance rule, gates approval by trust and explains itself.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from allsuse import _core, indicators, pricing, risk
from allsuse.errors import InvalidInputError
from allsuse.protocol import settings
from allsuse.protocol.accounts import Account, Portfolio, money
from allsuse.protocol.market import Bars, MarketData, OptionQuote, next_weekly_expiry, weekly_expiry
from allsuse.protocol.market_label import MarketLabel, market_label
from allsuse.protocol.positions import MULTIPLIER, Position
from allsuse.protocol.trust import TrustBook
from allsuse.protocol.week_type import WeekType, describe_week
from allsuse.rules import Compliance, RuleBook, RuleResult

ACTIONS = (
    "OPEN_PUT",
    "OPEN_CALL",
    "ROLL",
    "CLOSE",
    "HOLD",
    "ACCEPT_ASSIGNMENT",
    "REDUCE",
    "NO_TRADE",
    "BUY_SHARES",
)
TRUST_KIND = {
    "OPEN_PUT": "entry",
    "OPEN_CALL": "entry",
    "ROLL": "roll",
    "CLOSE": "exit",
    "HOLD": "exit",
    "ACCEPT_ASSIGNMENT": "exit",
    "REDUCE": "risk_reduction",
    "NO_TRADE": "entry",
    "BUY_SHARES": "entry",
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
    # The delta band the order was chosen in; a position opened by it keeps the band for its rolls.
    band: tuple[float, float] | None = None


@dataclass(frozen=True)
class Effects:
    """What a decision changes in the engine's own state once it is executed or approved (PROTOCOL section 10):
    a decision is a proposal, so a rejected or declined one leaves no trace in rate windows, freezes, protection
    cuts or the account's state."""

    account_id: str
    as_of: dt.datetime
    counts_order: bool = False  # enters the account's order-rate window (R15)
    freeze_until: dt.date | None = None  # level 2: new entries frozen until this date
    cut_key: str | None = None  # a protection or budget cut done once per level (or day)
    cut_level: int = 0
    reducing: bool = False  # level 3 / deep drawdown: the account goes REDUCING until an operator resets it

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form, kept with a pending decision until it is approved."""
        return {
            "account_id": self.account_id,
            "as_of": self.as_of.isoformat(),
            "counts_order": self.counts_order,
            "freeze_until": self.freeze_until.isoformat() if self.freeze_until else None,
            "cut_key": self.cut_key,
            "cut_level": self.cut_level,
            "reducing": self.reducing,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Effects:
        """The inverse of to_json."""
        freeze = data.get("freeze_until")
        return cls(
            str(data["account_id"]),
            dt.datetime.fromisoformat(str(data["as_of"])),
            bool(data.get("counts_order", False)),
            dt.date.fromisoformat(freeze) if freeze else None,
            data.get("cut_key"),
            int(data.get("cut_level", 0)),
            bool(data.get("reducing", False)),
        )


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
    # The orders to send: `order` sliced into children of at most max_contracts_per_order, plus any further leg
    # (a level-3 close also sells the shares of an assigned position). Empty without an order.
    orders: tuple[Order, ...] = ()
    # Plain warnings for a person (an account that cannot afford one contract, ...).
    warnings: tuple[str, ...] = ()
    # "vix" when a VIX value was given, "proxy" when the index's realised volatility stood in, "none" otherwise.
    vol_source: str = "vix"
    # Where the symbol's IV came from: "chain", "given", "vix", "proxy" or "hist_vol".
    iv_source: str = "given"
    effects: Effects | None = None

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
        max_symbol_weights: dict[str, float] | None = None,
    ) -> None:
        self.config = config or settings.default()
        self._symbols = dict(symbols or {})
        self._max_weights = dict(max_symbol_weights or {})
        self.strike_grid = settings.strike_grid(self.config.doc)
        self._strikes = _core.StrikePicker(
            below=[b for b, _ in self.strike_grid], step=[s for _, s in self.strike_grid]
        )
        # The thresholds every decision reads, compiled by the core once per configuration.
        self.tables = self.config.tables
        for kind, weight in self._max_weights.items():
            if not (math.isfinite(weight) and 0 < weight <= 0.95):
                raise InvalidInputError.of(f"max_symbol_weights.{kind}", f"must be in (0, 0.95], got {weight}")
        self.rules = rules or RuleBook.load()
        self.trust = trust or TrustBook()
        self._ids = itertools.count(1)
        self._runtime: dict[str, _AccountRuntime] = {}
        self._seen: dict[str, Decision] = {}
        self._labels: dict[tuple[Any, ...], MarketLabel] = {}
        self._label_text: dict[int, tuple[MarketLabel, str]] = {}
        self._scenario_cache: dict[tuple[Any, ...], np.ndarray] = {}
        self._scenario_sets: dict[tuple[Any, ...], _core.ScenarioSet] = {}
        self.system_state = "ACTIVE"
        # Everything the core's decision flow reads from the configuration, compiled once per engine.
        self.decider = self._compile_decider()

    def _compile_decider(self) -> _core.Decider:
        """The core's `Decider`: account specs with their entry rules, the thresholds, strike grid, sizing and risk
        settings, compiled and validated once (a new Engine is built on a configuration reload)."""

        def entry(kind: str, label: str) -> _core.EntryRule:
            rule = self.config.entry_rule(kind, label)
            band = rule.band
            return _core.EntryRule(
                entry_days=list(rule.entry_days),
                band_low=band[0] if band else None,
                band_high=band[1] if band else None,
                m_label=rule.m_label,
            )

        def account(kind: str) -> _core.AccountRules:
            spec = self.config.account(kind)
            return _core.AccountRules(
                kind=kind,
                name=spec.name,
                buffer=spec.buffer,
                max_drawdown=spec.max_drawdown,
                target_share=spec.target_share,
                max_symbol_weight=self.max_symbol_weight(kind),
                allowed_symbols=list(self.allowed_symbols(kind)),
                green=entry(kind, "green"),
                red=entry(kind, "red"),
                chop=entry(kind, "chop"),
            )

        def band(name: str) -> _core.Band:
            low, high = self._sec("covered_calls").numbers(name, 2)
            return _core.Band(low=low, high=high)

        levels = self._sec("protocol_levels")
        take = levels.section("take_profit")
        conf = self._sec("decision_confidence")
        protection = self._sec("drawdown_protection")
        return _core.Decider(
            tables=self.tables,
            strikes=self._strikes,
            gen=account("gen"),
            rev=account("rev"),
            com=account("com"),
            atr_period=int(self._sec("atr_regime").number("period", low=1)),
            atr_fallback_pct=self.config.doc.number("atr_regime_fallback_pct"),
            protection_multipliers=list(self._sec("drawdown_protection").numbers("multipliers", 5)),
            drawdown_budget_k=self._sec("drawdown_budget").number("multiplier", low=0),
            es_budget_share=self._sec("risk").number("es_budget_share"),
            es_level=self._es_level(),
            entry_max_dte=int(self._sec("expiry").number("entry_max_dte", low=1)),
            max_contracts_per_order=int(self._sec("sizing").number("max_contracts_per_order", low=1)),
            call_band=band("band"),
            call_recovery_band=band("recovery_band"),
            call_roll_down_band=band("roll_down_band"),
            covered_call_cap_share=self._sec("sizing").number("covered_call_cap_share", low=0, high=1),
            roll_max_debit_share=self._sec("week_types").number("roll_max_debit_share", low=0),
            level_atr_period=int(levels.number("atr_period", low=1)),
            level_atr_fallback_share=levels.number("atr_fallback_share"),
            rev_roll_excursion=levels.number("rev_roll_excursion"),
            take_profit=_core.TakeProfit(
                gen=take.number("gen", low=0, high=1),
                rev=take.number("rev", low=0, high=1),
                com=take.number("com", low=0, high=1),
            ),
            confidence=_core.Confidences(
                hold_normal=conf.number("hold_normal", low=0, high=1),
                hold_enhanced=conf.number("hold_enhanced", low=0, high=1),
                close=conf.number("close", low=0, high=1),
                roll=conf.number("roll", low=0, high=1),
            ),
            protection_cuts=list(protection.numbers("cuts", 5)),
            light_vol_above=protection.section("light_vol_cut").number("annual_vol_above"),
            light_cut=protection.section("light_vol_cut").number("cut", low=0, high=1),
            emergency_close_count=int(protection.number("emergency_close_count", low=0)),
            cash_settled=list(self.config.doc.strings("cash_settled")),
        )

    # --- helpers over configuration -------------------------------------------------------------------
    def allowed_symbols(self, account_kind: str) -> tuple[str, ...]:
        """Symbols an account type may trade: the override given to the engine, else config."""
        return self._symbols.get(account_kind, self.config.account(account_kind).symbols)

    def max_symbol_weight(self, account_kind: str) -> float:
        """R07's concentration limit for an account type: the engine's override (a single-underlying backtest
        gives each account its deployment target), else the account's config, else risk.symbol_cap_share."""
        if account_kind in self._max_weights:
            return self._max_weights[account_kind]
        own = self.config.account(account_kind).max_symbol_weight
        return own if own is not None else self._sec("risk").number("symbol_cap_share", low=0, high=0.95)

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
        return self.equities(portfolio, [account], market, today, portfolio_too=False)[0][0]

    def portfolio_equity(self, portfolio: Portfolio, market: MarketData, today: dt.date) -> float:
        """Cash, LEAPS and positions at market of every account not merged away, in one pass over positions."""
        return self.equities(portfolio, [], market, today)[1]

    def equities(
        self,
        portfolio: Portfolio,
        accounts: list[Account],
        market: MarketData,
        today: dt.date,
        *,
        portfolio_too: bool = True,
    ) -> tuple[list[float], float]:
        """The equity at market of each of `accounts` (cash plus its positions) and, with `portfolio_too`, of the
        portfolio (cash, LEAPS and positions of every account not merged away; else 0.0), each position marked
        once by the core and added in book order. A symbol's bars and IV are read once, the accounts' symbols
        first, so a missing one is named as when each account was valued on its own."""
        groups, books = portfolio.groups, portfolio.accounts
        slot = {a.id: i for i, a in enumerate(accounts)}
        quotes: dict[str, tuple[float, float]] = {}
        for p in portfolio.positions.values():
            if p.account_id in slot and p.symbol not in quotes:
                quotes[p.symbol] = (market.bars_for(p.symbol).last_close, market.iv_for(p.symbol))
        merged = {gid for gid, group in groups.items() if group.merged}
        cash = 0.0
        if portfolio_too:
            for account in books.values():
                if account.group_id not in merged:
                    cash += float(account.balance + account.leaps)
        owner: list[int | None] = []
        counted: list[bool] = []
        kind: list[str] = []
        quantity: list[float] = []
        strike: list[float] = []
        days: list[int | None] = []
        spot: list[float] = []
        iv: list[float] = []
        day = today.toordinal()
        for p in portfolio.positions.values():
            index = slot.get(p.account_id)
            counts = portfolio_too and books[p.account_id].group_id not in merged
            if index is None and not counts:
                continue
            quote = quotes.get(p.symbol)
            if quote is None:
                quote = quotes[p.symbol] = (market.bars_for(p.symbol).last_close, market.iv_for(p.symbol))
            owner.append(index)
            counted.append(counts)
            kind.append(p.kind)
            quantity.append(p.quantity)
            strike.append(p.strike)
            days.append(p.expiry.toordinal() - day if p.expiry is not None else None)
            spot.append(quote[0])
            iv.append(quote[1])
        result = _core.equity_at_market(
            [float(a.balance) for a in accounts],
            cash,
            account=owner,
            counted=counted,
            kind=kind,
            quantity=quantity,
            strike=strike,
            days_to_expiry=days,
            spot=spot,
            iv=iv,
            rate=market.rate,
        )
        return result.accounts, result.portfolio

    def vix_reading(self, market: MarketData, symbol: str) -> tuple[float | None, str, str]:
        """(VIX value, source, note): the given VIX, else the proxy of section 6, the index's realised volatility
        over `vix_proxy_window` days x 100 x `vix_proxy_ratio` (the first cash-settled index in the market, else
        `symbol` itself); (None, "none", why) when neither can be had."""
        if market.vix is not None:
            return float(market.vix), "vix", f"VIX={float(market.vix):.2f}"
        doc = self.config.doc
        window = int(doc.number("vix_proxy_window", low=2))
        ratio = doc.number("vix_proxy_ratio", low=0)
        indices = [s for s in doc.strings("cash_settled") if s in market.bars]
        source = indices[0] if indices else symbol
        close = market.bars_for(source).close
        if close.size <= window:
            return None, "none", f"no VIX and too few bars of {source} for the proxy"
        hv = float(indicators.hist_vol(close[-(window + 1) :], window)[-1])  # the last window only
        if not math.isfinite(hv):
            return None, "none", f"no VIX and no finite realised volatility of {source}"
        value = hv * 100.0 * ratio
        return value, "proxy", f"VIX proxy={value:.2f} ({window}-day realised vol of {source} {hv:.1%} x {ratio:g})"

    def _vix(self, value: float | None) -> tuple[float, bool, str]:
        if value is None:
            return 1.0, False, "ACTIVE"
        r = self.tables.vix_breaker(float(value))
        return r.multiplier, r.hedged, r.state

    def _protection(self, account: Account, equity: float, day: dt.date) -> tuple[int, float]:
        rt = self._runtime_of(account.id)
        peak = max(float(account.peak), equity)
        drawdown = max(0.0, (peak - equity) / peak) if peak > 0 else 0.0
        level, trough, last_day, adjustments = rt.protection
        step = self.tables.step_protection(level, trough, last_day, adjustments, drawdown, day.toordinal())
        rt.protection = (step.level, step.trough, step.day, step.adjustments_today)
        return step.level, drawdown

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
        returns = self.historical_returns(symbols, market)
        scen = self._sec("scenarios")
        method = str(scen.raw("method"))
        if method == "historical":
            return returns
        if method != "monte_carlo":
            raise InvalidInputError.of("scenarios.method", f"must be historical or monte_carlo, got {method!r}")
        mc = scen.section("monte_carlo")
        paths = int(mc.number("paths", low=1, high=1_000_000))
        rng = np.random.default_rng(int(mc.number("seed", low=0)))
        # Joint normal draws with the window's mean and covariance: the same dependence, smooth tails.
        mean = returns.mean(axis=0)
        cov = np.atleast_2d(np.cov(returns, rowvar=False)) if returns.shape[0] > 1 else np.zeros((len(symbols),) * 2)
        draws = rng.multivariate_normal(mean, cov, size=paths, method="eigh")
        return np.maximum(draws, -0.99).astype(np.float64)

    def historical_returns(self, symbols: list[str], market: MarketData) -> np.ndarray:
        """The last `scenario_days` daily joint simple returns of `symbols`, aligned on their common last dates."""
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

    def tail_group(self, symbol: str, others: list[str], market: MarketData) -> list[str]:
        """`symbol` and every symbol linked to it by a chain of pairs whose lower-tail coefficient (q = tail_q,
        over the scenario window) exceeds tail_dependence_limit: one risk for concentration (sections 6, 7)."""
        candidates = sorted({s for s in others if s != symbol and s in market.bars})
        if not candidates:
            return [symbol]
        r = self._sec("risk")
        q = r.number("tail_q", low=0.0001, high=0.5)
        limit = r.number("tail_dependence_limit", low=0, high=1)
        names = [symbol, *candidates]
        returns = self.historical_returns(names, market)
        # The connected pairs are followed in the core (pairwise lower-tail coefficients, both directions).
        members = _core.tail_group(np.ascontiguousarray(returns), q=q, limit=limit)
        return sorted(names[i] for i in members)

    def book_pnl(self, positions: list[Position], market: MarketData, today: dt.date, symbols: list[str]) -> np.ndarray:
        """P&L of `positions` in each historical scenario of `symbols` (the last N joint daily returns), by full
        revaluation over a 1-day horizon with IV moving against the price. P&L is additive across positions, so
        the engine values the book once and a proposed order once, then sizes without revaluing again."""
        scenarios = self._scenario_set(symbols, market)
        if not positions:
            return np.zeros(scenarios.rows)
        # Revalued in the core over the day's scenarios and their IV shifts (built once per market); the engine
        # built every input itself (positions validated on entry, scenarios from checked bars).
        index = {s: i for i, s in enumerate(symbols)}
        kind: list[str] = []
        underlying: list[int] = []
        quantity: list[float] = []
        strike: list[float] = []
        t: list[float] = []
        for p in positions:  # the columns in one pass
            option = p.is_option
            kind.append(p.kind)
            underlying.append(index[p.symbol])
            quantity.append(p.quantity)
            strike.append(p.strike if option else 1.0)
            t.append(p.years_to_expiry(today) if option else 1.0)
        return scenarios.book_pnl(kind=kind, underlying=underlying, quantity=quantity, strike=strike, t=t)

    def _scenario_set(self, symbols: list[str], market: MarketData) -> _core.ScenarioSet:
        """The scenarios of `symbols` with their IV shifts (IV moves against the price, in proportion to the move,
        never below 10% of today's IV), kept per market like the returns they come from."""
        iv = [market.iv_for(s) for s in symbols]
        spot: list[float] = []
        marks: list[tuple[str, int, float]] = []
        for s in symbols:  # each symbol's bars looked up once
            b = market.bars_for(s)
            close = b.last_close
            spot.append(close)
            marks.append((s, len(b.dates), close))
        key = (*marks, *iv, market.rate)
        cached = self._scenario_sets.get(key)
        if cached is None:
            scen = self._sec("scenarios")
            cached = _core.ScenarioSet(
                np.ascontiguousarray(self._scenarios(symbols, market)),
                spot=spot,
                iv=iv,
                iv_move_sensitivity=scen.number("iv_move_sensitivity"),
                horizon=scen.number("horizon_days", low=0) / 365.0,
                rate=market.rate,
            )
            if len(self._scenario_sets) > 64:
                self._scenario_sets.clear()
            self._scenario_sets[key] = cached
        return cached

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
            iv_source=market.iv_source,
        )
        label = self._label(symbol, bars, view.iv_for(symbol))
        decision = _Deciding(self, portfolio, account, symbol, as_of, view, bars, label, idempotency_key).run(
            roll_available
        )
        if idempotency_key is not None:
            self._seen[idempotency_key] = decision
        return decision

    def commit(self, decision: Decision, portfolio: Portfolio) -> None:
        """Applies what a decision changes once it is executed (a fill) or approved: its order enters the rate
        window, a level-2 freeze starts, a protection cut is marked done, a stop-loss puts the account in
        REDUCING. A decision never committed (rejected, declined, or left pending) changes nothing."""
        if decision.effects is not None and decision.outcome != "REJECTED":
            self.apply_effects(decision.effects, portfolio)

    def apply_effects(self, effects: Effects, portfolio: Portfolio) -> None:
        """Applies stored effects (a pending decision approved later)."""
        rt = self._runtime_of(effects.account_id)
        if effects.counts_order:
            rt.orders.append(effects.as_of)
        if effects.freeze_until is not None and (rt.frozen_until is None or rt.frozen_until < effects.freeze_until):
            rt.frozen_until = effects.freeze_until
        if effects.cut_key is not None:
            rt.cut_at[effects.cut_key] = effects.cut_level
        if effects.reducing:
            account = portfolio.accounts.get(effects.account_id)
            if account is not None and account.state == "ACTIVE":
                account.state = "REDUCING"

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

    def reset_account(self, portfolio: Portfolio, account_id: str, *, new_peak: float | None = None) -> None:
        """An operator's reset of a REDUCING account back to ACTIVE. With `new_peak` (the account's equity now) the
        operator also starts a new drawdown episode: the high-water mark is rebased, so an account flat in cash at
        its cap (the drawdown budget's floor, where it may deploy nothing) can trade again."""
        account = portfolio.account(account_id)
        account.state = "ACTIVE"
        rt = self._runtime_of(account_id)
        rt.frozen_until = None
        if new_peak is not None:
            account.peak = money(new_peak)
            rt.protection = (0, 0.0, rt.protection[2], rt.protection[3])


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
        self.iv_source = "chain" if market.chains.get(symbol) else market.iv_source.get(symbol, "given")
        self.notes: list[str] = [engine._explained(label)]
        self.warnings: list[str] = []
        # The account's and the portfolio's equity at market, each position marked once.
        (self.equity,), self.portfolio_equity = engine.equities(portfolio, [account], market, self.today)
        if self.equity > float(account.peak):
            # The equity high-water mark is a fact of prices (section 10): kept at once.
            account.peak = money(self.equity)
        self.protection_level, self.drawdown = engine._protection(account, self.equity, self.today)
        self.vix_value, self.vol_source, vix_note = engine.vix_reading(market, symbol)
        self.vix_mult, self.vix_hedged, self.vix_state = engine._vix(self.vix_value)
        if self.vol_source != "vix":
            self.notes.append(vix_note)
        if self.iv_source not in ("given", "chain"):
            self.notes.append(f"IV {self.iv:.3f} of {symbol} from {self.iv_source}")
        # Facts that follow from equity and prices are kept at once (section 10): REDUCING at the account's cap.
        if _at_least(self.drawdown, self.spec.max_drawdown) and account.state == "ACTIVE":
            account.state = "REDUCING"
            self.notes.append(
                f"drawdown={self.drawdown:.2%} reached the {self.spec.name} cap {self.spec.max_drawdown:.0%}: REDUCING"
            )
        self.week: WeekType | None = None
        self.level = 0
        # What the decision changes once executed or approved (Effects).
        self._freeze: dt.date | None = None
        self._cut: tuple[str, int] | None = None
        self._reducing = False
        self._size_cap: float | None = None

    # --- the flow ----------------------------------------------------------------------------------------
    def run(self, roll_available: bool | None) -> Decision:
        """The decision, decided whole by the core: the typed input, one call, the typed result as a `Decision`."""
        return self._decide_in_core(roll_available)

    def _decide_in_core(self, roll_available: bool | None) -> Decision:
        e, m, today, a = self.e, self.m, self.today, self.a
        held = self._all_positions()
        symbols = sorted({p.symbol for p in held} | {self.symbol})
        own = e.positions_of(self.p, a.id)
        # The scenarios and the tail group are measured here; when the market cannot give them, the core is told
        # so and a decision that needs them fails with the very error measuring them raised.
        scenarios: _core.ScenarioSet | None = None
        missing: list[InvalidInputError] = []
        try:
            scenarios = e._scenario_set(symbols, m)
        except InvalidInputError as exc:
            missing.append(exc)
        group: list[str] | None = None
        try:
            group = e.tail_group(self.symbol, [p.symbol for p in own], m)
        except InvalidInputError as exc:
            missing.append(exc)
        column = {s: i for i, s in enumerate(symbols)}
        counted = {id(p) for p in held}
        book: list[_core.HeldPosition] = []
        quotes: dict[str, tuple[float, float]] = {}
        for p in self.p.positions.values():
            in_book = id(p) in counted
            mine = p.account_id == a.id
            if not in_book and not mine:
                continue
            quote = quotes.get(p.symbol)
            if quote is None:
                iv = m.iv_for(p.symbol) if mine else 0.0
                quote = quotes[p.symbol] = (m.bars_for(p.symbol).last_close, iv)
            band = p.band
            roll_expiry = None
            if mine and p.symbol == self.symbol and p.is_option and p.expiry is not None:
                roll_expiry = next_weekly_expiry(p.expiry).toordinal()
                if band is None and p.kind == "put":
                    band = self._position_band(p)
            book.append(
                _core.HeldPosition(
                    id=p.id,
                    account_id=p.account_id,
                    symbol=p.symbol,
                    kind=p.kind,
                    quantity=p.quantity,
                    strike=p.strike,
                    expiry=p.expiry.toordinal() if p.expiry is not None else None,
                    roll_expiry=roll_expiry,
                    premium=p.premium,
                    cost_basis=p.cost_basis,
                    band_low=band[0] if band else None,
                    band_high=band[1] if band else None,
                    sector=m.sectors.get(p.symbol, "unknown"),
                    last_close=quote[0],
                    iv=quote[1],
                    column=column.get(p.symbol, 0),
                    in_book=in_book,
                )
            )
        rt = e._runtime_of(a.id)
        stale = 0
        for t in rt.orders:  # what a rule context prunes from the rate window, counted without pruning
            if (self.as_of - t).total_seconds() <= 60:
                break
            stale += 1
        earnings = None
        if m.earnings is not None:
            week_end = weekly_expiry(today - dt.timedelta(days=1))
            earnings = any(today <= d <= week_end for d in m.earnings.get(self.symbol, []))
        trust = e.trust
        gate = _core.TrustGate(
            entry=trust.score("entry"),
            exit=trust.score("exit"),
            roll=trust.score("roll"),
            risk_reduction=trust.score("risk_reduction"),
            emergency=trust.score("emergency"),
            auto_threshold=trust.auto_threshold,
            confidence_threshold=trust.confidence_threshold,
        )
        frozen = rt.frozen_until
        chain = m.chains.get(self.symbol, {})
        inp = _core.DecisionInput(
            account_id=a.id,
            account_kind=a.kind,
            account_state=a.state,
            balance=float(a.balance),
            reinvest_cash=float(a.reinvest_cash),
            peak=float(a.peak),
            equity=self.equity,
            portfolio_equity=self.portfolio_equity,
            symbol=self.symbol,
            sector=m.sectors.get(self.symbol, "unknown"),
            label=self.label.label,
            label_confidence=self.label.confidence,
            notes=self.notes,
            today=today.toordinal(),
            weekday=today.weekday(),
            entry_expiry=weekly_expiry(today).toordinal(),
            frozen_until=frozen.toordinal() if frozen is not None else None,
            spot=self.spot,
            iv=self.iv,
            rate=m.rate,
            days=self.bars.days,
            high=self.bars.high,
            low=self.bars.low,
            close=self.bars.close,
            protection_level=self.protection_level,
            drawdown=self.drawdown,
            vix=self.vix_value,
            vix_multiplier=self.vix_mult,
            vix_state=self.vix_state,
            system_state=e.system_state,
            orders_last_minute=len(rt.orders) - stale,
            earnings_in_week=earnings,
            group_symbols=group,
            book=book,
            column=column[self.symbol],
            trust=gate,
            cuts_done=[_core.CutDone(key=k, level=v) for k, v in rt.cut_at.items()],
            roll_available=roll_available,
            chain_puts=[_quote(q) for q in chain.get("put", ())],
            chain_calls=[_quote(q) for q in chain.get("call", ())],
        )
        try:
            core = e.decider.decide(inp, scenarios, e.rules.compiled)
        except InvalidInputError as exc:
            if missing and exc.field in ("scenarios", "group_symbols"):
                raise missing[0] from None
            raise
        if core.rules_checked:
            for _ in range(stale):
                rt.orders.popleft()
        decision_id = 0
        for _ in range(core.records):  # a rejected roll's record took an id before its close
            decision_id = next(e._ids)
        cut = core.cut
        effects = Effects(
            a.id,
            self.as_of,
            counts_order=core.counts_order,
            freeze_until=dt.date.fromordinal(core.freeze_until) if core.freeze_until is not None else None,
            cut_key=cut.key if cut is not None else None,
            cut_level=cut.level if cut is not None else 0,
            reducing=core.reducing,
        )
        return Decision(
            id=decision_id,
            account_id=a.id,
            symbol=self.symbol,
            as_of=self.as_of,
            label=self.label.label,
            label_confidence=self.label.confidence,
            week_type=core.week_type,
            protocol_level=core.protocol_level,
            action=core.action,
            order=_order_of(core.order) if core.order is not None else None,
            es_before=core.es_before,
            es_after=core.es_after,
            compliance=tuple(RuleResult(r.code, r.severity, r.passed, r.message) for r in core.compliance),
            outcome=core.outcome,
            requires_approval=core.requires_approval,
            confidence=core.confidence,
            trust_kind=core.trust_kind,
            explanation="; ".join(core.notes),
            account_state=core.account_state,
            idempotency_key=self.key,
            position_id=core.position_id,
            orders=tuple(_order_of(o) for o in core.orders),
            warnings=tuple(core.warnings),
            vol_source=self.vol_source,
            iv_source=self.iv_source,
            effects=effects,
        )

    def _run_python(self, roll_available: bool | None) -> Decision:
        positions = self.e.positions_of(self.p, self.a.id, self.symbol)
        options = [p for p in positions if p.is_option and p.quantity < 0]
        shares = _one_holding([p for p in positions if p.kind == "stock" and p.quantity > 0])
        # Each open option is managed in turn (a Com-Acc may hold a reinvestment put beside its covered call): the
        # first that calls for an action wins; when all hold, shares without a call still get one.
        holding: Decision | None = None
        for opt in options:
            decision = self._manage_option(opt, shares if opt.kind == "call" else None, roll_available)
            if decision.action != "HOLD":
                return decision
            holding = holding or decision
        covered = any(o.kind == "call" for o in options)
        if holding is not None and (shares is None or covered):
            return holding
        if shares is not None:
            return self._manage_stock(shares, has_put=any(o.kind == "put" for o in options))
        if self.a.kind == "com":
            return self._buy_round_lots()
        return self._entry()

    # --- drawdown protection on existing positions (PROTOCOL section 6) ------------------------------------
    def _drawdown_cut(self, opt: Position) -> Decision | None:
        """REDUCE when the account's drawdown protection asks to cut this symbol's short option: light cuts
        positions on symbols with annualised vol above 35% by 20%, moderate all by 40%, aggressive by 60%,
        emergency closes the 3 riskiest positions (vol x market value). Each level cuts a position once."""
        level = self.protection_level
        rt = self.e._runtime_of(self.a.id)
        if level == 0 or rt.cut_at.get(opt.id, 0) >= level:
            return None
        d = self.e._sec("drawdown_protection")
        names = ("none", "light", "moderate", "aggressive", "emergency")
        share = d.numbers("cuts", 5)[level]
        why = f"drawdown {self.drawdown:.2%}: protection {names[level]}"
        if level == 1:
            light = self._light_cut()
            if light is None:
                return None
            share, vol_note = light
            why += vol_note
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
        self._cut = (opt.id, level)
        self.notes.append(f"{why}: cut {share:.0%} of {int(-opt.quantity)} contracts = {contracts}")
        return self._buy_back(opt, contracts, "REDUCE", "emergency" if level == 4 else "risk_reduction")

    def _light_cut(self) -> tuple[float, str] | None:
        """Light protection cuts only symbols whose 20-day annualised vol is above 35%: (share, why) or None."""
        light = self.e._sec("drawdown_protection").section("light_vol_cut")
        hv = float(indicators.hist_vol(self.bars.close[-21:], 20)[-1]) if len(self.bars.dates) > 21 else math.nan
        above = light.number("annual_vol_above")
        if not (math.isfinite(hv) and hv > above):
            return None
        return light.number("cut", low=0, high=1), f", {self.symbol} annualised vol {hv:.0%} > {above:.0%}"

    def _budget_cut(self, opt: Position) -> Decision | None:
        """The drawdown budget: when committed exposure exceeds the allowed share of the deployment target
        (min(1, 2 x cushion), section 6), propose reducing this position by the excess share, once a day."""
        key = f"budget:{opt.id}:{self.today.isoformat()}"
        excess = self._budget_excess(key)
        if excess is None:
            return None
        share, why = excess
        contracts = min(int(-opt.quantity), math.ceil(-opt.quantity * share - 1e-9))
        if contracts <= 0:
            return None
        self._cut = (key, 1)
        self.notes.append(f"{why}: reduce {share:.0%} = {contracts} contracts")
        return self._buy_back(opt, contracts, "REDUCE", "risk_reduction")

    def _budget_excess(self, key: str) -> tuple[float, str] | None:
        """The drawdown budget's excess (section 6) as the share of committed exposure to shed, with the reason;
        None when within it or already cut today (`key`). It de-levers in a drawdown only (allowed < 1): at the
        peak a holding that drifted over the target with prices is not churned (new exposure stops there)."""
        if self.equity <= 0:
            return None
        committed = self._committed()
        allowed = self._allowed_exposure()
        cap = allowed * self.spec.target_share * self.equity
        if allowed >= 1 or committed <= 0 or _at_most(committed, cap) or key in self.e._runtime_of(self.a.id).cut_at:
            return None
        why = (
            f"drawdown budget: exposure {committed:.2f} over the allowed {cap:.2f} ({allowed:.0%} of the "
            f"{self.spec.target_share:.0%} target)"
        )
        return (committed - cap) / committed, why

    # --- open short option ---------------------------------------------------------------------------------
    def _level(self, reference: float, loss: float) -> tuple[float, float, float | None]:
        """Reads the protocol level of a position (section 5); returns (excursion, loss share, ATR(5))."""
        lv = self.e._sec("protocol_levels")
        atr5 = self.e._atr(self.bars, int(lv.number("atr_period", low=1)))
        reading = self.e.tables.protocol_level(reference, self.spot, atr5, loss, max(self.equity, 1e-9))
        self.level, x, loss_share = reading.level, reading.excursion, reading.loss_share
        atr_text = f"{atr5:.2f}" if atr5 is not None else f"fallback {lv.number('atr_fallback_share'):.0%} of spot"
        self.notes.append(
            f"level={self.level} excursion={x:.2f} ATR(5)={atr_text} loss={loss:.2f} ({loss_share:.2%} of equity)"
        )
        return x, loss_share, atr5

    def _manage_option(self, opt: Position, stock: Position | None, roll_available: bool | None) -> Decision:
        """Section 5's order of actions, the first that applies wins: level 3 close, (expiry), drawdown-protection
        cut, drawdown-budget reduce, level 2 roll or close, level 1, take-profit."""
        lv = self.e._sec("protocol_levels")
        reference = opt.strike if opt.kind == "put" else (stock.cost_basis if stock else opt.strike)
        loss = opt.unrealised_loss(self.spot, self.iv, self.today, self.m.rate)
        if stock is not None:
            loss += stock.unrealised_loss(self.spot, self.iv, self.today)
        x, _, _ = self._level(reference, loss)
        if self.level >= 3:
            return self._stop_loss(opt, stock, "level 3 (preservation): close at a stop-loss")
        position_kind = "SHORT_PUT" if opt.kind == "put" else "SHORT_CALL"
        if opt.expiry is not None and self.today >= opt.expiry:
            can_roll = self._roll_available(opt) if roll_available is None else roll_available
            move = self._week_move()
            self.week = describe_week(position_kind, move, can_roll, self.e.config)
            self.notes.append(
                f"week_type={self.week.code} ({self.week.name}) move={move:.2f}% roll_available={can_roll}"
            )
            return self._at_expiry(opt, stock)
        # Cuts lower exposure: they buy back short puts (collateral); a covered call is left to expire, and the
        # shares under it are cut once they stand alone (_manage_stock).
        cut = (self._drawdown_cut(opt) or self._budget_cut(opt)) if opt.kind == "put" else None
        if cut is not None:
            return cut
        if self.level == 2:
            self._freeze = opt.expiry
            self.notes.append("level 2 (recovery): new entries frozen on this account")
            can_roll = self._roll_available(opt) if roll_available is None else roll_available
            if can_roll:
                return self._roll(opt)
            self.notes.append("no roll inside the band for a credit or an acceptable debit: close")
            return self._close(opt, "risk_reduction")
        if self.level == 1:
            rolls_now = self.a.kind == "gen" or (self.a.kind == "rev" and _at_least(x, lv.number("rev_roll_excursion")))
            can_roll = rolls_now and (self._roll_available(opt) if roll_available is None else roll_available)
            if rolls_now and can_roll:
                return self._roll(opt)
            self.notes.append("level 1 (enhanced): roll prepared, holding")
            return self._decision("HOLD", None, confidence=self._conf("hold_enhanced"))
        decayed = 1.0 - opt.mark(self.spot, self.iv, self.today, self.m.rate) / max(opt.premium, 1e-12)
        take = lv.section("take_profit").number(self.a.kind, low=0, high=1)
        if _at_least(decayed, take):
            self.notes.append(f"premium decayed {decayed:.0%} >= take-profit {take:.0%}: close")
            return self._close(opt, "exit")
        self.notes.append(f"level 0 (normal): premium decayed {decayed:.0%} < {take:.0%}: hold")
        return self._decision("HOLD", None, confidence=self._conf("hold_normal"))

    def _stop_loss(self, opt: Position, stock: Position | None, why: str) -> Decision:
        """Level 3 (or a P-DD week): close the short option and the shares of an assigned position; the account
        goes REDUCING once this is executed."""
        self._reducing = True
        shares = f" and sell the {stock.quantity:g} assigned shares" if stock else ""
        self.notes.append(f"{why}{shares}; account goes REDUCING until reset")
        return self._close(opt, "emergency", stock=stock)

    def _manage_stock(self, stock: Position, *, has_put: bool = False) -> Decision:
        """Shares without a call: level 3 sells them (stop-loss), a cut or Com-Acc's top-up or reinvestment put may
        come first, else covered calls are written on them."""
        self._level(stock.cost_basis, stock.unrealised_loss(self.spot, self.iv, self.today))
        if self.level >= 3:
            self._reducing = True
            self.notes.append(
                f"level 3 (preservation): sell the {stock.quantity:g} shares at a stop-loss; account goes "
                "REDUCING until reset"
            )
            return self._sell_shares(stock, "emergency")
        cut = self._share_cut(stock)
        if cut is not None:
            return cut
        rule = self.e.config.entry_rule(self.a.kind, self.label.label)
        if self.a.kind == "com" and self.a.state == "ACTIVE" and self.today.weekday() in rule.entry_days:
            # Reinvestment cash goes into contracts (a put) before any top-up of shares with plain cash.
            if not has_put and self.a.reinvest_cash > 0:
                put = self._reinvestment_put()
                if put is not None:
                    return put
            lots, _ = self._round_lots_to_buy(stock)
            if lots > 0:
                return self._buy_round_lots(stock)
        return self._covered_call(stock)

    def _reinvestment_put(self) -> Decision | None:
        """Com-Acc sells cash-secured puts only to deploy its quarterly reinvestment cash (section 1): sized like any
        put, with the reinvestment cash as the free cash; None when it buys no contract."""
        rule = self.e.config.entry_rule(self.a.kind, self.label.label)
        if rule.band is None:
            return None
        cash = min(float(self.a.reinvest_cash), self._free_cash())
        if cash < self.spot * MULTIPLIER * 0.5:
            return None
        self.notes.append(f"reinvestment cash {float(self.a.reinvest_cash):.2f} (free {cash:.2f}) for puts")
        decision = self._open("put", rule.band, rule.m_label, cash_limit=cash)
        return decision if decision.action == "OPEN_PUT" else None

    def _share_cut(self, stock: Position) -> Decision | None:
        """Shares standing alone under drawdown protection or over the drawdown budget (section 6): sell round
        lots. Protection cuts its share of the holding once per level (light only above 35% annualised vol); the
        budget sells the excess over min(1, 2 x cushion) of the deployment target, once a day."""
        rt = self.e._runtime_of(self.a.id)
        d = self.e._sec("drawdown_protection")
        level = self.protection_level
        lot = int(MULTIPLIER)
        lots_held = int(stock.quantity // lot)
        share = 0.0
        key = f"shares:{self.symbol}"
        why = ""
        if level > 0 and rt.cut_at.get(key, 0) < level:
            share = d.numbers("cuts", 5)[level]
            why = f"drawdown {self.drawdown:.2%}: protection level {level}"
            if level == 1:
                light = self._light_cut()
                share = light[0] if light is not None else 0.0
            cut_key, cut_level = key, level
        if share <= 0:
            day_key = f"budget:{key}:{self.today.isoformat()}"
            excess = self._budget_excess(day_key)
            if excess is None:
                return None
            share, why = excess
            cut_key, cut_level = day_key, 1
        lots = min(lots_held, math.ceil(lots_held * share - 1e-9))
        if lots <= 0:
            return None
        self._cut = (cut_key, cut_level)
        self.notes.append(f"{why}: sell {share:.0%} of {lots_held} round lots = {lots} lots")
        order = replace(self._share_sale(stock), contracts=lots * lot)
        order = replace(order, premium=round(order.limit_price * order.contracts, 2))
        ctx = self._context("reduce", order, None, None, reduces=True)
        return self._decision(
            "REDUCE", order, confidence=self._conf("close"), ctx=ctx, position_id=stock.id, trust_kind="risk_reduction"
        )

    def _conf(self, name: str) -> float:
        return self.e._sec("decision_confidence").number(name, low=0, high=1)

    def _week_move(self, previous: bool = False) -> float:
        """m = (close - previous Friday's close) / previous Friday's close x 100 for this week; with `previous`,
        the move of the last completed week (its last close against the close before it)."""
        dates = self.bars.dates
        week_start = self.today - dt.timedelta(days=self.today.weekday())
        end_idx = len(dates) - 1
        if previous:
            while end_idx >= 0 and dates[end_idx] >= week_start:
                end_idx -= 1
            week_start -= dt.timedelta(days=7)
        ref_idx = None
        for i in range(end_idx, -1, -1):
            if dates[i] < week_start:
                ref_idx = i
                break
        if ref_idx is None or end_idx < 0:
            return 0.0
        ref = float(self.bars.close[ref_idx])
        return (float(self.bars.close[end_idx]) - ref) / ref * 100.0

    def _cash_settled(self) -> bool:
        return self.symbol in self.e.config.doc.strings("cash_settled")

    def _at_expiry(self, opt: Position, stock: Position | None) -> Decision:
        assert self.week is not None
        code = self.week.code
        itm = (opt.kind == "put" and self.spot < opt.strike) or (opt.kind == "call" and self.spot > opt.strike)
        conf = self.week.confidence
        if code == "P-DD":
            return self._stop_loss(opt, stock, "deep drawdown: protocol level 3, close")
        if code == "C-RO":
            self.notes.append("call roll-over: roll the call down to the current price")
            return self._roll(opt, band=self._call_band("roll_down_band"))
        if code in ("P-RO", "C-REC") and itm:
            return self._roll(opt)
        if itm:
            if self._cash_settled():
                intrinsic = abs(self.spot - opt.strike)
                self.notes.append(
                    f"in the money at expiry (spot {self.spot:.2f} vs strike {opt.strike:.2f}): cash-settled, "
                    f"pays intrinsic {intrinsic:.2f} x 100 x {int(-opt.quantity)} = "
                    f"{intrinsic * MULTIPLIER * -opt.quantity:.2f}; no units change hands"
                )
            else:
                self.notes.append(
                    f"in the money at expiry (spot {self.spot:.2f} vs strike {opt.strike:.2f}): {self.week.action}"
                )
            return self._decision("ACCEPT_ASSIGNMENT", None, confidence=conf, position_id=opt.id)
        self.notes.append(f"out of the money at expiry: {self.week.action}")
        return self._decision("HOLD", None, confidence=conf, position_id=opt.id)

    def _roll_available(self, opt: Position) -> bool:
        """A roll is available when next week's expiry offers a strike inside the band for a net credit or a debit
        of at most 50% of the original credit."""
        band = self._position_band(opt)
        if band is None or opt.expiry is None:
            return False
        expiry = next_weekly_expiry(opt.expiry)
        t = max((expiry - self.today).days, 1) / 365.0
        choice = self._pick_strike(opt.kind, t, band, (band[0] + band[1]) / 2)
        if choice is None:
            return False
        new_premium = float(pricing.bs_price(opt.kind, self.spot, choice[0], t, self.iv, self.m.rate))
        close_cost = opt.mark(self.spot, self.iv, self.today, self.m.rate)
        debit = close_cost - new_premium
        limit = self.e._sec("week_types").number("roll_max_debit_share", low=0) * opt.premium
        return _at_most(debit, limit)

    # --- orders --------------------------------------------------------------------------------------------
    def _call_band(self, name: str) -> tuple[float, float]:
        b = self.e._sec("covered_calls").numbers(name, 2)
        return (b[0], b[1])

    def _band(self, kind: str) -> tuple[float, float] | None:
        if kind == "call":
            recovering = self.week is not None and self.week.code == "C-REC"
            return self._call_band("recovery_band" if recovering else "band")
        return self.e.config.entry_rule(self.a.kind, self.label.label).band

    def _position_band(self, opt: Position) -> tuple[float, float] | None:
        """The band a position keeps for its rolls: the one it was opened in (section 3). A position recorded
        without one takes the band of the label its symbol had on the day it was opened."""
        if opt.band is not None:
            return opt.band
        if opt.kind == "call":
            return self._band("call")
        bars = self.bars.upto(opt.opened)
        label = self.label
        if len(bars.dates) >= int(self.e._sec("market_label").number("min_bars", low=1)):
            label = self.e._label(self.symbol, bars, self.iv)
        band = self.e.config.entry_rule(self.a.kind, label.label).band
        if band is None:
            # Opened on a day without entries for its label (a manual fill): the account's most conservative band.
            bands = [
                r.band
                for lab in ("green", "red", "chop")
                if (r := self.e.config.entry_rule(self.a.kind, lab)).band is not None
            ]
            band = min(bands) if bands else None
        return band

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
        pick = self.e._strikes.pick(kind, self.spot, t, self.iv, self.m.rate, band[0], band[1], target)
        return (pick.strike, pick.abs_delta, pick.mid) if pick is not None else None

    def _regime(self) -> tuple[str, float]:
        ar = self.e._sec("atr_regime")
        atr14 = self.e._atr(self.bars, int(ar.number("period", low=1)))
        pct = (atr14 / self.spot * 100.0) if atr14 is not None else self.e.config.doc.number("atr_regime_fallback_pct")
        reading = self.e.tables.atr_regime(pct)
        regime, m = reading.regime, reading.multiplier
        self.notes.append(f"ATR(14)={pct:.2f}% of spot: regime {regime}, size x{m}")
        return regime, m

    def _entry(self) -> Decision:
        rule = self.e.config.entry_rule(self.a.kind, self.label.label)
        weekday = self.today.weekday()
        if rule.band is None or not rule.entry_days:
            self.notes.append(f"{self.spec.name} makes no new entries in {self.label.label.title()}")
            self._affordability()
            return self._decision("NO_TRADE", None, confidence=self.label.confidence)
        if weekday not in rule.entry_days:
            days = ",".join(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[d] for d in rule.entry_days)
            self.notes.append(
                f"not an entry day for {self.spec.name} in {self.label.label.title()} (entry days {days})"
            )
            self._affordability()
            return self._decision("NO_TRADE", None, confidence=self.label.confidence)
        frozen = self.e._runtime_of(self.a.id).frozen_until
        if frozen is not None and self.today <= frozen:
            self.notes.append(f"new entries frozen until {frozen} (protocol level 2)")
            return self._decision("NO_TRADE", None, confidence=self.label.confidence)
        return self._open("put", rule.band, rule.m_label)

    def _symbol_share(self) -> tuple[float, float]:
        """(t, cap): the per-symbol target share D / n of section 8 and the concentration limit that caps it
        (R07's max_symbol_weight, or the account's own for a single-symbol account)."""
        n = max(len(self.e.allowed_symbols(self.a.kind)), 1)
        return self.spec.target_share / n, self.e.max_symbol_weight(self.a.kind)

    def _affordability(self, strike: float | None = None) -> bool:
        """True when one contract fits the account's per-symbol target and its free cash; otherwise adds the
        plain warning of section 8 (account, symbol, collateral needed, what is deployable) and returns False."""
        k = strike if strike is not None else self.spot
        need = k * MULTIPLIER
        share, cap = self._symbol_share()
        per_symbol = min(share, cap) * self.equity
        deployable = max(0.0, float(self.a.balance) - self.spec.buffer * self.equity)
        if need <= min(per_symbol, deployable) * (1 + 1e-9):
            return True
        instrument = "put" if self.a.kind != "com" else "round lot"
        self.warnings.append(
            f"{self.a.id}: one {self.symbol} {instrument} needs ${need:,.0f} of collateral; deployable "
            f"${deployable:,.0f} (per-symbol target ${per_symbol:,.0f})"
        )
        return False

    def _round_lots_to_buy(self, held: Position | None) -> tuple[int, str]:
        """Round lots that bring the holding up to the per-symbol target x the drawdown budget x the protection
        and VIX multipliers for new exposure (sections 6 and 8), within free cash; with the arithmetic."""
        share, cap = self._symbol_share()
        allowed = self._allowed_exposure()
        prot = self.e._sec("drawdown_protection").numbers("multipliers", 5)[self.protection_level]
        m_vix = self.vix_mult if self.vix_state == "ACTIVE" else 1.0
        target = min(share, cap) * self.equity * allowed * prot * m_vix
        self._size_cap = target
        value = held.quantity * self.spot if held is not None else 0.0
        cash = self._free_cash()
        budget = max(0.0, min(target - value, cash))
        lots = _floor_exact(budget / (self.spot * MULTIPLIER)) if self.spot > 0 else 0
        note = (
            f"round lots of {self.symbol} up to the per-symbol target min({share:.1%}, cap {cap:.0%}) x "
            f"{self.equity:.2f} x allowed {allowed:.0%} x drawdown {prot:g} x VIX {m_vix:g} = {target:.2f}, held "
            f"{value:.2f}, free cash {cash:.2f}: floor({budget:.2f} / ({self.spot:g} x 100)) = {lots} lots"
        )
        return lots, note

    def _buy_round_lots(self, held: Position | None = None) -> Decision:
        """Com-Acc buys round lots of its symbol on its entry day, up to the per-symbol target (section 8): at setup,
        and to top the holding up again after a cut once the budget allows; it writes covered calls on them."""
        rule = self.e.config.entry_rule(self.a.kind, self.label.label)
        if self.today.weekday() not in rule.entry_days:
            self.notes.append(f"{self.spec.name} buys round lots on its entry days only")
            return self._decision("NO_TRADE", None, confidence=self.label.confidence)
        lots, note = self._round_lots_to_buy(held)
        self.notes.append(f"{self.spec.name}: {note}")
        if lots <= 0:
            if held is None:
                self._affordability()
            return self._decision("NO_TRADE", None, confidence=self.label.confidence)
        shares = lots * int(MULTIPLIER)
        order = Order(
            "stock", "buy_to_open", 0.0, None, shares, round(self.spot, 2), 100.0, -round(self.spot * shares, 2)
        )
        ctx = self._context("entry", order, None, None, reduces=False)
        return self._decision("BUY_SHARES", order, confidence=self.label.confidence, ctx=ctx)

    def _covered_call(self, stock: Position) -> Decision:
        """Covered calls on held shares: floor(shares / 100) contracts; at most 50% after a recovery week (C-REC,
        with its 20-30 band) or under drawdown protection moderate or worse."""
        cover = 1.0
        half = self.e._sec("sizing").number("covered_call_cap_share", low=0, high=1)
        move = self._week_move(previous=True)
        week = describe_week("LONG_STOCK", move, True, self.e.config)
        if week.code == "C-REC":
            self.week = week
            cover = half
            self.notes.append(f"last week {week.code} (move {move:.2f}%): cover at most {cover:.0%}, 20-30 delta")
        if self.protection_level >= 2:
            cover = min(cover, half)
            self.notes.append(f"drawdown protection level {self.protection_level}: cover at most {cover:.0%}")
        band = self._band("call")
        assert band is not None
        return self._open("call", band, 0.0, shares=stock.quantity, cover=cover)

    def _open(
        self,
        kind: str,
        band: tuple[float, float],
        m_label: float,
        *,
        shares: float = 0.0,
        cover: float = 1.0,
        cash_limit: float | None = None,
    ) -> Decision:
        regime, m_atr = self._regime()
        target = _core.delta_target(band[0], band[1], regime)
        expiry = weekly_expiry(self.today)
        dte = (expiry - self.today).days
        max_dte = int(self.e._sec("expiry").number("entry_max_dte", low=1))
        if dte > max_dte:
            self.notes.append(f"no weekly expiry within {max_dte} days (next {expiry}, a holiday week): no entry")
            return self._decision("NO_TRADE", None, confidence=self.label.confidence)
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
            contracts, sizing_note = self._put_budget(strike, m_label, m_atr, prot_mult, cash_limit)
        self.notes.append(f"sizing: {sizing_note}")
        if kind == "put" and contracts == 0:
            self._affordability(strike)
        held = self._all_positions()
        symbols = sorted({p.symbol for p in held} | {self.symbol})
        base = self.e.book_pnl(held, self.m, self.today, symbols)
        one = Position("proposed", self.a.id, self.symbol, kind, -1.0, self.today, strike, expiry, mid, iv=self.iv)
        unit = self.e.book_pnl([one], self.m, self.today, symbols)
        limit_es = self.e._sec("risk").number("es_budget_share") * self.portfolio_equity
        # ES before and after in the core; a put over the budget is resized to the largest count that fits
        # (section 6: ES grows with contracts, found by bisection).
        fit = _core.fit_to_es_budget(
            base,
            unit,
            held=bool(held),
            contracts=contracts,
            resize=kind == "put",
            limit=limit_es,
            level=self.e._es_level(),
        )
        es_before, es_after = fit.es_before, fit.es_after
        if fit.over_budget is not None:
            self.notes.append(
                f"ES after {fit.over_budget:.2f} over budget {limit_es:.2f}: resize {contracts} -> {fit.contracts}"
            )
        contracts = fit.contracts
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
            band,
        )
        action = "OPEN_PUT" if kind == "put" else "OPEN_CALL"
        ctx = self._context("entry", order, dte, es_after, reduces=False)
        return self._decision(action, order, confidence=self.label.confidence, ctx=ctx, es=(es_before, es_after))

    def _committed(self) -> float:
        """Exposure the account has committed: put collateral plus stock at market."""
        held = self.e.positions_of(self.p, self.a.id)
        return sum(
            p.collateral() + (max(p.exposure(self.m.bars_for(p.symbol).last_close), 0.0) if p.kind == "stock" else 0.0)
            for p in held
        )

    def _allowed_exposure(self) -> float:
        """The drawdown budget: min(1, k x cushion) of the deployment target, cushion = (equity - floor) /
        (peak - floor), floor = peak x (1 - cap) (section 6)."""
        if self.equity <= 0:
            return 0.0
        k = self.e._sec("drawdown_budget").number("multiplier", low=0)
        peak = max(float(self.a.peak), self.equity)
        return _core.allowed_exposure(peak, self.equity, self.spec.max_drawdown, k)

    def _put_budget(
        self, strike: float, m_label: float, m_atr: float, prot_mult: float, cash_limit: float | None = None
    ) -> tuple[int, str]:
        free_cash = self._free_cash() if cash_limit is None else cash_limit
        allowed = self._allowed_exposure()
        share, cap = self._symbol_share()
        existing = sum(p.exposure(self.spot) for p in self.e.positions_of(self.p, self.a.id, self.symbol))
        # Under a REDUCING/HALTED breaker the order is sized as if ACTIVE and R11 rejects it, so the decision
        # cites the breaker instead of an unexplained zero.
        m_vix = self.vix_mult if self.vix_state == "ACTIVE" else 1.0
        # The core sizes to the deployment target (section 8) and keeps the order within what R07 allows
        # (cap x E - existing): an ATR multiplier above 1 may lift the budget past the concentration limit itself,
        # and the engine never proposes what its own rules flag.
        sized = _core.put_budget(
            equity=self.equity,
            free_cash=free_cash,
            strike=strike,
            target_share=share,
            max_symbol_weight=cap,
            existing_exposure=existing,
            m_label=m_label,
            m_atr=m_atr,
            m_drawdown=prot_mult,
            m_vix=m_vix,
            allowed_exposure=allowed,
            multiplier=MULTIPLIER,
        )
        # R06 checks the notional against this target with its multipliers (section 7).
        self._size_cap = sized.size_cap
        note = (
            f"budget=min(min(t {share:.1%}, cap {cap:.0%}) x E {self.equity:.2f} x label {m_label:g} x ATR {m_atr:g}"
            f" x drawdown {prot_mult:g} x VIX {m_vix:g} x allowed {allowed:.0%} - existing {existing:.2f}, "
            f"free cash {free_cash:.2f}) = {sized.budget:.2f} ({sized.binding} binds); "
            f"contracts=floor({sized.budget:.2f}/({strike:g} x 100))={sized.sized_contracts}"
        )
        if sized.room < sized.sized_contracts:
            note += (
                f"; R07 room floor(({cap:.0%} x {self.equity:.2f} - {existing:.2f})/({strike:g} x 100))={sized.room}"
            )
        return sized.contracts, note

    def _roll(self, opt: Position, band: tuple[float, float] | None = None) -> Decision:
        """Buy back `opt` and sell the next weekly expiry inside the band the position was opened in; valued like
        any order (ES before and after, every rule). A roll the rules reject becomes a close."""
        band = band or self._position_band(opt)
        if band is None:
            band = self._call_band("recovery_band")
        assert opt.expiry is not None
        expiry = next_weekly_expiry(opt.expiry) if opt.expiry > self.today else weekly_expiry(self.today)
        dte = (expiry - self.today).days
        target = (band[0] + band[1]) / 2
        picked = self._pick_strike(opt.kind, max(dte, 1) / 365.0, band, target)
        if picked is None:
            self.notes.append("no strike inside the band for the roll: close instead")
            return self._close(opt, "risk_reduction")
        strike, delta, mid = picked
        contracts = int(-opt.quantity)
        close_cost = opt.mark(self.spot, self.iv, self.today, self.m.rate)
        net = mid - close_cost
        self.notes.append(
            f"roll to {strike:g} expiring {expiry} (DTE {dte}) delta={delta:.1f} band {band[0]:g}-{band[1]:g}: "
            f"new credit {mid:.2f} - close {close_cost:.2f} = net {net:+.2f} per share"
        )
        held = self._all_positions()
        symbols = sorted({p.symbol for p in held} | {self.symbol})
        base = self.e.book_pnl(held, self.m, self.today, symbols)
        es_before = self.e.es_of(base)
        new = Position("proposed", self.a.id, self.symbol, opt.kind, -float(contracts), self.today, strike, expiry, mid)
        new.iv = self.iv
        after = (
            base
            - self.e.book_pnl([opt], self.m, self.today, symbols)
            + self.e.book_pnl([new], self.m, self.today, symbols)
        )
        es_after = self.e.es_of(after)
        self.notes.append(f"ES(97.5%) before={es_before:.2f} after the roll={es_after:.2f}")
        order = Order(
            opt.kind,
            "roll",
            strike,
            expiry,
            contracts,
            round(mid, 2),
            delta,
            round(net * MULTIPLIER * contracts, 2),
            band,
        )
        reduces = strike <= opt.strike if opt.kind == "put" else True
        ctx = self._context("roll", order, dte, es_after, reduces=reduces, band=band)
        decision = self._decision(
            "ROLL",
            order,
            confidence=self._conf("roll"),
            ctx=ctx,
            position_id=opt.id,
            trust_kind="roll",
            es=(es_before, es_after),
        )
        if decision.outcome == "REJECTED":
            failed = ", ".join(r.message for r in decision.compliance if not r.passed and r.severity == "CRITICAL")
            self.notes.append(f"roll rejected by {failed}: close instead")
            return self._close(opt, "risk_reduction")
        return decision

    def _close(self, opt: Position, trust_kind: str, *, stock: Position | None = None) -> Decision:
        return self._buy_back(opt, int(-opt.quantity), "CLOSE", trust_kind, stock=stock)

    def _buy_back(
        self, opt: Position, contracts: int, action: str, trust_kind: str, *, stock: Position | None = None
    ) -> Decision:
        """A CLOSE (every contract) or REDUCE (some) of a short option at today's mark; with `stock`, the shares
        of the assigned position are sold in the same decision (a level-3 close)."""
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
        legs = (self._share_sale(stock),) if stock is not None else ()
        ctx = self._context("close" if action == "CLOSE" else "reduce", order, None, None, reduces=True)
        return self._decision(
            action,
            order,
            confidence=self._conf("close"),
            ctx=ctx,
            position_id=opt.id,
            trust_kind=trust_kind,
            legs=legs,
        )

    def _share_sale(self, stock: Position) -> Order:
        shares = int(stock.quantity)
        return Order(
            "stock", "sell_to_close", 0.0, None, shares, round(self.spot, 2), 100.0, round(self.spot * shares, 2)
        )

    def _sell_shares(self, stock: Position, trust_kind: str) -> Decision:
        order = self._share_sale(stock)
        ctx = self._context("close", order, None, None, reduces=True)
        return self._decision(
            "CLOSE", order, confidence=self._conf("close"), ctx=ctx, position_id=stock.id, trust_kind=trust_kind
        )

    def _delta(self, opt: Position) -> float:
        t = opt.years_to_expiry(self.today)
        return float(pricing.bs_greeks(opt.kind, self.spot, opt.strike, t, self.iv, self.m.rate)["delta"])

    def _all_positions(self) -> list[Position]:
        return [
            p for p in self.p.positions.values() if not self.p.groups[self.p.accounts[p.account_id].group_id].merged
        ]

    # --- slicing, compliance and the decision record -------------------------------------------------------
    def _max_per_order(self) -> int:
        return int(self.e._sec("sizing").number("max_contracts_per_order", low=1))

    def _slices(self, order: Order) -> tuple[Order, ...]:
        """`order` as child orders of at most max_contracts_per_order contracts (100-share lots for stock),
        sliced before the rules run (R14); premiums split in proportion."""
        unit = int(MULTIPLIER) if order.kind == "stock" else 1
        size = self._max_per_order() * unit
        if order.contracts <= size:
            return (order,)
        children = []
        left = order.contracts
        while left > 0:
            n = min(size, left)
            children.append(replace(order, contracts=n, premium=round(order.premium * n / order.contracts, 2)))
            left -= n
        return tuple(children)

    def _context(
        self,
        kind: str,
        order: Order,
        dte: int | None,
        es_after: float | None,
        *,
        reduces: bool,
        band: tuple[float, float] | None = None,
    ) -> _core.RuleContext:
        """The typed rule context of `order` (PROTOCOL section 7): what every compliance rule looks at."""
        rule = self.e.config.entry_rule(self.a.kind, self.label.label)
        if band is None and order.kind in ("put", "call"):
            band = order.band or self._band(order.kind)
        account_positions = self.e.positions_of(self.p, self.a.id)
        symbol_exposure = sum(p.exposure(self.spot) for p in account_positions if p.symbol == self.symbol)
        if order.kind == "stock":
            added = order.limit_price * order.contracts if order.side == "buy_to_open" else 0.0
        else:
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
        share, cap = self._symbol_share()
        size_cap = self._size_cap if self._size_cap is not None else min(share, cap) * self.equity
        earnings = None
        if self.m.earnings is not None:
            week_end = weekly_expiry(self.today - dt.timedelta(days=1))
            earnings = any(self.today <= d <= week_end for d in self.m.earnings.get(self.symbol, []))
        quote = None
        for q in self.m.chains.get(self.symbol, {}).get(order.kind, []):
            if q.strike == order.strike:
                quote = q
        mid = (quote.bid + quote.ask) / 2 if quote is not None else None
        # A roll releases the collateral of the position it replaces.
        released = 0.0
        if kind == "roll":
            released = sum(p.collateral() for p in account_positions if p.symbol == self.symbol)
        # Orders larger than the per-order limit are sliced first; the rules see the last child with everything
        # before it already counted (R05's cash, R14's size).
        children = self._slices(order)
        unit = int(MULTIPLIER) if order.kind == "stock" else 1
        last = children[-1].contracts
        before_last = (order.contracts - last) / order.contracts if order.contracts else 0.0
        group = self.e.tail_group(self.symbol, [p.symbol for p in account_positions], self.m)
        group_exposure = sum(
            p.exposure(self.m.bars_for(p.symbol).last_close) for p in account_positions if p.symbol in group
        )
        return _core.RuleContext(
            kind=kind,
            account_id=self.a.id,
            account_type=self.a.kind,
            label=self.label.label,
            symbol=self.symbol,
            sector=sector,
            delta=order.delta if order.kind != "stock" else None,
            band_low=band[0] if band else None,
            band_high=band[1] if band else None,
            dte=dte,
            weekday=self.today.weekday(),
            entry_days=list(rule.entry_days) if order.kind == "put" else [self.today.weekday()],
            allowed_symbols=list(self.e.allowed_symbols(self.a.kind)),
            strike=order.strike if order.kind != "stock" else order.limit_price,
            contracts=float(last) / unit,
            multiplier=MULTIPLIER,
            free_cash=self._free_cash() + released - added * before_last,
            notional=added,
            size_cap=size_cap,
            account_equity=self.equity,
            symbol_exposure_after=symbol_exposure + added,
            portfolio_equity=self.portfolio_equity,
            sector_exposure_after=sector_exposure + added,
            es_after=es_after if es_after is not None else 0.0,
            account_state=self.a.state,
            system_state=self.e.system_state,
            vix_state=self.vix_state,
            vix=self.vix_value,
            reduces_exposure=reduces,
            chain_open_interest=quote.open_interest if quote is not None else None,
            chain_volume=quote.volume if quote is not None else None,
            chain_bid=quote.bid if quote is not None else None,
            chain_ask=quote.ask if quote is not None else None,
            limit_price=order.limit_price,
            mid=mid if mid else order.limit_price,
            orders_last_minute=float(len(rt.orders)),
            idempotency_seen=False,
            earnings_in_week=earnings,
            withdrawal_amount=None,
            # Protocol v2: the order's instrument, the tail-dependent group and the account's concentration limit
            # (R07, R17).
            option_kind=order.kind,
            group_symbols=group,
            group_exposure_after=group_exposure + added,
            max_symbol_weight=cap,
        )

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
        ctx: _core.RuleContext | None = None,
        es: tuple[float, float] | None = None,
        position_id: str | None = None,
        trust_kind: str | None = None,
        legs: tuple[Order, ...] = (),
    ) -> Decision:
        compliance = self.e.rules.check(ctx) if ctx is not None else Compliance((), "APPROVED")
        outcome = compliance.outcome
        final_action = action
        if outcome == "REJECTED" and action in ("OPEN_PUT", "OPEN_CALL", "BUY_SHARES"):
            final_action = "NO_TRADE"
            failed = ", ".join(r.message for r in compliance.failures if r.severity == "CRITICAL")
            self.notes.append(f"rejected by {failed}")
        elif outcome == "REJECTED":
            failed = ", ".join(r.message for r in compliance.failures if r.severity == "CRITICAL")
            self.notes.append(f"rejected by {failed}")
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
        if ctx is not None and ctx.es_after is not None and es is None:
            es_after = ctx.es_after
        kept = order if final_action not in ("NO_TRADE", "HOLD") else None
        orders: tuple[Order, ...] = ()
        if kept is not None:
            orders = self._slices(kept) + tuple(c for leg in legs for c in self._slices(leg))
            if len(orders) > 1:
                self.notes.append(
                    f"{len(orders)} child orders: " + ", ".join(f"{c.contracts} {c.kind}" for c in orders)
                )
        self.notes.extend(w for w in self.warnings if w not in self.notes)
        effects = Effects(
            self.a.id,
            self.as_of,
            counts_order=kept is not None,
            freeze_until=self._freeze,
            cut_key=self._cut[0] if self._cut else None,
            cut_level=self._cut[1] if self._cut else 0,
            reducing=self._reducing,
        )
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
            order=kept,
            es_before=es_before,
            es_after=es_after,
            compliance=compliance.results,
            outcome=outcome,
            requires_approval=requires,
            confidence=confidence,
            trust_kind=kind,
            explanation="; ".join(self.notes),
            account_state="REDUCING" if self._reducing and self.a.state == "ACTIVE" else self.a.state,
            idempotency_key=self.key,
            position_id=position_id,
            orders=orders,
            warnings=tuple(self.warnings),
            vol_source=self.vol_source,
            iv_source=self.iv_source,
            effects=effects,
        )


def _order_of(o: _core.CoreOrder) -> Order:
    """The `Order` of a core order (expiry as a date, the band as a pair)."""
    band = (o.band_low, o.band_high) if o.band_low is not None and o.band_high is not None else None
    expiry = dt.date.fromordinal(o.expiry) if o.expiry is not None else None
    return Order(o.kind, o.side, o.strike, expiry, o.contracts, o.limit_price, o.delta, o.premium, band)


def _quote(q: OptionQuote) -> _core.ChainQuote:
    """A chain quote as the core reads it."""
    return _core.ChainQuote(
        strike=q.strike, bid=q.bid, ask=q.ask, iv=q.iv, open_interest=q.open_interest, volume=q.volume
    )


def _one_holding(lots: list[Position]) -> Position | None:
    """The account's lots of one symbol as one holding: total shares at their weighted cost basis (the id is
    the first lot's)."""
    if not lots:
        return None
    if len(lots) == 1:
        return lots[0]
    total = sum(p.quantity for p in lots)
    basis = sum(p.quantity * p.cost_basis for p in lots) / total
    return replace(lots[0], quantity=total, cost_basis=basis)


def _at_least(x: float, bound: float) -> bool:
    """x >= bound, where a value within 1e-9 (relative) of the bound counts as on it (section 5)."""
    return x >= bound - 1e-9 * max(abs(bound), abs(x), 1e-300)


def _at_most(x: float, bound: float) -> bool:
    """x <= bound with the same 1e-9 relative rule."""
    return x <= bound + 1e-9 * max(abs(bound), abs(x), 1e-300)


def _floor_exact(x: float) -> int:
    """floor(x), where x within 1e-9 (relative) under a whole number counts as that number (section 5)."""
    if not math.isfinite(x) or x <= 0:
        return 0
    n = math.floor(x)
    if x - n >= 1 - 1e-9 * max(x, 1.0):
        n += 1
    return int(n)
