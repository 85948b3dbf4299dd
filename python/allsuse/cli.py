"""The `allsuse` command line: `allsuse serve ...`, `allsuse simulate ...` and `allsuse audit verify`."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from allsuse import build_profile, config
from allsuse.errors import AllsuseError


def _serve(args: argparse.Namespace) -> int:
    cfg = config.load(args.config)
    server_cfg = cfg.server
    if args.host is not None:
        server_cfg = dataclasses.replace(server_cfg, host=args.host)
    if args.port is not None:
        server_cfg = dataclasses.replace(server_cfg, port=args.port)
    from allsuse.server.app import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("allsuse").info("core build profile: %s", build_profile())
    asyncio.run(serve(server_cfg))
    return 0


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _print_summary(result: dict[str, Any]) -> None:
    print(f"backtest {result['symbol']} {result['first_day']} .. {result['last_day']} seed={result['seed']}")
    print(
        f"capital {result['capital']:,.2f} -> final equity {result['final_equity']:,.2f} "
        f"({result['total_return']:+.2%})"
    )
    print("accounts:")
    for account_id, a in result["accounts"].items():
        types = " ".join(f"{k}:{v}" for k, v in a["week_types"].items()) or "-"
        print(
            f"  {account_id:<28} {a['type']} mean weekly return {a['mean_weekly_return']:+.3%} "
            f"max drawdown {a['max_drawdown']:.2%} final {a['final_equity']:,.2f} state {a['state']}"
        )
        print(f"  {'':<28} week types {types}")
    print(f"forks: {len(result['forks'])}  merges: {len(result['merges'])}  actions: {result['actions']}")
    print("metrics:")
    for name, value in result["metrics"].items():
        print(f"  {name:<20} {'n/a' if value is None else f'{value:.6f}'}")


def _simulate(args: argparse.Namespace) -> int:
    from allsuse.protocol.backtest import simulate

    result = simulate(
        Path(args.data),
        start=args.start,
        end=args.end,
        capital=args.capital,
        vix=Path(args.vix) if args.vix else None,
        symbol=args.symbol,
        seed=args.seed,
    )
    _print_summary(result)
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        print(f"wrote {args.output}")
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    from allsuse.store import Store, audit_verify

    with Store(args.store, create=False) as store:
        report = audit_verify(store)
    print(f"store {store.location.describe()}")
    print(report)
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="allsuse", description="ALL-USE decision engine")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gRPC server until SIGTERM/SIGINT")
    serve.add_argument("--config", default="development", help="environment: development or production")
    serve.add_argument("--host", default=None, help="override server.host")
    serve.add_argument("--port", type=int, default=None, help="override server.port")
    serve.set_defaults(func=_serve)
    sim = sub.add_parser("simulate", help="backtest the weekly protocol over daily bars of one underlying")
    sim.add_argument("--data", required=True, help="CSV with date, open, high, low, close, volume")
    sim.add_argument("--vix", default=None, help="CSV with date and vix_close; IV = VIX/100 where it covers")
    sim.add_argument("--symbol", default=None, help="name of the underlying (default: from the file name)")
    sim.add_argument("--start", required=True, type=_date)
    sim.add_argument("--end", required=True, type=_date)
    sim.add_argument("--capital", required=True, type=float)
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--output", default=None, help="write the full result as JSON here")
    sim.set_defaults(func=_simulate)
    audit = sub.add_parser("audit", help="audit log tools")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="walk the audit hash chain; exit 1 at the first problem")
    verify.add_argument("--store", default=None, help="SQLite path or PostgreSQL DSN (default: $ALLSUSE_STORE_URL)")
    verify.set_defaults(func=_audit_verify)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except AllsuseError as exc:
        print(f"allsuse: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
