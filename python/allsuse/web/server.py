"""The operator page's HTTP server: an aiohttp application on the service's event loop, a registry component.

Routes (docs/api.md, "Operator web page"): GET /login, POST /login, POST /logout, GET /, GET /portfolios/{id},
POST /decisions/{id}/approve, POST /decisions/{id}/decline, GET /ws/alerts (WebSocket), GET /reports/{date}/{file},
GET /static/{name}. Who calls: `Authorization: Bearer <key>` (checked like gRPC, no session, no CSRF), else the
session cookie opened by the login form (HttpOnly, SameSite=Strict, Secure under TLS; its POSTs carry the
session's CSRF token), else nobody: a page asks for a login (303 to /login), anything else is 401. With
auth.enabled false every caller is the anonymous admin, as over gRPC, and still gets a session for its CSRF token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import ssl
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlsplit

import grpc
from aiohttp import WSCloseCode, WSMsgType, web

from allsuse.errors import InvalidInputError
from allsuse.orchestration.bus import Event
from allsuse.orchestration.errors import BusClosedError
from allsuse.orchestration.lifecycle import State
from allsuse.server import decision as decision_service
from allsuse.server.auth import KeyVerifier, token_from_metadata
from allsuse.server.convert import text_in
from allsuse.server.errors import FAULTS, RateLimitedError, status_for
from allsuse.server.monitor import _alert_out
from allsuse.server.portfolios import PortfolioRepository
from allsuse.server.ratelimit import FailedAuthLimiter
from allsuse.server.request import ANONYMOUS, Principal
from allsuse.server.rpc import run_blocking
from allsuse.v1 import decision_pb2
from allsuse.web import pages, views
from allsuse.web.calls import HTTP_STATUS, CallAbortedError, call_rpc
from allsuse.web.reports import latest_reports, report_path, reports_dir
from allsuse.web.sessions import Session, Sessions

log = logging.getLogger("allsuse.web")

SESSION_COOKIE = "allsuse_session"
LOGIN_COOKIE = "allsuse_login"
DECISION_SERVICE = "allsuse.v1.DecisionService"
STATIC = {"operator.js": "text/javascript", "operator.css": "text/css"}
ALERT_QUEUE = 1000
MAX_FORM_BYTES = 64 * 1024
_NEXT = re.compile(r"/[A-Za-z0-9/_.~%?=&:@+-]{0,511}")
_NONCE = re.compile(r"[A-Za-z0-9_-]{32}")
_ID = re.compile(r"[A-Za-z0-9_.:@-]{1,64}")
_PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# Reports are HTML written by allsuse.reports with inline styles and SVG charts; they run no script at all.
_REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; sandbox"

PRINCIPAL = web.RequestKey("principal", Principal)
CSRF = web.RequestKey("csrf", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WebError(Exception):
    """An answer other than 200: the HTTP status, the reason, the invalid field (if any)."""

    def __init__(self, status: int, message: str, field: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def _id_in(text: str, field: str) -> str:
    """A portfolio or decision id from a URL: 1-64 letters, digits or `_.:@-`; else 400 naming the field."""
    text_in(text, field, max_length=64, required=True)
    if not _ID.fullmatch(text):
        raise InvalidInputError.of(field, "must be 1-64 letters, digits or _.:@-")
    return text


def _alert_json(alert: dict[str, Any]) -> dict[str, Any]:
    """An alert as StreamAlerts sends it (the same conversion), as JSON."""
    m = _alert_out(alert)
    return {
        "alert_id": m.alert_id,
        "at": m.at.ToJsonString(),
        "severity": m.severity,
        "portfolio_id": m.portfolio_id,
        "account_id": m.account_id,
        "code": m.code,
        "message": m.message,
        "status": m.status,
        "count": m.count,
    }


def _wants_json(request: web.Request) -> bool:
    return "application/json" in request.headers.get("Accept", "") or "Authorization" in request.headers


def _see_other(location: str) -> web.Response:
    """A 303 answer (returned, so cookies can be set on it)."""
    return web.Response(status=303, headers={"Location": location})


def _safe_next(path: str) -> str:
    """A same-site path to go to after login (never another host)."""
    if not _NEXT.fullmatch(path) or path.startswith("//"):
        return "/"  # browsers drop tabs and newlines from URLs ("/\t/host" is "//host"): only plain characters
    return path


class WebComponent:
    """The operator page as a registry component (`web`): listens on web.host:web.port (0 picks a free port)."""

    name = "web"
    depends_on: tuple[str, ...] = ("store", "events", "alerts")
    critical = False  # without the page the service still serves gRPC

    def __init__(self, deps: Any) -> None:
        self.deps = deps
        config = deps.config
        self.config = config
        self.tls = config.tls.enabled
        self.sessions = Sessions(config.web.session_seconds, config.auth.cache_seconds)
        self.verifier: KeyVerifier | None = None
        self.reports_dir = reports_dir(config)
        self._runner: web.AppRunner | None = None
        self._sockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()
        # Alert WebSockets open per caller: counted against server.max_streams / max_streams_per_key, as the gRPC
        # streams (StreamAlerts) are, so one caller cannot hold them all.
        self._streams: Counter[str] = Counter()
        self.port = config.web.port
        self.host = config.web.host

    # --- lifecycle -------------------------------------------------------------------------------------------
    def _ssl(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.config.tls.cert_file, self.config.tls.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise InvalidInputError.of("tls.cert_file", f"cannot load the certificate and key: {exc}") from None
        return context

    @property
    def url(self) -> str:
        """Where the page is served (after start)."""
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def app(self) -> web.Application:
        """The aiohttp application (routes and the guard middleware)."""
        app = web.Application(middlewares=[self._guard], client_max_size=MAX_FORM_BYTES)
        app.add_routes(
            [
                web.get("/login", self.login_form),
                web.post("/login", self.login),
                web.post("/logout", self.logout),
                web.get("/", self.index),
                web.get("/portfolios/{portfolio_id}", self.portfolio),
                web.post("/decisions/{decision_id}/approve", self.approve),
                web.post("/decisions/{decision_id}/decline", self.decline),
                web.get("/ws/alerts", self.alerts),
                web.get("/reports/{date}/{file}", self.report),
                web.get("/static/{name}", self.static),
            ]
        )
        app.on_shutdown.append(self._close_sockets)
        return app

    async def start(self) -> None:
        """Binds and serves on the running loop."""
        config = self.config
        if config.auth.enabled:
            self.verifier = KeyVerifier(
                self.deps.store,
                config.auth.cache_seconds,
                failures=FailedAuthLimiter(config.auth.failed_rate_per_second, config.auth.failed_burst)
                if config.auth.failed_rate_per_second > 0
                else None,
            )
        context = self._ssl()
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port, ssl_context=context)
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise OSError(f"web.port: could not bind {self.host}:{self.port}: {exc.strerror or exc}") from None
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        log.info("operator page on %s (%s)", self.url, "TLS" if self.tls else "plaintext, loopback")

    async def stop(self) -> None:
        """Closes the WebSockets and the listener."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def health(self) -> State:
        """RUNNING while listening."""
        return State.RUNNING if self._runner is not None and self._runner.addresses else State.FAULTED

    async def _close_sockets(self, app: web.Application) -> None:
        for socket in list(self._sockets):
            await socket.close(code=1001, message=b"server stopping")

    # --- who is calling ---------------------------------------------------------------------------------------
    async def _bearer(self, request: web.Request) -> Principal | None:
        header = request.headers.get("Authorization")
        if header is None:
            return None
        token = token_from_metadata([("authorization", header)])
        if self.verifier is None:
            return ANONYMOUS
        if token is None:
            raise WebError(401, "authorization: expected 'Bearer <key_id>.<secret>'")
        try:
            principal = await self.verifier.principal(token, request.remote or "")
        except RateLimitedError as exc:
            raise WebError(429, str(exc)) from None
        if principal is None:
            raise WebError(401, "authorization: the API key is unknown, wrong or revoked")
        return principal

    async def _session(self, request: web.Request) -> Session | None:
        session = self.sessions.get(request.cookies.get(SESSION_COOKIE))
        if session is None or self.verifier is None or not self.sessions.due_for_check(session):
            return session
        store = self.deps.store
        key_id = session.principal.key_id
        info = await store.aio.call(lambda: store.get_api_key(key_id))
        if info is None or info.revoked_at:
            self.sessions.close_key(key_id)
            return None
        return session

    async def _still_signed_in(self, request: web.Request) -> bool:
        """Whether the caller of an open WebSocket may still read: its bearer key still valid (cached check), or
        its session still open (the key looked up again every auth.cache_seconds)."""
        if request.headers.get("Authorization") is not None:
            try:
                return await self._bearer(request) is not None
            except WebError:
                return False
        return self.verifier is None or await self._session(request) is not None

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Authenticates (bearer or session), checks CSRF on POSTs, maps errors, adds the security headers."""
        try:
            response = await self._guarded(request, handler)
        except WebError as exc:
            response = self._error(request, exc.status, exc.message, exc.field)
        except CallAbortedError as exc:
            response = self._error(request, exc.http_status, exc.details, exc.field)
        except web.HTTPException as exc:
            if exc.status >= 400:
                response = self._error(request, exc.status, exc.reason)
            else:
                raise
        except FAULTS as exc:  # the gRPC API's one table: bad input 400 naming the field, unknown 404, ...
            code, details = status_for(exc)
            if code is grpc.StatusCode.INTERNAL:
                log.error("internal error in %s %s", request.method, request.path, exc_info=exc)
            field = getattr(exc, "field", None) if isinstance(exc, InvalidInputError) else None
            response = self._error(request, HTTP_STATUS.get(code, 500), details, field or "")
        if not response.prepared:
            response.headers.setdefault("Content-Security-Policy", _PAGE_CSP)
            response.headers["X-Content-Type-Options"] = "nosniff"
            response.headers["X-Frame-Options"] = "DENY"
            response.headers["Referrer-Policy"] = "same-origin"
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    async def _guarded(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path == "/login" or path.startswith("/static/"):
            return await handler(request)
        principal = await self._bearer(request)
        session: Session | None = None
        opened: str | None = None
        if principal is None:
            session = await self._session(request)
            if session is None and self.verifier is None:
                opened, session = self.sessions.open(ANONYMOUS)  # auth off: the anonymous admin, with a CSRF token
            if session is None:
                if request.method == "GET" and not _wants_json(request) and path != "/ws/alerts":
                    raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='/')}")
                raise WebError(401, "sign in first: no session (POST /login) and no Authorization header")
            principal = session.principal
            if request.method == "POST":
                form = await request.post()
                sent = request.headers.get("X-CSRF-Token") or form.get("csrf")
                if not session.csrf_matches(sent if isinstance(sent, str) else None):
                    raise WebError(403, "csrf: the form's CSRF token is missing or wrong; reload the page", "csrf")
        request[PRINCIPAL] = principal
        request[CSRF] = session.csrf if session is not None else ""
        response = await handler(request)
        if opened is not None and not response.prepared:
            self._set_session_cookie(response, opened)
        return response

    def _set_session_cookie(self, response: web.StreamResponse, value: str) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            value,
            max_age=int(self.config.web.session_seconds),
            path="/",
            httponly=True,
            samesite="Strict",
            secure=self.tls,
        )

    def _error(self, request: web.Request, status: int, message: str, field: str = "") -> web.Response:
        if _wants_json(request) or request.method != "GET":
            body: dict[str, Any] = {"error": message, "status": status}
            if field:
                body["field"] = field
            return web.json_response(body, status=status)
        return web.Response(text=pages.error_page(status, message), status=status, content_type="text/html")

    # --- login ---------------------------------------------------------------------------------------------------
    async def login_form(self, request: web.Request) -> web.StreamResponse:
        """GET /login: the form (with a one-time CSRF nonce also set as a cookie)."""
        if self.verifier is None:
            raise web.HTTPSeeOther("/")
        # The browser's nonce is kept while it lasts: a second load of the form (a reload, another tab) renders the
        # same one instead of replacing the cookie under a form already shown.
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        if not _NONCE.fullmatch(nonce):
            nonce = secrets.token_urlsafe(24)
        response = web.Response(
            text=pages.login_page(nonce, _safe_next(request.query.get("next", "/"))), content_type="text/html"
        )
        response.set_cookie(
            LOGIN_COOKIE, nonce, max_age=600, path="/login", httponly=True, samesite="Strict", secure=self.tls
        )
        return response

    async def login(self, request: web.Request) -> web.StreamResponse:
        """POST /login: checks the key like gRPC does and opens a session (303 to `next`), or 401 with the form."""
        if self.verifier is None:
            raise web.HTTPSeeOther("/")
        form = await request.post()
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        sent = form.get("csrf")
        if not nonce or not isinstance(sent, str) or not secrets.compare_digest(nonce, sent):
            raise WebError(403, "csrf: the sign-in form's token is missing or wrong; reload the page", "csrf")
        token = form.get("token")
        next_path = _safe_next(str(form.get("next", "/")))
        principal = None
        if isinstance(token, str) and token.strip() and len(token) <= 512:
            try:
                principal = await self.verifier.principal(token.strip(), request.remote or "")
            except RateLimitedError as exc:
                raise WebError(429, str(exc)) from None
        if principal is None:
            retry = secrets.token_urlsafe(24)
            response = web.Response(
                text=pages.login_page(retry, next_path, "That API key is unknown, wrong or revoked."),
                status=401,
                content_type="text/html",
            )
            response.set_cookie(
                LOGIN_COOKIE, retry, max_age=600, path="/login", httponly=True, samesite="Strict", secure=self.tls
            )
            return response
        cookie, _ = self.sessions.open(principal)
        log.info("web login by key %s (%s) from %s", principal.key_id, principal.role, request.remote)
        response = _see_other(next_path)
        self._set_session_cookie(response, cookie)
        response.del_cookie(LOGIN_COOKIE, path="/login")
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        """POST /logout: ends the session."""
        self.sessions.close(request.cookies.get(SESSION_COOKIE))
        response = _see_other("/login" if self.verifier is not None else "/")
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    # --- pages ---------------------------------------------------------------------------------------------------
    def _states(self) -> dict[str, str]:
        return {name: state.value for name, state in self.deps.registry.states().items()}

    async def index(self, request: web.Request) -> web.StreamResponse:
        """GET /: every portfolio with its accounts, open alerts, the latest reports, component health."""
        store = self.deps.store
        found = await run_blocking(views.all_portfolios, store)
        alerts = await run_blocking(views.recent_alerts, store, None)
        reports = await asyncio.to_thread(latest_reports, self.reports_dir)
        body = pages.index_body(found, reports, self._states(), alerts)
        principal: Principal = request[PRINCIPAL]
        html = pages.layout("Portfolios", body, principal=principal, csrf=request[CSRF])
        return web.Response(text=html, content_type="text/html")

    async def portfolio(self, request: web.Request) -> web.StreamResponse:
        """GET /portfolios/{id}: one portfolio (404 when there is none, 400 for an id that cannot be one)."""
        portfolio_id = _id_in(request.match_info["portfolio_id"], "portfolio_id")
        store = self.deps.store
        view = await run_blocking(views.portfolio_view, store, portfolio_id)
        pending = await run_blocking(views.pending_decisions, store, portfolio_id)
        alerts = await run_blocking(views.recent_alerts, store, portfolio_id)
        reports = await asyncio.to_thread(latest_reports, self.reports_dir, portfolio_id)
        principal: Principal = request[PRINCIPAL]
        required = decision_service.ROLES["ApproveDecision"]
        if not principal.allows(required):
            refusal = f"approving needs the {required} role"
        elif not principal.may_act_for(view.owner):
            refusal = "only the portfolio's owner or an admin may approve"
        else:
            refusal = ""
        body = pages.portfolio_body(view, pending, reports, self._states(), alerts, csrf=request[CSRF], refusal=refusal)
        html = pages.layout(
            f"Portfolio {portfolio_id}", body, principal=principal, csrf=request[CSRF], portfolio_id=portfolio_id
        )
        return web.Response(text=html, content_type="text/html")

    # --- approvals -----------------------------------------------------------------------------------------------
    async def approve(self, request: web.Request) -> web.StreamResponse:
        """POST /decisions/{id}/approve."""
        return await self._approval(request, approve=True)

    async def decline(self, request: web.Request) -> web.StreamResponse:
        """POST /decisions/{id}/decline."""
        return await self._approval(request, approve=False)

    async def _approval(self, request: web.Request, *, approve: bool) -> web.StreamResponse:
        """ApproveDecision itself (the DecisionServicer of the service), for the caller's principal."""
        decision_id = _id_in(request.match_info["decision_id"], "decision_id")
        form = await request.post()
        note = form.get("note", "")
        if not isinstance(note, str):
            raise InvalidInputError.of("note", "must be text")
        servicer = decision_service.decision_servicer(self.deps)
        decision = await call_rpc(
            servicer.ApproveDecision,
            decision_pb2.ApproveDecisionRequest(decision_id=decision_id, approve=approve, note=note),
            service=DECISION_SERVICE,
            method="ApproveDecision",
            roles=decision_service.ROLES,
            principal=request[PRINCIPAL],
            peer=request.remote or "",
        )
        log.info("web: decision %s %s by %s", decision_id, decision.approval_status, request[PRINCIPAL].key_id)
        if _wants_json(request):
            return web.json_response(
                {
                    "decision_id": decision.decision_id,
                    "portfolio_id": decision.portfolio_id,
                    "approval_status": decision.approval_status,
                }
            )
        raise web.HTTPSeeOther(f"/portfolios/{quote(decision.portfolio_id, safe='')}")

    # --- live alerts ---------------------------------------------------------------------------------------------
    async def alerts(self, request: web.Request) -> web.StreamResponse:
        """GET /ws/alerts[?portfolio_id=ID]: a WebSocket of the alerts published on the bus topic "alerts" (as
        StreamAlerts receives them), one JSON object a message, from the moment it opens. At most
        server.max_streams_per_key open per caller (server.max_streams in all); one more is 429."""
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != request.host:
            raise WebError(403, "origin: a WebSocket from another site is refused")
        portfolio_id = request.query.get("portfolio_id", "")
        if portfolio_id:
            _id_in(portfolio_id, "portfolio_id")
            await run_blocking(PortfolioRepository(self.deps.store).load, portfolio_id)  # 404 if none
        principal: Principal = request[PRINCIPAL]
        caller = principal.key_id if principal.authenticated else f"peer:{request.remote}"
        server = self.config.server
        if sum(self._streams.values()) >= server.max_streams:
            raise WebError(429, f"too many alert streams open ({server.max_streams}); retry later")
        if self._streams[caller] >= server.max_streams_per_key:
            raise WebError(429, f"this caller holds {server.max_streams_per_key} alert streams already (the limit)")
        self._streams[caller] += 1
        try:
            return await self._stream_alerts(request, portfolio_id)
        finally:
            self._streams[caller] -= 1
            if not self._streams[caller]:
                del self._streams[caller]

    async def _stream_alerts(self, request: web.Request, portfolio_id: str) -> web.StreamResponse:
        socket = web.WebSocketResponse(heartbeat=30.0)
        await socket.prepare(request)
        self._sockets.add(socket)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=ALERT_QUEUE)

        async def deliver(event: Event) -> None:
            alert = event.payload if isinstance(event.payload, dict) else {}
            if portfolio_id and alert.get("portfolio_id") != portfolio_id:
                return
            if queue.full():
                queue.get_nowait()  # a slow page loses the oldest alert, never blocks the bus
            queue.put_nowait(alert)

        async def send() -> None:
            while True:
                alert = await queue.get()
                if not await self._still_signed_in(request):  # signed out, expired or revoked since it opened
                    await socket.close(code=WSCloseCode.POLICY_VIOLATION, message=b"signed out")
                    return
                await socket.send_str(json.dumps(_alert_json(alert)))

        try:
            subscription = self.deps.bus.subscribe("alerts", deliver, name="web-alerts")
        except BusClosedError:
            await socket.close(code=1001, message=b"server stopping")
            return socket
        sender = asyncio.get_running_loop().create_task(send())
        try:
            async for message in socket:  # the page sends nothing; this ends when it goes away
                if message.type == WSMsgType.ERROR:
                    break
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
                await sender
            await subscription.close(timeout=1.0)
        return socket

    # --- files ---------------------------------------------------------------------------------------------------
    async def report(self, request: web.Request) -> web.StreamResponse:
        """GET /reports/{date}/{file}: a report file, read-only, to any signed-in viewer."""
        path, content_type = report_path(self.reports_dir, request.match_info["date"], request.match_info["file"])
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            name, date = request.match_info["file"], request.match_info["date"]
            raise WebError(404, f"file: no report {name!r} on {date}") from None
        response = web.Response(body=data, content_type=content_type, charset="utf-8")
        response.headers["Content-Security-Policy"] = _REPORT_CSP
        return response

    async def static(self, request: web.Request) -> web.StreamResponse:
        """GET /static/{name}: the page's script and style sheet, from the package."""
        name = request.match_info["name"]
        if name not in STATIC:
            raise WebError(404, f"name: no static file {name[:40]!r}")
        response = web.Response(body=pages.static_file(name), content_type=STATIC[name], charset="utf-8")
        response.headers["Cache-Control"] = "no-cache"
        return response


__all__ = ["LOGIN_COOKIE", "SESSION_COOKIE", "WebComponent", "WebError"]
