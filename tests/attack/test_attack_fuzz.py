"""A fuzzer over every RPC the server advertises through reflection, against a real `allsuse serve` process with
API keys on (the calls carry an admin key, so they reach the handlers).

The methods and their message types are discovered through server reflection only (a fresh descriptor pool built
from what the server sends); nothing here imports a request class. For each method it sends: the empty message;
a valid seed request (where one is known) with one field at a time set to an extreme (int64/int32 max and min,
uint max, +-1e308, NaN, +-inf, a 64 KB string, a string with NUL bytes, unknown enum values); the seed with every
double NaN / inf and every integer at its max; random bytes; and a message just over 4 MiB. Random bytes also go
out without a key. No answer may be UNKNOWN or INTERNAL, the server must log no traceback and stay SERVING.

Bounded: at most MAX_MUTATIONS field mutations per method (a fixed random sample), every call has a timeout, and
the whole run must finish within BUDGET_SECONDS.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from allsuse.store.pgtest import TemporaryPostgres, find_bindir
from allsuse.v1 import common_pb2, decision_pb2, market_pb2, monitor_pb2, portfolio_pb2, portfolio_pb2_grpc
from tests.attack.input_support import Server, serve_logged, ts
from tests.rpc_support import green_market, money

CALL_TIMEOUT = 10.0
STREAM_TIMEOUT = 1.0
BUDGET_SECONDS = 240.0
MAX_MUTATIONS = 100
FOUR_MIB = 4 * 1024 * 1024
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
DAY = dt.date(2024, 3, 7)
FORBIDDEN = (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL)

T = FieldDescriptor
DOUBLES = (T.TYPE_DOUBLE, T.TYPE_FLOAT)
EXTREMES: dict[int, tuple[Any, ...]] = {
    T.TYPE_DOUBLE: (1e308, -1e308, math.nan, math.inf, -math.inf),
    T.TYPE_FLOAT: (3.4e38, -3.4e38, math.nan, math.inf, -math.inf),
    T.TYPE_INT64: (2**63 - 1, -(2**63)),
    T.TYPE_SINT64: (2**63 - 1, -(2**63)),
    T.TYPE_SFIXED64: (2**63 - 1, -(2**63)),
    T.TYPE_INT32: (2**31 - 1, -(2**31)),
    T.TYPE_SINT32: (2**31 - 1, -(2**31)),
    T.TYPE_SFIXED32: (2**31 - 1, -(2**31)),
    T.TYPE_UINT64: (2**64 - 1,),
    T.TYPE_FIXED64: (2**64 - 1,),
    T.TYPE_UINT32: (2**32 - 1,),
    T.TYPE_FIXED32: (2**32 - 1,),
    T.TYPE_STRING: ("x" * 65_536, "a\x00b\x00"),
    T.TYPE_BYTES: (b"\x00" * 65_536,),
    T.TYPE_ENUM: (12_345, -7),
}
INTEGERS = {t for t in EXTREMES if t not in DOUBLES and t not in (T.TYPE_STRING, T.TYPE_BYTES, T.TYPE_ENUM)}


# --- reflection ---------------------------------------------------------------------------------------------------


def _reflect(channel: grpc.Channel, request: reflection_pb2.ServerReflectionRequest) -> Any:
    call = channel.stream_stream(
        REFLECTION,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    # Read to the end (one answer, then the server closes): an abandoned stream would be cancelled.
    (answer,) = call(iter([request]), timeout=CALL_TIMEOUT)
    return answer


def discover(channel: grpc.Channel) -> tuple[descriptor_pool.DescriptorPool, list[MethodDescriptor]]:
    """Every method of every service the server lists, with a pool of the descriptors it sent."""
    listed = _reflect(channel, reflection_pb2.ServerReflectionRequest(list_services=""))
    services = [s.name for s in listed.list_services_response.service]
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}

    def add(serialized: bytes) -> None:
        proto = descriptor_pb2.FileDescriptorProto.FromString(serialized)
        if proto.name in files:
            return
        files[proto.name] = proto
        for dependency in proto.dependency:
            if dependency not in files:
                reply = _reflect(channel, reflection_pb2.ServerReflectionRequest(file_by_filename=dependency))
                for blob in reply.file_descriptor_response.file_descriptor_proto:
                    add(blob)

    for name in services:
        reply = _reflect(channel, reflection_pb2.ServerReflectionRequest(file_containing_symbol=name))
        for blob in reply.file_descriptor_response.file_descriptor_proto:
            add(blob)
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def register(name: str) -> None:
        if name in added:
            return
        for dependency in files[name].dependency:
            register(dependency)
        pool.Add(files[name])
        added.add(name)

    for name in files:
        register(name)
    methods = [m for name in services for m in pool.FindServiceByName(name).methods]
    return pool, methods


# --- requests -----------------------------------------------------------------------------------------------------


def _leaves(desc: Descriptor, prefix: tuple[tuple[str, int | None], ...] = (), depth: int = 0) -> Iterator[Any]:
    """Paths to every scalar field (repeated fields at index 0), message fields followed up to depth 4."""
    for f in desc.fields:
        index = 0 if f.is_repeated else None
        path = (*prefix, (f.name, index))
        if f.type == T.TYPE_MESSAGE:
            if f.message_type.GetOptions().map_entry or depth >= 4:
                continue
            yield from _leaves(f.message_type, path, depth + 1)
        elif f.type in EXTREMES:
            yield path, f


def _set(msg: message.Message, path: tuple[tuple[str, int | None], ...], value: Any) -> None:
    """Sets the field at `path`, creating messages and repeated elements on the way."""
    for name, index in path[:-1]:
        child = getattr(msg, name)
        if index is None:
            msg = child
        else:
            if len(child) == 0:
                child.add()
            msg = child[index]
    name, index = path[-1]
    if index is None:
        setattr(msg, name, value)
        return
    items = getattr(msg, name)
    if len(items) == 0:
        items.append(value)
    else:
        items[index] = value


def _every(msg: message.Message, types: set[int], value: Callable[[FieldDescriptor], Any]) -> None:
    """Sets every already-present scalar field of one of `types`, in `msg` and its sub-messages, to value(f)."""
    for f, current in msg.ListFields():
        if f.type == T.TYPE_MESSAGE:
            if f.message_type.GetOptions().map_entry:
                continue
            for child in current if f.is_repeated else [current]:
                _every(child, types, value)
        elif f.type in types:
            if f.is_repeated:
                for i in range(len(current)):
                    current[i] = value(f)
            else:
                setattr(msg, f.name, value(f))


@dataclass
class Case:
    """One request to send: a label and the bytes."""

    label: str
    payload: bytes


@dataclass
class Findings:
    """What went wrong, all of it (the test reports every finding at once)."""

    problems: list[str] = field(default_factory=list)
    calls: int = 0
    codes: dict[str, int] = field(default_factory=dict)


def cases(method: MethodDescriptor, request_class: type[message.Message], seed: bytes | None) -> list[Case]:
    """Every request the fuzzer sends to `method`."""
    rng = random.Random(f"{method.full_name}")
    out = [Case("empty", b"")]
    base = request_class.FromString(seed) if seed is not None else request_class()
    if seed is not None:
        out.append(Case("seed", seed))
    mutations: list[Case] = []
    for path, f in _leaves(method.input_type):
        for value in EXTREMES[f.type]:
            mutated = request_class()
            mutated.CopyFrom(base)
            try:
                _set(mutated, path, value)
            except (TypeError, ValueError):
                continue
            where = ".".join(n if i is None else f"{n}[{i}]" for n, i in path)
            shown = value if not isinstance(value, str | bytes) else f"<{len(value)} chars>"
            mutations.append(Case(f"{where}={shown}", mutated.SerializeToString()))
    if len(mutations) > MAX_MUTATIONS:
        mutations = rng.sample(mutations, MAX_MUTATIONS)
    out += mutations
    for label, types, pick in (
        ("every double NaN", set(DOUBLES), lambda f: math.nan),
        ("every double inf", set(DOUBLES), lambda f: math.inf),
        ("every integer at its max", INTEGERS, lambda f: EXTREMES[f.type][0]),
        ("every string 64 KB", {T.TYPE_STRING}, lambda f: "y" * 65_536),
    ):
        whole = request_class()
        whole.CopyFrom(base)
        _every(whole, types, pick)
        out.append(Case(label, whole.SerializeToString()))
    out += [Case(f"random {n} bytes", rng.randbytes(n)) for n in (1, 3, 17, 256, 4096)]
    # Just over 4 MiB: the seed plus one unknown length-delimited field (number 4095) of 4 MiB.
    big = (4095 << 3) | 2
    tag = bytes([(big & 0x7F) | 0x80, big >> 7])
    size = FOUR_MIB + 1024
    length = bytearray()
    n = size
    while n >= 0x80:
        length.append((n & 0x7F) | 0x80)
        n >>= 7
    length.append(n)
    out.append(Case("just over 4 MiB", (seed or b"") + tag + bytes(length) + b"z" * size))
    return out


def call_raw(
    channel: grpc.Channel, method: MethodDescriptor, payload: bytes, metadata: tuple[tuple[str, str], ...]
) -> grpc.StatusCode:
    """Sends `payload` as the request of `method`; the status it ended with (OK, or the error's code)."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    try:
        if method.client_streaming:
            # One request, then half-close; the answers are read to their end (the stream ends by itself, so the
            # call is never cancelled: a cancelled reflection stream is a case of its own, item 13 of issue 8).
            stream = channel.stream_stream(path) if method.server_streaming else channel.stream_unary(path)
            result = stream(iter([payload]), metadata=metadata, timeout=CALL_TIMEOUT)
            if method.server_streaming:
                for _ in result:
                    pass
        elif method.server_streaming:
            responses = channel.unary_stream(path)(payload, metadata=metadata, timeout=STREAM_TIMEOUT)
            next(iter(responses), None)
            responses.cancel()
        else:
            channel.unary_unary(path)(payload, metadata=metadata, timeout=CALL_TIMEOUT)
    except grpc.RpcError as exc:
        code = exc.code()
        assert isinstance(code, grpc.StatusCode)
        if code is grpc.StatusCode.CANCELLED:  # our own cancel of a stream after its first answer
            return grpc.StatusCode.OK
        return code
    return grpc.StatusCode.OK


# --- seeds: a valid request per allsuse RPC, so mutations reach past the first check ------------------------------


def seeds(server: Server, channel: grpc.Channel) -> dict[str, bytes]:
    """Valid requests by full method name, against a portfolio and a decision made for the fuzz."""
    from allsuse.v1 import agent_pb2, decision_pb2_grpc

    stub = portfolio_pb2_grpc.PortfolioServiceStub(channel)
    created = stub.CreatePortfolio(
        portfolio_pb2.CreatePortfolioRequest(total=money(1_000_000), at=ts(dt.date(2024, 2, 1), 9, 30)),
        metadata=server.md("admin"),
        timeout=CALL_TIMEOUT,
    )
    pid = created.portfolio_id
    account = f"{pid}/gen-1"
    market = green_market(DAY)
    del market.symbols[0].bars[: len(market.symbols[0].bars) - 260]
    market.symbols[0].chain.add(kind=common_pb2.OPTION_KIND_PUT, strike=190.0, bid=1.0, ask=1.2, iv=0.4)
    decision = decision_pb2_grpc.DecisionServiceStub(channel).Decide(
        decision_pb2.DecideRequest(portfolio_id=pid, account_id=account, symbol="NVDA", as_of=ts(DAY), market=market),
        metadata=server.md("admin"),
        timeout=CALL_TIMEOUT,
    )
    order = decision_pb2.Order(
        kind=common_pb2.OPTION_KIND_PUT, side="sell_to_open", strike=190.0, expiry="2024-03-15", contracts=2,
        limit_price=money(1.5), delta=25.0, premium=money(300),
    )  # fmt: skip
    quote = decision_pb2.OptionQuote(kind=common_pb2.OPTION_KIND_PUT, strike=240.0, bid=1.0, ask=1.1, iv=0.35)
    columns = decision_pb2.BarColumns(
        days=[19_780, 19_781, 19_782], open=[10.0, 11.0, 12.0], high=[10.5, 11.5, 12.5], low=[9.5, 10.5, 11.5],
        close=[10.2, 11.2, 12.2], volume=[1e6, 2e6, 3e6],
    )  # fmt: skip
    context = {"kind": "open", "contracts": 3, "limit_price": 1.0, "mid": 1.0, "orders_last_minute": 0, "vix": 18.0}
    requests: dict[str, message.Message] = {
        "allsuse.v1.DecisionService.Decide": decision_pb2.DecideRequest(
            portfolio_id=pid, account_id=account, symbol="NVDA", as_of=ts(DAY), market=market, idempotency_key="k1"
        ),
        "allsuse.v1.DecisionService.AssessRisk": decision_pb2.AssessRiskRequest(
            portfolio_id=pid, market=market, as_of=ts(DAY), account_id=account, symbol="NVDA", proposed=order,
            confidence=0.975,
        ),
        "allsuse.v1.DecisionService.SizePosition": decision_pb2.SizePositionRequest(
            equity=money(38_000), free_cash=money(38_000), strike=30.0, size_share=0.125, existing_exposure=money(1),
            atr_multiplier=1.0, drawdown_multiplier=1.0, vix_multiplier=1.0, label_multiplier=1.0,
            allowed_exposure=1.0, max_symbol_weight=0.25,
        ),
        "allsuse.v1.DecisionService.SelectStrike": decision_pb2.SelectStrikeRequest(
            kind=common_pb2.OPTION_KIND_PUT, spot=250.0, t=5 / 365, iv=0.35, rate=0.04, band_low=20, band_high=30,
            target=25, chain=[quote],
        ),
        "allsuse.v1.DecisionService.ClassifyWeek": decision_pb2.ClassifyWeekRequest(
            position="SHORT_PUT", move_pct=-1.0, roll_available=True
        ),
        "allsuse.v1.DecisionService.CheckCompliance": decision_pb2.CheckComplianceRequest(
            context_json=json.dumps(context)
        ),
        "allsuse.v1.DecisionService.ApproveDecision": decision_pb2.ApproveDecisionRequest(
            decision_id=decision.decision_id, approve=False, note="fuzz"
        ),
        "allsuse.v1.DecisionService.RecordOutcome": decision_pb2.RecordOutcomeRequest(
            decision_id=decision.decision_id, right=True, realised_pnl=money(12.5), at=ts(DAY)
        ),
        "allsuse.v1.PortfolioService.CreatePortfolio": portfolio_pb2.CreatePortfolioRequest(
            portfolio_id="fuzz-created", total=money(100_000), at=ts(DAY)
        ),
        "allsuse.v1.PortfolioService.GetPortfolio": portfolio_pb2.GetPortfolioRequest(portfolio_id=pid),
        "allsuse.v1.PortfolioService.RecordFill": portfolio_pb2.RecordFillRequest(
            portfolio_id=pid, account_id=account, decision_id=decision.decision_id, symbol="NVDA", kind="put",
            side="sell_to_open", strike=30.0, expiry="2024-03-15", quantity=1, price=money(0.85), at=ts(DAY),
            position_id="",
        ),
        "allsuse.v1.PortfolioService.Withdraw": portfolio_pb2.WithdrawRequest(
            portfolio_id=pid, account_id=f"{pid}/rev-1", amount=money(10), reason="fuzz", at=ts(DAY)
        ),
        "allsuse.v1.PortfolioService.RunWeeklyCycle": portfolio_pb2.RunWeeklyCycleRequest(
            portfolio_id=pid, as_of=ts(dt.date(2024, 3, 8), 16, 5)
        ),
        "allsuse.v1.PortfolioService.Project": portfolio_pb2.ProjectRequest(
            total=money(100_000), years=3, paths=200, seed=1
        ),
        "allsuse.v1.PortfolioService.ResetAccount": portfolio_pb2.ResetAccountRequest(
            portfolio_id=pid, account_id=account, reason="fuzz"
        ),
        "allsuse.v1.MonitorService.StreamAlerts": monitor_pb2.StreamAlertsRequest(
            severities=["critical"], portfolio_id=pid
        ),
        "allsuse.v1.MonitorService.GetReport": monitor_pb2.GetReportRequest(
            portfolio_id=pid, kind="weekly", as_of=ts(DAY)
        ),
        "allsuse.v1.AgentService.Converse": agent_pb2.ConverseRequest(portfolio_id=pid, message="status"),
        "allsuse.v1.MarketDataService.PublishBars": market_pb2.PublishBarsRequest(symbol="FZZ", columns=columns),
        "allsuse.v1.MarketDataService.PublishBarsStream": market_pb2.PublishBarsRequest(
            symbol="FZY", columns=columns, replace=True
        ),
        "allsuse.v1.MarketDataService.PublishQuotes": market_pb2.PublishQuotesRequest(
            date="2024-03-07", symbols=[market_pb2.SymbolQuotes(symbol="FZZ", iv=0.3, sector="tech")], vix=18.0
        ),
        "allsuse.v1.MarketDataService.GetBars": market_pb2.GetBarsRequest(
            symbol="FZZ", start="2024-01-01", end="2024-12-31", limit=10
        ),
        "grpc.health.v1.Health.Check": health_pb2.HealthCheckRequest(service="allsuse.v1.DecisionService"),
        "grpc.health.v1.Health.Watch": health_pb2.HealthCheckRequest(service=""),
        "grpc.reflection.v1alpha.ServerReflection.ServerReflectionInfo": reflection_pb2.ServerReflectionRequest(
            host="localhost", file_containing_symbol="allsuse.v1.DecisionService"
        ),
    }  # fmt: skip
    return {name: request.SerializeToString() for name, request in requests.items()}


# --- the test -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The server on either store: PostgreSQL refuses some strings SQLite keeps (NUL), so both are fuzzed."""
    folder = tmp_path_factory.mktemp(f"attack-fuzz-{request.param}")
    if request.param == "sqlite":
        with serve_logged(folder) as running:
            yield running
        return
    if find_bindir() is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl, postgres) not found; `make setup` installs postgresql")
    with TemporaryPostgres() as pg, serve_logged(folder, store_url=pg.create_database("fuzz")) as running:
        yield running


def test_fuzz_every_rpc_found_through_reflection(server: Server) -> None:
    started = time.monotonic()
    findings = Findings()
    options = [("grpc.max_send_message_length", 16 * FOUR_MIB), ("grpc.max_receive_message_length", 16 * FOUR_MIB)]
    with grpc.insecure_channel(server.address, options=options) as channel:
        pool, methods = discover(channel)
        names = {m.full_name for m in methods}
        for expected in ("allsuse.v1.DecisionService.Decide", "allsuse.v1.PortfolioService.Project"):
            assert expected in names, sorted(names)
        known = seeds(server, channel)
        for method in methods:
            request_class = message_factory.GetMessageClass(pool.FindMessageTypeByName(method.input_type.full_name))
            for case in cases(method, request_class, known.get(method.full_name)):
                if time.monotonic() - started > BUDGET_SECONDS:
                    pytest.fail(f"the fuzz took over {BUDGET_SECONDS} s (at {method.full_name} {case.label})")
                code = call_raw(channel, method, case.payload, server.md("admin"))
                findings.calls += 1
                findings.codes[code.name] = findings.codes.get(code.name, 0) + 1
                if code in FORBIDDEN:
                    findings.problems.append(f"{method.full_name} [{case.label}] -> {code.name}")
            # Random bytes without a key: UNAUTHENTICATED (or, for health and reflection, INVALID_ARGUMENT).
            for n in (5, 300):
                code = call_raw(channel, method, random.Random(n).randbytes(n), ())
                findings.calls += 1
                if code in FORBIDDEN:
                    findings.problems.append(f"{method.full_name} [no key, random {n} bytes] -> {code.name}")
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    elapsed = time.monotonic() - started
    print(f"fuzz: {findings.calls} calls to {len(methods)} methods in {elapsed:.1f} s; codes {findings.codes}")
    assert findings.problems == [], "\n".join(findings.problems[:200])
    assert server.tracebacks() == [], server.log()[-6000:]
    assert server.proc.poll() is None
