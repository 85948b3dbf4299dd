"""The compliance rule set (PROTOCOL section 7), compiled and evaluated by the core.

`RuleBook.load(path)` reads config/rules.yaml; `reload(path)` swaps in a new rule set only when it
compiles, so a bad file keeps the old rules in force and raises an error naming the file, rule and field.

R11's VIX thresholds are rule parameters; the engine sizes with config/protocol.yaml `vix_breakers`. So that
the two can never disagree, a rule file whose thresholds differ from the protocol file's is refused on load
and on reload.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from allsuse import _core, _yaml
from allsuse.config import CONFIG_DIR
from allsuse.errors import InvalidInputError

if TYPE_CHECKING:
    from allsuse.protocol.settings import ProtocolConfig

DEFAULT_RULES = CONFIG_DIR / "rules.yaml"
VIX_RULE = "R11_VIX_BREAKER"
VIX_THRESHOLDS = ("hedged_at", "reducing_at", "halted_at")


@dataclass(frozen=True)
class RuleResult:
    """One rule's verdict: `message` reads `CODE: key=value ...`."""

    code: str
    severity: str
    passed: bool
    message: str


@dataclass(frozen=True)
class Compliance:
    """Every applicable rule's result and the outcome they imply."""

    results: tuple[RuleResult, ...]
    outcome: str  # APPROVED, APPROVED_WITH_WARNINGS, REQUIRES_APPROVAL, REJECTED

    @property
    def failures(self) -> tuple[RuleResult, ...]:
        """The rules that failed."""
        return tuple(r for r in self.results if not r.passed)


def compile_file(path: Path, protocol: ProtocolConfig | None = None) -> _core.RuleSet:
    """Reads and compiles a rule file; any problem names the file (and the rule and field when it is one).

    R11's thresholds are checked against `protocol` (default: config/protocol.yaml).
    """
    try:
        data = _yaml.safe_load(path.read_text())
    except OSError as exc:
        raise InvalidInputError(f"{path.name}: cannot be read ({exc.strerror})", path.name, "unreadable") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InvalidInputError(f"{path.name}: not valid YAML{where}", path.name, "invalid YAML") from None
    try:
        rules = _core.RuleSet(json.dumps(data))
    except InvalidInputError as exc:
        raise InvalidInputError(f"{path.name}: {exc}", f"{path.name}:{exc.field}", exc.reason) from None
    check_vix_thresholds(rules, path.name, protocol)
    return rules


def check_vix_thresholds(rules: _core.RuleSet, source: str, protocol: ProtocolConfig | None = None) -> None:
    """R11's thresholds must equal protocol.yaml `vix_breakers`; a rule set without R11 has nothing to check."""
    from allsuse.protocol import settings  # here, not at the top: allsuse.protocol imports this module

    breakers = (protocol or settings.default()).doc.section("vix_breakers")
    for key in VIX_THRESHOLDS:
        ours = rules.number_param(VIX_RULE, key)
        if ours is None:
            continue
        theirs = breakers.number(key)
        if ours != theirs:
            field = f"{VIX_RULE}.params.{key}"
            reason = f"is {ours:g} but protocol.yaml vix_breakers.{key} is {theirs:g}; the two must agree"
            raise InvalidInputError(f"{source}: {field}: {reason}", f"{source}:{field}", reason)


class RuleBook:
    """The rule set in force, swappable at run time without a restart."""

    def __init__(self, rules: _core.RuleSet, source: Path, protocol: ProtocolConfig | None = None) -> None:
        self._rules = rules
        self._source = source
        self._protocol = protocol
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path = DEFAULT_RULES, protocol: ProtocolConfig | None = None) -> RuleBook:
        """Compiles the rule file at `path`, its R11 thresholds checked against `protocol` (default: the file)."""
        return cls(compile_file(path, protocol), path, protocol)

    @property
    def codes(self) -> list[str]:
        """Codes of the rules in force."""
        return self._rules.codes()

    def reload(self, path: Path | None = None) -> None:
        """Compiles `path` (default: the file last loaded) and swaps it in; on error the old set stays."""
        target = path or self._source
        fresh = compile_file(target, self._protocol)
        with self._lock:
            self._rules = fresh
            self._source = target

    @property
    def compiled(self) -> _core.RuleSet:
        """The compiled rule set in force (the core's decision flow runs it directly)."""
        return self._rules

    def check(self, context: _core.RuleContext) -> Compliance:
        """Evaluates the rules that apply to a typed context (the engine's path: no JSON, no dict)."""
        checked = self._rules.check(context)
        return Compliance(
            tuple(RuleResult(r.code, r.severity, r.passed, r.message) for r in checked.results), checked.outcome
        )

    def evaluate(self, context: dict[str, Any]) -> Compliance:
        """Evaluates the rules that apply to `context["kind"]`, a context given as data (CheckCompliance's JSON):
        unknown and mistyped fields are refused by name."""
        rules = self._rules
        results, outcome = rules.evaluate(json.dumps(context))
        return Compliance(tuple(RuleResult(*r) for r in results), outcome)
