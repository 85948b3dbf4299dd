# Hand-written stubs for the compiled core, checked against the real module by mypy.stubtest.
# Users import the typed facades (allsuse.pricing, allsuse.risk, ...), never this module.

from collections.abc import Callable, Sequence
from typing import Any, final

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base

_F64 = npt.NDArray[np.float64]

__version__: str

def build_profile() -> str: ...

class PanicException(BaseException):
    """Raised when Rust code panics (pyo3_runtime.PanicException); the core is built never to panic."""

# --- protocol ---

def classify_week(
    position: str,
    move_pct: float,
    roll_available: bool,
    bounds: tuple[float, float, float, float, float, float, float, float, float, float],
) -> tuple[str, str, str, float, float, float]: ...
def protocol_level(
    reference: float,
    spot: float,
    atr: float | None,
    loss: float,
    equity: float,
    excursion: tuple[float, float, float],
    loss_thresholds: tuple[float, float, float],
    atr_fallback_share: float,
) -> tuple[int, float, float]: ...
def atr_regime(
    atr_pct: float,
    upper_pct: tuple[float, float, float, float],
    size_multiplier: tuple[float, float, float, float, float],
) -> tuple[str, float]: ...
def delta_target(band_low: float, band_high: float, regime: str) -> float: ...
def step_protection(
    state: tuple[int, float, int, int],
    drawdown: float,
    day: int,
    thresholds: tuple[float, float, float, float],
    multipliers: tuple[float, float, float, float, float],
    step_down_recovery: float,
    off_recovery: float,
    max_adjustments_per_day: int,
) -> tuple[int, float, int, int]: ...
def allowed_exposure(peak: float, equity: float, cap: float, multiplier: float) -> float: ...
def vix_breaker(
    vix: float, hedged_at: float, hedged_multiplier: float, reducing_at: float, halted_at: float
) -> tuple[float, bool, str]: ...
def size_put(
    equity: float,
    free_cash: float,
    strike: float,
    target_share: float,
    max_symbol_weight: float,
    existing_exposure: float,
    m_label: float,
    m_atr: float,
    m_drawdown: float,
    m_vix: float,
    allowed_exposure: float,
    multiplier: float,
) -> tuple[float, int, str]: ...
def size_covered_calls(shares: float, max_cover_share: float, multiplier: float) -> int: ...
def select_strike(
    kind: str, strikes: _F64, abs_deltas: _F64, band_low: float, band_high: float, target: float
) -> tuple[int, float, float] | None: ...
def select_synthetic_strike(
    kind: str,
    spot: float,
    t: float,
    vol: float,
    rate: float,
    div: float,
    band_low: float,
    band_high: float,
    target: float,
    grid: Sequence[tuple[float, float]] | None = None,
) -> tuple[float, float] | None: ...

@final
class RuleSet:
    def __new__(cls, json: str) -> RuleSet: ...
    def codes(self) -> list[str]: ...
    @property
    def version(self) -> int: ...
    def __len__(self) -> int: ...
    def number_param(self, code: str, name: str) -> float | None: ...
    def evaluate(self, context_json: str) -> tuple[list[tuple[str, str, bool, str]], str]: ...
    def check(self, context: RuleContext) -> RuleCheck: ...

# --- the decision's typed inputs ---

@final
class ProtocolTables:
    def __new__(
        cls,
        *,
        put_worthless_min: float,
        put_assigned_min: float,
        deep_drawdown_below: float,
        call_strong_min: float,
        call_appreciation_min: float,
        call_premium_min: float,
        call_roll_min: float,
        confidence_margin: float,
        confidence_high: float,
        confidence_low: float,
        level_excursion: Sequence[float],
        level_loss: Sequence[float],
        atr_fallback_share: float,
        regime_upper_pct: Sequence[float],
        regime_size_multiplier: Sequence[float],
        protection_thresholds: Sequence[float],
        protection_multipliers: Sequence[float],
        step_down_recovery: float,
        off_recovery: float,
        max_adjustments_per_day: int,
        vix_hedged_at: float,
        vix_hedged_multiplier: float,
        vix_reducing_at: float,
        vix_halted_at: float,
    ) -> ProtocolTables: ...
    def classify_week(self, position: str, move_pct: float, roll_available: bool) -> WeekClass: ...
    def protocol_level(
        self, reference: float, spot: float, atr: float | None, loss: float, equity: float
    ) -> LevelRead: ...
    def atr_regime(self, atr_pct: float) -> RegimeRead: ...
    def step_protection(
        self, level: int, trough: float, day: int, adjustments_today: int, drawdown: float, today: int
    ) -> ProtectionStep: ...
    def protection_multiplier(self, level: int) -> float: ...
    def vix_breaker(self, vix: float) -> VixRead: ...

@final
class WeekClass:
    @property
    def code(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def expected_low_pct(self) -> float: ...
    @property
    def expected_high_pct(self) -> float: ...
    @property
    def confidence(self) -> float: ...

@final
class LevelRead:
    @property
    def level(self) -> int: ...
    @property
    def excursion(self) -> float: ...
    @property
    def loss_share(self) -> float: ...

@final
class RegimeRead:
    @property
    def regime(self) -> str: ...
    @property
    def multiplier(self) -> float: ...

@final
class ProtectionStep:
    @property
    def level(self) -> int: ...
    @property
    def trough(self) -> float: ...
    @property
    def day(self) -> int: ...
    @property
    def adjustments_today(self) -> int: ...

@final
class VixRead:
    @property
    def multiplier(self) -> float: ...
    @property
    def hedged(self) -> bool: ...
    @property
    def state(self) -> str: ...

@final
class LabelRules:
    def __new__(
        cls,
        *,
        iv_low: float,
        iv_high: float,
        trend_weak: float,
        trend_strong: float,
        trend_window: int,
        rsi_period: int,
        rsi_bull: float,
        rsi_bear: float,
        roc_period: int,
        roc_bull: float,
        roc_bear: float,
        volume_window: int,
        volume_spike: float,
        win_min_score: float,
        score_vol_low_green: int,
        score_vol_high_red: int,
        score_vol_chop: int,
        score_trend: int,
        score_trend_chop: int,
        score_momentum: int,
        score_momentum_chop: int,
        score_volume: int,
        confidence_base: float,
        confidence_strong_trend: float,
        confidence_moderate_trend: float,
        confidence_clear_vol: float,
        confidence_momentum_agrees: float,
        confidence_cap: float,
    ) -> LabelRules: ...
    def label(self, close: _F64, iv: float, volume: _F64 | None = None) -> LabelRead: ...

@disjoint_base
class LabelRead:
    @property
    def label(self) -> str: ...
    @property
    def confidence(self) -> float: ...
    @property
    def green(self) -> int: ...
    @property
    def red(self) -> int: ...
    @property
    def chop(self) -> int: ...
    @property
    def vol_regime(self) -> str: ...
    @property
    def trend(self) -> str: ...
    @property
    def trend_strength(self) -> float: ...
    @property
    def trend_grade(self) -> str: ...
    @property
    def rsi(self) -> float: ...
    @property
    def roc_pct(self) -> float: ...
    @property
    def momentum(self) -> str: ...
    @property
    def volume_ratio(self) -> float: ...

@final
class PutBudget:
    @property
    def budget(self) -> float: ...
    @property
    def binding(self) -> str: ...
    @property
    def sized_contracts(self) -> int: ...
    @property
    def room(self) -> int: ...
    @property
    def contracts(self) -> int: ...
    @property
    def size_cap(self) -> float: ...

@final
class EsFit:
    @property
    def contracts(self) -> int: ...
    @property
    def es_before(self) -> float: ...
    @property
    def es_after(self) -> float: ...
    @property
    def over_budget(self) -> float | None: ...

def put_budget(
    *,
    equity: float,
    free_cash: float,
    strike: float,
    target_share: float,
    max_symbol_weight: float,
    existing_exposure: float,
    m_label: float,
    m_atr: float,
    m_drawdown: float,
    m_vix: float,
    allowed_exposure: float,
    multiplier: float,
) -> PutBudget: ...
def fit_to_es_budget(
    base: _F64, unit: _F64, *, held: bool, contracts: int, resize: bool, limit: float, level: float
) -> EsFit: ...

@final
class StrikePicker:
    def __new__(cls, *, below: Sequence[float], step: Sequence[float]) -> StrikePicker: ...
    def pick(
        self,
        kind: str,
        spot: float,
        t: float,
        vol: float,
        rate: float,
        band_low: float,
        band_high: float,
        target: float,
    ) -> StrikePick | None: ...

@final
class StrikePick:
    @property
    def strike(self) -> float: ...
    @property
    def abs_delta(self) -> float: ...
    @property
    def mid(self) -> float: ...

@final
class ScenarioSet:
    def __new__(
        cls,
        returns: npt.NDArray[np.float64],
        *,
        spot: Sequence[float],
        iv: Sequence[float],
        iv_move_sensitivity: float,
        horizon: float,
        rate: float,
    ) -> ScenarioSet: ...
    @property
    def rows(self) -> int: ...
    def book_pnl(
        self,
        *,
        kind: Sequence[str],
        underlying: Sequence[int],
        quantity: Sequence[float],
        strike: Sequence[float],
        t: Sequence[float],
    ) -> _F64: ...

def tail_group(returns: npt.NDArray[np.float64], *, q: float, limit: float) -> list[int]: ...
def tail_group_of_columns(columns: Sequence[npt.NDArray[np.float64]], *, q: float, limit: float) -> list[int]: ...
def scenario_set_of_columns(
    columns: Sequence[npt.NDArray[np.float64]],
    *,
    spot: Sequence[float],
    iv: Sequence[float],
    iv_move_sensitivity: float,
    horizon: float,
    rate: float,
) -> ScenarioSet: ...

@final
class Equities:
    @property
    def accounts(self) -> list[float]: ...
    @property
    def portfolio(self) -> float: ...

def equity_at_market(
    account_cash: Sequence[float],
    portfolio_cash: float,
    *,
    account: Sequence[int | None],
    counted: Sequence[bool],
    kind: Sequence[str],
    quantity: Sequence[float],
    strike: Sequence[float],
    days_to_expiry: Sequence[int | None],
    spot: Sequence[float],
    iv: Sequence[float],
    rate: float,
) -> Equities: ...

@final
class RuleContext:
    def __new__(
        cls,
        *,
        kind: str,
        account_id: str = ...,
        account_type: str = ...,
        label: str = ...,
        symbol: str = ...,
        sector: str = ...,
        delta: float | None = None,
        band_low: float | None = None,
        band_high: float | None = None,
        dte: float | None = None,
        weekday: int | None = None,
        entry_days: Sequence[int] = ...,
        allowed_symbols: Sequence[str] = ...,
        strike: float | None = None,
        contracts: float | None = None,
        multiplier: float | None = None,
        free_cash: float | None = None,
        notional: float | None = None,
        size_cap: float | None = None,
        account_equity: float | None = None,
        symbol_exposure_after: float | None = None,
        portfolio_equity: float | None = None,
        sector_exposure_after: float | None = None,
        es_after: float | None = None,
        account_state: str = ...,
        system_state: str = ...,
        vix_state: str = ...,
        vix: float | None = None,
        reduces_exposure: bool = False,
        chain_open_interest: float | None = None,
        chain_volume: float | None = None,
        chain_bid: float | None = None,
        chain_ask: float | None = None,
        limit_price: float | None = None,
        mid: float | None = None,
        orders_last_minute: float | None = None,
        idempotency_seen: bool = False,
        earnings_in_week: bool | None = None,
        withdrawal_amount: float | None = None,
        option_kind: str | None = None,
        group_symbols: Sequence[str] = ...,
        group_exposure_after: float | None = None,
        max_symbol_weight: float | None = None,
    ) -> RuleContext: ...
    @property
    def kind(self) -> str: ...
    @property
    def es_after(self) -> float | None: ...

@final
class RuleVerdict:
    @property
    def code(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def passed(self) -> bool: ...
    @property
    def message(self) -> str: ...

@final
class RuleCheck:
    @property
    def results(self) -> list[RuleVerdict]: ...
    @property
    def outcome(self) -> str: ...

# --- pricing ---

def bs_price(kind: str, spot: float, strike: float, t: float, vol: float, rate: float, div: float) -> float: ...
def bs_price_batch(kind: str, spot: _F64, strike: _F64, t: _F64, vol: _F64, rate: _F64, div: _F64) -> _F64: ...
def bs_greeks(
    kind: str, spot: float, strike: float, t: float, vol: float, rate: float, div: float
) -> tuple[float, float, float, float, float, float]: ...
def bs_greeks_batch(
    kind: str, spot: _F64, strike: _F64, t: _F64, vol: _F64, rate: _F64, div: _F64
) -> tuple[_F64, _F64, _F64, _F64, _F64, _F64]: ...
def implied_vol(kind: str, price: float, spot: float, strike: float, t: float, rate: float, div: float) -> float: ...
def implied_vol_batch(
    kind: str, price: _F64, spot: _F64, strike: _F64, t: _F64, rate: _F64, div: _F64
) -> tuple[_F64, int]: ...
def strike_for_delta(kind: str, delta: float, spot: float, t: float, vol: float, rate: float, div: float) -> float: ...
def strike_for_delta_batch(kind: str, delta: _F64, spot: _F64, t: _F64, vol: _F64, rate: _F64, div: _F64) -> _F64: ...

# --- risk ---

def value_at_risk(pnl: _F64, confidence: float) -> float: ...
def expected_shortfall(pnl: _F64, confidence: float) -> float: ...
def tail_dependence(x: _F64, y: _F64, q: float) -> float: ...
def max_drawdown(returns: _F64) -> float: ...
def performance_metrics(returns: _F64, periods_per_year: float, benchmark: _F64 | None = None) -> dict[str, float]: ...
def revalue(
    kind: npt.NDArray[np.int64],
    underlying: npt.NDArray[np.int64],
    quantity: _F64,
    multiplier: _F64,
    strike: _F64,
    t: _F64,
    vol: _F64,
    rate: _F64,
    div: _F64,
    spot: _F64,
    scenario_returns: _F64,
    vol_shifts: _F64 | None,
    horizon: float,
    confidence: float,
) -> tuple[_F64, float, float]: ...

# --- indicators ---

def sma(values: _F64, window: int) -> _F64: ...
def rsi(closes: _F64, period: int) -> _F64: ...
def true_range(high: _F64, low: _F64, close: _F64) -> _F64: ...
def atr(high: _F64, low: _F64, close: _F64, period: int) -> _F64: ...
def hist_vol(closes: _F64, window: int, periods_per_year: float) -> _F64: ...
def trend_strength(closes: _F64, window: int) -> _F64: ...

# --- cache ---

@final
class TTLCache:
    """An LRU cache of bytes with a time-to-live, safe to share between threads."""

    def __new__(cls, capacity: int, ttl_seconds: float) -> TTLCache: ...
    @property
    def capacity(self) -> int: ...
    @property
    def ttl_seconds(self) -> float: ...
    def get(self, key: bytes) -> bytes | None: ...
    def put(self, key: bytes, value: bytes, ttl_seconds: float | None = None) -> None: ...
    def delete(self, key: bytes) -> bool: ...
    def clear(self) -> None: ...
    def stats(self) -> dict[str, int]: ...
    def __len__(self) -> int: ...
    def __contains__(self, key: object, /) -> bool: ...

# --- market ---

def bar_columns(
    data: bytes, field: str, max_bars: int, tag: int = 0, bars_tag: int = 0
) -> tuple[npt.NDArray[np.int64], _F64, _F64, _F64, _F64, _F64, bool]: ...

# --- a backtest's window facts (rust/src/python/facts.rs) ------------------------------------------------------
@final
class LabelFact(LabelRead):
    @property
    def iv(self) -> float: ...
    @property
    def text(self) -> str: ...
    def fields(self, iv: float) -> dict[str, object]: ...

def label_facts(
    rules: LabelRules,
    close: _F64,
    volume: _F64 | None,
    starts: npt.NDArray[np.int64],
    ends: npt.NDArray[np.int64],
    ivs: _F64,
    min_bars: int,
) -> list[LabelFact | None]: ...
def proxy_facts(
    close: _F64, starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64], window: int, ratio: float, source: str
) -> list[tuple[float | None, str, str] | None]: ...
def format_fixed(x: float, digits: int) -> str: ...
def format_pct(x: float, digits: int) -> str: ...
def format_general(x: float) -> str: ...
def round_decimals(x: float, digits: int) -> float: ...

# --- the decision flow (rust/src/python/flow.rs) ---------------------------------------------------------------
@final
class EntryRule:
    def __new__(
        cls, *, entry_days: Sequence[int], band_low: float | None, band_high: float | None, m_label: float
    ) -> EntryRule: ...

@final
class AccountRules:
    def __new__(
        cls,
        *,
        kind: str,
        name: str,
        buffer: float,
        max_drawdown: float,
        target_share: float,
        max_symbol_weight: float,
        allowed_symbols: Sequence[str],
        green: EntryRule,
        red: EntryRule,
        chop: EntryRule,
    ) -> AccountRules: ...

@final
class Band:
    def __new__(cls, *, low: float, high: float) -> Band: ...
    @property
    def low(self) -> float: ...
    @property
    def high(self) -> float: ...

@final
class TakeProfit:
    def __new__(cls, *, gen: float, rev: float, com: float) -> TakeProfit: ...
    @property
    def gen(self) -> float: ...
    @property
    def rev(self) -> float: ...
    @property
    def com(self) -> float: ...

@final
class Confidences:
    def __new__(cls, *, hold_normal: float, hold_enhanced: float, close: float, roll: float) -> Confidences: ...

@final
class HeldPosition:
    def __new__(
        cls,
        *,
        id: str,
        account_id: str,
        symbol: str,
        kind: str,
        quantity: float,
        strike: float,
        expiry: int | None,
        roll_expiry: int | None,
        premium: float,
        cost_basis: float,
        band_low: float | None,
        band_high: float | None,
        sector: str,
        last_close: float,
        iv: float,
        column: int,
        in_book: bool,
    ) -> HeldPosition: ...

@final
class HeldBook:
    def __new__(
        cls,
        *,
        id: Sequence[str],
        account_id: Sequence[str],
        symbol: Sequence[str],
        kind: Sequence[str],
        quantity: Sequence[float],
        strike: Sequence[float],
        expiry: Sequence[int | None],
        roll_expiry: Sequence[int | None],
        premium: Sequence[float],
        cost_basis: Sequence[float],
        band_low: Sequence[float | None],
        band_high: Sequence[float | None],
        sector: Sequence[str],
        last_close: Sequence[float],
        iv: Sequence[float],
        column: Sequence[int],
        in_book: Sequence[bool],
    ) -> HeldBook: ...
    def __len__(self) -> int: ...
    @property
    def symbols(self) -> list[str]: ...
    @property
    def own_symbols(self) -> list[str]: ...
    @property
    def column(self) -> int: ...

@final
class PositionBook:
    def __new__(cls) -> PositionBook: ...
    @property
    def reads(self) -> int: ...
    def __len__(self) -> int: ...
    def equities(
        self,
        positions: dict[str, Any],
        *,
        accounts: Sequence[str],
        cash: Sequence[float],
        portfolio_cash: float,
        merged: Sequence[str],
        market: Any,
        today: int,
        rate: float,
        reread: bool = True,
    ) -> tuple[list[float], float]: ...
    def held(
        self,
        positions: dict[str, Any],
        *,
        account_id: str,
        symbol: str,
        merged: Sequence[str],
        market: Any,
        roll_expiry: Callable[[Any], int],
        band: Callable[[Any], tuple[float, float] | None],
        reread: bool = True,
    ) -> HeldBook: ...

@final
class CutDone:
    def __new__(cls, *, key: str, level: int) -> CutDone: ...
    @property
    def key(self) -> str: ...
    @property
    def level(self) -> int: ...

@final
class ChainQuote:
    def __new__(
        cls, *, strike: float, bid: float, ask: float, iv: float, open_interest: float, volume: float
    ) -> ChainQuote: ...
    @property
    def strike(self) -> float: ...
    @property
    def bid(self) -> float: ...
    @property
    def ask(self) -> float: ...
    @property
    def iv(self) -> float: ...
    @property
    def open_interest(self) -> float: ...
    @property
    def volume(self) -> float: ...

@final
class TrustGate:
    def __new__(
        cls,
        *,
        entry: float,
        exit: float,
        roll: float,
        risk_reduction: float,
        emergency: float,
        auto_threshold: float,
        confidence_threshold: float,
    ) -> TrustGate: ...

@final
class DecisionInput:
    def __new__(
        cls,
        *,
        account_id: str,
        account_kind: str,
        account_state: str,
        balance: float,
        reinvest_cash: float,
        peak: float,
        equity: float,
        portfolio_equity: float,
        symbol: str,
        sector: str,
        label: str,
        label_confidence: float,
        notes: Sequence[str],
        today: int,
        weekday: int,
        entry_expiry: int,
        frozen_until: int | None,
        spot: float,
        iv: float,
        rate: float,
        days: npt.NDArray[np.int64],
        high: npt.NDArray[np.float64],
        low: npt.NDArray[np.float64],
        close: npt.NDArray[np.float64],
        protection_level: int,
        drawdown: float,
        vix: float | None,
        vix_multiplier: float,
        vix_state: str,
        system_state: str,
        orders_last_minute: int,
        earnings_in_week: bool | None,
        group_symbols: Sequence[str] | None,
        book: Sequence[HeldPosition],
        column: int,
        trust: TrustGate,
        cuts_done: Sequence[CutDone],
        roll_available: bool | None,
        chain_puts: Sequence[ChainQuote] = ...,
        chain_calls: Sequence[ChainQuote] = ...,
        held: HeldBook | None = ...,
    ) -> DecisionInput: ...

@final
class CoreOrder:
    @property
    def kind(self) -> str: ...
    @property
    def side(self) -> str: ...
    @property
    def strike(self) -> float: ...
    @property
    def expiry(self) -> int | None: ...
    @property
    def contracts(self) -> int: ...
    @property
    def limit_price(self) -> float: ...
    @property
    def delta(self) -> float: ...
    @property
    def premium(self) -> float: ...
    @property
    def band_low(self) -> float | None: ...
    @property
    def band_high(self) -> float | None: ...

@final
class CoreDecision:
    @property
    def action(self) -> str: ...
    @property
    def order(self) -> CoreOrder | None: ...
    @property
    def orders(self) -> list[CoreOrder]: ...
    @property
    def results(self) -> tuple[Any, ...] | None: ...
    @property
    def made_order(self) -> Any | None: ...
    @property
    def made_orders(self) -> tuple[Any, ...] | None: ...
    @property
    def es_before(self) -> float: ...
    @property
    def es_after(self) -> float: ...
    @property
    def compliance(self) -> list[RuleVerdict]: ...
    @property
    def outcome(self) -> str: ...
    @property
    def requires_approval(self) -> bool: ...
    @property
    def confidence(self) -> float: ...
    @property
    def trust_kind(self) -> str: ...
    @property
    def notes(self) -> list[str]: ...
    @property
    def warnings(self) -> list[str]: ...
    @property
    def week_type(self) -> str | None: ...
    @property
    def protocol_level(self) -> int: ...
    @property
    def position_id(self) -> str | None: ...
    @property
    def account_state(self) -> str: ...
    @property
    def counts_order(self) -> bool: ...
    @property
    def freeze_until(self) -> int | None: ...
    @property
    def cut(self) -> CutDone | None: ...
    @property
    def reducing(self) -> bool: ...
    @property
    def rules_checked(self) -> bool: ...
    @property
    def records(self) -> int: ...

@final
class Decider:
    def __new__(
        cls,
        *,
        tables: ProtocolTables,
        strikes: StrikePicker,
        gen: AccountRules,
        rev: AccountRules,
        com: AccountRules,
        atr_period: int,
        atr_fallback_pct: float,
        protection_multipliers: Sequence[float],
        drawdown_budget_k: float,
        es_budget_share: float,
        es_level: float,
        entry_max_dte: int,
        max_contracts_per_order: int,
        call_band: Band,
        call_recovery_band: Band,
        call_roll_down_band: Band,
        covered_call_cap_share: float,
        roll_max_debit_share: float,
        level_atr_period: int,
        level_atr_fallback_share: float,
        rev_roll_excursion: float,
        take_profit: TakeProfit,
        confidence: Confidences,
        protection_cuts: Sequence[float],
        light_vol_above: float,
        light_cut: float,
        emergency_close_count: int,
        cash_settled: Sequence[str],
    ) -> Decider: ...
    def decide(
        self,
        input: DecisionInput,
        rules: RuleSet,
        *,
        scenarios: Callable[[], ScenarioSet],
        group: Callable[[], list[str]] | None = None,
        rule_result: type[Any] | None = None,
        order: type[Any] | None = None,
    ) -> CoreDecision: ...
