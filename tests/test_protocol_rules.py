"""Week types, protocol levels, drawdown levels, breakers, sizing, strike selection and the rule book."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from allsuse import _core
from allsuse.errors import InvalidInputError
from allsuse.protocol import classify_week, describe_week
from allsuse.rules import DEFAULT_RULES, RuleBook

PUT_CASES = [
    (5.0, True, "P-EW"),
    (-1.0, True, "P-EW"),
    (-1.0001, True, "P-AWL"),
    (-5.0, False, "P-AWL"),
    (-5.0001, True, "P-RO"),
    (-5.0001, False, "P-AOL"),
    (-15.0, True, "P-RO"),
    (-15.0, False, "P-AOL"),
    (-15.0001, True, "P-DD"),
    (-15.0001, False, "P-DD"),
]
CALL_CASES = [
    (5.0, "C-WAP+"),
    (4.9999, "C-WAP"),
    (1.0, "C-WAP"),
    (0.9999, "C-PNO"),
    (-5.0, "C-PNO"),
    (-5.0001, "C-RO"),
    (-10.0, "C-RO"),
    (-10.0001, "C-REC"),
    (-15.0, "C-REC"),
    (-15.0001, "P-DD"),
]


@pytest.mark.parametrize(("move", "roll", "code"), PUT_CASES)
def test_short_put_boundaries(move: float, roll: bool, code: str) -> None:
    assert classify_week("SHORT_PUT", move, roll) == code


@pytest.mark.parametrize("position", ["LONG_STOCK", "SHORT_CALL"])
@pytest.mark.parametrize(("move", "code"), CALL_CASES)
def test_stock_and_call_boundaries(position: str, move: float, code: str) -> None:
    assert classify_week(position, move, True) == code
    assert classify_week(position, move, False) == code


@pytest.mark.parametrize("move", [-50.0, -1.0, 0.0, 30.0])
def test_cash_is_always_idle(move: float) -> None:
    assert classify_week("CASH", move) == "W-IDL"


def test_week_type_details_and_confidence() -> None:
    w = describe_week("SHORT_PUT", -3.0)
    assert (w.code, w.expected_return_pct, w.confidence) == ("P-AWL", (1.8, 2.2), 0.9)
    assert describe_week("SHORT_PUT", -4.7).confidence == 0.6
    assert describe_week("LONG_STOCK", 5.2).expected_return_pct == (5.0, 6.0)


@pytest.mark.parametrize(
    ("position", "move", "field"), [("SHORT", 1.0, "position"), ("CASH", float("nan"), "move_pct")]
)
def test_week_type_bad_input(position: str, move: float, field: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        classify_week(position, move)
    assert err.value.field == field


LEVELS = ((1.0, 2.0, 3.0), (0.02, 0.03, 0.05), 0.02)


@pytest.mark.parametrize(
    ("spot", "loss", "level"),
    [(101.0, 0.0, 0), (99.0, 0.0, 1), (98.0, 0.0, 2), (97.0, 0.0, 3), (101.0, 2_000.0, 1), (101.0, 5_000.0, 3)],
)
def test_protocol_levels(spot: float, loss: float, level: int) -> None:
    assert _core.protocol_level(100.0, spot, 1.0, loss, 100_000.0, *LEVELS)[0] == level


DD = ((0.05, 0.10, 0.15, 0.20), (1.0, 0.8, 0.6, 0.4, 0.0), 0.5, 0.9, 5)


@pytest.mark.parametrize(("drawdown", "level"), [(0.0, 0), (0.05, 1), (0.1, 2), (0.15, 3), (0.2, 4)])
def test_every_drawdown_level(drawdown: float, level: int) -> None:
    assert _core.step_protection((0, 0.0, -1, 0), drawdown, 1, *DD)[0] == level


@pytest.mark.parametrize(
    ("vix", "expected"),
    [
        (20.0, (1.0, False, "ACTIVE")),
        (50.0, (0.5, True, "ACTIVE")),
        (66.0, (0.0, True, "REDUCING")),
        (80.0, (0.0, True, "HALTED")),
    ],
)
def test_vix_breakers(vix: float, expected: tuple[float, bool, str]) -> None:
    assert _core.vix_breaker(vix, 50.0, 0.5, 65.0, 80.0) == expected


def test_sizing_never_rounds_up() -> None:
    budget, contracts, binding = _core.size_put(38_000, 38_000, 30.0, 0.125, 0.25, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 100.0)
    assert (round(budget, 6), contracts, binding) == (4750.0, 1, "target")
    assert _core.size_put(38_000, 38_000, 50.0, 0.125, 0.25, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 100.0)[1] == 0
    assert _core.size_covered_calls(350, 0.5, 100) == 1


def test_strike_selection_inside_band_ties_further_otm() -> None:
    strikes = np.array([94.0, 96.0])
    deltas = np.array([39.0, 41.0])
    assert _core.select_strike("put", strikes, deltas, 35, 45, 40) == (0, 94.0, 39.0)
    chosen = _core.select_synthetic_strike("put", 250.0, 5 / 365, 0.35, 0.04, 0.0, 40, 50, 45)
    assert chosen is not None and 40 <= chosen[1] <= 50 and chosen[0] % 5 == 0


def test_rule_file_has_all_18_rules() -> None:
    book = RuleBook.load()
    assert len(book.codes) == 18
    assert book.codes[0] == "R01_DELTA_BAND" and book.codes[-1] == "R18_NO_WITHDRAWAL"


def test_reload_with_a_bad_file_keeps_the_old_rules(tmp_path: Path) -> None:
    book = RuleBook.load()
    bad = tmp_path / "rules.yaml"
    shutil.copy(DEFAULT_RULES, bad)
    text = bad.read_text().replace("params: {max_contracts: 50}", "params: {max_contracts: fifty}")
    bad.write_text(text)
    with pytest.raises(InvalidInputError) as err:
        book.reload(bad)
    message = str(err.value)
    assert "rules.yaml" in message and "R14_MAX_ORDER_SIZE" in message and "max_contracts" in message
    assert len(book.codes) == 18
    result = book.evaluate({"kind": "close", "contracts": 51, "limit_price": 1.0, "mid": 1.0, "orders_last_minute": 0})
    r14 = next(r for r in result.results if r.code == "R14_MAX_ORDER_SIZE")
    assert not r14.passed and r14.message == "R14_MAX_ORDER_SIZE: contracts=51 max=50"
    good = tmp_path / "good.yaml"
    good.write_text(DEFAULT_RULES.read_text().replace("max_contracts: 50", "max_contracts: 60"))
    book.reload(good)
    result = book.evaluate({"kind": "close", "contracts": 51, "limit_price": 1.0, "mid": 1.0, "orders_last_minute": 0})
    assert next(r for r in result.results if r.code == "R14_MAX_ORDER_SIZE").passed


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("severity: MEDIUM\n    description: one sector", "severity: LOW\n    description: one sector", "R08"),
        ("params: {max_share: 0.04}", "params: {max_share: 0.04, colour: red}", "colour"),
        ("params: {max_per_minute: 30}", "params: {}", "max_per_minute"),
    ],
)
def test_bad_rule_files_name_file_rule_and_field(tmp_path: Path, old: str, new: str, field: str) -> None:
    path = tmp_path / "rules.yaml"
    text = DEFAULT_RULES.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    with pytest.raises(InvalidInputError) as err:
        RuleBook.load(path)
    assert "rules.yaml" in str(err.value) and field in str(err.value)


def test_every_rule_passes_and_fails_through_python() -> None:
    book = RuleBook.load()
    good = {
        "kind": "entry", "account_id": "gen-1", "account_type": "gen", "label": "green", "symbol": "NVDA",
        "sector": "tech", "delta": 45, "band_low": 40, "band_high": 50, "dte": 1, "weekday": 3, "entry_days": [3],
        "allowed_symbols": ["NVDA"], "strike": 30.0, "contracts": 1, "multiplier": 100, "free_cash": 38_000,
        "notional": 3_000, "size_cap": 5_700, "account_equity": 38_000, "symbol_exposure_after": 3_000,
        "portfolio_equity": 100_000, "sector_exposure_after": 3_000, "es_after": 1_000, "account_state": "ACTIVE",
        "system_state": "ACTIVE", "vix_state": "ACTIVE", "vix": 18.0, "limit_price": 1.0, "mid": 1.0,
        "orders_last_minute": 0, "earnings_in_week": False,
    }  # fmt: skip
    result = book.evaluate(good)
    assert result.outcome == "APPROVED" and all(r.passed for r in result.results)
    failing = {
        "R01_DELTA_BAND": {"delta": 52},
        "R02_DTE_WINDOW": {"dte": 8},
        "R03_ENTRY_DAY": {"weekday": 0},
        "R04_SYMBOL_ALLOWED": {"symbol": "GME"},
        "R05_CASH_SECURED": {"free_cash": 2_999},
        "R06_POSITION_SIZE": {"notional": 6_000},
        "R07_SYMBOL_CONCENTRATION": {"symbol_exposure_after": 9_501},
        "R08_SECTOR_CONCENTRATION": {"sector_exposure_after": 40_001},
        "R09_ES_BUDGET": {"es_after": 4_001},
        "R10_TRADING_STATE": {"account_state": "HALTED"},
        "R11_VIX_BREAKER": {"vix_state": "REDUCING", "vix": 66},
        "R12_LIQUIDITY": {"chain": {"open_interest": 100, "volume": 100, "bid": 1.0, "ask": 1.01}},
        "R13_PRICE_COLLAR": {"limit_price": 1.06},
        "R14_MAX_ORDER_SIZE": {"contracts": 51, "notional": 0, "free_cash": 1e9, "size_cap": 1e9},
        "R15_ORDER_RATE": {"orders_last_minute": 30},
        "R16_DUPLICATE": {"idempotency_seen": True},
        "R17_EARNINGS_BLACKOUT": {"earnings_in_week": True},
    }
    expected_outcome = {"CRITICAL": "REJECTED", "HIGH": "REQUIRES_APPROVAL", "MEDIUM": "APPROVED_WITH_WARNINGS"}
    for code, change in failing.items():
        result = book.evaluate({**good, **change})
        failed = [r for r in result.results if not r.passed]
        assert [r.code for r in failed] == [code], (code, [r.message for r in failed])
        assert failed[0].message.startswith(f"{code}: ")
        assert result.outcome == expected_outcome[failed[0].severity]
    withdrawal = {"kind": "withdrawal", "account_id": "com-1", "account_type": "com", "withdrawal_amount": 100}
    result = book.evaluate(withdrawal)
    assert result.outcome == "REJECTED"
    assert [r.code for r in result.failures] == ["R18_NO_WITHDRAWAL"]
    assert book.evaluate({**withdrawal, "account_type": "rev"}).outcome == "APPROVED"


def test_context_with_unknown_field_is_refused() -> None:
    with pytest.raises(InvalidInputError):
        RuleBook.load().evaluate({"kind": "entry", "colour": "red"})
