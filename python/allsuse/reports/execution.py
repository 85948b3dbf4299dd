"""Execution quality of a report's orders (issue 13): how many orders were worked and filled, and what they cost
against their benchmarks (implementation shortfall against the arrival mid, slippage against interval VWAP and
TWAP, market impact, all in basis points; commissions in dollars).

`execution_quality` is a pure function of the orders' payload dicts (the `orders` table's form, see
docs/execution.md); `orders_for_report` is the one place a report reads them from the store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

FILLED = ("filled", "partially_filled")
"""Statuses of orders that traded (their costs count)."""
STATUSES = ("working", "filled", "partially_filled", "cancelled", "rejected")


def _number(order: Mapping[str, Any], key: str) -> float | None:
    """A numeric field of an order, None when absent or not a number."""
    value = order.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _weighted(orders: list[Mapping[str, Any]], key: str) -> tuple[float | None, float | None]:
    """(contract-weighted average, worst = highest cost) of `key` over the orders that carry it."""
    pairs = [(v, max(float(o.get("filled_contracts") or 0), 0.0)) for o in orders if (v := _number(o, key)) is not None]
    if not pairs:
        return None, None
    weight = sum(w for _, w in pairs)
    average = sum(v * w for v, w in pairs) / weight if weight > 0 else sum(v for v, _ in pairs) / len(pairs)
    return average, max(v for v, _ in pairs)


def execution_quality(orders: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts by status and urgency, the fill rate (contracts filled / contracts ordered), the contract-weighted
    average and the worst implementation shortfall, VWAP and TWAP slippage and impact (bps; positive = a cost),
    and commissions. Averages are None without a filled order."""
    listed = list(orders)
    by_status = dict.fromkeys(STATUSES, 0)
    by_urgency: dict[str, int] = {}
    ordered = filled = 0.0
    for o in listed:
        status = str(o.get("status", ""))
        by_status[status] = by_status.get(status, 0) + 1
        urgency = str(o.get("urgency", "normal"))
        by_urgency[urgency] = by_urgency.get(urgency, 0) + 1
        ordered += max(float(o.get("contracts") or 0), 0.0)
        filled += max(float(o.get("filled_contracts") or 0), 0.0)
    traded = [o for o in listed if o.get("status") in FILLED]
    out: dict[str, Any] = {
        "orders": len(listed),
        "by_status": by_status,
        "by_urgency": by_urgency,
        "contracts_ordered": ordered,
        "contracts_filled": filled,
        "fill_rate": filled / ordered if ordered > 0 else None,
        "commission": round(sum(_number(o, "commission") or 0.0 for o in listed), 2),
    }
    for key in ("shortfall_bps", "vwap_slippage_bps", "twap_slippage_bps", "impact_bps"):
        average, worst = _weighted(traded, key)
        out[f"avg_{key}"] = average
        out[f"worst_{key}"] = worst
    return out


def orders_for_report(store: Any, portfolio_id: str, since: dt.datetime, until: dt.datetime) -> list[dict[str, Any]]:
    """The payloads of a portfolio's orders submitted in [since, until] (naive UTC times), oldest first."""
    out = []
    for record in store.list_orders(portfolio_id=portfolio_id, since=since.isoformat(), limit=100_000):
        payload = dict(record.payload)
        submitted = str(payload.get("submitted_at") or "")
        try:
            at = dt.datetime.fromisoformat(submitted.rstrip("Z")).replace(tzinfo=None)
        except ValueError:
            continue
        if since <= at <= until:
            out.append(payload)
    return out


__all__ = ["FILLED", "execution_quality", "orders_for_report"]
