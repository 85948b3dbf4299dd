"""The alert system's rules, apart from any I/O: severities, routes and their filters, de-duplication, burst
aggregation and per-route rate limits (docs/monitoring.md, "Alerts"). The service's AlertSystem
(allsuse.server.alerting) stores, streams and delivers what these rules let through.

Severities, lowest first: INFO < LOW < MEDIUM < HIGH < CRITICAL. The older names map onto them: info -> INFO,
warning -> MEDIUM, critical -> CRITICAL.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from allsuse.errors import InvalidInputError

SEVERITIES = ("INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL")
LEGACY = {"info": "INFO", "warning": "MEDIUM", "critical": "CRITICAL"}
ROUTE_KINDS = ("log", "webhook")


def severity(name: str, field_name: str = "severity") -> str:
    """The canonical severity of `name` (either spelling, any case); InvalidInputError otherwise."""
    text = str(name).strip()
    upper = text.upper()
    if upper in SEVERITIES:
        return upper
    legacy = LEGACY.get(text.lower())
    if legacy is not None:
        return legacy
    raise InvalidInputError.of(field_name, f"must be one of {', '.join(SEVERITIES)}, got {name!r}")


def at_least(value: str, floor: str) -> bool:
    """Whether severity `value` is `floor` or above."""
    return SEVERITIES.index(severity(value)) >= SEVERITIES.index(severity(floor))


@dataclass(frozen=True)
class Route:
    """Where matching alerts go: a log line or a webhook POST, filtered by severity, portfolio and code."""

    name: str
    kind: str = "log"
    min_severity: str = "INFO"
    portfolios: frozenset[str] = frozenset()
    codes: frozenset[str] = frozenset()
    url: str = ""
    timeout_seconds: float = 2.0
    retries: int = 3
    rate_per_minute: float = 60.0

    def matches(self, alert: Mapping[str, Any]) -> bool:
        """Whether an alert passes this route's filters (empty sets let everything through)."""
        if not at_least(str(alert.get("severity", "INFO")), self.min_severity):
            return False
        if self.portfolios and alert.get("portfolio_id", "") not in self.portfolios:
            return False
        return not (self.codes and alert.get("code", "") not in self.codes)


def _route(raw: Any, i: int) -> Route:
    where = f"routes[{i}]"
    if not isinstance(raw, Mapping):
        raise InvalidInputError.of(where, "must be a mapping")
    known = {"name", "kind", "min_severity", "portfolios", "codes", "url", "timeout_seconds", "retries",
             "rate_per_minute"}  # fmt: skip
    extra = set(raw) - known
    if extra:
        raise InvalidInputError.of(f"{where}.{sorted(extra)[0]}", "is not a route setting")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError.of(f"{where}.name", "must be a non-empty string")
    kind = raw.get("kind", "log")
    if kind not in ROUTE_KINDS:
        raise InvalidInputError.of(f"{where}.kind", f"must be one of {', '.join(ROUTE_KINDS)}, got {kind!r}")
    url = str(raw.get("url", ""))
    if kind == "webhook" and not url.startswith(("http://", "https://")):
        raise InvalidInputError.of(f"{where}.url", f"a webhook needs an http(s) URL, got {url!r}")
    lists = {}
    for key in ("portfolios", "codes"):
        value = raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidInputError.of(f"{where}.{key}", "must be a list of strings")
        lists[key] = frozenset(value)
    numbers = {}
    for key, low, high in (("timeout_seconds", 0.01, 60.0), ("retries", 0, 10), ("rate_per_minute", 0.01, 1e6)):
        value = raw.get(key, getattr(Route, key))
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise InvalidInputError.of(f"{where}.{key}", f"must be a number in [{low}, {high}], got {value!r}")
        numbers[key] = value
    return Route(
        name,
        kind,
        severity(raw.get("min_severity", "INFO"), f"{where}.min_severity"),
        lists["portfolios"],
        lists["codes"],
        url,
        float(numbers["timeout_seconds"]),
        int(numbers["retries"]),
        float(numbers["rate_per_minute"]),
    )


def load_routes(path: str | Path | None) -> tuple[Route, ...]:
    """The routes of a YAML file (`routes: [...]`); no file means one log route for every alert."""
    if not path:
        return (Route("log"),)
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise InvalidInputError.of("monitoring.alert_routes_file", f"{path}: cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise InvalidInputError.of("monitoring.alert_routes_file", f"{path}: not YAML ({exc})") from None
    if not isinstance(doc, Mapping) or not isinstance(doc.get("routes"), list):
        raise InvalidInputError.of("monitoring.alert_routes_file", f"{path}: must hold `routes:` with a list")
    routes = tuple(_route(r, i) for i, r in enumerate(doc["routes"]))
    names = [r.name for r in routes]
    if len(set(names)) != len(names):
        raise InvalidInputError.of("monitoring.alert_routes_file", f"{path}: route names must be unique")
    return routes


def dedupe_key(alert: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """Alerts with the same code, portfolio, account and message are repeats of one another."""
    return (
        str(alert.get("code", "")),
        str(alert.get("portfolio_id", "")),
        str(alert.get("account_id", "")),
        str(alert.get("message", "")),
    )


@dataclass
class Dedupe:
    """Remembers the alerts of the last `window` seconds: a repeat is counted on the first one, not raised again."""

    window: float
    seen: dict[tuple[str, str, str, str], tuple[str, float, int]] = field(default_factory=dict)

    def repeat_of(self, alert: Mapping[str, Any], now: float) -> tuple[str, int] | None:
        """(the first alert's id, the new count) when `alert` repeats one of the window, else None."""
        self._expire(now)
        key = dedupe_key(alert)
        found = self.seen.get(key)
        if found is None:
            return None
        alert_id, first, count = found
        self.seen[key] = (alert_id, first, count + 1)
        return alert_id, count + 1

    def remember(self, alert: Mapping[str, Any], alert_id: str, now: float) -> None:
        self.seen[dedupe_key(alert)] = (alert_id, now, 1)

    def _expire(self, now: float) -> None:
        for key in [k for k, (_, first, _) in self.seen.items() if now - first >= self.window]:
            del self.seen[key]


@dataclass
class Burst:
    """Lets at most `limit` alerts through in any `window` seconds; the rest of the window is held back and summed
    into one summary alert when the window closes (`flush`)."""

    limit: int
    window: float
    recent: deque[float] = field(default_factory=deque)
    held: list[Mapping[str, Any]] = field(default_factory=list)
    held_since: float | None = None

    def admit(self, now: float) -> bool:
        """Whether an alert at `now` is delivered on its own (else hold it)."""
        while self.recent and now - self.recent[0] >= self.window:
            self.recent.popleft()
        if self.held_since is None and len(self.recent) < self.limit:
            self.recent.append(now)
            return True
        return False

    def hold(self, alert: Mapping[str, Any], now: float) -> None:
        if self.held_since is None:
            self.held_since = now
        self.held.append(alert)

    def flush(self, now: float, force: bool = False) -> list[Mapping[str, Any]]:
        """The held alerts once their window has closed (or `force`), else none; the window starts afresh."""
        if self.held_since is None or (not force and now - self.held_since < self.window):
            return []
        held, self.held, self.held_since = self.held, [], None
        self.recent.clear()
        return held

    @staticmethod
    def summary(held: list[Mapping[str, Any]]) -> dict[str, Any]:
        """One ALERT_BURST alert summing held alerts: the highest severity, counts by code, their ids."""
        codes: dict[str, int] = {}
        for a in held:
            codes[str(a.get("code", ""))] = codes.get(str(a.get("code", "")), 0) + 1
        top = max((severity(str(a.get("severity", "INFO"))) for a in held), key=SEVERITIES.index)
        portfolios = sorted({str(a.get("portfolio_id", "")) for a in held} - {""})
        listing = ", ".join(f"{c} x{n}" for c, n in sorted(codes.items(), key=lambda kv: (-kv[1], kv[0])))
        return {
            "severity": top,
            "code": "ALERT_BURST",
            "portfolio_id": portfolios[0] if len(portfolios) == 1 else "",
            "message": f"{len(held)} alerts held back in a burst: {listing}",
            "held": len(held),
            "codes": codes,
            "alert_ids": [str(a.get("alert_id", "")) for a in held],
        }


@dataclass
class RateLimit:
    """A token bucket per route: `rate_per_minute` deliveries a minute, bursts up to the same number."""

    rate_per_minute: float
    tokens: float = math.nan
    last: float = math.nan

    def allow(self, now: float) -> bool:
        """Whether a delivery at `now` (seconds) fits the bucket; takes a token when it does."""
        if math.isnan(self.tokens):
            self.tokens, self.last = max(self.rate_per_minute, 1.0), now
        self.tokens = min(max(self.rate_per_minute, 1.0), self.tokens + (now - self.last) * self.rate_per_minute / 60)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def matching(routes: Iterable[Route], alert: Mapping[str, Any]) -> list[Route]:
    """The routes an alert goes to."""
    return [r for r in routes if r.matches(alert)]


__all__ = [
    "LEGACY",
    "SEVERITIES",
    "Burst",
    "Dedupe",
    "RateLimit",
    "Route",
    "at_least",
    "dedupe_key",
    "load_routes",
    "matching",
    "severity",
]
