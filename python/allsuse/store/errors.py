"""Errors of the durable store. All are `AllsuseError`s, so one handler catches store and core failures."""

from __future__ import annotations

from allsuse.errors import AllsuseError


class StoreError(AllsuseError):
    """A read or write could not be carried out; nothing of a failed write was committed."""


class StoreClosedError(StoreError):
    """The store was closed before (or while) the call was made."""


class StoreIntegrityError(StoreError):
    """A write broke a constraint of the schema (a missing parent record, a duplicate key, an append-only table)."""


class StoreConflictError(StoreIntegrityError):
    """A conditional write found the record in another state than the caller expected (e.g. a decision that is
    no longer pending because a concurrent request approved it first); nothing was written."""


class StoreNotFoundError(StoreError):
    """An update named a record that does not exist."""


__all__ = ["StoreClosedError", "StoreConflictError", "StoreError", "StoreIntegrityError", "StoreNotFoundError"]
