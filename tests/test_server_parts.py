"""The server's parts without a network: error table, token parsing, key cache, token buckets, principals, logs."""

from __future__ import annotations

import asyncio
import errno
import io
import json
import logging
from pathlib import Path

import grpc
import pytest

from allsuse.config import LoggingConfig
from allsuse.errors import ConvergenceError, InvalidInputError
from allsuse.server.auth import KeyVerifier, token_from_metadata
from allsuse.server.errors import (
    AlreadyExistsError,
    DeadlineExceededError,
    FailedPreconditionError,
    NotFoundError,
    RateLimitedError,
    UnauthenticatedError,
    scrub,
    status_for,
    trailers_for,
)
from allsuse.server.logs import access_log, configure_logging
from allsuse.server.ratelimit import TokenBucketLimiter
from allsuse.server.request import ANONYMOUS, Principal, role_allows
from allsuse.store import Store
from allsuse.store.errors import StoreClosedError, StoreError, StoreIntegrityError, StoreNotFoundError

S = grpc.StatusCode


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidInputError.of("strike", "must be positive"), S.INVALID_ARGUMENT),
        (ConvergenceError("vol: no convergence", "vol", "no convergence"), S.INVALID_ARGUMENT),
        (NotFoundError("portfolio 'p1' does not exist"), S.NOT_FOUND),
        (StoreNotFoundError("decision 'd1' does not exist"), S.NOT_FOUND),
        (AlreadyExistsError("portfolio 'p1' exists"), S.ALREADY_EXISTS),
        (StoreIntegrityError("write: UNIQUE constraint failed: decisions.idempotency_key"), S.ALREADY_EXISTS),
        (StoreIntegrityError("write: duplicate key value violates unique constraint"), S.ALREADY_EXISTS),
        (StoreIntegrityError("write: FOREIGN KEY constraint failed"), S.FAILED_PRECONDITION),
        (FailedPreconditionError("account is HALTED"), S.FAILED_PRECONDITION),
        (UnauthenticatedError("invalid or revoked API key"), S.UNAUTHENTICATED),
        (PermissionError("portfolio belongs to another key"), S.PERMISSION_DENIED),
        (PermissionError(errno.EACCES, "Permission denied", "/var/allsuse.db"), S.INTERNAL),
        (RateLimitedError("rate limit", 0.5), S.RESOURCE_EXHAUSTED),
        (DeadlineExceededError("deadline: 0.001 s left"), S.DEADLINE_EXCEEDED),
        (TimeoutError(), S.DEADLINE_EXCEEDED),
        (StoreClosedError("closed"), S.UNAVAILABLE),
        (NotImplementedError("later"), S.UNIMPLEMENTED),
        (StoreError("cannot connect to postgresql://u:pw@db/x: refused"), S.INTERNAL),
        (KeyError("x"), S.INTERNAL),
        (ZeroDivisionError("division by zero"), S.INTERNAL),
    ],
)
def test_one_table_maps_each_exception(error: BaseException, code: grpc.StatusCode) -> None:
    got, details = status_for(error, "rid-1")
    assert got is code
    if code is S.INTERNAL:
        assert details == "internal error (request id rid-1)"
    if code in (S.ALREADY_EXISTS, S.FAILED_PRECONDITION) and isinstance(error, StoreIntegrityError):
        assert "constraint" not in details and "decisions" not in details  # no SQL


def test_details_never_carry_paths_or_lines() -> None:
    assert scrub("cannot open /srv/allsuse/var/allsuse.db: denied") == "cannot open <path>: denied"
    assert scrub("C:\\data\\x\\y.db failed") == "<path> failed"
    assert "\n" not in scrub("a\nb")
    assert len(scrub("x" * 5000)) == 500
    code, details = status_for(InvalidInputError.of("data", "bad row in /home/u/prices.csv"), "r")
    assert code is S.INVALID_ARGUMENT and details == "data: bad row in <path>"


def test_trailers_name_the_field_and_the_retry_delay() -> None:
    assert trailers_for(InvalidInputError.of("move_pct", "nan"), "r1") == (
        ("x-request-id", "r1"),
        ("x-invalid-field", "move_pct"),
    )
    assert trailers_for(RateLimitedError("slow down", 0.25), "r2") == (
        ("x-request-id", "r2"),
        ("retry-after-ms", "250"),
    )


def test_token_from_metadata() -> None:
    assert token_from_metadata((("authorization", "Bearer k1.s3cret"),)) == "k1.s3cret"
    assert token_from_metadata((("authorization", "bearer   k1.s3cret "),)) == "k1.s3cret"
    assert token_from_metadata((("x-api-key", "k2.s"),)) == "k2.s"
    assert token_from_metadata((("x-api-key", "k2.s"), ("authorization", "Bearer k1.s"))) == "k1.s"
    assert token_from_metadata((("authorization", "Basic dXNlcjpwdw=="),)) is None
    assert token_from_metadata((("authorization", "Bearer "),)) is None
    assert token_from_metadata((("x-api-key", "k" * 600),)) is None
    assert token_from_metadata(None) is None


def test_roles_are_ordered_and_unknown_roles_get_nothing() -> None:
    assert role_allows("admin", "viewer") and role_allows("trader", "trader") and role_allows("viewer", "viewer")
    assert not role_allows("viewer", "trader") and not role_allows("trader", "admin")
    assert not role_allows("operator", "viewer")
    trader = Principal("k1", "trader")
    assert trader.may_act_for("k1") and not trader.may_act_for("k2") and not trader.may_act_for(None)
    assert Principal("k9", "admin").may_act_for("k1")
    assert ANONYMOUS.may_act_for("k1") and not ANONYMOUS.authenticated
    assert Principal("k1", "trader", frozenset({"p1"})).may_act_for("p1")


def test_token_bucket_refills_at_the_rate_up_to_the_burst() -> None:
    now = [0.0]
    limiter = TokenBucketLimiter(2.0, 3, clock=lambda: now[0])
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(0.5)  # one token per 0.5 s
    assert limiter.acquire("b") == 0.0  # its own bucket
    now[0] = 0.5
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0
    now[0] = 100.0
    assert [limiter.acquire("a") for _ in range(4)][:3] == [0.0, 0.0, 0.0]  # refilled to the burst, not more


def test_token_bucket_keeps_a_bounded_number_of_keys() -> None:
    now = [0.0]
    limiter = TokenBucketLimiter(1.0, 1, max_keys=10, clock=lambda: now[0])
    for n in range(10):
        limiter.acquire(f"k{n}")
    now[0] = 5.0  # every bucket is full again: idle keys can go
    limiter.acquire("new")
    assert len(limiter) <= 10
    with pytest.raises(InvalidInputError, match="rate_per_second"):
        TokenBucketLimiter(0.0, 1)
    with pytest.raises(InvalidInputError, match="burst"):
        TokenBucketLimiter(1.0, 0)


def test_key_verifier_caches_and_shares_one_check(tmp_path: Path) -> None:
    with Store(tmp_path / "allsuse.db") as store:
        issued = store.create_api_key("trader")
        now = [0.0]
        verifier = KeyVerifier(store, cache_seconds=30.0, clock=lambda: now[0])

        async def scenario() -> None:
            answers = await asyncio.gather(*(verifier.principal(issued.token) for _ in range(8)))
            assert {a.key_id if a else None for a in answers} == {issued.key_id}
            assert verifier.checks == 1  # eight concurrent calls, one scrypt
            assert await verifier.principal(issued.token) is not None
            assert verifier.checks == 1
            assert await verifier.principal(issued.key_id + ".wrong") is None
            store.revoke_api_key(issued.key_id)
            assert await verifier.principal(issued.token) is not None  # cached for cache_seconds
            now[0] = 31.0
            assert await verifier.principal(issued.token) is None  # expired: checked again, revoked

        asyncio.run(scenario())


def test_access_log_lines_are_json_and_mask_passwords() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging(LoggingConfig(level="INFO", json=True), stream=stream)
        access_log({"event": "rpc", "method": "/m", "code": "OK", "duration_ms": 1.5, "request_id": "r"})
        logging.getLogger("allsuse.test").warning("connecting to postgresql://app:hunter2@db/allsuse")
        try:
            raise RuntimeError("dsn password=hunter2 rejected")
        except RuntimeError:
            logging.getLogger("allsuse.test").exception("failed")
        configure_logging(LoggingConfig(level="INFO", json=False), stream=stream)
        access_log({"event": "rpc", "method": "/m", "code": "OK"})
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    lines = stream.getvalue().splitlines()
    first = json.loads(lines[0])
    assert first["logger"] == "allsuse.access" and first["code"] == "OK" and first["duration_ms"] == 1.5
    assert "hunter2" not in stream.getvalue()
    assert json.loads(lines[1])["message"] == "connecting to postgresql://app:***@db/allsuse"
    assert "RuntimeError" in json.loads(lines[2])["exc"]
    assert lines[-1].endswith('allsuse.access {"event":"rpc","method":"/m","code":"OK"}')
