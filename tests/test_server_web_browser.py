"""The operator page in a real headless Chromium (Debian's, installed by `make setup`), driven over the DevTools
protocol (Chromium's --remote-debugging-port, a WebSocket; websocket-client): sign in through the form, screenshots
that are not blank, the numbers on the page equal to GetPortfolio's, a click on Approve that makes the decision
APPROVED over gRPC, and an alert raised through the service's alert system shown on the open page within 2 s."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import websocket
from PIL import Image

from tests.rpc_support import stop
from tests.test_backtest_report import assert_not_blank
from tests.web_support import (
    ServiceThread,
    decide,
    get_portfolio,
    money_text,
    portfolio_with_pending,
    web_service,
    web_url,
)

STEP_TIMEOUT = 15.0
_GRPC_DECIDE_KEY = "browser-1"


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium is missing: `make setup` installs Debian's chromium package"
    return found


class DevTools:
    """One page target of Chromium over the DevTools protocol (commands answered by id; events ignored)."""

    def __init__(self, url: str) -> None:
        # No Origin header: Chromium refuses DevTools WebSockets from origins it was not told to allow.
        self.socket = websocket.create_connection(url, timeout=STEP_TIMEOUT, suppress_origin=True)
        self._next = 0

    def close(self) -> None:
        self.socket.close()

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        ident = self._next
        self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + STEP_TIMEOUT
        while time.monotonic() < deadline:
            message = json.loads(self.socket.recv())
            if message.get("id") == ident:
                assert "error" not in message, f"{method}: {message['error']}"
                return dict(message.get("result", {}))
        raise TimeoutError(f"{method}: no answer within {STEP_TIMEOUT} s")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, f"{expression}: {result['exceptionDetails']}"
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = STEP_TIMEOUT) -> Any:
        """Evaluates `expression` every 20 ms until it is truthy (the test's own wait; the page never polls)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                where = self.evaluate("location.href + ' ' + document.body.innerText.slice(0, 500)")
                raise TimeoutError(f"not true within {timeout} s: {expression} (at {where})")
            time.sleep(0.02)

    def click(self, selector: str) -> None:
        """A real mouse click (press and release) at the centre of the element."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        x, y = box
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        self.call("Input.dispatchMouseEvent", type="mousePressed", x=x, y=y, button="left", clickCount=1)
        self.call("Input.dispatchMouseEvent", type="mouseReleased", x=x, y=y, button="left", clickCount=1)

    def screenshot(self, path: Path) -> np.ndarray[Any, Any]:
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.write_bytes(base64.b64decode(data))
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))


def _launch(profile: Path) -> tuple[subprocess.Popen[bytes], DevTools]:
    proc = subprocess.Popen(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",  # the tests may run as root in a container, where Chromium's sandbox cannot start
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1280,1400",
            "--remote-debugging-port=0",
            "--remote-debugging-address=127.0.0.1",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 60
    while not (port_file.exists() and port_file.read_text().strip()):
        if proc.poll() is not None or time.monotonic() > deadline:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr and proc.poll() is not None else ""
            proc.kill()
            raise AssertionError(f"chromium did not open its DevTools port: {err[-2000:]}")
        time.sleep(0.05)
    port = int(port_file.read_text().split()[0])
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=STEP_TIMEOUT) as reply:
        targets = json.loads(reply.read())
    page = next(t for t in targets if t["type"] == "page")
    return proc, DevTools(page["webSocketDebuggerUrl"])


def _not_blank(rgb: np.ndarray[Any, Any]) -> None:
    # The operator page is mostly table and white space: fewer colours than a chart-laden report.
    assert_not_blank(rgb, min_colours=50, max_background=0.95)


def test_the_operator_page_in_chromium(tmp_path: Path) -> None:
    service = web_service(tmp_path)
    with ServiceThread(service) as running:
        store = service.store_component.store
        trader = store.create_api_key("trader")
        address = service.server.address
        _, pending = running.run(portfolio_with_pending(address, trader.token, "pf-browser", key=_GRPC_DECIDE_KEY))
        base = web_url(service)
        proc, page = _launch(tmp_path / "profile")
        try:
            # Not signed in: the page sends the browser to the login form; the key is typed and the button clicked.
            page.call("Page.navigate", url=f"{base}/portfolios/pf-browser")
            page.wait_for("location.pathname === '/login' && document.readyState === 'complete'")
            page.evaluate("document.getElementById('token').focus()")
            page.call("Input.insertText", text=trader.token)
            page.click("#login button[type=submit]")
            page.wait_for("location.pathname === '/portfolios/pf-browser' && document.readyState === 'complete'")
            assert page.evaluate("document.cookie") == ""  # the session cookie is HttpOnly
            page.wait_for("document.body.dataset.alerts === 'live'")  # the alert WebSocket is open

            rgb = page.screenshot(tmp_path / "operator-portfolio.png")
            _not_blank(rgb)
            # The numbers on the page are the API's.
            got = running.run(get_portfolio(address, trader.token, "pf-browser"))
            assert page.evaluate("document.querySelector('[data-field=equity]').textContent") == money_text(got.equity)
            for account in got.accounts:
                row = f"tr[data-account={json.dumps(account.account_id)}]"
                cells = page.evaluate(
                    f"[...document.querySelectorAll({json.dumps(row + ' td')})].map(td => td.textContent)"
                )
                assert cells[0] == account.account_id and cells[2] == money_text(account.balance), cells
                assert cells[5] == "none" and cells[6] == account.state, cells

            # Approve, clicked: the decision is APPROVED over gRPC.
            status = f"tr[data-decision='{pending.decision_id}'] .status"
            assert page.evaluate(f"document.querySelector({json.dumps(status)}).textContent") == "PENDING"
            page.click(f"button[data-approve='{pending.decision_id}']")
            page.wait_for(f"document.querySelector({json.dumps(status)}).textContent === 'APPROVED'")

            async def as_seen_over_grpc() -> str:
                import grpc

                async with grpc.aio.insecure_channel(address) as channel:
                    return (await decide(channel, trader.token, "pf-browser", _GRPC_DECIDE_KEY)).approval_status

            assert running.run(as_seen_over_grpc()) == "APPROVED"

            # An alert raised through the service's alert system shows on the open page within 2 s.
            message = f"browser test alert {time.time_ns()}"
            started = time.monotonic()
            running.run(
                service.alerts.raise_alert(
                    {"severity": "CRITICAL", "code": "WEB_BROWSER", "portfolio_id": "pf-browser", "message": message}
                )
            )
            shown = f"li => li.textContent.includes({json.dumps(message)})"
            page.wait_for(f"[...document.querySelectorAll('#alerts li')].some({shown})", timeout=2.0)
            elapsed = time.monotonic() - started
            assert elapsed < 2.0, elapsed
            _not_blank(page.screenshot(tmp_path / "operator-alert.png"))

            # The list of portfolios.
            page.call("Page.navigate", url=f"{base}/")
            page.wait_for("location.pathname === '/' && document.readyState === 'complete'")
            assert page.evaluate("document.querySelector('[data-field=equity]').textContent") == money_text(got.equity)
            _not_blank(page.screenshot(tmp_path / "operator-index.png"))
            print(f"screenshots in {tmp_path}; alert shown {elapsed * 1000:.0f} ms after it was raised")
        finally:
            page.close()
            stop(proc)
            if proc.stderr is not None:
                proc.stderr.close()
