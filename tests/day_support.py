"""The simulated trading day the monitoring and report tests share: Monday 2018-02-05 on the S&P 500 and VIX of
../shared/data, with a portfolio "day" holding a short put in Gen-Acc and one in Rev-Acc."""

from __future__ import annotations

import datetime as dt

import grpc

from allsuse.market_files import read_market_file
from allsuse.server.app import Service
from allsuse.store import market as stored
from allsuse.v1 import portfolio_pb2, portfolio_pb2_grpc
from tests.rpc_support import ROOT, TIMEOUT, money

DATA = ROOT.parent / "shared" / "data"
SP500_FILE = DATA / "sp500_daily_2009_2018.csv"
VIX_FILE = DATA / "vix_daily_2014_2018.csv"
DAY = dt.date(2018, 2, 5)
EPOCH = dt.date(1970, 1, 1)


async def seed_day(service: Service, created_at: dt.datetime) -> None:
    """Writes the feed before the open (the S&P 500 to Friday's close and the VIX to date) into a started
    service's store, then creates portfolio "day" at `created_at` and sells one 2018-02-09 put in each of its
    Gen-Acc (2650) and Rev-Acc (2600) on Friday 2018-02-02 at 15:00 over gRPC."""
    sp = read_market_file(SP500_FILE).series[0]
    vix = dict(read_market_file(VIX_FILE).vix)
    day = (DAY - EPOCH).days
    before = int((sp.days < day).sum())
    db = service.deps.store
    rows = list(zip(sp.days[:before].tolist(), *(c[:before].tolist() for c in sp.columns), strict=True))
    db.write(lambda tx: stored.put_bars(tx, "SP500", rows, replace=False, actor="feed"))
    db.write(
        lambda tx: [
            stored.put_quotes(tx, d, {stored.MARKET_WIDE: {"vix": v}}, replace=False, actor="feed")
            for d, v in vix.items()
            if d < day
        ]
    )
    async with grpc.aio.insecure_channel(service.server.address) as channel:
        portfolios = portfolio_pb2_grpc.PortfolioServiceStub(channel)
        created = portfolio_pb2.CreatePortfolioRequest(portfolio_id="day", total=money(1_000_000))
        created.at.FromDatetime(created_at)
        await portfolios.CreatePortfolio(created, timeout=TIMEOUT)
        for account, strike in (("day/gen-1", 2650.0), ("day/rev-1", 2600.0)):
            fill = portfolio_pb2.RecordFillRequest(
                portfolio_id="day", account_id=account, symbol="SP500", kind="put", side="sell_to_open",
                strike=strike, expiry="2018-02-09", quantity=1, price=money(12.0),
            )  # fmt: skip
            fill.at.FromDatetime(dt.datetime(2018, 2, 2, 15, 0))
            await portfolios.RecordFill(fill, timeout=TIMEOUT)
