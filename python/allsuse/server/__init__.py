"""The grpc.aio server: health, reflection, interceptors, error mapping and the allsuse.v1 services.

What servicer code uses:

- `ServiceBinding(full_name, add_to_server, methods)`: how a service plugs in (methods -> minimum role);
  a service module defines `bindings(deps: ServiceDeps) -> Sequence[ServiceBinding]`.
- `@rpc`, `run_blocking(fn, *args)`, `check_deadline(context, need_seconds)`: see allsuse.server.rpc.
- `current_request_id()`, `current_principal()`, `draining()`, `wait_draining()`: see allsuse.server.request.
- The errors servicers raise to pick a status: InvalidInputError (allsuse.errors), NotFoundError,
  AlreadyExistsError, FailedPreconditionError, PermissionError, DeadlineExceededError (allsuse.server.errors).
"""

from __future__ import annotations

from allsuse.server.app import (
    AllsuseServer,
    Service,
    ServiceBinding,
    ServiceDeps,
    build_server,
    serve,
)
from allsuse.server.errors import (
    AlreadyExistsError,
    DeadlineExceededError,
    FailedPreconditionError,
    NotFoundError,
    RateLimitedError,
    UnauthenticatedError,
    status_for,
)
from allsuse.server.request import (
    ANONYMOUS,
    ROLES,
    Principal,
    current_principal,
    current_request_id,
    draining,
    wait_draining,
)
from allsuse.server.rpc import check_deadline, rpc, run_blocking

__all__ = [
    "ANONYMOUS",
    "ROLES",
    "AllsuseServer",
    "AlreadyExistsError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "NotFoundError",
    "Principal",
    "RateLimitedError",
    "Service",
    "ServiceBinding",
    "ServiceDeps",
    "UnauthenticatedError",
    "build_server",
    "check_deadline",
    "current_principal",
    "current_request_id",
    "draining",
    "rpc",
    "run_blocking",
    "serve",
    "status_for",
    "wait_draining",
]
