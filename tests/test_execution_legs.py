"""A stored decision's legs as the broker's parent orders: an entry, a roll (a buy-back of the held option and a
sale of the new one), a level-3 close (the buy-back and the sale of the assigned shares), with the urgency of the
decision and client order ids derived from it."""

from __future__ import annotations

from typing import Any

import pytest

from allsuse.server.execution import parents_of


def _decision(action: str, trust_kind: str, orders: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "decision_id": "d9",
        "portfolio_id": "p",
        "account_id": "p/gen-1",
        "symbol": "NVDA",
        "action": action,
        "trust_kind": trust_kind,
        "account_state": "ACTIVE",
        "order": orders[0],
        "orders": orders,
        **extra,
    }


def _leg(side: str, kind: str = "put", contracts: int = 3, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "side": side, "strike": 95.0, "expiry": "2024-03-15", "contracts": contracts,
            "limit_price": 1.5, "delta": 30.0, "premium": 450.0, **extra}  # fmt: skip


def test_an_entry_is_one_sale_per_slice() -> None:
    d = _decision("OPEN_PUT", "entry", [_leg("sell_to_open", contracts=50), _leg("sell_to_open", contracts=7)])
    parents = parents_of(d, 100.0, 0.4, "history")
    assert [(p.client_order_id, p.side, p.contracts, p.urgency) for p in parents] == [
        ("d9-0", "SELL", 50, "normal"),
        ("d9-1", "SELL", 7, "normal"),
    ]
    p = parents[0]
    assert p.instrument.spot == 100.0 and p.instrument.iv == 0.4 and p.instrument.delta == pytest.approx(0.3)
    assert p.extra == {"fill_side": "sell_to_open", "position_id": "", "market_source": "history"}
    assert not p.closing


def test_a_roll_buys_back_the_held_option_and_sells_the_new_one() -> None:
    # Net credit 0.25 a share on 2 contracts: premium 50; the new option's mid is 1.50, the old one's 1.25.
    d = _decision("ROLL", "roll", [_leg("roll", contracts=2, premium=50.0)], position_id="p/pos-4")
    close, open_ = parents_of(d, None, 0.3, "fallback")
    assert (close.client_order_id, close.side, close.closing) == ("d9-0c", "BUY", True)
    assert close.instrument.mid == pytest.approx(1.25) and close.extra["fill_side"] == "buy_to_close"
    assert close.extra["position_id"] == "p/pos-4"
    assert (open_.client_order_id, open_.side, open_.closing, open_.extra["fill_side"]) == ("d9-0", "SELL", False,
                                                                                          "sell_to_open")  # fmt: skip
    assert open_.extra["position_id"] == "" and open_.instrument.spot == 95.0  # no history: the strike stands in
    assert open_.extra["after"] == "d9-0c" and "after" not in close.extra  # the new put is booked after the buy-back


def test_a_rolls_buy_back_names_the_held_option_not_the_new_one() -> None:
    d = _decision("ROLL", "roll", [_leg("roll", contracts=2, premium=50.0)], position_id="p/pos-4")
    close, open_ = parents_of(d, 100.0, 0.3, "history", held=(97.0, "2024-03-08"))
    assert (close.instrument.strike, close.instrument.expiry) == (97.0, "2024-03-08")
    assert (open_.instrument.strike, open_.instrument.expiry) == (95.0, "2024-03-15")
    assert close.instrument.key != open_.instrument.key


def test_a_level_3_close_buys_back_and_sells_the_shares_as_risk_reduction() -> None:
    legs = [_leg("buy_to_close", contracts=4), _leg("sell_to_close", kind="stock", contracts=300, strike=0.0,
                                                    expiry="", limit_price=97.0, delta=100.0)]  # fmt: skip
    d = _decision("CLOSE", "emergency", legs, position_id="p/pos-2")
    buy, sell = parents_of(d, 97.5, 0.5, "history")
    assert (buy.side, buy.closing, buy.extra["position_id"], buy.urgency) == ("BUY", True, "p/pos-2", "emergency")
    assert (sell.side, sell.contracts, sell.extra["fill_side"], sell.instrument.kind) == ("SELL", 300, "sell", "stock")
    assert sell.extra["position_id"] == "" and sell.instrument.delta == 1.0
    reduce = parents_of(_decision("REDUCE", "risk_reduction", [_leg("buy_to_close")]), 97.5, 0.5, "history")
    assert reduce[0].urgency == "risk_reduction"
