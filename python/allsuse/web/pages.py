"""The HTML of the pages: string templates shipped in the package (templates/), every value escaped here."""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Iterable, Mapping
from html import escape
from string import Template
from typing import Any

from allsuse.server.request import Principal
from allsuse.web.reports import ReportFile
from allsuse.web.views import PendingDecision, PortfolioView


@functools.cache
def template(name: str) -> Template:
    """A template of allsuse/web/templates, read once."""
    return Template(importlib.resources.files("allsuse.web").joinpath("templates", name).read_text("utf-8"))


@functools.cache
def static_file(name: str) -> bytes:
    """A file of allsuse/web/static, read once."""
    return importlib.resources.files("allsuse.web").joinpath("static", name).read_bytes()


def _csrf_field(csrf: str) -> str:
    return f'<input type="hidden" name="csrf" value="{escape(csrf)}">'


def layout(title: str, body: str, *, principal: Principal, csrf: str, portfolio_id: str = "") -> str:
    """A whole page: header (who is signed in, sign out), the title and `body` (HTML, already escaped)."""
    who = f"{principal.key_id} ({principal.role})" if principal.authenticated else "authentication off (admin)"
    logout = (
        f'<form method="post" action="/logout">{_csrf_field(csrf)}<button type="submit">Sign out</button></form>'
        if principal.authenticated
        else ""
    )
    return template("layout.html").substitute(
        title=escape(title),
        body=body,
        who=escape(who),
        logout=logout,
        csrf=escape(csrf),
        portfolio=escape(portfolio_id),
    )


def login_page(csrf: str, next_path: str, message: str = "") -> str:
    """The sign-in form."""
    note = f'<p class="error">{escape(message)}</p>' if message else ""
    return template("login.html").substitute(csrf=escape(csrf), next=escape(next_path), message=note)


def error_page(status: int, message: str) -> str:
    """A minimal page for an error status."""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>allsuse: error</title>'
        '<link rel="stylesheet" href="/static/operator.css"></head><body><main>'
        f'<h1>{status}</h1><p class="error" id="error">{escape(message)}</p><p><a href="/">Portfolios</a></p>'
        "</main></body></html>"
    )


def _accounts_table(view: PortfolioView) -> str:
    rows = "".join(
        f'<tr data-account="{escape(a.account_id)}"><td>{escape(a.account_id)}</td><td>{escape(a.kind)}</td>'
        f'<td class="num" data-field="balance">{escape(a.balance)}</td>'
        f'<td class="num" data-field="peak">{escape(a.peak)}</td>'
        f'<td class="num" data-field="drawdown">{a.drawdown:.2%}</td>'
        f'<td class="level-{escape(a.level)}" data-field="level">{escape(a.level)}</td>'
        f'<td class="state-{escape(a.state)}" data-field="state">{escape(a.state)}</td></tr>'
        for a in view.accounts
    )
    return (
        "<table><thead><tr><th>Account</th><th>Type</th><th>Balance</th><th>Peak</th><th>Drawdown</th>"
        f"<th>Protection level</th><th>Trading state</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _reports_list(reports: Iterable[ReportFile]) -> str:
    items = "".join(
        f'<li><a href="{escape(r.url)}" data-report="{escape(r.kind)}">{escape(r.portfolio_id)} {escape(r.kind)} '
        f"{escape(r.date)} ({escape(r.ext.upper())})</a></li>"
        for r in reports
    )
    return f'<ul class="reports">{items}</ul>' if items else '<p class="muted" id="no-reports">No reports yet.</p>'


def _health(states: Mapping[str, str]) -> str:
    rows = "".join(
        f'<tr data-component="{escape(n)}"><td>{escape(n)}</td><td>{escape(s)}</td></tr>' for n, s in states.items()
    )
    head = "<thead><tr><th>Component</th><th>State</th></tr></thead>"
    return f'<table class="health">{head}<tbody>{rows}</tbody></table>'


def _alert_item(a: Mapping[str, Any]) -> str:
    def v(key: str) -> str:
        return escape(str(a.get(key, "")))

    return (
        f'<li class="sev-{v("severity")}" data-alert-id="{v("alert_id")}">{v("at")} {v("severity")} {v("code")} '
        f"{v('portfolio_id')}: {v('message')} [{v('status')}]</li>"
    )


def _alerts(alerts: Iterable[Mapping[str, Any]]) -> str:
    items = "".join(_alert_item(a) for a in alerts)
    empty = "" if items else '<li class="muted" id="no-alerts">No open alerts.</li>'
    return f'<ul class="alerts" id="alerts">{empty}{items}</ul>'


def index_body(
    views: Iterable[PortfolioView],
    reports: Iterable[ReportFile],
    states: Mapping[str, str],
    alerts: Iterable[Mapping[str, Any]],
) -> str:
    """`/`: every portfolio with its equity and accounts, then alerts, reports and health."""
    sections = []
    for view in views:
        link = f"/portfolios/{escape(view.portfolio_id)}"
        sections.append(
            f'<section class="portfolio" data-portfolio="{escape(view.portfolio_id)}"><h2><a href="{link}">'
            f"{escape(view.portfolio_id)}</a> equity "
            f'<span data-field="equity">{escape(view.equity)}</span></h2>{_accounts_table(view)}</section>'
        )
    listing = "".join(sections) or '<p class="muted" id="no-portfolios">No portfolios yet.</p>'
    return (
        f"{listing}<h2>Live alerts</h2>{_alerts(alerts)}<h2>Latest reports</h2>{_reports_list(reports)}"
        f"<h2>Component health</h2>{_health(states)}"
    )


def _pending(decisions: Iterable[PendingDecision], csrf: str, refusal: str) -> str:
    rows = []
    for d in decisions:
        did = escape(d.decision_id)
        if not refusal:
            actions = (
                f'<form class="approval" method="post" action="/decisions/{did}/approve">{_csrf_field(csrf)}'
                '<input type="text" name="note" placeholder="note" maxlength="2000">'
                f'<button type="submit" class="approve" data-approve="{did}">Approve</button> '
                f'<button type="submit" class="decline" data-decline="{did}" formaction="/decisions/{did}/decline">'
                "Decline</button></form>"
            )
        else:
            actions = f'<span class="muted refusal">{escape(refusal)}</span>'
        rows.append(
            f'<tr data-decision="{did}"><td>{escape(d.as_of)}</td><td>{escape(d.account_id)}</td>'
            f"<td>{escape(d.action)}</td><td>{escape(d.order)}</td>"
            f'<td class="explanation">{escape(d.explanation)}</td>'
            f'<td class="status" data-field="approval">PENDING</td><td>{actions}</td></tr>'
        )
    if not rows:
        return '<p class="muted" id="no-pending">No decisions await approval.</p>'
    return (
        '<table class="pending"><thead><tr><th>As of</th><th>Account</th><th>Action</th><th>Order</th>'
        f"<th>Why</th><th>Approval</th><th></th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def portfolio_body(
    view: PortfolioView,
    pending: Iterable[PendingDecision],
    reports: Iterable[ReportFile],
    states: Mapping[str, str],
    alerts: Iterable[Mapping[str, Any]],
    *,
    csrf: str,
    refusal: str,
) -> str:
    """`/portfolios/ID`: equity, accounts, decisions awaiting approval (with the buttons unless `refusal` says why
    this caller may not approve), live alerts, reports, health."""
    return (
        f'<p>Equity <strong data-field="equity">{escape(view.equity)}</strong>, {view.positions} open positions</p>'
        f"<h2>Accounts</h2>{_accounts_table(view)}"
        f"<h2>Decisions awaiting approval</h2>{_pending(pending, csrf, refusal)}"
        f"<h2>Live alerts</h2>{_alerts(alerts)}"
        f"<h2>Latest reports</h2>{_reports_list(reports)}"
        f"<h2>Component health</h2>{_health(states)}"
    )


__all__ = ["error_page", "index_body", "layout", "login_page", "portfolio_body", "static_file", "template"]
