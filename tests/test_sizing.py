"""Sizing to the deployment target (PROTOCOL section 8) through the typed facade allsuse.sizing."""

from __future__ import annotations

import doctest
import subprocess
import sys
from decimal import Decimal
from typing import Any

import pytest

from allsuse import _core, sizing
from allsuse.errors import InvalidInputError
from allsuse.sizing import Binding, PutSize, per_symbol_target, size_covered_calls, size_put

GEN = {"equity": 100_000.0, "free_cash": 95_000.0, "strike": 20.0, "target_share": 0.225}


def test_sizes_to_the_per_symbol_target() -> None:
    # Gen-Acc: D = 90% over 4 symbols -> t = 22.5%; 22,500 / (20 x 100) = 11.25 -> 11 (never rounded up)
    assert per_symbol_target(0.90, 4) == pytest.approx(0.225)
    assert size_put(**GEN) == PutSize(22_500.0, 11, Binding.TARGET)


def test_every_multiplier_scales_the_budget() -> None:
    r = size_put(**GEN, m_label=0.75, m_atr=1.1, m_drawdown=0.8, m_vix=0.5, allowed_exposure=0.5)
    assert r.budget == pytest.approx(22_500 * 0.75 * 1.1 * 0.8 * 0.5 * 0.5)
    assert (r.contracts, r.binding) == (1, Binding.TARGET)


@pytest.mark.parametrize("name", ["m_label", "m_atr", "m_drawdown", "m_vix", "allowed_exposure"])
def test_a_multiplier_of_zero_is_zero_contracts(name: str) -> None:
    assert size_put(**GEN, **{name: 0.0}) == PutSize(0.0, 0, Binding.ZERO_MULTIPLIER)


def test_the_symbol_cap_and_free_cash_bind() -> None:
    # one symbol at 90%: the 25% cap binds unless the account raises max_symbol_weight (up to 0.95)
    assert size_put(100_000, 95_000, 20.0, 0.90) == PutSize(25_000.0, 12, Binding.SYMBOL_CAP)
    assert size_put(100_000, 95_000, 20.0, 0.90, max_symbol_weight=0.95) == PutSize(90_000.0, 45, Binding.TARGET)
    assert size_put(100_000, 10_000, 20.0, 0.225) == PutSize(10_000.0, 5, Binding.FREE_CASH)
    # existing exposure comes off the scaled target; a negative remainder is a zero budget
    assert size_put(**{**GEN, "existing_exposure": 20_000.0}).budget == pytest.approx(2_500.0)
    assert size_put(**{**GEN, "existing_exposure": 30_000.0}) == PutSize(0.0, 0, Binding.TARGET)


def test_a_budget_within_1e9_of_a_whole_contract_is_that_contract() -> None:
    share = 4.9999999999 * 2_000 / 100_000
    assert size_put(100_000, 100_000, 20.0, share).contracts == 5
    assert size_put(100_000, 100_000, 20.0, 4.9999 * 2_000 / 100_000).contracts == 4


def test_money_may_be_decimal() -> None:
    r = size_put(Decimal("100000.00"), Decimal("95000.00"), 20.0, 0.225, existing_exposure=Decimal("0.00"))
    assert r.contracts == 11


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"equity": -1.0}, "equity"),
        ({"free_cash": float("nan")}, "free_cash"),
        ({"strike": 0.0}, "strike"),
        ({"target_share": -0.1}, "target_share"),
        ({"max_symbol_weight": 0.0}, "max_symbol_weight"),
        ({"max_symbol_weight": 0.96}, "max_symbol_weight"),
        ({"existing_exposure": -5.0}, "existing_exposure"),
        ({"m_label": float("nan")}, "m_label"),
        ({"m_atr": -0.1}, "m_atr"),
        ({"m_drawdown": float("inf")}, "m_drawdown"),
        ({"m_vix": -1.0}, "m_vix"),
        ({"allowed_exposure": 1.5}, "allowed_exposure"),
        ({"multiplier": 0.0}, "multiplier"),
        ({"m_vix": "0.5"}, "m_vix"),
        ({"strike": True}, "strike"),
    ],
)
def test_bad_input_names_the_argument(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        size_put(**{**GEN, **change})
    assert err.value.field == field, err.value


def test_covered_calls() -> None:
    assert size_covered_calls(350) == 3
    assert size_covered_calls(350, 0.5) == 1
    assert size_covered_calls(400 * (1 - 1e-12), 1.0, 100) == 4
    with pytest.raises(InvalidInputError) as err:
        size_covered_calls(100, 1.5)
    assert err.value.field == "max_cover_share"


def test_per_symbol_target_checks_its_arguments() -> None:
    with pytest.raises(InvalidInputError) as err:
        per_symbol_target(0.9, 0)
    assert err.value.field == "symbol_count"
    with pytest.raises(InvalidInputError) as err:
        per_symbol_target(0.99, 1)
    assert err.value.field == "deployment_target"


def test_core_signature_is_keyword_capable() -> None:
    budget, contracts, binding = _core.size_put(
        equity=38_000,
        free_cash=38_000,
        strike=30.0,
        target_share=0.125,
        max_symbol_weight=0.25,
        existing_exposure=0.0,
        m_label=1.0,
        m_atr=1.0,
        m_drawdown=1.0,
        m_vix=1.0,
        allowed_exposure=1.0,
        multiplier=100.0,
    )
    assert (budget, contracts, binding) == (4_750.0, 1, "target")


def test_docstring_examples_hold() -> None:
    assert doctest.testmod(sizing, raise_on_error=False).failed == 0


def test_the_facade_imports_first_without_a_cycle() -> None:
    code = "import allsuse.sizing as s; import allsuse.protocol; print(s.size_put(1e5, 1e5, 20.0, 0.225).contracts)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "11"
