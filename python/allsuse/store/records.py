"""What the store returns, and how values are encoded on the way in.

Every entity row has typed key columns (ids, portfolio_id, status, ...) for lookups and a JSON payload holding the
caller's full record, so the service can evolve payloads without a migration. Payloads are stored as canonical
JSON text (sorted keys, no whitespace, no NaN/inf). Money is never a float: amounts are exact decimal strings
(`Decimal` or `str` or `int` in, a plain decimal string such as "1250.75" stored and returned).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from allsuse.errors import InvalidInputError

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,199}$")
ROLE_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class Record:
    """One stored entity: its id, typed key columns, the JSON payload and timestamps (ISO-8601 UTC).

    `replayed` is True when a write found the record already stored (an idempotent retry) and wrote nothing.
    """

    entity: str
    id: str
    columns: Mapping[str, Any]
    payload: dict[str, Any]
    created_at: str
    updated_at: str
    replayed: bool = False


@dataclass(frozen=True)
class ApiKeyInfo:
    """An API key as stored: never the secret, only who it is and whether it is revoked."""

    key_id: str
    role: str
    created_at: str
    revoked_at: str | None


@dataclass(frozen=True)
class IssuedApiKey:
    """A newly created API key. `secret` is shown this once; the store keeps only a salted scrypt hash."""

    key_id: str
    role: str
    secret: str = field(repr=False)

    @property
    def token(self) -> str:
        """The credential a client presents: "<key_id>.<secret>"."""
        return f"{self.key_id}.{self.secret}"


@dataclass(frozen=True)
class IdempotencyScope:
    """Whose request an idempotency key names: the principal (API key id) that sent it, the portfolio it acts
    on ("" when the request names none yet, e.g. CreatePortfolio without an id), the RPC, and the client's key.
    The same key in another scope is another request."""

    principal: str
    portfolio_id: str
    rpc: str
    key: str

    def checked(self) -> IdempotencyScope:
        """Itself, or InvalidInputError naming the part that cannot be stored."""
        check_label(self.principal, "principal")
        if not isinstance(self.portfolio_id, str) or len(self.portfolio_id) > 200:
            raise InvalidInputError.of(
                "portfolio_id", f"must be a string of at most 200 characters, got {self.portfolio_id!r}"
            )
        check_label(self.rpc, "rpc")
        check_idempotency_key(self.key)
        return self


@dataclass(frozen=True)
class IdempotencyRecord:
    """The first result of a keyed write: the hash of its request and its response (text chosen by the caller).

    `replayed` is True when a write found the record already stored (by this or another request) and wrote
    nothing; the caller compares `request_sha256` to tell a retry from a reuse of the key for another request."""

    scope: IdempotencyScope
    request_sha256: str
    response: str
    created_at: str
    replayed: bool = False


def now_iso() -> str:
    """The current UTC time as fixed-width ISO-8601 with microseconds (sorts as text)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def new_id() -> str:
    """A fresh random identifier (32 hex digits)."""
    return uuid.uuid4().hex


def check_id(value: object, name: str) -> str:
    """An identifier: 1-200 characters of letters, digits and _.:@/- (starting with a letter or digit)."""
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise InvalidInputError.of(name, f"must be 1-200 characters [A-Za-z0-9_.:@/-], got {value!r}")
    return value


def check_optional_id(value: object, name: str) -> str | None:
    """None or an identifier (see check_id)."""
    return None if value is None else check_id(value, name)


def check_label(value: object, name: str) -> str:
    """A short non-empty label such as a kind, status or actor (at most 200 characters)."""
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise InvalidInputError.of(name, f"must be a non-empty string of at most 200 characters, got {value!r}")
    return value


MAX_IDEMPOTENCY_KEY = 200
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def check_idempotency_key(value: object, name: str = "idempotency_key") -> str:
    """A client's idempotency key: 1-200 printable characters."""
    if not isinstance(value, str):
        raise InvalidInputError.of(name, f"must be a string, got {type(value).__name__}")
    if not 1 <= len(value) <= MAX_IDEMPOTENCY_KEY or not value.isprintable():
        raise InvalidInputError.of(
            name, f"must be 1-{MAX_IDEMPOTENCY_KEY} printable characters, got {len(value)} characters"
        )
    return value


def check_sha256(value: object, name: str) -> str:
    """A SHA-256 digest as 64 lower-case hex digits."""
    if not isinstance(value, str) or not _SHA256_HEX.match(value):
        raise InvalidInputError.of(name, f"must be 64 lower-case hex digits (SHA-256), got {value!r}")
    return value


def check_role(value: object) -> str:
    """An API key role: lower-case letters, digits, _ and -."""
    if not isinstance(value, str) or not ROLE_PATTERN.match(value):
        raise InvalidInputError.of("role", f"must match {ROLE_PATTERN.pattern}, got {value!r}")
    return value


def exact_amount(value: object, name: str = "amount") -> str:
    """Money as an exact decimal string. Accepts Decimal, int or a decimal string; refuses float (inexact)."""
    if isinstance(value, bool | float):
        raise InvalidInputError.of(name, f"must be an exact decimal (Decimal, int or str), not {type(value).__name__}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except InvalidOperation:
            raise InvalidInputError.of(name, f"is not a decimal number: {value!r}") from None
    if not isinstance(value, Decimal):
        raise InvalidInputError.of(name, f"must be an exact decimal (Decimal, int or str), got {type(value).__name__}")
    if not value.is_finite():
        raise InvalidInputError.of(name, f"must be finite, got {value}")
    text = format(value, "f")
    return "0" if text in ("-0", "+0") else text


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"non-finite Decimal {value}")
        return format(value, "f")
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, tuple | set | frozenset):
        return sorted(value) if isinstance(value, set | frozenset) else list(value)
    raise TypeError(f"value of type {type(value).__name__} is not JSON-serializable")


def canonical_json(value: object) -> str:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8 text, no NaN/inf; Decimal written as a string."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default
    )


def encode_payload(payload: object, name: str = "payload") -> str:
    """A payload mapping as canonical JSON text; InvalidInputError naming `name` if it cannot be stored."""
    if not isinstance(payload, Mapping):
        raise InvalidInputError.of(name, f"must be a mapping, got {type(payload).__name__}")
    if not all(isinstance(k, str) for k in payload):
        raise InvalidInputError.of(name, "keys must be strings")
    try:
        return canonical_json(payload)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError.of(name, str(exc)) from None


def decode_payload(text: str) -> dict[str, Any]:
    """The payload dict back from its stored JSON text."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("stored payload is not a JSON object")
    return value


def payload_digest(text: str) -> str:
    """SHA-256 (hex) of a stored payload text; audit entries carry it so they commit to the record's content."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# scrypt parameters for API key secrets: N=2^14, r=8, p=1 (16 MiB, tens of ms); stored per key so they can change.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1


def new_secret() -> str:
    """A random API key secret (256 bits, URL-safe text)."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str, salt: bytes | None = None) -> tuple[str, str, str]:
    """(kdf, salt_hex, hash_hex) of `secret` with scrypt and a fresh 16-byte salt unless one is given."""
    if salt is None:
        salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt:n={SCRYPT_N},r={SCRYPT_R},p={SCRYPT_P}", salt.hex(), digest.hex()


def check_secret(secret: str, kdf: str, salt_hex: str, hash_hex: str) -> bool:
    """Whether `secret` matches a stored (kdf, salt, hash), compared in constant time."""
    match = re.fullmatch(r"scrypt:n=(\d+),r=(\d+),p=(\d+)", kdf)
    if match is None:
        return False
    n, r, p = (int(g) for g in match.groups())
    digest = hashlib.scrypt(
        secret.encode("utf-8"), salt=bytes.fromhex(salt_hex), n=n, r=r, p=p, dklen=32, maxmem=256 * 1024 * 1024
    )
    return hmac.compare_digest(digest.hex(), hash_hex)
