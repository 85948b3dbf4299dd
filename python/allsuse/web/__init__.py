"""The operator web page (issue 13 item 4): an aiohttp server on the service's own event loop, a component `web`.

`/` lists the portfolios, `/portfolios/ID` shows one (accounts with drawdown levels and trading states, decisions
awaiting approval with approve and decline buttons, live alerts over a WebSocket, the latest reports, component
health). Authentication is the gRPC API's: the same API keys and roles (a login form that opens a session cookie,
or `Authorization: Bearer`). No build step: HTML from string templates and one small hand-written script, both
shipped inside the package. See docs/api.md ("Operator web page") and docs/operations.md.
"""

from __future__ import annotations

from allsuse.web.server import WebComponent

__all__ = ["WebComponent"]
