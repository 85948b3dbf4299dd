"""The append-only audit log and its hash chain.

Entry n stores seq, ts, actor, action, payload (canonical JSON), prev_hash (the hash of entry n-1, or 64 zeros for
the first) and hash = SHA-256(prev_hash || canonical JSON of {seq, ts, actor, action, payload, prev_hash}).
Hashes alone cannot reveal a cut-off tail, so the row `audit_head` (last seq and hash) is updated in the same
transaction as every append; `verify` compares the end of the chain with it.

What verify detects, first problem only: an edited entry (its hash no longer matches its contents), a deleted or
inserted entry (a gap in seq, or a prev_hash that does not link), a truncated tail (the head names a later entry
than the log holds), entries appended behind the store's back (beyond the head) and a missing head row. A party
that can rewrite the whole chain and the head consistently is not detected by hashes; keep backups (or ship the
head hash elsewhere) for that.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from allsuse.store._db import Connection, Dialect
from allsuse.store.errors import StoreError
from allsuse.store.records import canonical_json, check_label, encode_payload, now_iso

if TYPE_CHECKING:
    from allsuse.store.store import Store

GENESIS_HASH = "0" * 64

Finding = Literal["ok", "edited", "gap", "link", "not_canonical", "truncated", "beyond_head", "head_missing"]


@dataclass(frozen=True)
class AuditEntry:
    """One audit log entry as stored."""

    seq: int
    ts: str
    actor: str
    action: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class AuditReport:
    """The result of walking the chain. `ok` is False at the first problem, which `finding`, `seq` and
    `problem` describe (seq is the entry where it was found, or None for head-level findings)."""

    ok: bool
    entries: int
    head_seq: int | None
    head_hash: str | None
    finding: Finding = "ok"
    seq: int | None = None
    problem: str | None = None

    def __str__(self) -> str:
        head = "none" if self.head_seq is None else f"seq {self.head_seq} hash {self.head_hash}"
        if self.ok:
            return f"audit log OK: {self.entries} entries verified; head {head}"
        where = "" if self.seq is None else f" at seq {self.seq}"
        return (
            f"audit log FAILED{where} ({self.finding}): {self.problem}\n"
            f"  entries verified before the problem: {self.entries}; head {head}"
        )


def entry_hash(prev_hash: str, seq: int, ts: str, actor: str, action: str, payload: Any) -> str:
    """SHA-256 (hex) of prev_hash followed by the canonical JSON of the entry."""
    body = canonical_json(
        {"seq": seq, "ts": ts, "actor": actor, "action": action, "payload": payload, "prev_hash": prev_hash}
    )
    return hashlib.sha256(prev_hash.encode("ascii") + body.encode("utf-8")).hexdigest()


def append(conn: Connection, actor: str, action: str, payload: Any) -> AuditEntry:
    """Appends one entry inside the caller's write transaction and moves the head with it."""
    check_label(actor, "actor")
    check_label(action, "action")
    text = encode_payload(payload)
    row = conn.one("SELECT seq, hash FROM audit_head WHERE id = 1")
    if row is None:
        raise StoreError("audit_head row is missing: run `allsuse audit verify` and see docs/store.md")
    seq, prev_hash = int(row[0]) + 1, str(row[1])
    ts = now_iso()
    parsed = json.loads(text)
    digest = entry_hash(prev_hash, seq, ts, actor, action, parsed)
    conn.execute(
        "INSERT INTO audit_log (seq, ts, actor, action, payload, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (seq, ts, actor, action, text, prev_hash, digest),
    )
    conn.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (seq, digest))
    return AuditEntry(seq, ts, actor, action, parsed, prev_hash, digest)


def entries(conn: Connection, after_seq: int = 0, limit: int = 1000) -> list[AuditEntry]:
    """Up to `limit` entries with seq > after_seq, in order."""
    rows = conn.query(
        "SELECT seq, ts, actor, action, payload, prev_hash, hash FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?",
        (after_seq, limit),
    )
    return [AuditEntry(int(r[0]), r[1], r[2], r[3], json.loads(r[4]), r[5], r[6]) for r in rows]


def verify_connection(conn: Connection, dialect: Dialect, batch: int = 2000) -> AuditReport:
    """Walks the whole chain in one read snapshot (safe while writers run) and reports the first problem."""
    dialect.begin_snapshot(conn)
    try:
        return _walk(conn, batch)
    finally:
        conn.rollback_quietly()


def verify_in_snapshot(conn: Connection, batch: int = 2000) -> AuditReport:
    """Walks the chain inside a read snapshot the caller has begun (verify_full checks records in the same one)."""
    return _walk(conn, batch)


def _walk(conn: Connection, batch: int) -> AuditReport:
    head = conn.one("SELECT seq, hash FROM audit_head WHERE id = 1")
    head_seq = None if head is None else int(head[0])
    head_hash = None if head is None else str(head[1])

    def fail(finding: Finding, seq: int | None, problem: str, checked: int) -> AuditReport:
        return AuditReport(False, checked, head_seq, head_hash, finding, seq, problem)

    last_seq, last_hash, checked = 0, GENESIS_HASH, 0
    while True:
        rows = conn.query(
            "SELECT seq, ts, actor, action, payload, prev_hash, hash FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?",
            (last_seq, batch),
        )
        if not rows:
            break
        for seq_raw, ts, actor, action, text, prev_hash, stored_hash in rows:
            seq = int(seq_raw)
            if seq != last_seq + 1:
                missing = f"{last_seq + 1}" if seq == last_seq + 2 else f"{last_seq + 1}..{seq - 1}"
                return fail("gap", seq, f"entries {missing} are missing before seq {seq} (deleted)", checked)
            if prev_hash != last_hash:
                return fail(
                    "link",
                    seq,
                    f"prev_hash does not match the hash of entry {last_seq} "
                    "(an entry was inserted, deleted or replaced before this one)",
                    checked,
                )
            try:
                payload = json.loads(text)
                canonical = canonical_json(payload)
                computed = entry_hash(prev_hash, seq, ts, actor, action, payload)
            except (TypeError, ValueError) as exc:
                return fail("edited", seq, f"payload is not valid JSON ({exc}): the entry was edited", checked)
            if computed != stored_hash:
                return fail("edited", seq, "hash does not match the entry's contents: the entry was edited", checked)
            if canonical != text:
                return fail("not_canonical", seq, "payload text is not in canonical form: it was rewritten", checked)
            last_seq, last_hash = seq, stored_hash
            checked += 1
    if head is None:
        return fail("head_missing", None, "the audit_head row is missing", checked)
    if head_seq is not None and head_seq > last_seq:
        return fail(
            "truncated",
            None,
            f"the log ends at seq {last_seq} but the head records seq {head_seq}: "
            f"entries {last_seq + 1}..{head_seq} were removed",
            checked,
        )
    if head_seq is not None and head_seq < last_seq:
        return fail(
            "beyond_head",
            head_seq + 1,
            f"entries {head_seq + 1}..{last_seq} lie beyond the recorded head: they were not written by the store",
            checked,
        )
    if head_hash != last_hash:
        return fail("link", last_seq, "the head hash differs from the hash of the last entry", checked)
    return AuditReport(True, checked, head_seq, head_hash)


def audit_verify(store: Store) -> AuditReport:
    """Verifies the audit chain of an open store (the `allsuse audit verify` command calls this)."""
    return store.verify_audit()
