"""SizePosition over a real `allsuse serve` process: a multiplier of 0 means zero contracts (PROTOCOL section 8),
an absent multiplier means 1.0."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from allsuse.v1 import decision_pb2, decision_pb2_grpc
from tests.rpc_support import TIMEOUT, as_float, money, serve


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[decision_pb2_grpc.DecisionServiceStub]:
    db: Path = tmp_path_factory.mktemp("sizing") / "allsuse.db"
    with serve(str(db), auth=False) as (address, _proc), grpc.insecure_channel(address) as channel:
        yield decision_pb2_grpc.DecisionServiceStub(channel)


def size(stub: decision_pb2_grpc.DecisionServiceStub, **kw: Any) -> decision_pb2.SizePositionResponse:
    # 100,000 of equity and cash, a $20 strike: 22.5% x 100,000 = 22,500 buys floor(22,500 / 2,000) = 11 contracts.
    base: dict[str, Any] = {
        "equity": money(100_000),
        "free_cash": money(100_000),
        "strike": 20.0,
        "size_share": 0.225,
    }
    return stub.SizePosition(decision_pb2.SizePositionRequest(**{**base, **kw}), timeout=TIMEOUT)


def test_absent_multipliers_are_one(stub: decision_pb2_grpc.DecisionServiceStub) -> None:
    r = size(stub)
    assert (r.contracts, r.binding, as_float(r.budget)) == (11, "target", 22_500.0)


@pytest.mark.parametrize(
    "field", ["atr_multiplier", "drawdown_multiplier", "vix_multiplier", "label_multiplier", "allowed_exposure"]
)
def test_a_multiplier_of_zero_is_zero_contracts(stub: decision_pb2_grpc.DecisionServiceStub, field: str) -> None:
    r = size(stub, **{field: 0.0})
    assert (r.contracts, r.binding, as_float(r.budget)) == (0, "zero_multiplier", 0.0)


def test_present_multipliers_scale_the_budget(stub: decision_pb2_grpc.DecisionServiceStub) -> None:
    r = size(stub, label_multiplier=0.75, atr_multiplier=0.8, vix_multiplier=0.5, allowed_exposure=1.0)
    # 22,500 x 0.75 x 0.8 x 0.5 = 6,750 -> 3 contracts of 2,000
    assert (r.contracts, as_float(r.budget)) == (3, 6_750.0)


def test_max_symbol_weight_defaults_to_the_config_cap_and_can_be_raised(
    stub: decision_pb2_grpc.DecisionServiceStub,
) -> None:
    r = size(stub, size_share=0.90)
    assert (r.contracts, r.binding, as_float(r.budget)) == (12, "symbol_cap", 25_000.0)
    r = size(stub, size_share=0.90, max_symbol_weight=0.95)
    assert (r.contracts, r.binding) == (45, "target")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"max_symbol_weight": 0.96}, "max_symbol_weight"),
        ({"atr_multiplier": -1.0}, "atr_multiplier"),
        ({"label_multiplier": float("nan")}, "label_multiplier"),
        ({"allowed_exposure": 1.5}, "allowed_exposure"),
        ({"size_share": -0.1}, "size_share"),
        ({"existing_exposure": money(-5)}, "existing_exposure"),
    ],
)
def test_bad_input_names_the_request_field(
    stub: decision_pb2_grpc.DecisionServiceStub, change: dict[str, Any], field: str
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        size(stub, **change)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = err.value.details() or ""
    assert details.startswith(f"{field}:"), details
