"""The compliance rule set (PROTOCOL section 7), compiled and evaluated by the core.

`RuleBook.load(path)` reads config/rules.yaml; `reload(path)` swaps in a new rule set only when it
compiles, so a bad file keeps the old rules in force and raises an error naming the file, rule and field.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from allsuse import _core
from allsuse.errors import InvalidInputError

DEFAULT_RULES = Path(__file__).resolve().parents[2] / "config" / "rules.yaml"


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


def compile_file(path: Path) -> _core.RuleSet:
    """Reads and compiles a rule file; any problem names the file (and the rule and field when it is one)."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise InvalidInputError(f"{path.name}: cannot be read ({exc.strerror})", path.name, "unreadable") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InvalidInputError(f"{path.name}: not valid YAML{where}", path.name, "invalid YAML") from None
    try:
        return _core.RuleSet(json.dumps(data))
    except InvalidInputError as exc:
        raise InvalidInputError(f"{path.name}: {exc}", f"{path.name}:{exc.field}", exc.reason) from None


class RuleBook:
    """The rule set in force, swappable at run time without a restart."""

    def __init__(self, rules: _core.RuleSet, source: Path) -> None:
        self._rules = rules
        self._source = source
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path = DEFAULT_RULES) -> RuleBook:
        """Compiles the rule file at `path`."""
        return cls(compile_file(path), path)

    @property
    def codes(self) -> list[str]:
        """Codes of the rules in force."""
        return self._rules.codes()

    def reload(self, path: Path | None = None) -> None:
        """Compiles `path` (default: the file last loaded) and swaps it in; on error the old set stays."""
        target = path or self._source
        fresh = compile_file(target)
        with self._lock:
            self._rules = fresh
            self._source = target

    def evaluate(self, context: dict[str, Any]) -> Compliance:
        """Evaluates the rules that apply to `context["kind"]`."""
        rules = self._rules
        results, outcome = rules.evaluate(json.dumps(context))
        return Compliance(tuple(RuleResult(*r) for r in results), outcome)
