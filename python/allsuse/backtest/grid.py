"""A sweep's grid: a YAML mapping from dotted keys of config/protocol.yaml to lists of values, whose cartesian
product is the set of points a sweep runs.

    accounts.gen.max_drawdown: [0.10, 0.15]
    drawdown_budget.multiplier: [1.0, 2.0, 3.0]
    entry_rules.gen.green.band: [[25, 35], [30, 40]]   # a list-valued parameter takes one list per point

Every error names the grid file, the line (from the YAML node's mark) and the parameter, and is raised before any
backtest runs: each value is applied alone to the protocol and validated, then every point as a whole (the
cross-checks, such as the VIX breakers' order, see values together).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from allsuse.errors import InvalidInputError
from allsuse.protocol import settings


@dataclass(frozen=True)
class Parameter:
    """One line of the grid: a dotted protocol key, the values it takes, and the line that names it."""

    key: str
    values: tuple[Any, ...]
    line: int


@dataclass(frozen=True)
class Grid:
    """The parsed grid file; `points()` is the cartesian product in file order (the last key varies fastest)."""

    path: Path
    parameters: tuple[Parameter, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        """The dotted keys, in file order."""
        return tuple(p.key for p in self.parameters)

    def points(self) -> list[dict[str, Any]]:
        """Every combination of values, as {key: value}."""
        return [
            dict(zip(self.keys, combo, strict=True))
            for combo in itertools.product(*(p.values for p in self.parameters))
        ]

    def _error(self, lines: list[int], reason: str) -> InvalidInputError:
        where = f"line {lines[0]}" if len(lines) == 1 else "lines " + ", ".join(map(str, lines))
        return InvalidInputError(f"{self.path.name}: {where}: {reason}", "grid", reason)

    def configs(self, base: settings.ProtocolConfig) -> list[settings.ProtocolConfig]:
        """The validated protocol configuration of every point, in the order of points().

        Each value is first checked alone against `base` (so the error names its line); a point whose values are
        each valid but refused together names every line of the grid and the point's values.
        """
        for p in self.parameters:
            for value in p.values:
                try:
                    settings.with_overrides(base, {p.key: value})
                except InvalidInputError as exc:
                    raise self._error([p.line], str(exc)) from None
        out = []
        for point in self.points():
            try:
                out.append(settings.with_overrides(base, point))
            except InvalidInputError as exc:
                values = ", ".join(f"{k}={v!r}" for k, v in point.items())
                raise self._error([p.line for p in self.parameters], f"the point {values}: {exc}") from None
        return out


def _fail(path: Path, line: int | None, reason: str) -> InvalidInputError:
    where = f"{path.name}: line {line}: " if line is not None else f"{path.name}: "
    return InvalidInputError(f"{where}{reason}", "grid", reason)


def load_grid(path: Path) -> Grid:
    """Reads a grid file; a missing file, bad YAML, a key named twice, a value that is not a non-empty list of
    distinct values, or an empty grid raise InvalidInputError naming the file and the line."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidInputError(f"--grid {path}: cannot be read ({exc.strerror})", "grid", "unreadable") from None
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise _fail(path, None, "the grid is empty: name at least one parameter and its values")
        if not isinstance(root, yaml.MappingNode):
            raise _fail(path, root.start_mark.line + 1, "must be a mapping of dotted protocol keys to lists of values")
        parameters: list[Parameter] = []
        for key_node, value_node in root.value:
            line = key_node.start_mark.line + 1
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise _fail(path, line, f"{key!r}: a parameter is a dotted key of protocol.yaml")
            if any(p.key == key for p in parameters):
                raise _fail(path, line, f"{key}: is named twice")
            value = loader.construct_object(value_node, deep=True)
            if not isinstance(value, list):
                raise _fail(path, line, f"{key}: must be a list of values, got {value!r}")
            if not value:
                raise _fail(path, line, f"{key}: must list at least one value")
            for i, v in enumerate(value):
                if v in value[:i]:
                    raise _fail(path, line, f"{key}: {v!r} is listed twice")
            parameters.append(Parameter(key, tuple(value), line))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise _fail(path, line, f"is not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    finally:
        loader.dispose()
    if not parameters:
        raise _fail(path, None, "the grid is empty: name at least one parameter and its values")
    return Grid(path, tuple(parameters))
