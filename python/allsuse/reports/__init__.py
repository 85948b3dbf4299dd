"""Daily, weekly and quarterly reports of a portfolio (docs/monitoring.md, "Reports"): `gather` reads the
material once, `body` builds every figure as JSON, `html` renders the self-contained page with `charts`' inline
SVG, `execution` measures execution quality, `files` writes them under `<reports.dir>/<date>/`.

`build_report` is what GetReport, the scheduled jobs and `allsuse report` all call.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from allsuse.reports.body import report_body, text_lines
from allsuse.reports.files import report_paths, write_files
from allsuse.reports.gather import KINDS, gather
from allsuse.reports.html import render


@dataclass(frozen=True)
class Report:
    """One built report: its JSON body, plain text and HTML page."""

    body: dict[str, Any]
    text: str
    html: str

    @property
    def json(self) -> str:
        """The body as JSON text (keys sorted)."""
        return json.dumps(self.body, sort_keys=True)


def build_report(deps: Any, portfolio_id: str, kind: str, as_of: dt.datetime) -> Report:
    """The report of a stored portfolio as of `as_of` (naive UTC); InvalidInputError naming `kind`, NotFoundError
    for an unknown portfolio."""
    body = report_body(gather(deps, portfolio_id, kind, as_of))
    return Report(body, "\n".join(text_lines(body)), render(body))


def write_report(root: Path, report: Report) -> tuple[Path, Path]:
    """Writes the report's HTML and JSON under `root`; returns (html, json) paths."""
    return write_files(root, report.body, report.html)


__all__ = ["KINDS", "Report", "build_report", "report_paths", "write_report"]
