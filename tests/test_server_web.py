"""The operator web page (issue 13 item 4) against a real in-process service on 127.0.0.1 free ports, with aiohttp's
client: authentication with the gRPC API keys (login form and session cookie, or a bearer header), roles, CSRF,
bad and unknown ids, approvals through ApproveDecision with their effect seen over gRPC, alerts pushed over the
WebSocket, the reports served read-only, and component health."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import socket
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import grpc
import pytest

from allsuse.orchestration.errors import ComponentStartError
from allsuse.server.app import Service
from allsuse.server.request import Principal
from allsuse.v1 import decision_pb2, decision_pb2_grpc
from allsuse.web.sessions import Sessions
from tests.rpc_support import TIMEOUT, service_config
from tests.test_server import self_signed
from tests.web_support import (
    bearer,
    decide,
    get_portfolio,
    money_text,
    portfolio_with_pending,
    web_of,
    web_service,
    web_url,
)

HTML = {"Accept": "text/html"}
JSON = {"Accept": "application/json"}


def client() -> aiohttp.ClientSession:
    """A client with a timeout on every call and a cookie jar that keeps cookies of an IP address host."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=TIMEOUT), cookie_jar=aiohttp.CookieJar(unsafe=True)
    )


@asynccontextmanager
async def running(service: Service) -> AsyncIterator[Service]:
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf(?:-token)?" (?:value|content)="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


async def login(http: aiohttp.ClientSession, base: str, token: str) -> str:
    """Signs in through the form; returns the page's CSRF token (from `/`)."""
    async with http.get(f"{base}/login", headers=HTML) as reply:
        assert reply.status == 200
        form_csrf = _csrf(await reply.text())
    async with http.post(
        f"{base}/login", data={"token": token, "csrf": form_csrf, "next": "/"}, allow_redirects=False
    ) as reply:
        assert reply.status == 303, await reply.text()
        assert reply.headers["Location"] == "/"
    async with http.get(f"{base}/", headers=HTML) as reply:
        assert reply.status == 200
        return _csrf(await reply.text())


def test_sign_in_sessions_and_the_numbers_of_the_api(tmp_path: Path) -> None:
    service = web_service(tmp_path)

    async def scenario() -> None:
        async with running(service), client() as http:
            store = service.store_component.store
            trader = store.create_api_key("trader")
            created, _ = await portfolio_with_pending(service.server.address, trader.token, "pf-web")
            base = web_url(service)
            # Nobody signed in: a page asks for a login, anything else is 401.
            async with http.get(f"{base}/portfolios/pf-web", headers=HTML, allow_redirects=False) as reply:
                assert reply.status == 303 and reply.headers["Location"] == "/login?next=/portfolios/pf-web"
            async with http.get(f"{base}/portfolios/pf-web?a=1&b=2", headers=HTML) as reply:  # to the form, query kept
                assert (
                    reply.url.path == "/login"
                    and 'name="next" value="/portfolios/pf-web?a=1&amp;b=2"' in await reply.text()
                )
            async with http.get(f"{base}/", headers=JSON) as reply:
                assert reply.status == 401 and "sign in" in (await reply.json())["error"]
            async with http.post(f"{base}/decisions/abc/approve", data={"csrf": "x"}) as reply:
                assert reply.status == 401
            async with http.get(f"{base}/ws/alerts") as reply:
                assert reply.status == 401
            # The login form: its own CSRF token, then the key checked like gRPC.
            async with http.get(f"{base}/login", headers=HTML) as reply:
                form_csrf = _csrf(await reply.text())
            async with http.get(f"{base}/login", headers=HTML) as reply:  # a reload keeps the browser's token
                assert _csrf(await reply.text()) == form_csrf
            async with http.post(f"{base}/login", data={"token": trader.token, "csrf": "nope"}) as reply:
                assert reply.status == 403 and (await reply.json())["field"] == "csrf"
            async with http.post(
                f"{base}/login", data={"token": trader.key_id + ".wrong", "csrf": form_csrf}, allow_redirects=False
            ) as reply:
                assert reply.status == 401 and "unknown, wrong or revoked" in await reply.text()
            async with http.get(f"{base}/login", headers=HTML) as reply:
                form_csrf = _csrf(await reply.text())
            async with http.post(
                f"{base}/login",
                data={"token": trader.token, "csrf": form_csrf, "next": "//evil.example/"},
                allow_redirects=False,
            ) as reply:
                assert reply.status == 303 and reply.headers["Location"] == "/"  # never another host
                cookie = reply.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
            for hostile in ("/\t/evil.example/", "/\\evil.example", "https://evil.example/", "/ok path"):
                async with http.get(f"{base}/login", params={"next": hostile}, headers=HTML) as reply:
                    assert 'name="next" value="/"' in await reply.text(), hostile
            assert trader.secret not in cookie and trader.key_id not in cookie  # an opaque value, not the key
            async with http.get(f"{base}/", headers=HTML) as reply:
                assert reply.status == 200
                index = await reply.text()
                headers = reply.headers
            assert "script-src 'self'" in headers["Content-Security-Policy"] and headers["X-Frame-Options"] == "DENY"
            got = await get_portfolio(service.server.address, trader.token, "pf-web")
            assert got == created
            assert f'<span data-field="equity">{money_text(got.equity)}</span>' in index
            async with http.get(f"{base}/portfolios/pf-web", headers=HTML) as reply:
                page = await reply.text()
            assert f'<strong data-field="equity">{money_text(got.equity)}</strong>' in page
            for account in got.accounts:
                row = re.search(rf'<tr data-account="{re.escape(account.account_id)}">(.*?)</tr>', page)
                assert row, account.account_id
                assert f'data-field="balance">{money_text(account.balance)}<' in row.group(1)
                assert f'data-field="state">{account.state}<' in row.group(1)
                assert 'data-field="level">none<' in row.group(1) and 'data-field="drawdown">0.00%<' in row.group(1)
            assert 'data-component="web"><td>web</td><td>RUNNING' in page
            assert 'data-component="grpc"><td>grpc</td><td>RUNNING' in page
            # Sign out: the session is gone.
            async with http.post(f"{base}/logout", data={"csrf": _csrf(page)}, allow_redirects=False) as reply:
                assert reply.status == 303 and reply.headers["Location"] == "/login"
            async with http.get(f"{base}/", headers=JSON) as reply:
                assert reply.status == 401
        assert service.registry.states()["web"].value == "STOPPED"

    asyncio.run(scenario())


def test_roles_csrf_and_approvals_through_approve_decision(tmp_path: Path) -> None:
    service = web_service(tmp_path)

    async def scenario() -> None:
        async with running(service), client() as viewer_http, client() as trader_http:
            store = service.store_component.store
            trader, viewer = store.create_api_key("trader"), store.create_api_key("viewer")
            address = service.server.address
            _, first = await portfolio_with_pending(address, trader.token, "pf-a", key="a-1")
            base = web_url(service)
            viewer_csrf = await login(viewer_http, base, viewer.token)
            async with viewer_http.get(f"{base}/portfolios/pf-a", headers=HTML) as reply:
                page = await reply.text()
            assert f'<tr data-decision="{first.decision_id}">' in page
            assert "data-approve=" not in page and "approving needs the trader role" in page
            async with viewer_http.post(
                f"{base}/decisions/{first.decision_id}/approve", data={"csrf": viewer_csrf}, headers=JSON
            ) as reply:
                assert reply.status == 403
                reason = (await reply.json())["error"]
                assert reason == "ApproveDecision needs the trader role; this key's role is viewer"

            # Another trader may read the portfolio but not approve for it (ApproveDecision's owner check).
            other = store.create_api_key("trader")
            async with client() as other_http:
                other_csrf = await login(other_http, base, other.token)
                async with other_http.get(f"{base}/portfolios/pf-a", headers=HTML) as reply:
                    page = await reply.text()
                assert "data-approve=" not in page and "only the portfolio&#x27;s owner or an admin may approve" in page
                async with other_http.post(
                    f"{base}/decisions/{first.decision_id}/approve", data={"csrf": other_csrf}, headers=JSON
                ) as reply:
                    assert reply.status == 403
                    assert (await reply.json())["error"] == "decision_id: this key may act only for its own portfolios"

            trader_csrf = await login(trader_http, base, trader.token)
            async with trader_http.get(f"{base}/portfolios/pf-a", headers=HTML) as reply:
                assert f'data-approve="{first.decision_id}"' in await reply.text()
            url = f"{base}/decisions/{first.decision_id}/approve"
            async with trader_http.post(url, data={"note": "ok"}, headers=JSON) as reply:
                assert reply.status == 403 and (await reply.json())["field"] == "csrf"  # no token
            async with trader_http.post(url, data={"csrf": viewer_csrf}, headers=JSON) as reply:
                assert reply.status == 403 and (await reply.json())["field"] == "csrf"  # another session's
            async with trader_http.post(url, data={"csrf": trader_csrf, "note": "looks right"}, headers=JSON) as reply:
                assert reply.status == 200, await reply.text()
                assert await reply.json() == {
                    "decision_id": first.decision_id,
                    "portfolio_id": "pf-a",
                    "approval_status": "APPROVED",
                }
            async with grpc.aio.insecure_channel(address) as channel:
                assert (await decide(channel, trader.token, "pf-a", "a-1")).approval_status == "APPROVED"
                second = await decide(channel, trader.token, "pf-a", "a-2")
            assert second.approval_status == "PENDING"
            async with trader_http.post(url, data={"csrf": trader_csrf}, headers=JSON) as reply:
                assert reply.status == 409 and "not PENDING" in (await reply.json())["error"]
            # A form without the script: declined, then back to the portfolio page.
            async with trader_http.post(
                f"{base}/decisions/{second.decision_id}/decline",
                data={"csrf": trader_csrf},
                headers=HTML,
                allow_redirects=False,
            ) as reply:
                assert reply.status == 303 and reply.headers["Location"] == "/portfolios/pf-a"
            async with grpc.aio.insecure_channel(address) as channel:
                assert (await decide(channel, trader.token, "pf-a", "a-2")).approval_status == "DECLINED"
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await decision_pb2_grpc.DecisionServiceStub(channel).ApproveDecision(
                        decision_pb2.ApproveDecisionRequest(decision_id=second.decision_id, approve=True),
                        metadata=bearer(trader.token),
                        timeout=TIMEOUT,
                    )
                assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            async with trader_http.get(f"{base}/portfolios/pf-a", headers=HTML) as reply:
                assert "No decisions await approval." in await reply.text()
            # The audit log names the trader's key for the page's approval, as for one over gRPC.
            entries = [e for e in store.audit_entries(limit=100_000) if e.actor == trader.key_id]
            assert entries, "the approval is audited under the caller's key"
            # A bearer header needs no session and no CSRF token (it is not a credential a browser sends by itself).
            async with grpc.aio.insecure_channel(address) as channel:
                third = await decide(channel, trader.token, "pf-a", "a-3")
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as bare:
                headers = {"Authorization": f"Bearer {viewer.token}"}
                async with bare.post(f"{base}/decisions/{third.decision_id}/approve", headers=headers) as reply:
                    assert reply.status == 403
                headers = {"Authorization": f"Bearer {trader.token}"}
                async with bare.post(f"{base}/decisions/{third.decision_id}/decline", headers=headers) as reply:
                    assert reply.status == 200 and (await reply.json())["approval_status"] == "DECLINED"
                async with bare.get(f"{base}/", headers={"Authorization": "Bearer nope.nope"}) as reply:
                    assert reply.status == 401

    asyncio.run(scenario())


def test_bad_and_unknown_ids(tmp_path: Path) -> None:
    service = web_service(tmp_path)

    async def scenario() -> None:
        async with running(service), client() as http:
            trader = service.store_component.store.create_api_key("trader")
            await portfolio_with_pending(service.server.address, trader.token, "pf-ids")
            base = web_url(service)
            csrf = await login(http, base, trader.token)
            async with http.get(f"{base}/portfolios/nope", headers=JSON) as reply:
                assert reply.status == 404 and "no portfolio 'nope'" in (await reply.json())["error"]
            async with http.get(f"{base}/portfolios/nope", headers=HTML) as reply:
                assert reply.status == 404 and "no portfolio" in await reply.text()
            for bad in ("bad%20id", "x" * 65, "%00"):
                async with http.get(f"{base}/portfolios/{bad}", headers=JSON) as reply:
                    assert reply.status == 400, bad
                    body = await reply.json()
                    assert body["field"] == "portfolio_id" and body["error"].startswith("portfolio_id: "), body
            async with http.post(f"{base}/decisions/{'d' * 70}/approve", data={"csrf": csrf}) as reply:
                assert reply.status == 400 and (await reply.json())["field"] == "decision_id"
            async with http.post(f"{base}/decisions/0123abcd/approve", data={"csrf": csrf}) as reply:
                assert reply.status == 404 and "no decision '0123abcd'" in (await reply.json())["error"]
            async with http.get(f"{base}/ws/alerts?portfolio_id=nope") as reply:
                assert reply.status == 404
            async with http.get(f"{base}/nothing-here", headers=JSON) as reply:
                assert reply.status == 404

    asyncio.run(scenario())


def test_alerts_are_pushed_over_the_websocket(tmp_path: Path) -> None:
    service = web_service(tmp_path)

    async def scenario() -> None:
        async with running(service), client() as http:
            trader = service.store_component.store.create_api_key("trader")
            await portfolio_with_pending(service.server.address, trader.token, "pf-live")
            await portfolio_with_pending(service.server.address, trader.token, "elsewhere", key="else-1")
            base = web_url(service)
            await login(http, base, trader.token)
            ws_url = base.replace("http", "ws", 1) + "/ws/alerts?portfolio_id=pf-live"
            # A WebSocket from another site's page is refused before the upgrade.
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await http.ws_connect(ws_url, headers={"Origin": "http://evil.example"})
            assert err.value.status == 403
            async with http.ws_connect(ws_url, timeout=aiohttp.ClientWSTimeout(ws_receive=TIMEOUT)) as socket:
                await asyncio.sleep(0.1)  # the subscription is in place once the upgrade is answered
                await service.alerts.raise_alert(
                    {"severity": "HIGH", "code": "OTHER", "portfolio_id": "elsewhere", "message": "not for this page"}
                )
                started = time.monotonic()
                raised = await service.alerts.raise_alert(
                    {"severity": "HIGH", "code": "WEB_TEST", "portfolio_id": "pf-live", "message": "<b>drawdown</b>"}
                )
                assert raised is not None
                message = await asyncio.wait_for(socket.receive(), timeout=2.0)
                assert time.monotonic() - started < 2.0
            alert = json.loads(message.data)
            assert alert["alert_id"] == raised["alert_id"] and alert["code"] == "WEB_TEST"
            assert alert["severity"] == "HIGH" and alert["message"] == "<b>drawdown</b>" and alert["status"] == "open"
            # The page shows the open alerts it did not see arrive, escaped.
            async with http.get(f"{base}/portfolios/pf-live", headers=HTML) as reply:
                page = await reply.text()
            assert "&lt;b&gt;drawdown&lt;/b&gt;" in page and "<b>drawdown</b>" not in page
            assert "not for this page" not in page
            # A socket still open when the service stops is closed by it (the stop is not held up).
            socket = await http.ws_connect(base.replace("http", "ws", 1) + "/ws/alerts")
            stopping = time.monotonic()
        assert time.monotonic() - stopping < 5.0
        assert socket.closed or (await asyncio.wait_for(socket.receive(), timeout=2.0)).type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.CLOSING,
        )

    asyncio.run(scenario())


def test_reports_are_listed_and_served_read_only(tmp_path: Path) -> None:
    service = web_service(tmp_path)
    reports = tmp_path / "reports"
    for day, text in (("2026-11-26", "old"), ("2026-11-27", "new")):
        (reports / day).mkdir()
        (reports / day / "pf-rep-daily.html").write_text(f"<html><body>{text} daily</body></html>")
        (reports / day / "pf-rep-daily.json").write_text(json.dumps({"day": day}))
    (reports / "2026-11-21").mkdir()
    (reports / "2026-11-21" / "pf-rep-weekly.html").write_text("<html><body>weekly</body></html>")
    (reports / "2026-11-27" / "other-daily.html").write_text("<html><body>other</body></html>")
    (reports / "2026-11-27" / "notes.txt").write_text("not a report")
    (tmp_path / "secret.html").write_text("outside")

    async def scenario() -> None:
        async with running(service), client() as http:
            viewer = service.store_component.store.create_api_key("viewer")
            trader = service.store_component.store.create_api_key("trader")
            await portfolio_with_pending(service.server.address, trader.token, "pf-rep")
            base = web_url(service)
            csrf = await login(http, base, viewer.token)
            async with http.get(f"{base}/portfolios/pf-rep", headers=HTML) as reply:
                page = await reply.text()
            links = re.findall(r'<a href="(/reports/[^"]+)"', page)
            assert links == [
                "/reports/2026-11-27/pf-rep-daily.html",
                "/reports/2026-11-27/pf-rep-daily.json",
                "/reports/2026-11-21/pf-rep-weekly.html",
            ]
            async with http.get(f"{base}{links[0]}") as reply:
                assert reply.status == 200 and "new daily" in await reply.text()
                assert reply.content_type == "text/html" and "sandbox" in reply.headers["Content-Security-Policy"]
            async with http.get(f"{base}{links[1]}") as reply:
                assert reply.content_type == "application/json" and await reply.json() == {"day": "2026-11-27"}
            async with http.get(f"{base}/", headers=HTML) as reply:
                assert "/reports/2026-11-27/other-daily.html" in await reply.text()
            for path, field in (
                ("/reports/2026-11-27/notes.txt", "file"),
                ("/reports/2026-11-27/..%2F..%2Fsecret.html", "file"),
                ("/reports/yesterday/pf-rep-daily.html", "date"),
            ):
                async with http.get(f"{base}{path}", headers=JSON) as reply:
                    assert reply.status in (400, 404), path
                    assert "outside" not in await reply.text()
                    if reply.status == 400:
                        assert (await reply.json())["field"] == field, path
            async with http.get(f"{base}/reports/2026-11-20/pf-rep-daily.html", headers=JSON) as reply:
                assert reply.status == 404
            report = f"{base}/reports/2026-11-27/pf-rep-daily.html"
            async with http.post(report, headers={"X-CSRF-Token": csrf}) as reply:
                assert reply.status == 405  # read-only

    asyncio.run(scenario())


def test_revoking_a_key_ends_its_sessions(tmp_path: Path) -> None:
    service = web_service(tmp_path, ALLSUSE_AUTH_CACHE_SECONDS="0")

    async def scenario() -> None:
        async with running(service), client() as http:
            store = service.store_component.store
            viewer = store.create_api_key("viewer")
            base = web_url(service)
            await login(http, base, viewer.token)
            async with http.get(f"{base}/", headers=JSON) as reply:
                assert reply.status == 200
            socket = await http.ws_connect(base.replace("http", "ws", 1) + "/ws/alerts")
            await asyncio.sleep(0.1)
            store.revoke_api_key(viewer.key_id)
            # The open WebSocket gets no more alerts: the next one finds the key revoked and closes it.
            await service.alerts.raise_alert({"severity": "LOW", "code": "AFTER_REVOKE", "message": "not shown"})
            closing = await asyncio.wait_for(socket.receive(), timeout=TIMEOUT)
            assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 1008, closing
            await socket.close()
            async with http.get(f"{base}/", headers=JSON) as reply:
                assert reply.status == 401
            assert len(web_of(service).sessions) == 0

    asyncio.run(scenario())


def test_without_auth_the_caller_is_the_anonymous_admin_with_a_csrf_token(tmp_path: Path) -> None:
    service = web_service(tmp_path, auth=False)

    async def scenario() -> None:
        async with running(service), client() as http:
            await portfolio_with_pending(service.server.address, None, "pf-open", key="o-1")
            base = web_url(service)
            async with http.get(f"{base}/login", allow_redirects=False) as reply:
                assert reply.status == 303 and reply.headers["Location"] == "/"
            async with http.get(f"{base}/portfolios/pf-open", headers=HTML) as reply:
                assert reply.status == 200 and "SameSite=Strict" in reply.headers["Set-Cookie"]
                page = await reply.text()
            assert "authentication off (admin)" in page
            decision_id = re.search(r'data-approve="([0-9a-f]+)"', page)
            assert decision_id
            url = f"{base}/decisions/{decision_id.group(1)}/approve"
            async with http.post(url, headers=JSON) as reply:
                assert reply.status == 403  # still no POST without the CSRF token
            async with http.post(url, headers={**JSON, "X-CSRF-Token": _csrf(page)}) as reply:
                assert reply.status == 200 and (await reply.json())["approval_status"] == "APPROVED"
            async with grpc.aio.insecure_channel(service.server.address) as channel:
                assert (await decide(channel, None, "pf-open", "o-1")).approval_status == "APPROVED"

    asyncio.run(scenario())


def test_the_page_is_a_component_only_when_enabled(tmp_path: Path) -> None:
    assert "web" not in Service(service_config(tmp_path)).registry
    service = web_service(tmp_path)
    assert service.registry.component("web").depends_on == ("store", "events", "alerts")

    async def scenario() -> None:
        async with running(service):
            assert web_of(service).port > 0
            assert service.registry.states()["web"].value == "RUNNING"
            assert (await service.registry.check_health()).value == "RUNNING"

    asyncio.run(scenario())


def test_with_tls_the_page_serves_https_with_secure_cookies(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    service = web_service(tmp_path, ALLSUSE_TLS_CERT_FILE=str(cert), ALLSUSE_TLS_KEY_FILE=str(key))

    async def scenario() -> None:
        async with running(service):
            base = web_url(service)
            assert base.startswith("https://127.0.0.1:")
            trusted = ssl.create_default_context(cafile=str(cert))
            viewer = service.store_component.store.create_api_key("viewer")
            async with aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=TIMEOUT),
                cookie_jar=aiohttp.CookieJar(unsafe=True),
                connector=aiohttp.TCPConnector(ssl=trusted),
            ) as http:
                async with http.get(f"{base}/login", headers=HTML) as reply:
                    assert reply.status == 200 and "Secure" in reply.headers["Set-Cookie"]
                    form_csrf = _csrf(await reply.text())
                async with http.post(
                    f"{base}/login", data={"token": viewer.token, "csrf": form_csrf}, allow_redirects=False
                ) as reply:
                    assert reply.status == 303
                    cookie = reply.headers["Set-Cookie"]
                assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
            async with client() as plain:
                with pytest.raises(aiohttp.ClientError):
                    await plain.get(base.replace("https", "http", 1) + "/login")

    asyncio.run(scenario())


def test_sessions_expire_and_are_bounded() -> None:
    now = [0.0]
    sessions = Sessions(60.0, 30.0, clock=lambda: now[0], max_sessions=2)
    viewer = Principal("k1", "viewer")
    first, session = sessions.open(viewer)
    assert sessions.get(first) is session and session.csrf_matches(session.csrf)
    assert not session.csrf_matches(None) and not session.csrf_matches(session.csrf + "x")
    assert not sessions.due_for_check(session)
    now[0] = 31.0
    assert sessions.due_for_check(session) and not sessions.due_for_check(session)
    second, _ = sessions.open(Principal("k2", "trader"))
    now[0] = 50.0
    third, _ = sessions.open(viewer)
    assert sessions.get(first) is None and len(sessions) == 2  # the oldest went first
    now[0] = 92.0
    assert sessions.get(second) is None and sessions.get(third) is not None
    assert sessions.close_key("k1") == 1 and len(sessions) == 0
    assert sessions.get("") is None and sessions.get("x" * 200) is None


def test_alert_sockets_count_against_the_stream_limits(tmp_path: Path) -> None:
    service = web_service(tmp_path, ALLSUSE_SERVER_MAX_STREAMS_PER_KEY="2")

    async def scenario() -> None:
        async with running(service), client() as http:
            viewer = service.store_component.store.create_api_key("viewer")
            base = web_url(service)
            await login(http, base, viewer.token)
            url = base.replace("http", "ws", 1) + "/ws/alerts"
            first, second = await http.ws_connect(url), await http.ws_connect(url)
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await http.ws_connect(url)
            assert err.value.status == 429
            await first.close()
            deadline = time.monotonic() + TIMEOUT
            while web_of(service)._streams[viewer.key_id] > 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            third = await http.ws_connect(url)  # a closed socket gives its place back
            await asyncio.gather(second.close(), third.close())

    asyncio.run(scenario())


def test_a_taken_port_stops_the_start_naming_web_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        service = web_service(tmp_path, ALLSUSE_WEB_PORT=str(port))

        async def scenario() -> None:
            with pytest.raises(ComponentStartError) as err:
                await service.start()
            assert err.value.component == "web" and f"web.port: could not bind 127.0.0.1:{port}" in str(err.value)
            assert service.registry.service.state.value == "FAULTED"

        asyncio.run(scenario())


def test_reports_written_by_the_report_writer_are_found_under_their_portfolio(tmp_path: Path) -> None:
    """A portfolio id the writer percent-encodes (allsuse.reports.files) is listed under the id itself, and its
    link resolves to the file written."""
    from urllib.parse import unquote

    from allsuse.reports.files import report_paths
    from allsuse.web.reports import latest_reports, report_path

    root = tmp_path / "reports"
    html, _ = report_paths(root, dt.date(2026, 11, 27), "desk/a b", "daily")
    html.parent.mkdir(parents=True)
    html.write_text("<html><body>encoded</body></html>")
    (found,) = latest_reports(root, "desk/a b")
    assert (found.portfolio_id, found.kind, found.ext) == ("desk/a b", "daily", "html")
    date, name = found.url.removeprefix("/reports/").split("/", 1)
    path, kind = report_path(root, date, unquote(name))  # the server's router decodes the path once
    assert path == html.resolve() and kind == "text/html"
