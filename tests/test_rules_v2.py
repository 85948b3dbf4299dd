"""The v2 compliance rules through `RuleBook` (PROTOCOL sections 6 and 7): states, VIX breakers, the price collar
of a worthless buy-back, the earnings blackout for puts only, tail-dependent groups and per-child order size."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from allsuse.errors import InvalidInputError
from allsuse.rules import DEFAULT_RULES, RuleBook, RuleResult

GOOD: dict[str, Any] = {
    "kind": "entry", "account_id": "gen-1", "account_type": "gen", "label": "green", "symbol": "NVDA",
    "sector": "tech", "delta": 45, "band_low": 40, "band_high": 50, "dte": 1, "weekday": 3, "entry_days": [3],
    "allowed_symbols": ["NVDA"], "strike": 30.0, "contracts": 1, "multiplier": 100, "free_cash": 38_000,
    "notional": 3_000, "size_cap": 5_700, "account_equity": 38_000, "symbol_exposure_after": 3_000,
    "portfolio_equity": 100_000, "sector_exposure_after": 3_000, "es_after": 1_000, "account_state": "ACTIVE",
    "system_state": "ACTIVE", "vix_state": "ACTIVE", "vix": 18.0, "limit_price": 1.0, "mid": 1.0,
    "orders_last_minute": 0, "earnings_in_week": False,
}  # fmt: skip


@pytest.fixture(scope="module")
def book() -> RuleBook:
    return RuleBook.load()


def result(book: RuleBook, code: str, **changes: Any) -> RuleResult:
    """The result of `code` for the good entry with `changes`."""
    compliance = book.evaluate({**GOOD, **changes})
    return next(r for r in compliance.results if r.code == code)


def clean(r: RuleResult) -> bool:
    """A message `CODE: key=value ...` without inf or NaN in it."""
    words = r.message.lower().replace("=", " ").split()
    return r.message.startswith(f"{r.code}: ") and not any(w in ("inf", "-inf", "nan") for w in words)


# --- R10 ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["account_state", "system_state"])
def test_r10_unknown_state_fails(book: RuleBook, field: str) -> None:
    r = result(book, "R10_TRADING_STATE", **{field: "SUSPENDED"})
    assert not r.passed and f"{field}=SUSPENDED" in r.message and clean(r)
    assert book.evaluate({**GOOD, field: "SUSPENDED"}).outcome == "REJECTED"


@pytest.mark.parametrize("kind", ["close", "reduce"])
def test_r10_halted_passes_a_buy_back(book: RuleBook, kind: str) -> None:
    r = result(book, "R10_TRADING_STATE", kind=kind, reduces_exposure=True, system_state="HALTED")
    assert r.passed, r.message
    r = result(book, "R10_TRADING_STATE", kind=kind, reduces_exposure=True, account_state="HALTED")
    assert r.passed, r.message


def test_r10_halted_refuses_entries_and_rolls(book: RuleBook) -> None:
    assert not result(book, "R10_TRADING_STATE", system_state="HALTED").passed
    assert not result(book, "R10_TRADING_STATE", kind="roll", reduces_exposure=True, system_state="HALTED").passed


# --- R11 ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vix", "kind", "reduces", "passes", "state"),
    [
        (18.0, "entry", False, True, "ACTIVE"),
        (50.0, "entry", False, True, "HEDGED"),
        (65.0, "entry", False, False, "REDUCING"),
        (70.0, "roll", True, True, "REDUCING"),
        (80.0, "roll", True, False, "HALTED"),
        (85.0, "close", True, True, "HALTED"),
        (85.0, "reduce", True, True, "HALTED"),
    ],
)
def test_r11_reads_the_vix_itself(
    book: RuleBook, vix: float, kind: str, reduces: bool, passes: bool, state: str
) -> None:
    # the caller says ACTIVE whatever the number is: the rule must not believe it
    r = result(book, "R11_VIX_BREAKER", vix=vix, vix_state="ACTIVE", kind=kind, reduces_exposure=reduces)
    assert r.passed is passes, r.message
    assert f"state={state}" in r.message and clean(r)


def test_r11_hedged_week_passes_with_a_note(book: RuleBook) -> None:
    r = result(book, "R11_VIX_BREAKER", vix=52.0)
    assert r.passed and "note=hedged" in r.message, r.message


def test_r11_without_vix_uses_only_a_known_state(book: RuleBook) -> None:
    assert result(book, "R11_VIX_BREAKER", vix=None, vix_state="ACTIVE").passed
    assert not result(book, "R11_VIX_BREAKER", vix=None, vix_state="REDUCING").passed
    r = result(book, "R11_VIX_BREAKER", vix=None, vix_state="GREEN")
    assert not r.passed and "vix_state=GREEN" in r.message, r.message


def test_r11_thresholds_must_agree_with_protocol_yaml(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    doc = yaml.safe_load(DEFAULT_RULES.read_text())
    r11 = next(r for r in doc["rules"] if r["code"] == "R11_VIX_BREAKER")
    r11["params"]["halted_at"] = 85
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(InvalidInputError) as err:
        RuleBook.load(path)
    message = str(err.value)
    assert "rules.yaml" in message and "R11_VIX_BREAKER.params.halted_at" in message
    assert "vix_breakers.halted_at" in message


def test_r11_reload_with_thresholds_that_disagree_keeps_the_old_rules(tmp_path: Path) -> None:
    book = RuleBook.load()
    path = tmp_path / "rules.yaml"
    path.write_text(DEFAULT_RULES.read_text().replace("reducing_at: 65", "reducing_at: 60"))
    with pytest.raises(InvalidInputError):
        book.reload(path)
    assert result(book, "R11_VIX_BREAKER", vix=62.0).passed


# --- R13 ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [0.0, 0.01, 0.05])
def test_r13_buy_back_of_a_worthless_option_passes(book: RuleBook, limit: float) -> None:
    r = result(book, "R13_PRICE_COLLAR", kind="close", reduces_exposure=True, limit_price=limit, mid=0.0)
    assert r.passed and clean(r), r.message


def test_r13_close_of_a_worthless_option_is_approved(book: RuleBook) -> None:
    context = {**GOOD, "kind": "close", "reduces_exposure": True, "limit_price": 0.0, "mid": 0.0}
    compliance = book.evaluate(context)
    assert compliance.outcome == "APPROVED", [r.message for r in compliance.failures]


@pytest.mark.parametrize(("limit", "kind"), [(0.10, "close"), (0.05, "entry"), (0.0, "entry")])
def test_r13_zero_mid_otherwise_fails_without_infinities(book: RuleBook, limit: float, kind: str) -> None:
    r = result(book, "R13_PRICE_COLLAR", kind=kind, limit_price=limit, mid=0.0, reduces_exposure=kind == "close")
    assert not r.passed and clean(r), r.message


# --- R17 ----------------------------------------------------------------------------------------------------------


def test_r17_never_warns_on_covered_calls(book: RuleBook) -> None:
    r = result(book, "R17_EARNINGS_BLACKOUT", option_kind="call", earnings_in_week=True)
    assert r.passed, r.message
    assert book.evaluate({**GOOD, "option_kind": "call", "earnings_in_week": True}).outcome == "APPROVED"


def test_r17_applies_to_put_rolls(book: RuleBook) -> None:
    context = {**GOOD, "kind": "roll", "option_kind": "put", "earnings_in_week": True, "reduces_exposure": True}
    r = next((r for r in book.evaluate(context).results if r.code == "R17_EARNINGS_BLACKOUT"), None)
    assert r is not None and not r.passed, r
    r = result(book, "R17_EARNINGS_BLACKOUT", option_kind="put", earnings_in_week=True)
    assert not r.passed


def test_r17_option_kind_must_be_known(book: RuleBook) -> None:
    with pytest.raises(InvalidInputError) as err:
        book.evaluate({**GOOD, "option_kind": "warrant"})
    assert err.value.field == "option_kind"


# --- R07 ----------------------------------------------------------------------------------------------------------


def test_r07_tail_dependent_group_is_one_risk(book: RuleBook) -> None:
    group = {"group_symbols": ["NVDA", "AMD"], "group_exposure_after": 11_400.0}
    r = result(book, "R07_SYMBOL_CONCENTRATION", symbol_exposure_after=3_800.0, **group)
    assert not r.passed and "group_share=0.3" in r.message, r.message
    group["group_exposure_after"] = 9_500.0
    assert result(book, "R07_SYMBOL_CONCENTRATION", symbol_exposure_after=3_800.0, **group).passed


def test_r07_single_symbol_account_may_raise_its_weight(book: RuleBook) -> None:
    assert not result(book, "R07_SYMBOL_CONCENTRATION", symbol_exposure_after=30_000.0).passed
    assert result(book, "R07_SYMBOL_CONCENTRATION", symbol_exposure_after=30_000.0, max_symbol_weight=0.9).passed
    for bad in (0.0, 0.96, 2.0):
        r = result(book, "R07_SYMBOL_CONCENTRATION", symbol_exposure_after=10.0, max_symbol_weight=bad)
        assert not r.passed and "max_symbol_weight" in r.message, r.message
    with pytest.raises(InvalidInputError):
        book.evaluate({**GOOD, "max_symbol_weight": math.nan})


# --- R14 ----------------------------------------------------------------------------------------------------------


def test_r14_checks_each_child_and_says_so(book: RuleBook) -> None:
    assert result(book, "R14_MAX_ORDER_SIZE", contracts=50, free_cash=1e9).passed
    assert not result(book, "R14_MAX_ORDER_SIZE", contracts=51, free_cash=1e9).passed
    doc = yaml.safe_load(DEFAULT_RULES.read_text())
    r14 = next(r for r in doc["rules"] if r["code"] == "R14_MAX_ORDER_SIZE")
    assert "child" in r14["description"]


# --- the typed context (issue 9) ----------------------------------------------------------------------------------


def test_typed_context_gives_the_verdicts_of_the_data_context(book: RuleBook) -> None:
    from allsuse import _core

    for changes in ({}, {"delta": 55.0}, {"account_state": "REDUCING"}, {"earnings_in_week": True}, {"vix": 70.0}):
        data = {**GOOD, **changes}
        assert book.check(_core.RuleContext(**data)) == book.evaluate(data), changes
    quote = {"chain_open_interest": 10.0, "chain_volume": 5.0, "chain_bid": 0.9, "chain_ask": 1.1}
    chain = {"open_interest": 10.0, "volume": 5.0, "bid": 0.9, "ask": 1.1}
    assert book.check(_core.RuleContext(**GOOD, **quote)) == book.evaluate({**GOOD, "chain": chain})


def test_typed_context_refuses_bad_values_by_name() -> None:
    from allsuse import _core

    with pytest.raises(InvalidInputError) as err:
        _core.RuleContext(kind="entry", max_symbol_weight=math.nan)
    assert err.value.field == "max_symbol_weight"
    with pytest.raises(InvalidInputError) as err:
        _core.RuleContext(kind="entry", chain_bid=1.0)
    assert err.value.field == "chain"
    with pytest.raises(InvalidInputError) as err:
        _core.RuleContext(kind="buy")
    assert err.value.field == "kind"
