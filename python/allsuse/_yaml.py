"""YAML read with libyaml's parser where PyYAML was built with it (the same safe schema and the same data, several
times faster than the pure-Python parser: a backtest or a service start reads the protocol and the rule book)."""

from __future__ import annotations

from typing import Any

import yaml

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str) -> Any:
    """`yaml.safe_load(text)`, through libyaml when present; raises yaml.YAMLError (with its mark) as it does."""
    return yaml.load(text, Loader=_LOADER)  # a safe loader, C or Python
