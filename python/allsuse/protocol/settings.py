"""The protocol's numbers, read from config/protocol.yaml and validated once.

Every threshold the engine uses comes from here, so an operator changes one without a release.
An invalid value raises InvalidInputError naming the key path (e.g. `entry_rules.gen.green.band`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from allsuse.errors import InvalidInputError

CONFIG_DIR = Path(__file__).resolve().parents[3] / "config"
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
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInputError.of(path.name, f"cannot be read as YAML ({exc.__class__.__name__})") from None
    try:
        return parse(data, path.name)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{path.name}: {exc}", exc.field, exc.reason) from None


@functools.cache
def default() -> ProtocolConfig:
    """The configuration in config/protocol.yaml (read once per process)."""
    return load_file(CONFIG_DIR / "protocol.yaml")
