"""Client-side helpers: a market snapshot from a CSV of daily bars, and a channel with an API key. Used by
`allsuse decide`, `allsuse report` and the examples in examples/."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import grpc
import numpy as np

from allsuse import indicators
from allsuse.errors import InvalidInputError
from allsuse.protocol.backtest import load_bars, load_vix
from allsuse.server.convert import money_out
from allsuse.v1 import common_pb2, decision_pb2

HISTORY = 520  # enough for 500 scenario returns and the 50-day moving average


def snapshot_from_csv(
    data: Path, symbol: str, as_of: dt.date, *, vix: Path | None = None, iv: float | None = None, sector: str = ""
) -> decision_pb2.MarketSnapshot:
    """The last HISTORY bars up to `as_of`, with IV = `iv`, else VIX/100 on that date, else 1.1 x 20-day HV."""
    bars = load_bars(data).upto(as_of)
    if len(bars.dates) < 60:
        raise InvalidInputError.of("as_of", f"{data.name} has only {len(bars.dates)} bars up to {as_of}")
    vix_level = None
    if vix is not None:
        levels = load_vix(vix)
        vix_level = levels.get(bars.dates[-1])
    if iv is None:
        if vix_level is not None:
            iv = vix_level / 100.0
        else:
            hv = float(indicators.hist_vol(bars.close, 20)[-1])
            iv = 1.1 * hv if np.isfinite(hv) and hv > 0 else 0.2
    start = max(0, len(bars.dates) - HISTORY)
    snapshot = decision_pb2.MarketSnapshot(
        symbols=[
            decision_pb2.SymbolMarket(
                symbol=symbol,
                iv=iv,
                sector=sector,
                bars=[
                    decision_pb2.Bar(
                        date=bars.dates[i].isoformat(),
                        open=float(bars.open[i]),
                        high=float(bars.high[i]),
                        low=float(bars.low[i]),
                        close=float(bars.close[i]),
                        volume=float(bars.volume[i]),
                    )
                    for i in range(start, len(bars.dates))
                ],
            )
        ]
    )
    if vix_level is not None:
        snapshot.vix = vix_level
    return snapshot


def money(value: float | Decimal) -> common_pb2.Money:
    """A Money message for an amount in dollars, rounded half-even to the cent."""
    return money_out(value)


def metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying an API key ("<key_id>.<secret>"), or none."""
    return (("authorization", f"Bearer {token}"),) if token else ()


def channel(address: str, tls_ca: Path | None = None) -> grpc.Channel:
    """A channel to the server: TLS when a CA file is given, else plaintext (loopback)."""
    if tls_ca is not None:
        return grpc.secure_channel(address, grpc.ssl_channel_credentials(tls_ca.read_bytes()))
    return grpc.insecure_channel(address)
