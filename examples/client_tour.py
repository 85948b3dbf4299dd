"""A tour of every allsuse.v1 RPC against a running server (`make run` serves 127.0.0.1:50051).

    .venv/bin/python examples/client_tour.py [--address 127.0.0.1:50051] [--token <key_id>.<secret>]

It creates a portfolio, asks for a decision on real S&P 500 bars (../shared/data), approves it, records its
outcome, records fills, withdraws, runs the weekly cycle, projects, checks the building blocks, reads metrics
and a report, publishes bars and measures crowding, talks to the agent and (with an admin token) resets an
account. Every call has a timeout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import uuid
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp

from allsuse.client import channel, metadata, money, snapshot_from_csv
from allsuse.v1 import (
    agent_pb2,
    agent_pb2_grpc,
    common_pb2,
    decision_pb2,
    decision_pb2_grpc,
    market_pb2,
    market_pb2_grpc,
    monitor_pb2,
    monitor_pb2_grpc,
    portfolio_pb2,
    portfolio_pb2_grpc,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TIMEOUT = 10.0


def stamp(day: dt.date, hour: int = 15, minute: int = 45) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(dt.datetime.combine(day, dt.time(hour, minute)))
    return t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", default="127.0.0.1:50051")
    parser.add_argument("--token", default=None, help="API key when the server requires one")
    parser.add_argument("--admin-token", default=None, help="an admin key, for ResetAccount")
    args = parser.parse_args()
    md = metadata(args.token)
    day = dt.date(2018, 2, 1)  # a Thursday
    pid = f"tour-{uuid.uuid4().hex[:8]}"
    with channel(args.address) as ch:
        portfolios = portfolio_pb2_grpc.PortfolioServiceStub(ch)
        decisions = decision_pb2_grpc.DecisionServiceStub(ch)
        monitor = monitor_pb2_grpc.MonitorServiceStub(ch)
        agent = agent_pb2_grpc.AgentServiceStub(ch)
        market_data = market_pb2_grpc.MarketDataServiceStub(ch)

        p = portfolios.CreatePortfolio(
            portfolio_pb2.CreatePortfolioRequest(portfolio_id=pid, total=money(20_000_000), at=stamp(day, 9, 30)),
            metadata=md,
            timeout=TIMEOUT,
        )
        print("CreatePortfolio:", [(a.account_id, a.deployable.units) for a in p.accounts])

        market = snapshot_from_csv(DATA / "sp500_daily_2009_2018.csv", "SPX", day, vix=DATA / "vix_daily_2014_2018.csv")
        request = decision_pb2.DecideRequest(
            portfolio_id=pid,
            account_id=f"{pid}/gen-1",
            symbol="SPX",
            as_of=stamp(day),
            market=market,
            idempotency_key=f"{pid}-thu",
        )
        d = decisions.Decide(request, metadata=md, timeout=TIMEOUT)
        print("Decide:", decision_pb2.Action.Name(d.action), d.market_label, d.approval_status)
        print("   ", d.explanation[:160], "...")
        again = decisions.Decide(request, metadata=md, timeout=TIMEOUT)
        print("Decide again (same key): same decision =", again.decision_id == d.decision_id)
        if d.approval_status == "PENDING":
            d = decisions.ApproveDecision(
                decision_pb2.ApproveDecisionRequest(decision_id=d.decision_id, approve=True, note="tour"),
                metadata=md,
                timeout=TIMEOUT,
            )
            print("ApproveDecision:", d.approval_status)
        out = decisions.RecordOutcome(
            decision_pb2.RecordOutcomeRequest(
                decision_id=d.decision_id, right=True, realised_pnl=money(0), at=stamp(day)
            ),
            metadata=md,
            timeout=TIMEOUT,
        )
        print("RecordOutcome: trust", out.trust_kind, round(out.trust, 4))

        risk = decisions.AssessRisk(
            decision_pb2.AssessRiskRequest(
                portfolio_id=pid,
                market=market,
                as_of=stamp(day),
                account_id=f"{pid}/rev-1",
                symbol="SPX",
                proposed=decision_pb2.Order(
                    kind=common_pb2.OPTION_KIND_PUT,
                    strike=2700,
                    expiry="2018-02-09",
                    contracts=1,
                    limit_price=money(12.5),
                ),
            ),
            metadata=md,
            timeout=TIMEOUT,
        )
        print("AssessRisk: ES after", risk.es_after.units, "within budget", risk.within_budget)
        print("   stress:", [(st.scenario, st.pnl.units) for st in risk.stress] or "no book yet")
        size = decisions.SizePosition(
            decision_pb2.SizePositionRequest(
                equity=money(38_000), free_cash=money(38_000), strike=30, size_share=0.125
            ),
            metadata=md,
            timeout=TIMEOUT,
        )
        print("SizePosition:", size.contracts, size.binding)
        strike = decisions.SelectStrike(
            decision_pb2.SelectStrikeRequest(
                kind=common_pb2.OPTION_KIND_PUT, spot=250, t=5 / 365, iv=0.35, band_low=40, band_high=50
            ),
            metadata=md,
            timeout=TIMEOUT,
        )
        print("SelectStrike:", strike.strike, round(strike.delta, 1))
        week = decisions.ClassifyWeek(
            decision_pb2.ClassifyWeekRequest(position="SHORT_PUT", move_pct=-3.2, roll_available=True),
            metadata=md,
            timeout=TIMEOUT,
        )
        print("ClassifyWeek:", week.code, week.action)
        compliance = decisions.CheckCompliance(
            decision_pb2.CheckComplianceRequest(
                context_json=json.dumps(
                    {"kind": "close", "contracts": 60, "limit_price": 1.0, "mid": 1.0, "orders_last_minute": 0}
                )
            ),
            metadata=md,
            timeout=TIMEOUT,
        )
        print(
            "CheckCompliance:",
            decision_pb2.Outcome.Name(compliance.outcome),
            [r.message for r in compliance.results if not r.passed],
        )

        fill = portfolios.RecordFill(
            portfolio_pb2.RecordFillRequest(
                portfolio_id=pid,
                account_id=f"{pid}/rev-1",
                symbol="SPX",
                kind="put",
                side="sell_to_open",
                strike=2700,
                expiry="2018-02-09",
                quantity=1,
                price=money(12.5),
                at=stamp(day),
                idempotency_key=f"{pid}-fill-1",
            ),
            metadata=md,
            timeout=TIMEOUT,
        )
        print("RecordFill:", fill.position.position_id, fill.transaction.amount.units)
        # Every write takes an idempotency key: a retry after a lost reply (same key, same request) returns the
        # first reply and moves no money twice.
        withdraw = portfolio_pb2.WithdrawRequest(
            portfolio_id=pid,
            account_id=f"{pid}/gen-1",
            amount=money(500),
            reason="income",
            idempotency_key=f"{pid}-w-1",
        )
        tx = portfolios.Withdraw(withdraw, metadata=md, timeout=TIMEOUT)
        retried = portfolios.Withdraw(withdraw, metadata=md, timeout=TIMEOUT)
        print("Withdraw:", tx.kind, tx.amount.units, "(retry returned the same transaction:", retried == tx, ")")
        cycle = portfolios.RunWeeklyCycle(
            portfolio_pb2.RunWeeklyCycleRequest(portfolio_id=pid, as_of=stamp(day + dt.timedelta(days=1), 16, 5)),
            metadata=md,
            timeout=TIMEOUT,
        )
        print("RunWeeklyCycle: forks", len(cycle.forked), "equity", cycle.portfolio.equity.units)
        proj = portfolios.Project(
            portfolio_pb2.ProjectRequest(total=money(100_000), years=3, paths=500, seed=1), metadata=md, timeout=TIMEOUT
        )
        print("Project:", [y.expected.units for y in proj.years])
        got = portfolios.GetPortfolio(portfolio_pb2.GetPortfolioRequest(portfolio_id=pid), metadata=md, timeout=TIMEOUT)
        print("GetPortfolio: positions", len(got.positions))

        metrics = monitor.GetMetrics(monitor_pb2.GetMetricsRequest(), metadata=md, timeout=TIMEOUT)
        print("GetMetrics:", metrics.build.version, metrics.build.core_profile, dict(metrics.decisions_by_outcome))
        report = monitor.GetReport(
            monitor_pb2.GetReportRequest(portfolio_id=pid, kind="weekly", as_of=stamp(day, 17, 0)),
            metadata=md,
            timeout=TIMEOUT,
        )
        print("GetReport:", report.text.splitlines()[0])
        # Crowding is measured on the server's own market history: publish the S&P 500 bars first (an admin call).
        admin = metadata(args.admin_token) if args.admin_token else md
        bars = market.symbols[0].bars
        epoch = dt.date(1970, 1, 1)
        columns = decision_pb2.BarColumns(
            days=[(dt.date.fromisoformat(b.date) - epoch).days for b in bars],
            open=[b.open for b in bars],
            high=[b.high for b in bars],
            low=[b.low for b in bars],
            close=[b.close for b in bars],
            volume=[b.volume for b in bars],
        )
        published = market_data.PublishBars(
            market_pb2.PublishBarsRequest(symbol="SPX", columns=columns), metadata=admin, timeout=TIMEOUT
        )
        print("PublishBars:", published.inserted, "new bars")
        crowd = monitor.GetCrowding(
            monitor_pb2.GetCrowdingRequest(portfolio_id=pid, as_of=stamp(day, 17, 0)), metadata=md, timeout=TIMEOUT
        )
        print("GetCrowding:", crowd.level, "HHI", round(crowd.hhi, 2), "cluster", list(crowd.crowded_cluster))
        stream = monitor.StreamAlerts(monitor_pb2.StreamAlertsRequest(portfolio_id=pid), metadata=md, timeout=1.0)
        try:
            for alert in stream:
                print("StreamAlerts:", alert.code)
        except Exception:  # the 1 s deadline ends the stream when no alert comes
            print("StreamAlerts: no alert within 1 s")
        reply = agent.Converse(
            agent_pb2.ConverseRequest(portfolio_id=pid, message="status"), metadata=md, timeout=TIMEOUT
        )
        print("Converse:", reply.reply[:100])
        if args.admin_token or not args.token:
            acct = portfolios.ResetAccount(
                portfolio_pb2.ResetAccountRequest(portfolio_id=pid, account_id=f"{pid}/gen-1", reason="tour"),
                metadata=metadata(args.admin_token) if args.admin_token else md,
                timeout=TIMEOUT,
            )
            print("ResetAccount:", acct.state)


if __name__ == "__main__":
    main()
