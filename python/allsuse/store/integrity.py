"""`allsuse audit verify --full`: corruption and tampering outside the audit chain.

The chain alone (audit.py) proves the log is intact, not that the records are what the log says. The full check
adds, in one read snapshot:

1. **database**: the backend's own consistency check. SQLite: `PRAGMA integrity_check` (every b-tree page, cell
   and index entry; the page or tree it names is mapped back to its table) and `PRAGMA foreign_key_check`.
   PostgreSQL: amcheck's `bt_index_check(..., heapallindexed)` on every index and `verify_heapam` on every table
   when the extension is installed, and in any case a full read of every row of every table (detoasting every
   column), which fails on a damaged page.
2. **chain**: the audit hash chain, as `allsuse audit verify`.
3. **records**: every record compared with the audit entry that last wrote it. Each write's entry names the
   entity, its id, its key columns (a transaction's amount, a decision's status ...) and the SHA-256 of its
   payload; a row whose columns or payload differ was edited behind the store, a row no entry wrote was inserted
   behind it, and an entry whose row is gone was deleted. Idempotency records (request and response hashes) and
   API keys (role, revocation, and the credential hash for keys created since it is recorded) are compared too.

Every finding names the table and, where there is one, the row.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from allsuse.store import audit
from allsuse.store._db import Connection, Dialect, Location, SqliteDialect, Timeouts
from allsuse.store.audit import AuditReport
from allsuse.store.records import payload_digest

Check = Literal["database", "chain", "records"]
T = TypeVar("T")

# Entity tables and their key columns (the order of the SELECT below), as the store writes them.
ENTITY_TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "portfolio": ("portfolios", ("name",)),
    "account": ("accounts", ("portfolio_id", "kind")),
    "position": ("positions", ("portfolio_id", "account_id", "status")),
    "transaction": ("transactions", ("portfolio_id", "account_id", "kind", "amount")),
    "decision": ("decisions", ("idempotency_key", "portfolio_id", "kind", "status", "account_id")),
    "outcome": ("outcomes", ("decision_id",)),
    "alert": ("alerts", ("portfolio_id", "kind", "severity", "status")),
    "conversation": ("conversations", ()),
    "engine_state": ("engine_states", ("version",)),
    "order": ("orders", ("decision_id", "portfolio_id", "status")),
}
TABLES = (
    *(table for table, _ in ENTITY_TABLES.values()),
    "idempotency_keys",
    "api_keys",
    "audit_log",
    "audit_head",
    "schema_version",
)
# The actions of the store's own record writes (`<entity>.put`, `.record`, `.update`); other entries are the caller's.
_WRITES = ("put", "record", "update")
# An entry covering several writes of one unit: {"writes": [{"action": <a write's action>, <its payload>}, ...]}.
BATCH_ACTION = "batch"
MAX_PROBLEMS = 200
BATCH = 2000


@dataclass(frozen=True)
class Problem:
    """One finding: which check found it, the table and row (when known) and what is wrong."""

    check: Check
    table: str | None
    row: str | None
    message: str

    def __str__(self) -> str:
        where = "" if self.table is None else (f"{self.table} row {self.row}: " if self.row else f"{self.table}: ")
        return f"{where}{self.message}"


@dataclass
class FullReport:
    """The result of `verify_full`: ok only when the database check, the chain and every record pass."""

    backend: str
    database_checks: list[str] = field(default_factory=list)
    chain: AuditReport | None = None
    records_checked: int = 0
    records_ran: bool = False
    problems: list[Problem] = field(default_factory=list)
    problems_total: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing was found (a broken chain is one of the problems)."""
        return self.problems_total == 0 and self.chain is not None

    def add(self, check: Check, table: str | None, row: str | None, message: str) -> None:
        """Records a problem (the first MAX_PROBLEMS are kept; all are counted)."""
        self.problems_total += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(check, table, row, message))

    def of(self, check: Check) -> list[Problem]:
        """The problems one check found."""
        return [p for p in self.problems if p.check == check]

    def __str__(self) -> str:
        lines: list[str] = []
        done = ", ".join(self.database_checks) or "none"
        database = self.of("database")
        lines.append(f"database integrity {'OK' if not database else 'FAILED'} ({self.backend}: {done})")
        lines.extend(f"  {p}" for p in database)
        if self.chain is not None:
            lines.append(str(self.chain))
        else:
            lines.append("audit log NOT CHECKED")
            lines.extend(f"  {p}" for p in self.of("chain"))
        records = self.of("records")
        if not self.records_ran and not records:
            lines.append("records NOT CHECKED")
        elif not records:
            lines.append(f"records OK: {self.records_checked} rows match the audit entries that wrote them")
        else:
            lines.append(f"records FAILED: {self.records_checked} rows checked")
            lines.extend(f"  {p}" for p in records)
        if self.problems_total > len(self.problems):
            lines.append(f"  ... and {self.problems_total - len(self.problems)} more problems")
        lines.append("full verification OK" if self.ok else f"full verification FAILED: {self.problems_total} problems")
        return "\n".join(lines)


def verify_full_connection(conn: Connection, dialect: Dialect) -> FullReport:
    """Runs the three checks in one read snapshot (safe while the service writes) and reports every problem."""
    report = FullReport(dialect.name)
    dialect.begin_snapshot(conn)
    try:
        if dialect.name == "sqlite":
            _sqlite_database(conn, report)
        else:
            _postgres_database(conn, report)
        chain = _guarded(conn, report, "chain", "audit_log", audit.verify_in_snapshot, conn)
        report.chain = chain
        if chain is not None and not chain.ok:
            row = None if chain.seq is None else f"seq {chain.seq}"
            report.add("chain", "audit_log", row, f"{chain.finding}: {chain.problem}")
        _records(conn, report)
    finally:
        conn.rollback_quietly()
    return report


def _guarded(
    conn: Connection, report: FullReport, check: Check, table: str | None, fn: Callable[..., T], *args: Any
) -> T | None:
    """Runs `fn(*args)` inside a savepoint: a database error (a damaged page) becomes a problem naming the table,
    and the snapshot stays usable for the next step."""
    conn.execute("SAVEPOINT verify_step")
    try:
        result = fn(*args)
    except Exception as exc:
        if not conn.dialect.is_database_error(exc):
            raise
        conn.execute("ROLLBACK TO SAVEPOINT verify_step")
        conn.execute("RELEASE SAVEPOINT verify_step")
        report.add(check, table, None, f"cannot be read: {type(exc).__name__}: {_one_line(exc)}")
        return None
    conn.execute("RELEASE SAVEPOINT verify_step")
    return result


def _one_line(value: object) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= 300 else text[:297] + "..."


# --- 1. the database's own checks -------------------------------------------------------------------------------


def _rows_until_error(conn: Connection, sql: str) -> tuple[list[tuple[Any, ...]], BaseException | None]:
    """The rows a statement yields before it fails, and the failure (integrity_check reports damage in rows and
    then may stop with "database disk image is malformed"; the rows before it say where)."""
    rows: list[tuple[Any, ...]] = []
    try:
        cursor = conn.execute(sql)
        while (row := cursor.fetchone()) is not None:
            rows.append(tuple(row))
    except Exception as exc:
        if not conn.dialect.is_database_error(exc):
            raise
        return rows, exc
    return rows, None


def _sqlite_database(conn: Connection, report: FullReport) -> None:
    report.database_checks.append("integrity_check")
    rows, error = _rows_until_error(conn, "PRAGMA integrity_check")
    if error is not None or [str(r[0]) for r in rows] != ["ok"]:
        owners = _sqlite_page_owners(conn)
        for (text,) in rows[:MAX_PROBLEMS]:
            if str(text).startswith("*** in database"):
                continue
            report.add("database", _sqlite_table_of(str(text), owners), None, f"integrity_check: {_one_line(text)}")
        if error is not None:
            report.add("database", None, None, f"integrity_check stopped: {_one_line(error)}")
    report.database_checks.append("foreign_key_check")
    violations, error = _rows_until_error(conn, "PRAGMA foreign_key_check")
    for table, rowid, parent, _fk in violations:
        row = _guarded(conn, report, "database", str(table), _sqlite_id, conn, table, rowid)
        report.add("database", str(table), row, f"foreign key: refers to a missing {parent} record")
    if error is not None:
        report.add("database", None, None, f"foreign_key_check stopped: {_one_line(error)}")
    report.database_checks.append("full read of every table")
    for table in TABLES:
        # NOT INDEXED: through the table's own b-tree, every page of it (integrity_check covers the indexes).
        _guarded(conn, report, "database", table, _read_all, conn, f"SELECT * FROM {table} NOT INDEXED")


def _read_all(conn: Connection, sql: str) -> int:
    """Reads every row of a query without keeping them; returns how many there were."""
    cursor = conn.execute(sql)
    count = 0
    while batch := cursor.fetchmany(500):
        count += len(batch)
    return count


def _sqlite_id(conn: Connection, table: str, rowid: object) -> str | None:
    if table not in TABLES:
        return None
    got = conn.one(f"SELECT id FROM {table} WHERE rowid = ?", (rowid,))
    return None if got is None else str(got[0])


def _sqlite_page_owners(conn: Connection) -> tuple[dict[int, str], Callable[[int], str | None]]:
    """Root page -> table (an index maps to its table), and a page lookup through dbstat when it is available."""
    roots: dict[int, str] = {}
    try:
        for name, table, root in conn.query("SELECT name, tbl_name, rootpage FROM sqlite_master"):
            if root:
                roots[int(root)] = str(table) if name == table else f"{table} (index {name})"
    except Exception as exc:
        if not conn.dialect.is_database_error(exc):
            raise

    def page_owner(page: int) -> str | None:
        try:
            got = conn.one("SELECT name FROM dbstat WHERE pageno = ?", (page,))
        except Exception as exc:
            if not conn.dialect.is_database_error(exc):
                raise
            return None
        return None if got is None else str(got[0])

    return roots, page_owner


_TREE = re.compile(r"\bTree (\d+)\b")
_PAGE = re.compile(r"\b[Pp]age (\d+)\b")


def _sqlite_table_of(text: str, owners: tuple[dict[int, str], Callable[[int], str | None]]) -> str | None:
    """The table an integrity_check message is about: its "Tree N" root page, else the page it names."""
    roots, page_owner = owners
    tree = _TREE.search(text)
    if tree is not None and int(tree.group(1)) in roots:
        return roots[int(tree.group(1))]
    page = _PAGE.search(text)
    if page is not None:
        return page_owner(int(page.group(1)))
    return None


def _postgres_database(conn: Connection, report: FullReport) -> None:
    installed = _guarded(
        conn, report, "database", None, conn.one, "SELECT 1 FROM pg_extension WHERE extname = 'amcheck'"
    )
    if installed is not None:
        report.database_checks.append("amcheck bt_index_check(heapallindexed)")
        indexes = conn.query(
            "SELECT ic.relname, t.relname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
            "JOIN pg_class t ON t.oid = i.indrelid JOIN pg_am am ON am.oid = ic.relam "
            "JOIN pg_namespace n ON n.oid = t.relnamespace "
            "WHERE am.amname = 'btree' AND n.nspname = current_schema() ORDER BY t.relname, ic.relname"
        )
        for index, table in indexes:
            if table in TABLES:
                _guarded(
                    conn,
                    report,
                    "database",
                    f"{table} (index {index})",
                    conn.query,
                    "SELECT bt_index_check(?::regclass, true)",
                    (index,),
                )
        has_heap = conn.one("SELECT 1 FROM pg_proc WHERE proname = 'verify_heapam'")
        if has_heap is not None:
            report.database_checks.append("amcheck verify_heapam")
            for table in TABLES:
                bad = _guarded(
                    conn,
                    report,
                    "database",
                    table,
                    conn.query,
                    "SELECT blkno, offnum, msg FROM verify_heapam(?::regclass) LIMIT 5",
                    (table,),
                )
                for blkno, offnum, msg in bad or []:
                    report.add("database", table, None, f"verify_heapam: block {blkno} item {offnum}: {msg}")
    else:
        report.database_checks.append("amcheck not installed (CREATE EXTENSION amcheck adds index checks)")
    report.database_checks.append("full read of every table")
    for table in TABLES:
        _guarded(
            conn,
            report,
            "database",
            table,
            conn.one,
            f"SELECT count(*), sum(length(CAST(x AS text))) FROM {table} AS x",
        )


# --- 3. records against the audit entries that wrote them -------------------------------------------------------


@dataclass(frozen=True)
class _Written:
    seq: int
    columns: dict[str, Any]
    payload_sha256: str


def _audit_payloads(conn: Connection) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(seq, action, payload) of every audit entry, in order; unreadable payloads are the chain check's to report."""
    last = 0
    while True:
        rows = conn.query(
            "SELECT seq, action, payload FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?", (last, BATCH)
        )
        if not rows:
            return
        for seq, action, text in rows:
            last = int(seq)
            try:
                payload = json.loads(text)
            except ValueError:
                continue
            if isinstance(payload, dict):
                yield last, str(action), payload


def _records(conn: Connection, report: FullReport) -> None:
    written: dict[tuple[str, str], _Written] = {}
    idempotent: dict[tuple[str, str, str, str], tuple[int, str, str]] = {}
    keys: dict[str, dict[str, Any]] = {}

    def collect() -> bool:
        for seq, action, payload in _audit_payloads(conn):
            if action == BATCH_ACTION and isinstance(payload.get("writes"), list):
                for write in payload["writes"]:
                    if isinstance(write, dict) and isinstance(write.get("action"), str):
                        note(seq, write["action"], write)
            else:
                note(seq, action, payload)
        return True

    def note(seq: int, action: str, payload: dict[str, Any]) -> None:
        entity = payload.get("entity")
        kind, _, verb = action.partition(".")
        if entity in ENTITY_TABLES and kind == entity and verb in _WRITES and isinstance(payload.get("id"), str):
            columns = payload.get("columns")
            recorded = dict(columns) if isinstance(columns, dict) else {}
            written[(str(entity), payload["id"])] = _Written(seq, recorded, str(payload.get("payload_sha256")))
        elif action == "idempotency.record" and isinstance(payload.get("scope"), dict):
            s = payload["scope"]
            scope = (str(s.get("principal")), str(s.get("portfolio_id")), str(s.get("rpc")), str(s.get("key")))
            idempotent[scope] = (seq, str(payload.get("request_sha256")), str(payload.get("response_sha256")))
        elif action in ("api_key.create", "api_key.revoke") and isinstance(payload.get("key_id"), str):
            state = keys.setdefault(payload["key_id"], {})
            state["revoked" if action == "api_key.revoke" else "created"] = (seq, payload)

    report.records_ran = True
    if _guarded(conn, report, "records", "audit_log", collect) is None:
        return
    unreadable: set[str] = set()
    for entity, (table, columns) in ENTITY_TABLES.items():
        if (
            _guarded(conn, report, "records", table, _entity_rows, conn, report, entity, table, columns, written)
            is None
        ):
            unreadable.add(entity)
    unchecked: dict[str, int] = {}
    for (entity, record_id), w in written.items():
        if entity in unreadable:
            unchecked[entity] = unchecked.get(entity, 0) + 1
            continue
        report.add(
            "records",
            ENTITY_TABLES[entity][0],
            record_id,
            f"is missing: audit entry seq {w.seq} wrote it and the store never deletes records (deleted behind it)",
        )
    for entity, count in unchecked.items():
        report.add(
            "records", ENTITY_TABLES[entity][0], None, f"{count} rows the audit log records could not be checked"
        )
    _guarded(conn, report, "records", "idempotency_keys", _idempotency_rows, conn, report, idempotent)
    _guarded(conn, report, "records", "api_keys", _api_key_rows, conn, report, keys)


def _entity_rows(
    conn: Connection,
    report: FullReport,
    entity: str,
    table: str,
    columns: tuple[str, ...],
    written: dict[tuple[str, str], _Written],
) -> bool:
    """Compares every row of one entity table with its audit entry; True once the whole table was read."""
    select = ", ".join(("id", *columns, "payload"))
    last: str | None = None
    while True:
        where = "" if last is None else "WHERE id > ? "
        rows = conn.query(
            f"SELECT {select} FROM {table} {where}ORDER BY id LIMIT ?",
            ((last, BATCH) if last is not None else (BATCH,)),
        )
        if not rows:
            return True
        for row in rows:
            record_id, values, text = str(row[0]), row[1:-1], row[-1]
            last = record_id
            report.records_checked += 1
            w = written.pop((entity, record_id), None)
            if w is None:
                report.add(
                    "records", table, record_id, "no audit entry wrote this row: it was inserted behind the store"
                )
                continue
            for name, value in zip(columns, values, strict=True):
                if w.columns.get(name) != value:
                    report.add(
                        "records",
                        table,
                        record_id,
                        f"{name} is {value!r} but audit entry seq {w.seq} recorded {w.columns.get(name)!r}: edited",
                    )
            if not isinstance(text, str) or payload_digest(text) != w.payload_sha256:
                report.add(
                    "records",
                    table,
                    record_id,
                    f"payload differs from the one audit entry seq {w.seq} recorded (SHA-256): edited",
                )


def _idempotency_rows(
    conn: Connection, report: FullReport, recorded: dict[tuple[str, str, str, str], tuple[int, str, str]]
) -> None:
    rows = conn.query(
        "SELECT principal, portfolio_id, rpc, idempotency_key, request_sha256, response FROM idempotency_keys "
        "ORDER BY principal, portfolio_id, rpc, idempotency_key"
    )
    for principal, portfolio_id, rpc, key, request_sha256, response in rows:
        scope = (str(principal), str(portfolio_id), str(rpc), str(key))
        name = f"{rpc}/{principal}/{portfolio_id or '-'}/{key}"
        report.records_checked += 1
        entry = recorded.pop(scope, None)
        if entry is None:
            report.add("records", "idempotency_keys", name, "no audit entry wrote this row: inserted behind the store")
        elif entry[1] != request_sha256 or entry[2] != payload_digest(str(response)):
            report.add("records", "idempotency_keys", name, f"differs from audit entry seq {entry[0]}: edited")
    for scope, entry in recorded.items():
        name = f"{scope[2]}/{scope[0]}/{scope[1] or '-'}/{scope[3]}"
        report.add("records", "idempotency_keys", name, f"is missing: audit entry seq {entry[0]} wrote it")


def credential_digest(kdf: str, salt_hex: str, secret_hash: str) -> str:
    """SHA-256 of an API key's stored credential (never the secret): audit entries carry it from creation on."""
    return payload_digest(f"{kdf}\n{salt_hex}\n{secret_hash}")


def _api_key_rows(conn: Connection, report: FullReport, keys: dict[str, dict[str, Any]]) -> None:
    rows = conn.query("SELECT key_id, role, kdf, salt, secret_hash, revoked_at FROM api_keys ORDER BY key_id")
    for key_id, role, kdf, salt, secret_hash, revoked_at in rows:
        report.records_checked += 1
        state = keys.pop(str(key_id), {})
        created = state.get("created")
        if created is None:
            report.add("records", "api_keys", str(key_id), "no audit entry created this key: inserted behind the store")
            continue
        seq, payload = created
        if payload.get("role") != role:
            report.add(
                "records",
                "api_keys",
                str(key_id),
                f"role is {role!r} but audit entry seq {seq} recorded {payload.get('role')!r}: edited",
            )
        stored = payload.get("credential_sha256")
        if stored is not None and stored != credential_digest(str(kdf), str(salt), str(secret_hash)):
            report.add("records", "api_keys", str(key_id), f"credential differs from audit entry seq {seq}: replaced")
        if (revoked_at is None) != ("revoked" not in state):
            what = "revoked without an audit entry" if revoked_at is not None else "un-revoked behind the store"
            report.add("records", "api_keys", str(key_id), f"{what}")
    for key_id, state in keys.items():
        if "created" in state:
            report.add("records", "api_keys", key_id, f"is missing: audit entry seq {state['created'][0]} created it")


def check_sqlite_file(path: str, *, opened: str) -> FullReport:
    """The database check alone, on a SQLite file the store could not open (`opened` says why); the chain and the
    records cannot be checked then, and the report fails."""
    report = FullReport("sqlite")
    report.add("database", None, None, f"the store cannot be opened: {_one_line(opened)}")
    try:
        raw = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10, isolation_level=None)
    except sqlite3.Error as exc:
        report.add("database", None, None, f"cannot open the file: {exc}")
        return report
    try:
        _sqlite_database(Connection(raw, SqliteDialect(Location("sqlite", path), Timeouts())), report)
    finally:
        raw.close()
    report.add("chain", None, None, "not checked: the store cannot be opened")
    return report
