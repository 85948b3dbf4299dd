"""`allsuse._frozen.made`: the engine's hot-path dataclasses made without their __init__ are the instances the
__init__ builds (equal, hashable alike, still frozen); a field left out or unknown, or a class with a
__post_init__, is refused at once."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from allsuse._frozen import made
from allsuse.protocol.engine import Effects
from allsuse.rules import RuleResult


def test_made_is_what_the_init_builds() -> None:
    values = dict(code="R01", severity="error", passed=True, message="R01: ok")
    fast, slow = made(RuleResult, **values), RuleResult(**values)
    assert fast == slow and hash(fast) == hash(slow) and dataclasses.asdict(fast) == dataclasses.asdict(slow)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.passed = False  # type: ignore[misc]
    effects = dict(
        account_id="a",
        as_of=dt.datetime(2024, 3, 7, 15, 45),
        counts_order=True,
        freeze_until=None,
        cut_key=None,
        cut_level=0,
        reducing=False,
    )
    assert made(Effects, **effects) == Effects(**effects)


def test_a_missing_or_unknown_field_or_a_post_init_is_refused() -> None:
    with pytest.raises(TypeError, match="needs exactly its fields"):
        made(RuleResult, code="R01", severity="error", passed=True)
    with pytest.raises(TypeError, match="needs exactly its fields"):
        made(RuleResult, code="R01", severity="error", passed=True, message="m", extra=1)

    @dataclasses.dataclass(frozen=True)
    class Checked:
        x: int

        def __post_init__(self) -> None:
            if self.x < 0:
                raise ValueError("x")

    with pytest.raises(TypeError, match="not a dataclass made by its fields alone"):
        made(Checked, x=-1)
