"""The decision engine (PROTOCOL section 10): for (account, symbol, as-of) it labels the market, reads the week
type and protocol level of any open position, chooses an action, sizes and prices it, measures ES before and
after by full revaluation, runs every compliance rule, gates approval by trust and explains itself.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from allsuse import _core, indicators, risk
from allsuse.errors import InvalidInputError
from allsuse.protocol import settings
from allsuse.protocol.accounts import Account, Portfolio, money
from allsuse.protocol.market import Bars, MarketData, OptionQuote, next_weekly_expiry, weekly_expiry
from allsuse.protocol.market_label import MarketLabel, market_label
from allsuse.protocol.positions import Position
from allsuse.protocol.trust import TrustBook
from allsuse.protocol.window_facts import SeriesWindows, WindowFacts
from allsuse.rules import RuleBook, RuleResult

_new = object.__new__

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
    # The core's copy of cut_at handed to the last decision, with the items it was made from.
    cuts_done: tuple[tuple[tuple[str, int], ...], list[_core.CutDone]] = field(
        default=((), []), compare=False, repr=False
    )


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
        self._groups: dict[tuple[Any, ...], tuple[str, ...]] = {}
        # Each symbol's last scenario_days returns, per Bars object, and the returns of the read-only close series
        # bars are windows of (see _return_column).
        self._scenario_days = int(self._sec("risk").number("scenario_days", low=1))
        self._returns: dict[int, tuple[Bars, int, np.ndarray, tuple[int, int, int]]] = {}
        self._return_sources: dict[int, tuple[np.ndarray, int, np.ndarray, int]] = {}
        self._column_ids = itertools.count(1)
        self.system_state = "ACTIVE"
        # The day the remembered cuts were last pruned (see _prune_cuts).
        self._pruned_on: dt.date | None = None
        # The VIX proxy's settings, and its reading per index and closes (every decision of a day reads the same).
        self._cash_settled = tuple(self.config.doc.strings("cash_settled"))
        self._proxy_window = int(self.config.doc.number("vix_proxy_window", low=2))
        self._proxy_ratio = self.config.doc.number("vix_proxy_ratio", low=0)
        self._proxy_readings: dict[tuple[str, bytes], tuple[float | None, str, str]] = {}
        # A backtest run's labels and proxy readings of its windows, known ahead (see use_windows), and the last
        # label read from them with its line (what _explained gives for it).
        self._facts: WindowFacts | None = None
        self._said: tuple[MarketLabel, str] | None = None
        self._index_of: tuple[MarketData, str | None] | None = None
        # The last market view (decide's bars up to the day): the market it was made from, the day and the view.
        self._view: tuple[MarketData, dt.date, MarketData] | None = None
        # The portfolio whose valuation decisions may share (see keep_equities), and that valuation: the market view
        # and day it was made on, each account's equity and the portfolio's.
        self._equity_scope: Portfolio | None = None
        self._equity_memo: tuple[MarketData, dt.date, dict[str, float], float] | None = None
        # Everything the core's decision flow reads from the configuration, compiled once per engine.
        self.decider = self._compile_decider()
        # The positions as the core reads them, kept between decisions and re-read only where they changed (see
        # _core.PositionBook), and the last trust gate and cuts handed to the core with what they were made from.
        self._book = _core.PositionBook()
        # True once the book read the positions of the keep_equities portfolio: inside that scope the portfolio
        # changes only after forget_equities (or a new keep_equities), which set it False, so until then a decision
        # takes the book as read instead of checking every position again.
        self._book_read = False
        self._breaker: dict[float, tuple[float, bool, str]] = {}
        self._gate: tuple[tuple[tuple[tuple[str, float], ...], float, float], _core.TrustGate] | None = None

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
        rt = self._runtime.get(account_id)
        if rt is None:  # made only when missing (setdefault would build one at every call)
            rt = self._runtime[account_id] = _AccountRuntime()
        return rt

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

    def keep_equities(self, portfolio: Portfolio | None) -> None:
        """Lets the decisions over `portfolio` share one valuation of every account (per market and day) until the
        next call, for a caller that changes the portfolio only between calls (the backtest calls it again after
        each fill, and with None when it is done). Each account's equity and the portfolio's are the very numbers
        a decision would compute alone: the core adds each account's positions in book order either way."""
        self._equity_scope = portfolio
        self._equity_memo = None
        self._book_read = False

    def forget_equities(self) -> None:
        """Drops the shared valuation (keep_equities): the portfolio is about to change."""
        self._equity_memo = None
        self._book_read = False

    def _book_reread(self, portfolio: Portfolio) -> bool:
        """Whether the PositionBook must check `portfolio`'s positions again (always, outside keep_equities)."""
        return not (self._book_read and self._equity_scope is portfolio)

    def _book_was_read(self, portfolio: Portfolio) -> None:
        """Notes a successful read of `portfolio`'s positions by the book (see _book_read)."""
        self._book_read = self._equity_scope is portfolio

    def _decision_equities(
        self, portfolio: Portfolio, account: Account, market: MarketData, today: dt.date
    ) -> tuple[float, float]:
        """(the account's equity, the portfolio's) at market for one decision; shared when keep_equities allows."""
        if self._equity_scope is portfolio:
            memo = self._equity_memo
            if memo is None or memo[0] is not market or memo[1] != today:
                accounts = list(portfolio.accounts.values())
                try:
                    values, total = self._book_equities(portfolio, accounts, market, today)
                except InvalidInputError:  # a symbol missing: the decision values its own account, naming it
                    memo = None
                else:
                    memo = (market, today, {a.id: v for a, v in zip(accounts, values, strict=True)}, total)
                self._equity_memo = memo
            if memo is not None and account.id in memo[2]:
                return memo[2][account.id], memo[3]
        (equity,), total = self.equities(portfolio, [account], market, today)
        return equity, total

    def _book_equities(
        self, portfolio: Portfolio, accounts: list[Account], market: MarketData, today: dt.date
    ) -> tuple[list[float], float]:
        """`equities(portfolio, accounts, market, today)` for every account of the portfolio, from the engine's
        PositionBook (positions read once, not at every valuation): the same marks added in the same order by the
        same core function, so the same numbers."""
        merged_groups = {gid for gid, group in portfolio.groups.items() if group.merged}
        cash = 0.0
        for account in portfolio.accounts.values():
            if account.group_id not in merged_groups:
                cash += float(account.balance + account.leaps)
        try:
            valued = self._book.equities(
                portfolio.positions,
                accounts=[a.id for a in accounts],
                cash=[float(a.balance) for a in accounts],
                portfolio_cash=cash,
                merged=[a.id for a in portfolio.accounts.values() if a.group_id in merged_groups],
                market=market,
                today=today.toordinal(),
                rate=market.rate,
                reread=self._book_reread(portfolio),
            )
            self._book_was_read(portfolio)
            return valued
        except RuntimeError:  # the engine's book in use by another thread: valued as equities() values
            return self.equities(portfolio, accounts, market, today)

    def vix_reading(self, market: MarketData, symbol: str) -> tuple[float | None, str, str]:
        """(VIX value, source, note): the given VIX, else the proxy of section 6, the index's realised volatility
        over `vix_proxy_window` days x 100 x `vix_proxy_ratio` (the first cash-settled index in the market, else
        `symbol` itself); (None, "none", why) when neither can be had."""
        if market.vix is not None:
            return float(market.vix), "vix", f"VIX={float(market.vix):.2f}"
        facts = self._facts
        if facts is not None:
            # Known ahead for a backtest's windows; the index a market holds is looked for once per market (every
            # decision of a backtest day shares one, and a market is not changed once built).
            memo = self._index_of
            if memo is None or memo[0] is not market:
                memo = self._index_of = (market, next((s for s in self._cash_settled if s in market.bars), None))
            source = memo[1] or symbol
            known = facts.proxy(source, market.bars_for(source))
            if known is not None:
                return known
        window, ratio = self._proxy_window, self._proxy_ratio
        source = next((s for s in self._cash_settled if s in market.bars), symbol)
        close = market.bars_for(source).close
        if close.size <= window:
            return None, "none", f"no VIX and too few bars of {source} for the proxy"
        last = close[-(window + 1) :]  # the last window only
        # The reading depends on those closes alone: kept per source and closes (exact bytes), as every decision
        # of a day reads the same.
        last = np.ascontiguousarray(last, dtype=np.float64)
        key = (source, last.tobytes())
        reading = self._proxy_readings.get(key)
        if reading is not None:
            return reading
        hv = float(_core.hist_vol(last, window, 252.0)[-1])
        if not math.isfinite(hv):
            reading = (None, "none", f"no VIX and no finite realised volatility of {source}")
        else:
            value = hv * 100.0 * ratio
            note = f"VIX proxy={value:.2f} ({window}-day realised vol of {source} {hv:.1%} x {ratio:g})"
            reading = (value, "proxy", note)
        if len(self._proxy_readings) > 256:
            self._proxy_readings.clear()
        self._proxy_readings[key] = reading
        return reading

    def _vix(self, value: float | None) -> tuple[float, bool, str]:
        """(size multiplier, hedged, state) of the VIX breaker at `value`, kept per value (a day's decisions read
        a handful)."""
        if value is None:
            return 1.0, False, "ACTIVE"
        kept = self._breaker.get(value)
        if kept is None:
            r = self.tables.vix_breaker(float(value))
            kept = (r.multiplier, r.hedged, r.state)
            if len(self._breaker) > 256:
                self._breaker.clear()
            self._breaker[value] = kept
        return kept

    def _protection(self, account: Account, equity: float, day: dt.date) -> tuple[int, float]:
        rt = self._runtime_of(account.id)
        peak = max(float(account.peak), equity)
        drawdown = max(0.0, (peak - equity) / peak) if peak > 0 else 0.0
        level, trough, last_day, adjustments = rt.protection
        step = self.tables.step_protection(level, trough, last_day, adjustments, drawdown, day.toordinal())
        rt.protection = (step.level, step.trough, step.day, step.adjustments_today)
        return step.level, drawdown

    def _atr(self, bars: Bars, period: int) -> float | None:
        if len(bars.days) <= period:
            return None
        value = float(indicators.atr(bars.high, bars.low, bars.close, period)[-1])
        return value if math.isfinite(value) and value > 0 else None

    # --- scenarios and ES -------------------------------------------------------------------------------
    def _scenarios(self, symbols: list[str], market: MarketData) -> np.ndarray:
        """The scenario matrix of `symbols` (historical: their last N joint daily simple returns, aligned on their
        common last dates); kept per set of symbols and the very return columns it is made of (see
        _return_columns), since every decision of the day revalues over the same history."""
        _, ids = self._return_columns(symbols, market)
        key = (*symbols, *ids)
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
        columns, _ = self._return_columns(symbols, market)
        return np.column_stack(columns).astype(np.float64)

    def _return_columns(
        self, symbols: list[str], market: MarketData
    ) -> tuple[list[np.ndarray], tuple[tuple[int, int, int], ...]]:
        """The columns of `historical_returns` (each symbol's last returns, cut to the shortest: aligned on their
        common last dates), and what each column is: (source, first, end), the returns first..end-1 of one source
        (see _return_column). Equal identities are equal columns, bit for bit, so the scenario sets and tail groups
        built from columns are kept by them."""
        n = self._scenario_days
        kept = self._returns
        columns: list[np.ndarray] = []
        ids: list[tuple[int, int, int]] = []
        for s in symbols:
            bars = market.bars_for(s)
            # Kept per Bars object (immutable; the entry holds it, so its id is not reused while kept): the day's
            # decisions read the same symbols' returns for their scenarios and tail groups.
            entry = kept.get(id(bars))
            if entry is None or entry[0] is not bars or entry[1] != n:
                if len(kept) > 256:
                    kept.clear()
                entry = kept[id(bars)] = (bars, n, *self._return_column(bars, n))
            columns.append(entry[2])
            ids.append(entry[3])
        length = min(len(c) for c in columns)
        if length < 1:
            raise InvalidInputError.of("bars", "need at least two closes per symbol for scenarios")
        if any(len(c) != length for c in columns):
            columns = [c[-length:] for c in columns]
            ids = [(source, end - length, end) for source, _, end in ids]
        return columns, tuple(ids)

    def _return_column(self, bars: Bars, n: int) -> tuple[np.ndarray, tuple[int, int, int]]:
        """The last `n` daily simple returns of `bars` (close[1:] / close[:-1] - 1 over its last n + 1 closes) and
        their identity (source, first, end).

        Bars that are a window of a read-only float64 close series (the backtest's daily view of each symbol's
        history) read their returns from that series' returns, computed once: the returns are elementwise, so the
        slice is the very numbers the window's own closes give, and the identity (the series' number, the slice's
        bounds) names them across days and Bars objects. Other bars (a service request's, or over data that can
        still be written) compute their own, with an identity of their own."""
        close = bars.close
        base = close.base if close.base is not None else close
        if (
            type(base) is np.ndarray
            and not base.flags.writeable
            and base.dtype == np.float64
            and base.ndim == 1
            and base.strides == (8,)
            and close.dtype == np.float64
            and close.strides == (8,)
            and len(close) >= 1
        ):
            sources = self._return_sources
            source = sources.get(id(base))
            if source is None or source[0] is not base:
                if len(sources) > 64:
                    sources.clear()
                returns = base[1:] / base[:-1] - 1.0
                returns.setflags(write=False)
                address = base.__array_interface__["data"][0]
                source = sources[id(base)] = (base, next(self._column_ids), returns, address)
            # Where the window starts in the series (its data is inside the series' memory: it is a view of it).
            offset, rest = divmod(close.__array_interface__["data"][0] - source[3], 8)
            if rest == 0 and offset >= 0 and offset + len(close) <= len(base):
                end = offset + len(close) - 1
                first = max(offset, end - n)
                return source[2][first:end], (source[1], first, end)
        last = close[-(n + 1) :]  # the returns are elementwise: only the last n needed
        column = last[1:] / last[:-1] - 1.0
        return column, (next(self._column_ids), 0, len(column))

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
        columns, ids = self._return_columns(names, market)
        # Kept per symbols and the very return columns measured (their identities name them bit for bit): a
        # decision made again over the same history (after a fill, or another account's) measures the same group.
        key = (q, limit, *names, *ids)
        cached = self._groups.get(key)
        if cached is not None:
            return list(cached)
        # The connected pairs are followed in the core (pairwise lower-tail coefficients, both directions), over
        # the columns as they are: no matrix is built.
        members = _core.tail_group_of_columns(columns, q=q, limit=limit)
        group = sorted(names[i] for i in members)
        if len(self._groups) > 256:
            self._groups.clear()
        self._groups[key] = tuple(group)
        return group

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
        never below 10% of today's IV), kept per symbols, return columns (see _return_columns), spot, IV and rate.
        Historical scenarios are laid out by the core from the return columns themselves."""
        iv = [market.iv_for(s) for s in symbols]
        spot = [market.bars_for(s).last_close for s in symbols]
        columns, ids = self._return_columns(symbols, market)
        key = (*symbols, *ids, *spot, *iv, market.rate)
        cached = self._scenario_sets.get(key)
        if cached is None:
            scen = self._sec("scenarios")
            if str(scen.raw("method")) == "historical":
                cached = _core.scenario_set_of_columns(
                    columns,
                    spot=spot,
                    iv=iv,
                    iv_move_sensitivity=scen.number("iv_move_sensitivity"),
                    horizon=scen.number("horizon_days", low=0) / 365.0,
                    rate=market.rate,
                )
            else:
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
        if today != self._pruned_on:
            self._prune_cuts(portfolio, today)
        bars = market.bars_for(symbol).upto(today)
        view = self._view_of(market, today)
        label = self._label(symbol, bars, view.iv_for(symbol))
        decision = _Deciding(self, portfolio, account, symbol, as_of, view, bars, label, idempotency_key).run(
            roll_available
        )
        if idempotency_key is not None:
            self._seen[idempotency_key] = decision
        return decision

    def _view_of(self, market: MarketData, today: dt.date) -> MarketData:
        """The market as of `today` (every symbol's bars up to the day). The last view is kept with the market it
        came from: the decisions of a day over one market (the backtest's ~10 a day) share it. A market is not
        changed once built (the backtest builds one per day, the service one per request)."""
        last = self._view
        if last is not None and last[0] is market and last[1] == today:
            return last[2]
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
        self._view = (market, today, view)
        return view

    def _prune_cuts(self, portfolio: Portfolio, today: dt.date) -> None:
        """Forgets the cuts no decision can read again, once a day, so the state stays bounded (issue 10): a budget
        cut's key ("budget:<position id>:<day>", "budget:shares:<symbol>:<day>") is read only on its own day, and a
        protection cut's key (the position id) only while that position is held (position ids are never reused:
        the backtest and the service both number them from a counter). "shares:<symbol>" keys (at most one per
        symbol) are kept."""
        self._pruned_on = today
        day = today.isoformat()
        held = portfolio.positions
        for rt in self._runtime.values():
            cuts = rt.cut_at
            dead = [
                k
                for k in cuts
                if (
                    k.rsplit(":", 1)[-1] < day
                    if k.startswith("budget:")
                    else k not in held and not k.startswith("shares:")
                )
            ]
            for k in dead:
                del cuts[k]

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

    def use_windows(self, series: Mapping[str, SeriesWindows] | None) -> None:
        """Learns (or, with None, forgets) the windows a backtest run will show the engine: their labels (with
        their lines) and VIX proxy readings are computed at once by the core (see WindowFacts), and `_label`,
        `_explained` and `vix_reading` read them from there: the same numbers and text, at the cost of a look-up.
        Anything else is computed on demand as before."""
        self._said = self._index_of = None
        self._facts = (
            None
            if series is None
            else WindowFacts(series, config=self.config, proxy_window=self._proxy_window, proxy_ratio=self._proxy_ratio)
        )

    def _label(self, symbol: str, bars: Bars, iv: float) -> MarketLabel:
        """The market label of the last bar; the same bars and IV give the same label, so it is kept for the day
        (every account of a portfolio asks for it), or known ahead for a backtest's windows (use_windows)."""
        facts = self._facts
        if facts is not None:
            known = facts.label(symbol, bars, iv)
            if known is not None:
                self._said = known
                return known[0]
        days = bars.days
        n = len(days)
        key = (symbol, int(days[-1]) if n else None, n, iv, float(bars.close[-1]) if n else 0.0)
        cached = self._labels.get(key)
        if cached is None:
            cached = market_label(bars.close, iv, bars.volume, self.config)
            if len(self._labels) > 256:
                self._labels.clear()
            self._labels[key] = cached
        return cached

    def _explained(self, label: MarketLabel) -> str:
        """The label's explanation line, built once per label."""
        said = self._said
        if said is not None and said[0] is label:
            return said[1]
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
        self.equity, self.portfolio_equity = engine._decision_equities(portfolio, account, market, self.today)
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

    # --- the flow ----------------------------------------------------------------------------------------
    def run(self, roll_available: bool | None) -> Decision:
        """The decision, decided whole by the core: the typed input, one call, the typed result as a `Decision`."""
        return self._decide_in_core(roll_available)

    def _decide_in_core(self, roll_available: bool | None) -> Decision:
        e, m, today, a = self.e, self.m, self.today, self.a
        account_id, symbol = a.id, self.symbol
        # The book the core reads: every position of the account and every position counted in the portfolio's book
        # (its account's group not merged away), kept by the engine's PositionBook between decisions and re-read
        # only where a position changed; the book's sorted symbols are the scenario columns.
        p = self.p
        groups = p.groups
        merged = (
            [owner for owner, acc in p.accounts.items() if groups[acc.group_id].merged]
            if any(group.merged for group in groups.values())
            else []
        )
        view = functools.partial(
            _core.PositionBook.held,
            positions=p.positions,
            account_id=account_id,
            symbol=symbol,
            merged=merged,
            market=m,
            roll_expiry=_roll_expiry,
            band=self._position_band,
        )
        try:
            book = view(e._book, reread=e._book_reread(p))
            e._book_was_read(p)
        except RuntimeError:  # the engine's book in use by another thread: this decision reads a book of its own
            book = view(_core.PositionBook())
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
        gate = _trust_gate(e)
        cuts = rt.cut_at
        made_cuts = rt.cuts_done
        if made_cuts[0] != tuple(cuts.items()):  # the core's copy made again only when the cuts changed
            made_cuts = rt.cuts_done = (
                tuple(cuts.items()),
                [_core.CutDone(key=k, level=v) for k, v in cuts.items()],
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
            entry_expiry=_entry_expiry(today),
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
            group_symbols=None,
            book=[],
            held=book,
            column=book.column,
            trust=gate,
            cuts_done=made_cuts[1],
            roll_available=roll_available,
            chain_puts=[_quote(q) for q in chain.get("put", ())],
            chain_calls=[_quote(q) for q in chain.get("call", ())],
        )
        core = e.decider.decide(
            inp,
            e.rules.compiled,
            scenarios=lambda: e._scenario_set(book.symbols, m),
            group=lambda: e.tail_group(self.symbol, book.own_symbols, m),
            rule_result=RuleResult,
            order=Order,
        )
        if core.rules_checked:
            for _ in range(stale):
                rt.orders.popleft()
        decision_id = 0
        for _ in range(core.records):  # a rejected roll's record took an id before its close
            decision_id = next(e._ids)
        cut = core.cut
        # Made as `allsuse._frozen.made` makes them (the instance's fields written to its __dict__), without the keyword
        # packing and the check of the names (a test holds the names to the dataclasses' fields): a decision's result
        # is made ~25,000 times a backtest.
        effects = _new(Effects)
        effects.__dict__.update(
            {
                "account_id": a.id,
                "as_of": self.as_of,
                "counts_order": core.counts_order,
                "freeze_until": dt.date.fromordinal(core.freeze_until) if core.freeze_until is not None else None,
                "cut_key": cut.key if cut is not None else None,
                "cut_level": cut.level if cut is not None else 0,
                "reducing": core.reducing,
            }
        )
        decision = _new(Decision)
        decision.__dict__.update(
            {
                "id": decision_id,
                "account_id": a.id,
                "symbol": self.symbol,
                "as_of": self.as_of,
                "label": self.label.label,
                "label_confidence": self.label.confidence,
                "week_type": core.week_type,
                "protocol_level": core.protocol_level,
                "action": core.action,
                "order": core.made_order,
                "es_before": core.es_before,
                "es_after": core.es_after,
                "compliance": core.results,
                "outcome": core.outcome,
                "requires_approval": core.requires_approval,
                "confidence": core.confidence,
                "trust_kind": core.trust_kind,
                "explanation": "; ".join(core.notes),
                "account_state": core.account_state,
                "idempotency_key": self.key,
                "position_id": core.position_id,
                "orders": core.made_orders,
                "warnings": tuple(core.warnings),
                "vol_source": self.vol_source,
                "iv_source": self.iv_source,
                "effects": effects,
            }
        )
        return decision

    def _position_band(self, opt: Position) -> tuple[float, float] | None:
        """The band a put recorded without one keeps for its rolls (section 3): the band of the label its symbol had
        on the day it was opened; on a day without entries for that label (a manual fill), the account's most
        conservative band. The core reads it with the position."""
        bars = self.bars.upto(opt.opened)
        label = self.label
        if len(bars.days) >= int(self.e._sec("market_label").number("min_bars", low=1)):
            label = self.e._label(self.symbol, bars, self.iv)
        band = self.e.config.entry_rule(self.a.kind, label.label).band
        if band is None:
            bands = [
                r.band
                for lab in ("green", "red", "chop")
                if (r := self.e.config.entry_rule(self.a.kind, lab)).band is not None
            ]
            band = min(bands) if bands else None
        return band


def _roll_expiry(expiry: dt.date) -> int:
    """The ordinal of the weekly expiry after `expiry`, where a roll goes (the PositionBook asks once a position)."""
    return next_weekly_expiry(expiry).toordinal()


@functools.lru_cache(maxsize=64)
def _entry_expiry(today: dt.date) -> int:
    """The ordinal of the weekly expiry a new entry takes on `today` (the same for every decision of a day)."""
    return weekly_expiry(today).toordinal()


def _trust_gate(engine: Engine) -> _core.TrustGate:
    """The core's trust gate from the engine's trust scores and thresholds, made again only when they changed. The
    scores are compared as the book holds them (a handful of entries), which is cheaper than asking for each."""
    trust = engine.trust
    key = (tuple(trust.scores.items()), trust.auto_threshold, trust.confidence_threshold)
    last = engine._gate
    if last is not None and last[0] == key:
        return last[1]
    gate = _core.TrustGate(
        entry=trust.score("entry"),
        exit=trust.score("exit"),
        roll=trust.score("roll"),
        risk_reduction=trust.score("risk_reduction"),
        emergency=trust.score("emergency"),
        auto_threshold=key[1],
        confidence_threshold=key[2],
    )
    engine._gate = (key, gate)
    return gate


def _quote(q: OptionQuote) -> _core.ChainQuote:
    """A chain quote as the core reads it."""
    return _core.ChainQuote(
        strike=q.strike, bid=q.bid, ask=q.ask, iv=q.iv, open_interest=q.open_interest, volume=q.volume
    )


def _at_least(x: float, bound: float) -> bool:
    """x >= bound, where a value within 1e-9 (relative) of the bound counts as on it (section 5)."""
    return x >= bound - 1e-9 * max(abs(bound), abs(x), 1e-300)
