"""Versioned schema migrations, the same logical schema on SQLite and PostgreSQL.

`schema_version` holds one row per applied migration. Migrations are numbered, applied in order inside one
transaction that holds a migration lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory transaction lock), so
two processes opening the store at once apply each migration exactly once. Re-running is a no-op. A database
whose version is newer than this code is refused rather than written to.

Types are the portable subset: TEXT for ids, timestamps (ISO-8601 UTC), decimal money and JSON payloads; BIGINT
for sequence numbers. Foreign keys are checked per statement (DEFERRABLE INITIALLY IMMEDIATE, so a single write
can defer them explicitly if it must).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from allsuse.errors import InvalidInputError
from allsuse.store._db import Connection, Dialect, Timeouts, dialect_for, parse_location
from allsuse.store.audit import GENESIS_HASH
from allsuse.store.errors import StoreError
from allsuse.store.records import now_iso

FK = "DEFERRABLE INITIALLY IMMEDIATE"
STAMPS = "created_at TEXT NOT NULL, updated_at TEXT NOT NULL, payload TEXT NOT NULL"


@dataclass(frozen=True)
class Migration:
    """One numbered step: statements common to both backends, then per-backend ones."""

    version: int
    name: str
    common: Sequence[str] = ()
    per_backend: Mapping[str, Sequence[str]] | None = None

    def statements(self, backend: str) -> list[str]:
        """The statements to run on `backend` ("sqlite" or "postgresql")."""
        extra = (self.per_backend or {}).get(backend, ())
        return [*self.common, *extra]


def _append_only_sqlite(table: str, ops: Sequence[str]) -> list[str]:
    return [
        f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
        for op in ops
    ]


def _append_only_postgres(table: str, ops: Sequence[str]) -> list[str]:
    row_ops = " OR ".join(op for op in ops if op != "TRUNCATE")
    return [
        f"CREATE TRIGGER {table}_append_only BEFORE {row_ops} ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION allsuse_append_only()",
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION allsuse_append_only()",
    ]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "entities, api keys, audit log",
        common=(
            f"CREATE TABLE portfolios (id TEXT PRIMARY KEY, name TEXT, {STAMPS})",
            "CREATE TABLE accounts (id TEXT PRIMARY KEY, "
            f"portfolio_id TEXT NOT NULL REFERENCES portfolios (id) {FK}, kind TEXT NOT NULL, {STAMPS})",
            "CREATE TABLE positions (id TEXT PRIMARY KEY, "
            f"portfolio_id TEXT NOT NULL REFERENCES portfolios (id) {FK}, "
            f"account_id TEXT REFERENCES accounts (id) {FK}, status TEXT NOT NULL, {STAMPS})",
            "CREATE TABLE transactions (id TEXT PRIMARY KEY, "
            f"portfolio_id TEXT NOT NULL REFERENCES portfolios (id) {FK}, "
            f"account_id TEXT REFERENCES accounts (id) {FK}, kind TEXT NOT NULL, amount TEXT NOT NULL, {STAMPS})",
            "CREATE TABLE decisions (id TEXT PRIMARY KEY, idempotency_key TEXT NOT NULL UNIQUE, "
            f"portfolio_id TEXT REFERENCES portfolios (id) {FK}, kind TEXT NOT NULL, status TEXT NOT NULL, {STAMPS})",
            "CREATE TABLE outcomes (id TEXT PRIMARY KEY, "
            f"decision_id TEXT NOT NULL REFERENCES decisions (id) {FK}, {STAMPS})",
            "CREATE TABLE alerts (id TEXT PRIMARY KEY, portfolio_id TEXT REFERENCES portfolios (id) "
            f"{FK}, kind TEXT NOT NULL, severity TEXT NOT NULL, status TEXT NOT NULL, {STAMPS})",
            f"CREATE TABLE conversations (id TEXT PRIMARY KEY, {STAMPS})",
            "CREATE TABLE api_keys (key_id TEXT PRIMARY KEY, role TEXT NOT NULL, kdf TEXT NOT NULL, "
            "salt TEXT NOT NULL, secret_hash TEXT NOT NULL, created_at TEXT NOT NULL, revoked_at TEXT)",
            "CREATE TABLE audit_log (seq BIGINT PRIMARY KEY, ts TEXT NOT NULL, actor TEXT NOT NULL, "
            "action TEXT NOT NULL, payload TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)",
            "CREATE TABLE audit_head (id INTEGER PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL, hash TEXT NOT NULL)",
            f"INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '{GENESIS_HASH}')",
        ),
    ),
    Migration(
        2,
        "lookup indexes",
        common=(
            "CREATE INDEX accounts_portfolio ON accounts (portfolio_id)",
            "CREATE INDEX positions_portfolio ON positions (portfolio_id, status)",
            "CREATE INDEX positions_account ON positions (account_id)",
            "CREATE INDEX transactions_portfolio ON transactions (portfolio_id, created_at)",
            "CREATE INDEX transactions_account ON transactions (account_id, created_at)",
            "CREATE INDEX decisions_portfolio ON decisions (portfolio_id, created_at)",
            "CREATE INDEX decisions_status ON decisions (status, created_at)",
            "CREATE INDEX outcomes_decision ON outcomes (decision_id)",
            "CREATE INDEX alerts_status ON alerts (status, created_at)",
        ),
    ),
    Migration(
        3,
        "append-only guards on audit_log and transactions",
        per_backend={
            "sqlite": (
                *_append_only_sqlite("audit_log", ("UPDATE", "DELETE")),
                *_append_only_sqlite("transactions", ("UPDATE", "DELETE")),
                "CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head "
                "BEGIN SELECT RAISE(ABORT, 'audit_head cannot be deleted'); END",
            ),
            "postgresql": (
                "CREATE FUNCTION allsuse_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'integrity_constraint_violation'; "
                "END $$",
                *_append_only_postgres("audit_log", ("UPDATE", "DELETE", "TRUNCATE")),
                *_append_only_postgres("transactions", ("UPDATE", "DELETE", "TRUNCATE")),
                "CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head "
                "FOR EACH ROW EXECUTE FUNCTION allsuse_append_only()",
            ),
        },
    ),
    Migration(
        4,
        "idempotency records scoped to (principal, portfolio, rpc, key)",
        common=(
            # The first result of every keyed write RPC (docs/store.md, "Idempotency records").
            "CREATE TABLE idempotency_keys (principal TEXT NOT NULL, portfolio_id TEXT NOT NULL, rpc TEXT NOT NULL, "
            "idempotency_key TEXT NOT NULL, request_sha256 TEXT NOT NULL, response TEXT NOT NULL, "
            "created_at TEXT NOT NULL, PRIMARY KEY (principal, portfolio_id, rpc, idempotency_key))",
        ),
    ),
    Migration(
        5,
        "engine state per portfolio with the aggregate's version; decisions by account, latest first",
        common=(
            # One row per portfolio: the engine's state and the version every write of the aggregate moves
            # (docs/store.md, "Engine state"): a Decide appends its decision and rewrites this row only.
            "CREATE TABLE engine_states (id TEXT PRIMARY KEY REFERENCES portfolios (id) "
            f"{FK}, version BIGINT NOT NULL, {STAMPS})",
            "ALTER TABLE decisions ADD COLUMN account_id TEXT",
            # "The last decision" of a portfolio (of one of its accounts) is one index probe, not a scan.
            "DROP INDEX decisions_portfolio",
            "CREATE INDEX decisions_latest ON decisions (portfolio_id, created_at, id)",
            "CREATE INDEX decisions_account_latest ON decisions (portfolio_id, account_id, created_at, id)",
        ),
    ),
    Migration(
        6,
        "market history: daily bars and quotes by (symbol, day)",
        common=(
            # day: days since 1970-01-01; revision: a store-wide counter per table, so a server notices rows that
            # another process wrote (allsuse/store/market.py, docs/store.md "Market history").
            "CREATE TABLE market_bars (symbol TEXT NOT NULL, day INTEGER NOT NULL, open DOUBLE PRECISION NOT NULL, "
            "high DOUBLE PRECISION NOT NULL, low DOUBLE PRECISION NOT NULL, close DOUBLE PRECISION NOT NULL, "
            "volume DOUBLE PRECISION NOT NULL, revision BIGINT NOT NULL, updated_at TEXT NOT NULL, "
            "PRIMARY KEY (symbol, day))",
            "CREATE INDEX market_bars_revision ON market_bars (revision)",
            # One row per (symbol, day): IV, sector, chain, earnings as JSON; symbol '' holds the market-wide VIX.
            "CREATE TABLE market_quotes (symbol TEXT NOT NULL, day INTEGER NOT NULL, payload TEXT NOT NULL, "
            "revision BIGINT NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (symbol, day))",
            "CREATE INDEX market_quotes_revision ON market_quotes (revision)",
        ),
    ),
    Migration(
        7,
        "market history: bars filled forward over short gaps are flagged imputed",
        common=(
            # A (symbol, day) here is a stored bar that no source gave: the previous close carried over a gap of at
            # most market.quality_max_fill_sessions sessions (allsuse/data_quality.py, docs/store.md).
            "CREATE TABLE market_imputed (symbol TEXT NOT NULL, day INTEGER NOT NULL, PRIMARY KEY (symbol, day))",
        ),
    ),
    Migration(
        8,
        "equity history: each account's and portfolio's equity at market per day",
        common=(
            # account_id '' is the portfolio; the row of a day is rewritten each minute the metrics job marks it
            # (allsuse/store/equity.py); rows older than monitoring.metrics_retention_days are pruned nightly.
            "CREATE TABLE equity_marks (portfolio_id TEXT NOT NULL, account_id TEXT NOT NULL, day INTEGER NOT NULL, "
            "equity DOUBLE PRECISION NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (portfolio_id, account_id, day))",
        ),
    ),
    Migration(
        9,
        "orders: each order worked on a broker, by client order id",
        common=(
            # id = the client order id (idempotent: inserted once); the payload carries the fills' summary and the
            # execution measurements (allsuse/execution, docs/execution.md "Order records").
            "CREATE TABLE orders (id TEXT PRIMARY KEY, decision_id TEXT, "
            f"portfolio_id TEXT REFERENCES portfolios (id) {FK}, status TEXT NOT NULL, {STAMPS})",
            "CREATE INDEX orders_portfolio ON orders (portfolio_id, created_at)",
            "CREATE INDEX orders_status ON orders (status, created_at)",
            "CREATE INDEX orders_decision ON orders (decision_id)",
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version


def applied_versions(conn: Connection) -> list[int]:
    """The versions recorded in schema_version, ascending (empty for a new database)."""
    try:
        return [int(r[0]) for r in conn.query("SELECT version FROM schema_version ORDER BY version")]
    except Exception as exc:
        conn.rollback_quietly()
        if conn.dialect.is_database_error(exc):
            return []
        raise


def migrate_connection(conn: Connection, dialect: Dialect, target: int | None = None) -> list[int]:
    """Applies the pending migrations up to `target` (default: the latest) on `conn`; returns those applied."""
    goal = LATEST_VERSION if target is None else target
    if not 0 <= goal <= LATEST_VERSION:
        raise InvalidInputError.of("target", f"must be between 0 and {LATEST_VERSION}, got {target}")
    applied: list[int] = []
    try:
        dialect.begin_migration(conn)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
            "applied_at TEXT NOT NULL)"
        )
        row = conn.one("SELECT MAX(version) FROM schema_version")
        current = int(row[0]) if row is not None and row[0] is not None else 0
        if current > LATEST_VERSION:
            raise StoreError(
                f"{dialect.location.describe()}: schema version {current} is newer than this code "
                f"(knows up to {LATEST_VERSION}); upgrade allsuse before opening it"
            )
        for migration in MIGRATIONS:
            if current < migration.version <= goal:
                for statement in migration.statements(dialect.name):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, now_iso()),
                )
                applied.append(migration.version)
        conn.execute("COMMIT")
    except BaseException as exc:
        conn.rollback_quietly()
        translated = dialect.translate(exc, f"migrating {dialect.location.describe()}")
        if translated is exc:
            raise
        raise translated from exc
    return applied


def migrate(url: str | os.PathLike[str] | None = None, target: int | None = None) -> list[int]:
    """Opens the store location `url` (see Store), applies pending migrations up to `target`, returns them.

    The Store applies every migration when it opens; this function is for staged upgrades and tests.
    """
    dialect = dialect_for(parse_location(url), Timeouts())
    conn = dialect.connect("writer")
    try:
        return migrate_connection(conn, dialect, target)
    finally:
        conn.close()
