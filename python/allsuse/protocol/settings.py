"""The protocol's numbers, read from config/protocol.yaml and validated once.

Every threshold the engine uses comes from here, so an operator changes one without a release.
An invalid value raises InvalidInputError naming the key path (e.g. `entry_rules.gen.green.band`).

`PROTOCOL_KEYS` is the one table of every key the code reads; `validate(config)` reads them all eagerly and
the server calls `validate_default()` at start, so a bad value stops start-up with a ConfigError naming the
file and the key, instead of surfacing in the first decision. A new key the code reads goes in that table.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import functools
import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from allsuse import _core, _yaml
from allsuse import config as config_files
from allsuse.errors import AllsuseError, InvalidInputError

CONFIG_DIR = config_files.CONFIG_DIR  # the packaged config/ (allsuse.config: found through importlib.resources)
# The protocol file settings.default() reads (and so the engine and the server).
PROTOCOL_FILE = CONFIG_DIR / "protocol.yaml"
ACCOUNT_TYPES = ("gen", "rev", "com")
LABELS = ("green", "red", "chop")


class Section:
    """Typed read access to one mapping of the file, naming the full key path in every error."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, Mapping):
            raise InvalidInputError.of(path, "must be a mapping")
        self._data = data
        self.path = path
        # Validated values are memoised: the configuration is immutable once loaded, and the engine reads the
        # same thresholds on every decision.
        self._memo: dict[tuple[Any, ...], Any] = {}

    def _key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def raw(self, key: str) -> Any:
        """The value at key, which must exist."""
        if key not in self._data:
            raise InvalidInputError.of(self._key(key), "is missing")
        return self._data[key]

    def raw_or_none(self, key: str) -> Any:
        """The value at key, or None when the key is absent (optional settings)."""
        return self._data.get(key)

    def section(self, key: str) -> Section:
        """A nested mapping."""
        memo = self._memo.get(("section", key))
        if memo is None:
            memo = self._memo[("section", key)] = Section(self.raw(key), self._key(key))
        return memo

    def number(self, key: str, *, low: float | None = None, high: float | None = None) -> float:
        """A finite number, optionally bounded (inclusive)."""
        memo_key = ("number", key, low, high)
        if memo_key in self._memo:
            return self._memo[memo_key]  # type: ignore[no-any-return]
        self._memo[memo_key] = value = self._number(key, low, high)
        return value

    def _number(self, key: str, low: float | None, high: float | None) -> float:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise InvalidInputError.of(self._key(key), f"must be a number, got {value!r}")
        if low is not None and value < low:
            raise InvalidInputError.of(self._key(key), f"must be >= {low}, got {value}")
        if high is not None and value > high:
            raise InvalidInputError.of(self._key(key), f"must be <= {high}, got {value}")
        return float(value)

    def numbers(self, key: str, length: int | None = None) -> tuple[float, ...]:
        """A list of numbers, optionally of a fixed length."""
        memo_key = ("numbers", key, length)
        if memo_key in self._memo:
            return self._memo[memo_key]  # type: ignore[no-any-return]
        self._memo[memo_key] = values = self._numbers(key, length)
        return values

    def _numbers(self, key: str, length: int | None) -> tuple[float, ...]:
        value = self.raw(key)
        if not isinstance(value, Sequence) or isinstance(value, str):
            raise InvalidInputError.of(self._key(key), f"must be a list of numbers, got {value!r}")
        if length is not None and len(value) != length:
            raise InvalidInputError.of(self._key(key), f"must have {length} numbers, got {len(value)}")
        out = []
        for v in value:
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise InvalidInputError.of(self._key(key), f"must hold numbers, got {v!r}")
            out.append(float(v))
        return tuple(out)

    def strings(self, key: str) -> tuple[str, ...]:
        """A list of strings."""
        value = self.raw(key)
        if not isinstance(value, Sequence) or isinstance(value, str) or not all(isinstance(v, str) for v in value):
            raise InvalidInputError.of(self._key(key), f"must be a list of strings, got {value!r}")
        return tuple(value)

    def flag(self, key: str) -> bool:
        """A boolean."""
        value = self.raw(key)
        if not isinstance(value, bool):
            raise InvalidInputError.of(self._key(key), f"must be true or false, got {value!r}")
        return value

    def keys(self) -> list[str]:
        """The keys of this mapping."""
        return [str(k) for k in self._data]

    def has(self, key: str) -> bool:
        """Whether the mapping holds `key` (for optional keys)."""
        return key in self._data


@dataclass(frozen=True)
class AccountSpec:
    """One account type's constants (PROTOCOL section 1)."""

    kind: str
    name: str
    allocation: float
    buffer: float
    weekly_target: float
    max_drawdown: float
    deployment_target: float
    symbols: tuple[str, ...]
    withdrawals: bool
    reinvestment: bool
    max_symbol_weight: float | None = None

    @property
    def target_share(self) -> float:
        """The deployment target D as a share of equity, never past what the buffer leaves (section 8)."""
        return min(self.deployment_target, 1.0 - self.buffer)


@dataclass(frozen=True)
class EntryRule:
    """Entry days, delta band and size multiplier m_label for (account, label) (PROTOCOL sections 3 and 8)."""

    entry_days: tuple[int, ...]
    band: tuple[float, float] | None
    m_label: float


@dataclass(frozen=True)
class ProtocolConfig:
    """The whole validated protocol configuration. `doc` keeps typed access to the other sections."""

    accounts: dict[str, AccountSpec]
    entry_rules: dict[tuple[str, str], EntryRule]
    doc: Section

    def account(self, kind: str) -> AccountSpec:
        """The spec of gen, rev or com."""
        if kind not in self.accounts:
            raise InvalidInputError.of("account_type", f"must be one of {', '.join(ACCOUNT_TYPES)}, got {kind!r}")
        return self.accounts[kind]

    def entry_rule(self, kind: str, label: str) -> EntryRule:
        """The entry rule for (account type, market label)."""
        if label not in LABELS:
            raise InvalidInputError.of("label", f"must be one of {', '.join(LABELS)}, got {label!r}")
        return self.entry_rules[(self.account(kind).kind, label)]

    @functools.cached_property
    def tables(self) -> _core.ProtocolTables:
        """The thresholds every decision reads (week types, protocol levels, ATR regime, drawdown protection, VIX
        breakers), compiled and validated by the core once per configuration, never per decision."""
        return compile_tables(self.doc)

    @functools.cached_property
    def label_rules(self) -> _core.LabelRules:
        """The market label's thresholds (section 2), compiled by the core once per configuration."""
        return compile_label_rules(self.doc.section("market_label"))

    @functools.cached_property
    def label_min_bars(self) -> int:
        """The bars a market label needs at least (`market_label.min_bars`), read once per configuration."""
        return int(self.doc.section("market_label").number("min_bars", low=2))


def compile_label_rules(cfg: Section) -> _core.LabelRules:
    """Compiles `market_label` into the core's label table; a bad value names its key path."""
    sc = cfg.section("scores")
    conf = cfg.section("confidence")
    return _core.LabelRules(
        iv_low=cfg.number("iv_low"),
        iv_high=cfg.number("iv_high"),
        trend_weak=cfg.number("trend_weak"),
        trend_strong=cfg.number("trend_strong"),
        trend_window=int(cfg.number("trend_window", low=2)),
        rsi_period=int(cfg.number("rsi_period", low=1)),
        rsi_bull=cfg.number("rsi_bull"),
        rsi_bear=cfg.number("rsi_bear"),
        roc_period=int(cfg.number("roc_period", low=1)),
        roc_bull=cfg.number("roc_bull"),
        roc_bear=cfg.number("roc_bear"),
        volume_window=int(cfg.number("volume_window", low=1)),
        volume_spike=cfg.number("volume_spike"),
        win_min_score=cfg.number("win_min_score"),
        score_vol_low_green=int(sc.number("vol_low_green")),
        score_vol_high_red=int(sc.number("vol_high_red")),
        score_vol_chop=int(sc.number("vol_chop")),
        score_trend=int(sc.number("trend")),
        score_trend_chop=int(sc.number("trend_chop")),
        score_momentum=int(sc.number("momentum")),
        score_momentum_chop=int(sc.number("momentum_chop")),
        score_volume=int(sc.number("volume")),
        confidence_base=conf.number("base"),
        confidence_strong_trend=conf.number("strong_trend"),
        confidence_moderate_trend=conf.number("moderate_trend"),
        confidence_clear_vol=conf.number("clear_vol"),
        confidence_momentum_agrees=conf.number("momentum_agrees"),
        confidence_cap=conf.number("cap"),
    )


def compile_tables(doc: Section) -> _core.ProtocolTables:
    """Compiles the protocol's thresholds into the core's typed tables; a bad value names its key path."""
    w = doc.section("week_types")
    lv = doc.section("protocol_levels")
    ar = doc.section("atr_regime")
    d = doc.section("drawdown_protection")
    v = doc.section("vix_breakers")
    return _core.ProtocolTables(
        put_worthless_min=w.number("put_worthless_min"),
        put_assigned_min=w.number("put_assigned_min"),
        deep_drawdown_below=w.number("deep_drawdown_below"),
        call_strong_min=w.number("call_strong_min"),
        call_appreciation_min=w.number("call_appreciation_min"),
        call_premium_min=w.number("call_premium_min"),
        call_roll_min=w.number("call_roll_min"),
        confidence_margin=w.number("confidence_margin"),
        confidence_high=w.number("confidence_high"),
        confidence_low=w.number("confidence_low"),
        level_excursion=list(lv.numbers("excursion", 3)),
        level_loss=list(lv.numbers("loss", 3)),
        atr_fallback_share=lv.number("atr_fallback_share"),
        regime_upper_pct=list(ar.numbers("upper_pct", 4)),
        regime_size_multiplier=list(ar.numbers("size_multiplier", 5)),
        protection_thresholds=list(d.numbers("thresholds", 4)),
        protection_multipliers=list(d.numbers("multipliers", 5)),
        step_down_recovery=d.number("step_down_recovery"),
        off_recovery=d.number("off_recovery"),
        max_adjustments_per_day=int(d.number("max_adjustments_per_day", low=0)),
        vix_hedged_at=v.number("hedged_at"),
        vix_hedged_multiplier=v.number("hedged_multiplier"),
        vix_reducing_at=v.number("reducing_at"),
        vix_halted_at=v.number("halted_at"),
    )


def _entry_rule(sec: Section) -> EntryRule:
    days = tuple(int(d) for d in sec.numbers("entry_days"))
    if any(d < 0 or d > 6 for d in days):
        raise InvalidInputError.of(f"{sec.path}.entry_days", "days are 0 (Monday) .. 6 (Sunday)")
    band = None if sec.raw("band") is None else sec.numbers("band", 2)
    m_label = sec.number("m_label", low=0, high=2) if days else 0.0
    if band is not None and not 0 <= band[0] <= band[1] <= 100:
        raise InvalidInputError.of(f"{sec.path}.band", f"must be [low, high] with 0 <= low <= high <= 100, got {band}")
    if days and band is None:
        raise InvalidInputError.of(f"{sec.path}.band", "is required when there are entry days")
    return EntryRule(days, (band[0], band[1]) if band else None, m_label)


def parse(data: Any, source: str = "protocol.yaml") -> ProtocolConfig:
    """Validates a loaded protocol document."""
    doc = Section(data, "")
    accounts_sec = doc.section("accounts")
    accounts: dict[str, AccountSpec] = {}
    for kind in ACCOUNT_TYPES:
        a = accounts_sec.section(kind)
        accounts[kind] = AccountSpec(
            kind=kind,
            name=str(a.raw("name")),
            allocation=a.number("allocation", low=0, high=1),
            buffer=a.number("buffer", low=0, high=1),
            weekly_target=a.number("weekly_target", low=-1, high=1),
            max_drawdown=a.number("max_drawdown", low=0.001, high=0.999),
            deployment_target=a.number("deployment_target", low=0, high=1),
            symbols=a.strings("symbols"),
            withdrawals=a.flag("withdrawals"),
            reinvestment=a.flag("reinvestment"),
            max_symbol_weight=(
                None if a.raw_or_none("max_symbol_weight") is None else a.number("max_symbol_weight", low=0, high=0.95)
            ),
        )
        if not accounts[kind].symbols:
            raise InvalidInputError.of(f"accounts.{kind}.symbols", "needs at least one symbol")
    total = sum(a.allocation for a in accounts.values())
    if abs(total - 1.0) > 1e-9:
        raise InvalidInputError.of("accounts", f"allocations must add up to 1, got {total}")
    rules_sec = doc.section("entry_rules")
    entry_rules = {
        (kind, label): _entry_rule(rules_sec.section(kind).section(label)) for kind in ACCOUNT_TYPES for label in LABELS
    }
    return ProtocolConfig(accounts=accounts, entry_rules=entry_rules, doc=doc)


def load_file(path: Path) -> ProtocolConfig:
    """Reads and validates one protocol file; errors name the file."""
    try:
        data = _yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInputError.of(path.name, f"cannot be read as YAML ({exc.__class__.__name__})") from None
    try:
        return parse(data, path.name)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{path.name}: {exc}", exc.field, exc.reason) from None


@functools.cache
def _from_file() -> ProtocolConfig:
    return load_file(PROTOCOL_FILE)


# The configuration `in_force` put in force for the current thread or task, if any.
_IN_FORCE: contextvars.ContextVar[ProtocolConfig | None] = contextvars.ContextVar("protocol_in_force", default=None)


def default() -> ProtocolConfig:
    """The configuration in config/protocol.yaml (read once per process), or the one `in_force` put in force."""
    return _IN_FORCE.get() or _from_file()


# Tests point PROTOCOL_FILE at another file and forget the one read.
default.cache_clear = _from_file.cache_clear  # type: ignore[attr-defined]


@contextlib.contextmanager
def in_force(config: ProtocolConfig) -> Iterator[ProtocolConfig]:
    """Makes `config` what default() returns inside the block (this thread or task only).

    A sweep's point runs a whole backtest under another configuration: the engine takes it as an argument, but
    the ledger (allocations, forks, merges, reinvestment) and the trust book read default(), so the point puts its
    configuration in force for the run instead of leaving those parts on the file's numbers.
    """
    token = _IN_FORCE.set(config)
    try:
        yield config
    finally:
        _IN_FORCE.reset(token)


def _leaf_kind(value: Any) -> str:
    """What a document value is, for comparing an override with the value it replaces."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return "null" if value is None else type(value).__name__


def _set_dotted(data: Any, key: str, value: Any) -> None:
    """Sets one dotted key of a loaded document (a list element by its index: `atr_regime.upper_pct.0`); the key
    must already be there and `value` of the same kind as the value it replaces (a null band takes a list)."""
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise InvalidInputError.of(key or "(empty)", "unknown parameter (a dotted key of protocol.yaml)")
    node = data
    for depth, part in enumerate(parts):
        where = ".".join(parts[: depth + 1])
        last = depth == len(parts) - 1
        if isinstance(node, Mapping) and part in node:
            holder, index = node, part
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            holder, index = node, int(part)  # type: ignore[assignment]
        else:
            raise InvalidInputError.of(key, f"unknown parameter: protocol.yaml has no {where!r}")
        if not last:
            node = holder[index]
            continue
        current = holder[index]
        if isinstance(current, Mapping):
            raise InvalidInputError.of(key, f"is a section; name one of its keys ({', '.join(map(str, current))})")
        old, new = _leaf_kind(current), _leaf_kind(value)
        if old != new and not (current is None and new == "a list") and not (old == "a list" and value is None):
            raise InvalidInputError.of(key, f"must be {old} like the value it replaces ({current!r}), got {value!r}")
        holder[index] = value  # type: ignore[index]


def value_at(config: ProtocolConfig, key: str) -> Any:
    """The document's value at a dotted key (a list element by its index); InvalidInputError names an unknown key."""
    node: Any = config.doc._data
    for part in key.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise InvalidInputError.of(key, f"unknown parameter: protocol.yaml has no {key!r}")
    return copy.deepcopy(node)


def with_overrides(config: ProtocolConfig, overrides: Mapping[str, Any]) -> ProtocolConfig:
    """A new configuration: `config`'s document with each dotted key set to its value, parsed and validated again
    with the machinery the file goes through (parse(), then every key of PROTOCOL_KEYS and the cross-checks).

    A key the document does not hold, a value of another kind than the one it replaces, or a value the checks
    refuse raises InvalidInputError naming the key (the cross-check's key when two values disagree).
    """
    data = copy.deepcopy(config.doc._data)
    for key, value in overrides.items():
        _set_dotted(data, key, copy.deepcopy(value))
    if (bad := _not_finite(overrides)) is not None:
        raise InvalidInputError.of(bad, "must be finite")
    try:
        out = parse(data, "overrides")
        validate(out, "overrides")
    except ConfigError as exc:
        raise InvalidInputError.of(exc.key, exc.reason) from None
    return out


def _not_finite(overrides: Mapping[str, Any]) -> str | None:
    """The first key whose value holds a NaN or an infinity (the checks' bounds do not all catch them)."""
    for key, value in overrides.items():
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            return key
    return None


# --- eager validation of every key the code reads -------------------------------------------------------------


class ConfigError(AllsuseError):
    """A configuration file holds a value the code cannot use: `file`, `key` (dotted path) and `reason`."""

    def __init__(self, file: str, key: str, reason: str) -> None:
        super().__init__(f"{file}: {key}: {reason}")
        self.file = file
        self.key = key
        self.reason = reason


@dataclass(frozen=True)
class Key:
    """One key of protocol.yaml that the code reads, and what it must hold.

    `path` is dotted; `*` stands for every key of that mapping (`accounts.*.symbols`). `kind`: number, numbers,
    strings, flag or text. Numbers (and each element of a list) lie in [low, high], and above `gt` / below `lt`
    when those are set; a list has `length` elements, strictly increasing when `order` is "increasing" and
    non-decreasing when "nondecreasing". `optional`: may be absent; `nullable`: may be null; `when`: read only
    when the enclosing mapping satisfies it.
    """

    path: str
    kind: str = "number"
    low: float | None = None
    high: float | None = None
    gt: float | None = None
    lt: float | None = None
    length: int | None = None
    order: str = ""
    optional: bool = False
    nullable: bool = False
    when: Callable[[Section], bool] | None = None


def _has_entry_days(sec: Section) -> bool:
    return bool(sec.numbers("entry_days"))


def _share(path: str) -> Key:
    """A fraction in [0, 1]."""
    return Key(path, low=0.0, high=1.0)


def _count(path: str) -> Key:
    """A number >= 0."""
    return Key(path, low=0.0)


def _band(path: str, *, nullable: bool = False) -> Key:
    """A delta band [low, high] in whole numbers."""
    return Key(path, "numbers", low=0.0, high=100.0, length=2, order="nondecreasing", nullable=nullable)


# Every key the engine, the backtest, the market label, trust, accounts and the server read, with the bounds they
# read it with (or stricter).
PROTOCOL_KEYS: tuple[Key, ...] = (
    # section 1: accounts
    Key("accounts.*.name", "text"),
    _share("accounts.*.allocation"),
    _share("accounts.*.buffer"),
    Key("accounts.*.weekly_target", low=-1.0, high=1.0),
    Key("accounts.*.max_drawdown", low=0.001, high=0.999),
    Key("accounts.*.symbols", "strings"),
    Key("accounts.*.withdrawals", "flag"),
    Key("accounts.*.reinvestment", "flag"),
    Key("accounts.*.deployment_target", gt=0.0, high=1.0),  # <= max_deployment
    Key("accounts.*.max_symbol_weight", gt=0.0, high=1.0, optional=True),  # see _check_symbol_weight
    _share("reinvestment.leaps_share"),
    _share("projection.reinvest_share"),
    Key("projection.market_years.*", "numbers", length=2, low=0.0),
    _count("forking.surplus_threshold"),
    _share("forking.new_gen_share"),
    _count("merging.threshold"),
    _share("near_fork_share"),
    # stress tests (allsuse.protocol.stress)
    Key("stress.historical_window_days", low=1.0, high=60.0),
    Key("stress.scenarios.*.move", gt=-1.0, high=10.0),
    Key("stress.scenarios.*.vix_multiplier", gt=0.0, high=20.0),
    # section 2: market label
    Key("market_label.min_bars", low=2.0),
    Key("market_label.iv_low", low=0.0),
    Key("market_label.iv_high", low=0.0),
    _share("market_label.trend_weak"),
    _share("market_label.trend_strong"),
    Key("market_label.trend_window", low=2.0),
    Key("market_label.rsi_period", low=1.0),
    Key("market_label.rsi_bull", low=0.0, high=100.0),
    Key("market_label.rsi_bear", low=0.0, high=100.0),
    Key("market_label.roc_period", low=1.0),
    Key("market_label.roc_bull"),
    Key("market_label.roc_bear"),
    Key("market_label.volume_window", low=1.0),
    Key("market_label.volume_spike", low=0.0),
    Key("market_label.win_min_score", low=0.0),
    *(
        Key(f"market_label.scores.{k}", low=0.0)
        for k in ("vol_low_green", "vol_high_red", "vol_chop", "trend", "trend_chop", "momentum", "momentum_chop")
    ),
    Key("market_label.scores.volume", low=0.0),
    *(
        _share(f"market_label.confidence.{k}")
        for k in ("base", "strong_trend", "moderate_trend", "clear_vol", "momentum_agrees", "cap")
    ),
    # section 3: entry rules
    Key("entry_rules.*.*.entry_days", "numbers", low=0.0, high=6.0),
    _band("entry_rules.*.*.band", nullable=True),
    Key("entry_rules.*.*.m_label", low=0.0, high=2.0, when=_has_entry_days),
    _share("max_deployment"),
    Key("expiry.entry_max_dte", low=1.0),
    Key("cash_settled", "strings"),
    # section 4: week types
    *(
        Key(f"week_types.{k}")
        for k in (
            "put_worthless_min",
            "put_assigned_min",
            "deep_drawdown_below",
            "call_strong_min",
            "call_appreciation_min",
            "call_premium_min",
            "call_roll_min",
        )
    ),
    Key("week_types.confidence_margin", low=0.0),
    _share("week_types.confidence_high"),
    _share("week_types.confidence_low"),
    Key("week_types.roll_max_debit_share", low=0.0),
    # section 5: protocol levels and ATR regime
    Key("protocol_levels.excursion", "numbers", length=3, low=0.0, order="increasing"),
    Key("protocol_levels.loss", "numbers", length=3, low=0.0, high=1.0, order="increasing"),
    Key("protocol_levels.atr_period", low=1.0),
    Key("protocol_levels.atr_fallback_share", gt=0.0, high=1.0),
    *(_share(f"protocol_levels.take_profit.{kind}") for kind in ACCOUNT_TYPES),
    Key("protocol_levels.rev_roll_excursion", low=0.0),
    Key("atr_regime.period", low=1.0),
    Key("atr_regime.upper_pct", "numbers", length=4, low=0.0, order="increasing"),
    Key("atr_regime.size_multiplier", "numbers", length=5, low=0.0),
    Key("atr_regime_fallback_pct", low=0.0),
    # section 6: risk
    Key("risk.es_confidence", low=0.5, high=0.9999),
    _share("risk.es_budget_share"),
    Key("risk.scenario_days", low=1.0),
    Key("risk.symbol_cap_share", gt=0.0, high=1.0),
    Key("risk.tail_q", gt=0.0, lt=1.0),
    _share("risk.tail_dependence_limit"),
    Key("drawdown_protection.thresholds", "numbers", length=4, low=0.0, high=1.0, order="increasing"),
    Key("drawdown_protection.multipliers", "numbers", length=5, low=0.0),
    Key("drawdown_protection.light_vol_cut.annual_vol_above", low=0.0),
    _share("drawdown_protection.light_vol_cut.cut"),
    Key("drawdown_protection.cuts", "numbers", length=5, low=0.0, high=1.0),
    _count("drawdown_protection.emergency_close_count"),
    _share("drawdown_protection.step_down_recovery"),
    _share("drawdown_protection.off_recovery"),
    _count("drawdown_protection.max_adjustments_per_day"),
    _count("drawdown_budget.multiplier"),
    Key("vix_breakers.hedged_at", low=0.0),
    _share("vix_breakers.hedged_multiplier"),
    Key("vix_breakers.reducing_at", low=0.0),
    Key("vix_breakers.halted_at", low=0.0),
    Key("vix_proxy_ratio", gt=0.0),
    Key("vix_proxy_window", low=2.0),
    Key("scenarios.method", "text"),
    Key("scenarios.monte_carlo.paths", low=1.0, high=1_000_000.0),
    Key("scenarios.monte_carlo.seed", low=0.0),
    Key("scenarios.iv_move_sensitivity", low=0.0),
    Key("scenarios.horizon_days", low=0.0),
    # section 8: sizing
    _share("sizing.covered_call_cap_share"),
    Key("sizing.max_contracts_per_order", low=1.0),
    _band("covered_calls.band"),
    _band("covered_calls.recovery_band"),
    _band("covered_calls.roll_down_band"),
    # section 10: decisions and trust
    *(
        _share(f"trust.{k}")
        for k in ("initial", "auto_threshold", "confidence_threshold", "reward", "penalty", "weekly_decay", "floor")
    ),
    *(_share(f"decision_confidence.{k}") for k in ("hold_enhanced", "hold_normal", "roll", "close")),
)


def _mappings(sec: Section, parts: list[str]) -> Iterator[tuple[Section, str]]:
    """Each (enclosing mapping, key) that a dotted path with `*` wildcards names."""
    head, rest = parts[0], parts[1:]
    if not rest:
        names = sec.keys() if head == "*" else [head]
        yield from ((sec, k) for k in names)
        return
    names = sec.keys() if head == "*" else [head]
    for key in names:
        yield from _mappings(sec.section(key), rest)


def _bounded(key: Key, where: str, value: float) -> None:
    if key.low is not None and value < key.low:
        raise InvalidInputError.of(where, f"must be >= {key.low:g}, got {value:g}")
    if key.high is not None and value > key.high:
        raise InvalidInputError.of(where, f"must be <= {key.high:g}, got {value:g}")
    if key.gt is not None and not value > key.gt:
        raise InvalidInputError.of(where, f"must be > {key.gt:g}, got {value:g}")
    if key.lt is not None and not value < key.lt:
        raise InvalidInputError.of(where, f"must be < {key.lt:g}, got {value:g}")


def _check_key(key: Key, sec: Section, name: str) -> None:
    where = sec._key(name)
    if not sec.has(name):
        if key.optional:
            return
        raise InvalidInputError.of(where, "is missing")
    if key.when is not None and not key.when(sec):
        return
    raw = sec.raw(name)
    if raw is None and key.nullable:
        return
    if key.kind == "number":
        _bounded(key, where, sec.number(name))
    elif key.kind == "numbers":
        values = sec.numbers(name, key.length)
        for v in values:
            _bounded(key, where, v)
        pairs = list(itertools.pairwise(values))
        if key.order == "increasing" and any(b <= a for a, b in pairs):
            raise InvalidInputError.of(where, f"must increase strictly, got {list(values)}")
        if key.order == "nondecreasing" and any(b < a for a, b in pairs):
            raise InvalidInputError.of(where, f"must not decrease, got {list(values)}")
    elif key.kind == "strings":
        sec.strings(name)
    elif key.kind == "flag":
        sec.flag(name)
    elif key.kind == "text":
        if not isinstance(raw, str) or not raw.strip():
            raise InvalidInputError.of(where, f"must be a non-empty string, got {raw!r}")
    else:  # a mistake in the table itself
        raise InvalidInputError.of(where, f"unknown kind {key.kind!r} in settings.PROTOCOL_KEYS")


def _check_vix_breakers(doc: Section) -> None:
    v = doc.section("vix_breakers")
    hedged, reducing, halted = v.number("hedged_at"), v.number("reducing_at"), v.number("halted_at")
    if not hedged < reducing:
        raise InvalidInputError.of(
            "vix_breakers.reducing_at", f"must be above hedged_at ({hedged:g}), got {reducing:g}"
        )
    if not reducing < halted:
        raise InvalidInputError.of(
            "vix_breakers.halted_at", f"must be above reducing_at ({reducing:g}), got {halted:g}"
        )


def _check_deployment(doc: Section) -> None:
    """Section 8: a deployment target and a symbol weight never pass the share left after the buffer."""
    ceiling = doc.number("max_deployment")
    symbol_cap = doc.section("risk").number("symbol_cap_share")
    accounts = doc.section("accounts")
    kinds = accounts.keys()
    for kind in kinds:
        a = accounts.section(kind)
        limit = min(ceiling, 1.0 - a.number("buffer"))
        if a.has("deployment_target") and a.number("deployment_target") > limit:
            raise InvalidInputError.of(
                f"accounts.{kind}.deployment_target",
                f"must be <= {limit:g} (max_deployment and 1 - buffer), got {a.number('deployment_target'):g}",
            )
        if a.has("max_symbol_weight"):
            weight = a.number("max_symbol_weight")
            if weight > limit:
                raise InvalidInputError.of(
                    f"accounts.{kind}.max_symbol_weight", f"must be <= {limit:g} (max_deployment), got {weight:g}"
                )
            symbols = a.strings("symbols")
            if weight > symbol_cap and len(symbols) != 1:
                raise InvalidInputError.of(
                    f"accounts.{kind}.max_symbol_weight",
                    f"may exceed risk.symbol_cap_share ({symbol_cap:g}) only for an account with a single symbol; "
                    f"{kind} has {len(symbols)}",
                )


def strike_grid(doc: Section) -> tuple[tuple[float, float], ...]:
    """Section 9's synthetic strike grid as (below, step) tiers; the last bound is infinite."""
    raw = doc.raw("strike_grid")
    if not isinstance(raw, list) or not raw:
        raise InvalidInputError.of("strike_grid", "must be a list of [below, step] tiers")
    tiers: list[tuple[float, float]] = []
    for i, tier in enumerate(raw):
        if not (isinstance(tier, list) and len(tier) == 2 and all(isinstance(x, int | float) for x in tier)):
            raise InvalidInputError.of(f"strike_grid[{i}]", f"must be [below, step] numbers, got {tier!r}")
        below, step = float(tier[0]), float(tier[1])
        if not (math.isfinite(step) and step >= 0.01) or math.isnan(below) or below <= 0:
            raise InvalidInputError.of(
                f"strike_grid[{i}]", f"needs below > 0 and a step of at least 0.01, got {tier!r}"
            )
        if tiers and below <= tiers[-1][0]:
            raise InvalidInputError.of(f"strike_grid[{i}]", "bounds must increase")
        tiers.append((below, step))
    if math.isfinite(tiers[-1][0]):
        raise InvalidInputError.of(f"strike_grid[{len(tiers) - 1}]", "the last tier's bound must be .inf")
    return tuple(tiers)


def _check_strike_grid(doc: Section) -> None:
    strike_grid(doc)


def _check_scenarios(doc: Section) -> None:
    """Section 6: historical scenarios by default, Monte Carlo as an option."""
    method = str(doc.section("scenarios").raw("method"))
    if method not in SCENARIO_METHODS:
        raise InvalidInputError.of("scenarios.method", f"must be one of {', '.join(SCENARIO_METHODS)}, got {method!r}")


SCENARIO_METHODS = ("historical", "monte_carlo")

# Checks across keys, after every key of the table has been read.
CROSS_CHECKS: tuple[Callable[[Section], None], ...] = (
    _check_vix_breakers,
    _check_deployment,
    _check_scenarios,
    _check_strike_grid,
)


def validate(config: ProtocolConfig, source: str = "protocol.yaml") -> None:
    """Reads every key of PROTOCOL_KEYS (and the cross-checks) now; raises ConfigError naming `source` and the key."""
    try:
        for key in PROTOCOL_KEYS:
            for sec, name in _mappings(config.doc, key.path.split(".")):
                _check_key(key, sec, name)
        for check in CROSS_CHECKS:
            check(config.doc)
    except InvalidInputError as exc:
        raise ConfigError(source, exc.field or "", exc.reason or str(exc)) from None


def load_validated(path: Path | None = None) -> ProtocolConfig:
    """Reads, parses and validates a protocol file (default: PROTOCOL_FILE); any problem is a ConfigError."""
    target = PROTOCOL_FILE if path is None else path
    try:
        config = load_file(target)
    except InvalidInputError as exc:
        raise ConfigError(str(target), exc.field or target.name, exc.reason or str(exc)) from None
    validate(config, str(target))
    return config


def validate_default() -> ProtocolConfig:
    """What the server calls at start: the configuration the engine will use (`default()`), every key read."""
    try:
        config = default()
    except InvalidInputError as exc:
        raise ConfigError(str(PROTOCOL_FILE), exc.field or PROTOCOL_FILE.name, exc.reason or str(exc)) from None
    validate(config, str(PROTOCOL_FILE))
    return config
