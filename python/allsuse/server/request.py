"""What a handler knows about the call it serves: request id, principal, the drain signal.

The interceptors fill one `CallState` per RPC in a context variable (each RPC runs in its own asyncio task),
so servicers read it without any argument passing:

    from allsuse.server import current_principal, current_request_id

    principal = current_principal()          # None only outside the server
    if principal is not None and not principal.may_act_for(owner_key_id):
        raise PermissionError(f"portfolio {portfolio_id!r} belongs to another key")
"""

from __future__ import annotations

import asyncio
import contextvars
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from allsuse.server.rpc import BlockingPool

ROLES: tuple[str, ...] = ("viewer", "trader", "admin")
ROLE_RANK: dict[str, int] = {role: rank for rank, role in enumerate(ROLES, start=1)}


def role_allows(role: str, required: str) -> bool:
    """Whether `role` may call a method that needs `required` (viewer < trader < admin; unknown roles nothing)."""
    return ROLE_RANK.get(role, 0) >= ROLE_RANK[required]


@dataclass(frozen=True)
class Principal:
    """Who is calling: the API key id and its role.

    `portfolios` would list the portfolios the key owns if the store modelled ownership; it does not (None), so
    servicers enforce "own portfolios" by comparing the owner key id they store on a portfolio with `key_id`
    (`may_act_for`). `authenticated` is False when authentication is disabled (development): then the caller is
    the anonymous admin.
    """

    key_id: str
    role: str
    portfolios: frozenset[str] | None = None
    authenticated: bool = True

    def allows(self, required: str) -> bool:
        """Whether this principal's role is at least `required`."""
        return role_allows(self.role, required)

    def may_act_for(self, owner_key_id: str | None) -> bool:
        """Whether this principal may act on a record owned by `owner_key_id`: admins and the owner may."""
        if not self.authenticated or self.role == "admin":
            return True
        if self.portfolios is not None and owner_key_id in self.portfolios:
            return True
        return owner_key_id is not None and owner_key_id == self.key_id


ANONYMOUS = Principal(key_id="anonymous", role="admin", authenticated=False)


@dataclass(slots=True)
class CallState:
    """One RPC as the interceptors see it (mutable: the auth layer fills in the principal)."""

    request_id: str
    method: str
    peer: str
    principal: Principal | None = None
    draining: asyncio.Event | None = None
    blocking: BlockingPool | None = field(default=None, repr=False)


_CALL: contextvars.ContextVar[CallState | None] = contextvars.ContextVar("allsuse_call", default=None)


def current_call() -> CallState | None:
    """The state of the RPC being served in this task, or None outside an RPC."""
    return _CALL.get()


def current_request_id() -> str:
    """The request id of the RPC being served ("" outside an RPC)."""
    call = _CALL.get()
    return "" if call is None else call.request_id


def current_principal() -> Principal | None:
    """The authenticated caller of the RPC being served (ANONYMOUS with auth disabled; None outside an RPC)."""
    call = _CALL.get()
    return None if call is None else call.principal


def draining() -> bool:
    """Whether the server is shutting down: long streams should end (the grace period is running)."""
    call = _CALL.get()
    return call is not None and call.draining is not None and call.draining.is_set()


async def wait_draining() -> None:
    """Returns when the server starts draining (never outside an RPC); streaming handlers race it."""
    call = _CALL.get()
    if call is None or call.draining is None:
        await asyncio.Event().wait()
        return
    await call.draining.wait()


def enter_call(state: CallState) -> contextvars.Token[CallState | None]:
    """Makes `state` the current call (the request-id interceptor does this)."""
    return _CALL.set(state)


def leave_call(token: contextvars.Token[CallState | None]) -> None:
    """Undoes enter_call."""
    _CALL.reset(token)


__all__ = [
    "ANONYMOUS",
    "ROLES",
    "ROLE_RANK",
    "CallState",
    "Principal",
    "current_call",
    "current_principal",
    "current_request_id",
    "draining",
    "enter_call",
    "leave_call",
    "role_allows",
    "wait_draining",
]
