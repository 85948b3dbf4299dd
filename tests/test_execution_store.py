"""Migration 9's orders table on SQLite and PostgreSQL: an order is stored once per client order id (a resubmission
returns the stored one), updated with its status column, listed by portfolio, status and time, audited and checked
by the full integrity verification."""

from __future__ import annotations

import time

import pytest

from allsuse.errors import InvalidInputError
from allsuse.execution.broker import STATUSES
from allsuse.store import LATEST_VERSION, Store
from allsuse.store.store import ORDER_STATUSES


def _order(cid: str, pid: str = "pf-1", status: str = "working", **extra: object) -> dict[str, object]:
    return {
        "client_order_id": cid,
        "decision_id": "d1",
        "portfolio_id": pid,
        "account_id": f"{pid}/gen-1",
        "symbol": "NVDA",
        "side": "SELL",
        "kind": "put",
        "strike": 95.0,
        "expiry": "2024-03-15",
        "contracts": 5,
        "filled_contracts": 0,
        "status": status,
        **extra,
    }


def test_orders_are_stored_once_updated_and_listed(store_url: str) -> None:
    with Store(store_url) as store:
        assert LATEST_VERSION >= 9 and 9 in store.schema_versions()
        store.put_portfolio("pf-1", {})
        store.put_portfolio("pf-2", {})
        first = store.put_order("d1-0", _order("d1-0"))
        assert not first.replayed and first.columns["status"] == "working"
        again = store.put_order("d1-0", _order("d1-0", contracts=99))
        assert again.replayed and again.payload["contracts"] == 5
        mark = first.created_at
        time.sleep(0.01)
        store.put_order("d2-0", _order("d2-0", pid="pf-2"))
        done = store.update_order("d1-0", _order("d1-0", status="filled", filled_contracts=5, shortfall_bps=12.5))
        assert done.columns["status"] == "filled"
        got = store.get_order("d1-0")
        assert got is not None and got.payload["shortfall_bps"] == 12.5 and got.payload["status"] == "filled"
        assert [r.id for r in store.list_orders()] == ["d1-0", "d2-0"]
        assert [r.id for r in store.list_orders("pf-2")] == ["d2-0"]
        assert [r.id for r in store.list_orders(status="working")] == ["d2-0"]
        later = store.list_orders(since=store.get_order("d2-0").created_at)  # type: ignore[union-attr]
        assert [r.id for r in later] == ["d2-0"]
        assert [r.id for r in store.list_orders(since=mark, limit=1)] == ["d1-0"]
        assert store.verify_full().ok
        with pytest.raises(InvalidInputError) as err:
            store.put_order("d3-0", _order("d3-0", status="lost"))
        assert err.value.field == "status"
        with pytest.raises(InvalidInputError) as err:
            store.put_order("bad id!", _order("x"))
        assert err.value.field == "client_order_id"


def test_the_store_knows_the_execution_statuses() -> None:
    assert tuple(ORDER_STATUSES) == tuple(STATUSES)


def test_the_latest_decisions_newest_first(store_url: str) -> None:
    with Store(store_url) as store:
        store.put_portfolio("pf-1", {})
        for n in range(4):
            store.record_decision(f"k{n}", {"n": n}, kind="entry", portfolio_id="pf-1", status="approved",
                                  decision_id=f"d{n}")  # fmt: skip
            time.sleep(0.002)
        store.record_decision("k9", {"n": 9}, kind="entry", portfolio_id="pf-1", status="pending", decision_id="d9")
        assert [r.id for r in store.list_decisions(status="approved", limit=2, latest=True)] == ["d3", "d2"]
        assert [r.id for r in store.list_decisions(status="approved", limit=2)] == ["d0", "d1"]
        assert [r.id for r in store.list_decisions(limit=1, latest=True)] == ["d9"]
        with pytest.raises(InvalidInputError) as err:
            store.list_decisions(limit=0, latest=True)
        assert err.value.field == "limit"


def test_the_reports_read_the_orders_the_broker_stores(store_url: str) -> None:
    # Issue 13's contract, item 2: reports gather orders with store.list_orders(portfolio_id, since, limit).
    import datetime as dt

    from allsuse.reports.execution import execution_quality, orders_for_report

    with Store(store_url) as store:
        store.put_portfolio("pf-1", {})
        now = dt.datetime.now(dt.UTC)
        for n, status in enumerate(("filled", "partially_filled")):
            store.put_order(
                f"d{n}-0",
                _order(
                    f"d{n}-0",
                    status=status,
                    filled_contracts=5 - 2 * n,
                    avg_price=1.4,
                    shortfall_bps=10.0 + n,
                    vwap_slippage_bps=2.0,
                    twap_slippage_bps=3.0,
                    impact_bps=4.0,
                    commission=3.25,
                    urgency="normal",
                    submitted_at=now.isoformat(),
                ),
            )
        since, until = (
            (now - dt.timedelta(minutes=5)).replace(tzinfo=None),
            (now + dt.timedelta(minutes=5)).replace(tzinfo=None),
        )
        got = orders_for_report(store, "pf-1", since, until)
        assert [o["client_order_id"] for o in got] == ["d0-0", "d1-0"]
        quality = execution_quality(got)
        assert quality["orders"] == 2 and quality["contracts_filled"] == 8 and quality["commission"] == 6.5
        assert orders_for_report(store, "pf-1", until, until + dt.timedelta(minutes=1)) == []
