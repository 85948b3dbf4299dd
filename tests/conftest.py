"""Shared test fixtures."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from allsuse.store.pgtest import TemporaryPostgres, find_bindir


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def pg_server() -> Iterator[TemporaryPostgres]:
    """A throwaway PostgreSQL server on loopback for one test module (skipped without Debian's binaries)."""
    if find_bindir() is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl, postgres) not found; `make setup` installs postgresql")
    server = TemporaryPostgres().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The store each test runs on: a SQLite file, then a fresh database of the module's PostgreSQL server."""
    if request.param == "sqlite":
        yield str(tmp_path / "allsuse.db")
        return
    server: TemporaryPostgres = request.getfixturevalue("pg_server")
    name = f"t_{uuid.uuid4().hex[:16]}"
    dsn = server.create_database(name)
    try:
        yield dsn
    finally:
        server.drop_database(name)
