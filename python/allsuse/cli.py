"""The `allsuse` command line.

allsuse serve [--config development|production|FILE.yaml] [--host H] [--port P]   # server.workers processes
allsuse keys create --role viewer|trader|admin [--store URL]      # prints <key_id>.<secret> once
allsuse keys revoke KEY_ID [--store URL]
allsuse keys list [--store URL]
allsuse healthcheck [--address HOST:PORT] [--timeout S] [--tls-ca FILE]   # exit 0 when SERVING
allsuse simulate --data [SYM=]CSV ... [--symbols gen=A,B ...] --start D --end D --capital X [--output-dir DIR]
allsuse sweep --grid GRID.yaml --data [SYM=]CSV ... [--symbols ...] --output-dir DIR [--address A] [--walk-forward D]
allsuse audit verify [--full] [--store URL]
allsuse data load FILE... [--symbol S] [--replace] [--store URL | --address HOST:PORT --token T]
allsuse data check FILE... [--json]                                # data quality; exit 1 when a check fails
allsuse chat [--address HOST:PORT] [--token T] [--portfolio ID] [--conversation ID]   # talk to the agent
allsuse report --portfolio ID [--kind daily|weekly|quarterly] [--html FILE] [--json [FILE]] [--as-of DATE]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from allsuse import build_profile, config
from allsuse.config import ROLES
from allsuse.errors import AllsuseError, InvalidInputError

if TYPE_CHECKING:
    from allsuse.backtest.costs import CostModel, RateCurve


def _serve(args: argparse.Namespace) -> int:
    overrides = dict(os.environ)
    if args.host is not None:
        overrides["ALLSUSE_SERVER_HOST"] = args.host
    if args.port is not None:
        overrides["ALLSUSE_SERVER_PORT"] = str(args.port)
    cfg = config.load(args.config, overrides)
    from allsuse.server.app import serve
    from allsuse.server.logs import configure_logging

    configure_logging(cfg.logging)
    if args.worker is None and cfg.server.workers > 1:
        from allsuse.server.workers import supervise

        repeat = ["--config", args.config]
        repeat += [] if args.host is None else ["--host", args.host]
        repeat += [] if args.port is None else ["--port", str(args.port)]
        return supervise(cfg, repeat)
    logging.getLogger("allsuse").info("core build profile: %s", build_profile())
    asyncio.run(serve(cfg, worker=args.worker))
    from allsuse.server.rpc import blocking_calls_running

    left = blocking_calls_running()
    if left:
        # The drain is over and the store closed; a sync call on a worker thread cannot be interrupted, and the
        # interpreter would join its thread before exiting, past the 5 s bound. Exit without waiting for it.
        logging.getLogger("allsuse.server").warning("exiting with %d blocking calls still running (abandoned)", left)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def _store_url(args: argparse.Namespace) -> str:
    if args.store:
        return str(args.store)
    return config.load(args.config).store.url


def _keys_create(args: argparse.Namespace) -> int:
    from allsuse.store import Store

    with Store(_store_url(args)) as store:
        issued = store.create_api_key(args.role, actor="cli")
        where = store.location.describe()
    print(f"created API key {issued.key_id} (role {issued.role}) in {where}; shown once:", file=sys.stderr)
    print(issued.token, flush=True)
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    from allsuse.store import Store

    with Store(_store_url(args), create=False) as store:
        info = store.revoke_api_key(args.key_id, actor="cli")
    print(f"revoked {info.key_id} (role {info.role}); servers stop accepting it within auth.cache_seconds")
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    from allsuse.store import Store

    with Store(_store_url(args), create=False) as store:
        keys = store.list_api_keys()
    for key in keys:
        state = f"revoked {key.revoked_at}" if key.revoked_at else "active"
        print(f"{key.key_id:<24} {key.role:<8} created {key.created_at}  {state}")
    return 0


def _healthcheck(args: argparse.Namespace) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from allsuse.server.tls import channel_credentials

    address = args.address
    if address is None:
        server = config.load(args.config).server
        host = "127.0.0.1" if server.host in ("0.0.0.0", "::", "[::]") else server.host
        address = f"{host}:{server.port}"
    options = [("grpc.ssl_target_name_override", args.tls_server_name)] if args.tls_server_name else []
    if args.tls_ca is not None:
        channel = grpc.secure_channel(address, channel_credentials(args.tls_ca), options)
    else:
        channel = grpc.insecure_channel(address, options)
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout)
        except grpc.RpcError as exc:
            print(f"{address}: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{address} {args.service or '(server)'}: {status}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} must be in (0, 3600] seconds")
    return value


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
    dep = result["deployment"]
    print(f"deployment of the portfolio (share of equity at work): mean {dep['mean']:.1%} max {dep['max']:.1%}")
    for account_id, a in result["accounts"].items():
        d = a["deployment"]
        print(f"  {account_id:<28} mean {d['mean']:.1%} max {d['max']:.1%} trades {a['trades']}")
    if result.get("single_underlying"):
        print(f"single underlying: {result['single_underlying']}; {result['settlement']}-settled options")
    else:
        mapping = "  ".join(f"{k}={','.join(v) or '-'}" for k, v in result.get("symbols", {}).items())
        print(f"symbols: {mapping}; {result['settlement']}-settled options")
    costs = result.get("costs")
    if costs:
        print(
            f"costs: commissions {costs['commissions']:,.2f}  spread {costs['spread_costs']:,.2f}  "
            f"interest earned {costs['interest']:,.2f}  ({costs['fills']} fills)"
        )
    for a_id, a in result["accounts"].items():
        if "weekly_target" in a:
            print(f"  {a_id:<28} weekly return {a['mean_weekly_return']:+.3%} against target {a['weekly_target']:+.3%}")
    for note in result.get("data", {}).get("notes", []):
        print(f"data: {note}")
    proxy = [r for r in result["vol_source"] if r["source"] == "proxy"]
    if proxy:
        spans = ", ".join(f"{r['from']} .. {r['to']}" for r in proxy)
        print(f"volatility: the VIX proxy (realised vol x ratio) on {result['proxy_days']} days: {spans}")
    else:
        print("volatility: the VIX on every day")
    for text in result["warnings"]:
        print(f"warning: {text}")
    print("metrics:")
    for name, value in result["metrics"].items():
        print(f"  {name:<20} {'n/a' if value is None else f'{value:.6f}'}")


def _rate(text: str) -> RateCurve:
    """`--rate`: an annual rate (0.02) or a CSV of daily rates (date,rate)."""
    from allsuse.backtest.costs import RateCurve

    try:
        value = float(text)
    except ValueError:
        return RateCurve.from_csv(Path(text))
    try:
        return RateCurve.constant(value)
    except InvalidInputError as exc:
        raise InvalidInputError.of("--rate", str(exc.reason)) from None


def _costs(args: argparse.Namespace) -> CostModel:
    """The cost model of `--commission`, `--share-commission`, `--spread` and `--rate`."""
    from allsuse.backtest.costs import CostModel

    return CostModel(
        commission_per_contract=args.commission,
        commission_per_share=args.share_commission,
        spread=args.spread,
        rate=_rate(args.rate),
    )


def _cost_options(parser: argparse.ArgumentParser) -> None:
    """The cost options `simulate` and `sweep` share."""
    parser.add_argument("--commission", type=float, default=0.65, help="per option contract (default 0.65)")
    parser.add_argument("--share-commission", type=float, default=0.005, help="per share (default 0.005)")
    parser.add_argument(
        "--spread", type=float, default=0.05, help="bid/ask spread as a share of the option price (default 0.05)"
    )
    parser.add_argument(
        "--rate", default="0.02", help="annual interest rate (default 0.02) or a CSV of daily rates (date,rate)"
    )


def _simulate(args: argparse.Namespace) -> int:
    """Runs a backtest: every option and file is checked first, then the data is read, aligned and simulated with
    its benchmarks; `--output-dir` gets result.json, equity.csv, trades.csv and report.html (all or nothing)."""
    from allsuse.backtest.data import Source
    from allsuse.backtest.outputs import check_output_dir, write_outputs
    from allsuse.backtest.report import write_report
    from allsuse.backtest.simulation import BacktestSpec, parse_symbols, run_backtest
    from allsuse.backtest.summary import summary_lines
    from allsuse.protocol import settings

    if args.output:
        folder = Path(args.output).resolve().parent
        if not folder.is_dir():
            raise InvalidInputError.of("--output", f"folder {folder} does not exist")
    if args.output_dir:
        check_output_dir(Path(args.output_dir))
    if args.symbol and len(args.data) != 1:
        raise InvalidInputError.of("--symbol", "applies to one --data file only (use SYMBOL=PATH)")
    costs = _costs(args)
    sources = tuple(Source.parse(d) for d in args.data)
    if args.symbol:
        sources = (dataclasses.replace(sources[0], symbol=args.symbol.upper()),)
    spec = BacktestSpec(
        sources=sources,
        start=args.start,
        end=args.end,
        capital=args.capital,
        symbols=parse_symbols(args.symbols) if args.symbols else None,
        costs=costs,
        vix=Path(args.vix) if args.vix else None,
        seed=args.seed,
    )
    run = run_backtest(spec)
    _print_summary(run.result)
    print()
    for line in summary_lines(run):
        print(line)
    if args.output:
        target = Path(args.output)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(json.dumps(run.result, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, target)
        print(f"wrote {args.output}")
    if args.output_dir:
        config = spec.config or settings.default()
        written = write_outputs(
            run, Path(args.output_dir), extra=lambda folder: write_report(run, folder / "report.html", config)
        )
        print(f"wrote {', '.join(str(p) for p in written)}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    """A parameter sweep on Ray: every input is checked before any Ray work, the outputs are written whole."""
    from allsuse.backtest import grid as grids
    from allsuse.backtest import sweep, sweep_report
    from allsuse.backtest.simulation import parse_symbols
    from allsuse.protocol import settings

    sweep.require_ray()
    out_dir = Path(args.output_dir)
    if not out_dir.resolve().parent.is_dir():
        raise InvalidInputError.of("--output-dir", f"folder {out_dir.resolve().parent} does not exist")
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidInputError.of("--output-dir", f"{out_dir} is a file")
    grid = grids.load_grid(Path(args.grid))
    grid.configs(settings.default())
    vix = Path(args.vix) if args.vix else None
    sweep.check_files(args.data, vix=vix)
    costs = _costs(args)
    symbols = parse_symbols(args.symbols) if args.symbols else None
    sweep.check_address(args.address)
    data, vix_map = sweep.load_inputs(args.data, vix=vix, symbol=args.symbol, symbols=symbols, costs=costs)
    start = args.start or data.first_session
    end = args.end or data.last_session
    if end < start:
        raise InvalidInputError.of("--end", f"must not be before --start ({end} < {start})")
    if args.walk_forward is not None and not start < args.walk_forward <= end:
        raise InvalidInputError.of("--walk-forward", f"must lie after --start and not after --end ({start} .. {end})")
    points = len(grid.points())
    where = args.address or f"a local Ray with {args.workers or os.cpu_count()} workers"
    print(f"sweep: {points} points of {', '.join(grid.keys)} on {where}", flush=True)
    with sweep.ray_session(args.address, args.workers):
        result = sweep.run_sweep(
            grid,
            data,
            vix_map,
            start=start,
            end=end,
            capital=args.capital,
            seed=args.seed,
            walk_forward=args.walk_forward,
        )
    for line in sweep_report.summary_lines(result):
        print(line)
    for path in sweep_report.write_outputs(result, out_dir):
        print(f"wrote {path}")
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    from allsuse.store import AuditReport, FullReport, Store, StoreError, audit_verify, parse_location
    from allsuse.store.integrity import check_sqlite_file

    location = parse_location(args.store)
    report: FullReport | AuditReport
    try:
        with Store(args.store, create=False) as store:
            report = store.verify_full() if args.full else audit_verify(store)
    except StoreError as exc:
        # A SQLite file too damaged to open is still examined with the database's own check.
        if not (args.full and location.backend == "sqlite" and Path(location.target).is_file()):
            raise
        report = check_sqlite_file(location.target, opened=str(exc))
    print(f"store {location.describe()}")
    print(report)
    return 0 if report.ok else 1


def _address(args: argparse.Namespace) -> str:
    if args.address:
        return str(args.address)
    server = config.load(args.config).server
    host = "127.0.0.1" if server.host in ("0.0.0.0", "::", "[::]") else server.host
    return f"{host}:{server.port}"


def _rpc_failed(exc: Any) -> int:
    print(f"allsuse: {exc.code().name}: {exc.details()}", file=sys.stderr)
    return 1


def _decide(args: argparse.Namespace) -> int:
    import grpc
    from google.protobuf.json_format import MessageToJson
    from google.protobuf.timestamp_pb2 import Timestamp

    from allsuse.client import channel, metadata, snapshot_from_csv
    from allsuse.v1 import decision_pb2, decision_pb2_grpc

    as_of = args.as_of or dt.date.today()
    market = snapshot_from_csv(
        Path(args.data), args.symbol, as_of, vix=Path(args.vix) if args.vix else None, iv=args.iv
    )
    when = Timestamp()
    when.FromDatetime(dt.datetime.combine(as_of, dt.time(15, 45)))
    request = decision_pb2.DecideRequest(
        portfolio_id=args.portfolio,
        account_id=args.account,
        symbol=args.symbol,
        as_of=when,
        market=market,
        idempotency_key=args.key or "",
    )
    with channel(_address(args), Path(args.tls_ca) if args.tls_ca else None) as ch:
        try:
            decision = decision_pb2_grpc.DecisionServiceStub(ch).Decide(
                request, metadata=metadata(args.token), timeout=args.timeout
            )
        except grpc.RpcError as exc:
            return _rpc_failed(exc)
    if args.json:
        print(MessageToJson(decision))
        return 0
    action = decision_pb2.Action.Name(decision.action).removeprefix("ACTION_")
    outcome = decision_pb2.Outcome.Name(decision.outcome).removeprefix("OUTCOME_")
    print(f"{action} {outcome} (decision {decision.decision_id}, approval {decision.approval_status})")
    if decision.HasField("order"):
        o = decision.order
        print(
            f"  {o.side} {o.contracts} x {o.strike:g} exp {o.expiry} delta {o.delta:.1f} "
            f"limit {o.limit_price.units}.{abs(o.limit_price.cents):02d}"
        )
    print(f"  {decision.explanation}")
    return 0


def _chat(args: argparse.Namespace) -> int:
    """An interactive conversation with the server's agent (see allsuse.chat)."""
    from allsuse.chat import ChatSession, connect, line_history, run
    from allsuse.client import channel, metadata

    history = None if args.no_history else Path(args.history).expanduser()
    with channel(_address(args), Path(args.tls_ca) if args.tls_ca else None) as ch, line_history(history):
        session = ChatSession(
            connect(ch),
            portfolio_id=args.portfolio or "",
            conversation_id=args.conversation or "",
            metadata=metadata(args.token),
            timeout=args.timeout,
        )
        return run(session)


def _writable(flag: str, path: str | None) -> Path | None:
    """An output file's path, or InvalidInputError naming the flag when its folder does not exist or it is a
    folder (checked before the call, so nothing is asked of the server for a report that cannot be written)."""
    if path is None:
        return None
    target = Path(path).expanduser()
    if target.is_dir() or not target.parent.is_dir():
        raise InvalidInputError.of(flag, f"cannot write {path}: not a file in an existing folder")
    return target


def _report(args: argparse.Namespace) -> int:
    """Asks the server for a report (GetReport): the text on stdout, or the JSON with a bare --json; --html FILE
    and --json FILE write the page and the JSON body."""
    import grpc
    from google.protobuf.timestamp_pb2 import Timestamp

    from allsuse.client import channel, metadata
    from allsuse.v1 import monitor_pb2, monitor_pb2_grpc

    if not args.portfolio.strip():
        raise InvalidInputError.of("--portfolio", "must not be empty")
    html_file = _writable("--html", args.html)
    json_file = _writable("--json", None if args.json in (None, "-") else args.json)
    when = Timestamp()
    when.FromDatetime(dt.datetime.combine(args.as_of or dt.date.today(), dt.time(17, 0)))
    request = monitor_pb2.GetReportRequest(portfolio_id=args.portfolio, kind=args.kind, as_of=when)
    with channel(_address(args), Path(args.tls_ca) if args.tls_ca else None) as ch:
        try:
            report = monitor_pb2_grpc.MonitorServiceStub(ch).GetReport(
                request, metadata=metadata(args.token), timeout=args.timeout
            )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                flag = {"portfolio_id": "--portfolio", "kind": "--kind", "as_of": "--as-of"}
                field = (exc.details() or "").split(":", 1)[0]
                print(f"allsuse: {flag.get(field, field)}: {exc.details()}", file=sys.stderr)
                return 2
            return _rpc_failed(exc)
    if html_file is not None:
        html_file.write_text(report.html, encoding="utf-8")
    if json_file is not None:
        json_file.write_text(report.json, encoding="utf-8")
    if args.json == "-":
        print(report.json)
    elif html_file is None and json_file is None:
        print(report.text)
    else:
        print(
            f"{report.kind} report for {report.portfolio_id}: " + ", ".join(str(f) for f in (html_file, json_file) if f)
        )
    return 0


def _quality_limits(args: argparse.Namespace) -> Any:
    """The data-quality thresholds of --config (market.quality_*)."""
    from allsuse.data_quality import Limits

    market = config.load(args.config).market
    return Limits(market.quality_max_jump, market.quality_stale_sessions, market.quality_max_fill_sessions)


def _data_check(args: argparse.Namespace) -> int:
    """Prints the data-quality report of each file; exit 1 when a check fails."""
    from allsuse.data_quality import check_file
    from allsuse.market_files import read_market_file

    limits = _quality_limits(args)
    reports = [check_file(read_market_file(Path(f), args.symbol), limits) for f in args.files]
    if args.json:
        print(json.dumps({"ok": all(r.ok for r in reports), "files": [r.as_dict() for r in reports]}, indent=2))
    else:
        for report in reports:
            for line in report.lines():
                print(line)
    return 0 if all(r.ok for r in reports) else 1


def _data_load(args: argparse.Namespace) -> int:
    """Loads market files into the store directly (default) or through a running server (--address), after the
    data-quality checks (printed) and forward-filling of short gaps (flagged imputed; a longer gap refuses the
    load before anything is written)."""
    from allsuse.data_quality import check_file, fill_gaps
    from allsuse.market_files import MarketFile, read_market_file

    if args.symbol and len(args.files) != 1:
        raise InvalidInputError.of("symbol", "applies to one file only")
    limits = _quality_limits(args)
    files: list[MarketFile] = []
    imputed: dict[tuple[str, str], tuple[int, ...]] = {}
    for name in args.files:
        read = read_market_file(Path(name), args.symbol)
        for line in check_file(read, limits).lines():
            print(f"quality: {line}")
        kept = []
        for one in read.series:
            filled, days = fill_gaps(one, limits)
            kept.append(filled)
            imputed[(read.path.name, one.symbol)] = days
            if days:
                print(f"quality: {read.path.name}: {one.symbol} {len(days)} session(s) filled forward (imputed)")
        files.append(MarketFile(read.path, tuple(kept), read.vix))
    if args.address:
        return _data_load_rpc(args, files, imputed)
    from allsuse.server.convert import bars_from_columns
    from allsuse.server.marketdata import MAX_PUBLISH_BARS
    from allsuse.store import Store
    from allsuse.store import market as stored

    with Store(_store_url(args)) as store:
        for f in files:
            for series in f.series:
                message = series.message().SerializeToString()
                bars, _ = bars_from_columns(message, f"{f.path.name}:{series.symbol}", max_bars=MAX_PUBLISH_BARS)
                if bars is None:
                    continue
                rows: list[stored.BarRow] = list(
                    zip(series.days.tolist(), *(c.tolist() for c in series.columns), strict=True)
                )
                flagged = imputed.get((f.path.name, series.symbol), ())
                counts = store.write(
                    lambda tx, s=series.symbol, r=rows, i=flagged: stored.put_bars(  # type: ignore[misc]
                        tx, s, r, replace=args.replace, actor="cli", imputed=i
                    )
                )
                print(f"{f.path.name}: {series.symbol} {len(rows)} bars ({_counts(counts)})")
            if f.vix:
                inserted = replaced = unchanged = 0

                def unit(tx: Any, levels: tuple[tuple[int, float], ...] = f.vix) -> None:
                    nonlocal inserted, replaced, unchanged
                    for day, level in levels:
                        c = stored.put_quotes(
                            tx, day, {stored.MARKET_WIDE: {"vix": level}}, replace=args.replace, actor="cli"
                        )
                        inserted, replaced, unchanged = (
                            inserted + c.inserted,
                            replaced + c.replaced,
                            unchanged + c.unchanged,
                        )

                store.write(unit)
                print(
                    f"{f.path.name}: VIX {len(f.vix)} days ({inserted} new, {replaced} replaced, {unchanged} unchanged)"
                )
    return 0


def _counts(c: Any) -> str:
    return f"{c.inserted} new, {c.replaced} replaced, {c.unchanged} unchanged"


def _data_load_rpc(
    args: argparse.Namespace, files: Sequence[Any], imputed: dict[tuple[str, str], tuple[int, ...]]
) -> int:
    import grpc

    from allsuse.client import channel, metadata
    from allsuse.v1 import market_pb2, market_pb2_grpc

    chunk = 5_000
    with channel(_address(args), Path(args.tls_ca) if args.tls_ca else None) as ch:
        stub = market_pb2_grpc.MarketDataServiceStub(ch)
        try:
            for f in files:
                for series in f.series:
                    n = len(series.days)
                    filled = imputed.get((f.path.name, series.symbol), ())
                    requests = [
                        market_pb2.PublishBarsRequest(
                            symbol=series.symbol,
                            columns=series.message(i, i + chunk),
                            replace=args.replace,
                            imputed_days=[
                                d for d in filled if series.days[i] <= d <= series.days[min(i + chunk, n) - 1]
                            ],
                        )
                        for i in range(0, n, chunk)
                    ]
                    reply = stub.PublishBarsStream(iter(requests), metadata=metadata(args.token), timeout=args.timeout)
                    print(f"{f.path.name}: {series.symbol} {n} bars ({_counts(reply)})")
                if f.vix:
                    total = market_pb2.PublishQuotesResponse()
                    for day, level in f.vix:
                        date = (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()
                        r = stub.PublishQuotes(
                            market_pb2.PublishQuotesRequest(date=date, vix=level, replace=args.replace),
                            metadata=metadata(args.token),
                            timeout=args.timeout,
                        )
                        total.inserted += r.inserted
                        total.replaced += r.replaced
                        total.unchanged += r.unchanged
                    print(f"{f.path.name}: VIX {len(f.vix)} days ({_counts(total)})")
        except grpc.RpcError as exc:
            return _rpc_failed(exc)
    return 0


def _client_args(p: argparse.ArgumentParser, *, json_flag: bool = True) -> None:
    p.add_argument("--address", default=None, help="HOST:PORT (default: server.host:port of --config)")
    p.add_argument("--config", default="development", help="environment for the default address")
    p.add_argument("--token", default=None, help="API key <key_id>.<secret> (or set ALLSUSE_TOKEN)")
    p.add_argument("--tls-ca", default=None, help="PEM CA to trust: use TLS")
    p.add_argument("--timeout", type=_positive_seconds, default=10.0, help="seconds (default 10)")
    if json_flag:
        p.add_argument("--json", action="store_true", help="print the reply as JSON")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="allsuse", description="ALL-USE decision engine")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gRPC server until SIGTERM/SIGINT")
    serve.add_argument("--config", default="development", help="development, production, or a YAML file")
    serve.add_argument("--host", default=None, help="override server.host")
    serve.add_argument("--port", type=int, default=None, help="override server.port")
    serve.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)  # set by the supervisor
    serve.set_defaults(func=_serve)
    sim = sub.add_parser("simulate", help="backtest the weekly protocol over daily bars, after costs")
    sim.add_argument(
        "--data",
        required=True,
        nargs="+",
        metavar="[SYMBOL=]PATH",
        help="per-symbol CSV (date,open,high,low,close,volume; symbol = file name up to its first '_' or SYMBOL=) "
        "or wide close-only CSV (date,SYMBOL,...)",
    )
    sim.add_argument(
        "--symbols",
        nargs="+",
        default=None,
        metavar="TYPE=SYM,SYM",
        help="symbols per account type, e.g. gen=AMD,BAC rev=AAPL,MSFT com=JNJ,PG "
        "(default: each account's configured symbols found in the data; one symbol: every account trades it)",
    )
    sim.add_argument("--vix", default=None, help="CSV with date and vix_close; IV = VIX/100 where it covers")
    sim.add_argument("--symbol", default=None, help="name of the underlying of one --data file")
    sim.add_argument("--start", required=True, type=_date)
    sim.add_argument("--end", required=True, type=_date)
    sim.add_argument("--capital", required=True, type=float)
    sim.add_argument("--seed", type=int, default=0)
    _cost_options(sim)
    sim.add_argument("--output", default=None, help="write the full result as JSON here")
    sim.add_argument("--output-dir", default=None, help="write result.json, equity.csv and trades.csv here")
    sim.set_defaults(func=_simulate)
    swp = sub.add_parser("sweep", help="backtest every point of a parameter grid, each as a Ray task")
    swp.add_argument("--grid", required=True, help="YAML: dotted protocol.yaml keys -> lists of values")
    swp.add_argument(
        "--data",
        required=True,
        nargs="+",
        help="[SYMBOL=]CSV: per-symbol OHLCV files and/or wide close-only files (date, one column per symbol)",
    )
    swp.add_argument("--symbols", nargs="+", default=None, help="gen=A,B rev=C,D com=E,F (default: configured)")
    swp.add_argument("--vix", default=None, help="CSV with date and vix_close; IV = VIX/100 where it covers")
    swp.add_argument("--symbol", default=None, help="name of the underlying (default: from the file name)")
    swp.add_argument("--start", type=_date, default=None, help="first day (default: the data's first)")
    swp.add_argument("--end", type=_date, default=None, help="last day (default: the data's last)")
    swp.add_argument("--capital", type=float, default=1_000_000.0, help="starting capital (default 1,000,000)")
    swp.add_argument("--seed", type=int, default=0)
    _cost_options(swp)
    swp.add_argument("--output-dir", required=True, help="folder for sweep.csv and sweep.html")
    swp.add_argument("--address", default=None, help="existing Ray cluster: auto, HOST:PORT or ray://HOST:PORT")
    swp.add_argument("--workers", type=int, default=None, help="local Ray's workers (default: the machine's cores)")
    swp.add_argument(
        "--walk-forward",
        type=_date,
        default=None,
        metavar="SPLIT_DATE",
        help="choose the best point before this date (Sharpe, then CAGR) and run it and the defaults after it",
    )
    swp.set_defaults(func=_sweep)
    audit = sub.add_parser("audit", help="audit log tools")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="walk the audit hash chain; exit 1 at the first problem")
    verify.add_argument("--store", default=None, help="SQLite path or PostgreSQL DSN (default: $ALLSUSE_STORE_URL)")
    verify.add_argument(
        "--full",
        action="store_true",
        help="also the database's integrity check and every record against the audit entry that wrote it",
    )
    verify.set_defaults(func=_audit_verify)
    keys = sub.add_parser("keys", help="API keys: create, revoke, list")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    store_help = "SQLite path or PostgreSQL DSN (default: store.url of --config, or $ALLSUSE_STORE_URL)"
    create = keys_sub.add_parser("create", help="issue a key and print <key_id>.<secret> once")
    create.add_argument("--role", required=True, choices=ROLES, help="viewer < trader < admin")
    revoke = keys_sub.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id")
    listing = keys_sub.add_parser("list", help="list keys (never secrets)")
    for p, fn in ((create, _keys_create), (revoke, _keys_revoke), (listing, _keys_list)):
        p.add_argument("--store", default=None, help=store_help)
        p.add_argument("--config", default="development", help="environment whose store.url is the default")
        p.set_defaults(func=fn)
    health = sub.add_parser("healthcheck", help="ask a server's gRPC health; exit 0 when SERVING")
    health.add_argument("--address", default=None, help="HOST:PORT (default: server.host:port of --config)")
    health.add_argument("--config", default="development", help="environment for the default address")
    health.add_argument("--timeout", type=_positive_seconds, default=3.0, help="seconds (default 3)")
    health.add_argument("--tls-ca", default=None, help="PEM CA to trust: use TLS")
    health.add_argument("--tls-server-name", default=None, help="name to check the certificate against")
    health.add_argument("--service", default="", help="service name (default: the whole server)")
    health.set_defaults(func=_healthcheck)
    dec = sub.add_parser("decide", help="ask a server for a decision on one account and symbol")
    _client_args(dec)
    dec.add_argument("--portfolio", required=True)
    dec.add_argument("--account", required=True, help="account id, e.g. <portfolio>/gen-1")
    dec.add_argument("--symbol", required=True)
    dec.add_argument("--data", required=True, help="CSV of daily bars (date, open, high, low, close, volume)")
    dec.add_argument("--vix", default=None, help="CSV of VIX closes: IV = VIX/100 on the as-of date")
    dec.add_argument("--iv", type=float, default=None, help="implied volatility as a fraction (overrides --vix)")
    dec.add_argument("--as-of", type=_date, default=None, help="YYYY-MM-DD (default today)")
    dec.add_argument("--key", default=None, help="idempotency key: the same key returns the same decision")
    dec.set_defaults(func=_decide)
    data = sub.add_parser("data", help="market history: load CSV files into the store or a running server")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    load = data_sub.add_parser(
        "load",
        help="load daily bars (date,open,high,low,close,volume or wide date,TICKER,... closes) and VIX files",
    )
    load.add_argument("files", nargs="+", metavar="FILE")
    load.add_argument("--symbol", default=None, help="symbol of a per-symbol file (default: from the file name)")
    load.add_argument("--replace", action="store_true", help="overwrite stored bars whose values differ")
    load.add_argument("--store", default=None, help=store_help + "; ignored with --address")
    load.add_argument("--address", default=None, help="publish through the server at HOST:PORT instead")
    load.add_argument("--config", default="development", help="environment whose store.url is the default")
    load.add_argument("--token", default=None, help="admin API key for --address (or set ALLSUSE_TOKEN)")
    load.add_argument("--tls-ca", default=None, help="PEM CA to trust: use TLS")
    load.add_argument("--timeout", type=_positive_seconds, default=120.0, help="seconds per call (default 120)")
    load.set_defaults(func=_data_load)
    check = data_sub.add_parser(
        "check", help="data-quality report of market files (missing sessions, bad prices, jumps, stale values...)"
    )
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument("--symbol", default=None, help="symbol of a per-symbol file (default: from the file name)")
    check.add_argument("--config", default="development", help="environment whose market.quality_* thresholds apply")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(func=_data_check)
    chat = sub.add_parser("chat", help="talk to the server's agent in this terminal (Converse, one line a turn)")
    _client_args(chat)
    chat.add_argument("--portfolio", default=None, help="portfolio id the conversation is about")
    chat.add_argument("--conversation", default=None, help="resume this conversation id")
    chat.add_argument("--history", default="~/.allsuse_chat_history", help="readline history file")
    chat.add_argument("--no-history", action="store_true", help="keep no history file")
    chat.set_defaults(func=_chat, timeout=30.0)
    rep = sub.add_parser("report", help="a weekly, daily or quarterly report of a portfolio")
    _client_args(rep, json_flag=False)
    rep.add_argument("--portfolio", required=True)
    rep.add_argument("--kind", choices=("daily", "weekly", "quarterly"), default="weekly")
    rep.add_argument("--as-of", type=_date, default=None, help="YYYY-MM-DD (default today; the report is as of 17:00)")
    rep.add_argument("--html", default=None, metavar="FILE", help="write the report's self-contained HTML page here")
    rep.add_argument(
        "--json", nargs="?", const="-", default=None, metavar="FILE", help="write the JSON body here (bare: print it)"
    )
    rep.set_defaults(func=_report)
    args = parser.parse_args(argv)
    if getattr(args, "token", "absent") is None:
        args.token = os.environ.get("ALLSUSE_TOKEN")
    try:
        return int(args.func(args))
    except AllsuseError as exc:
        print(f"allsuse: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
