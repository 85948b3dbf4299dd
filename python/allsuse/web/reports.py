"""The reports on disk that the page links to: `<reports dir>/<YYYY-MM-DD>/<portfolio_id>-<kind>.html|json` with
kind daily, weekly or quarterly (written by allsuse.reports); found by globbing that layout, served read-only."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from allsuse.config import Config
from allsuse.errors import InvalidInputError
from allsuse.reports.files import parse_name

KINDS = ("daily", "weekly", "quarterly")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_FILE = re.compile(r"(?P<portfolio>[^/\\]{1,64})-(?P<kind>daily|weekly|quarterly)\.(?P<ext>html|json)")
CONTENT_TYPES = {"html": "text/html", "json": "application/json"}


def reports_dir(config: Config) -> Path:
    """The folder of the reports: config `reports.dir` (resolved against the project like store.url)."""
    return Path(config.reports.dir)


@dataclass(frozen=True)
class ReportFile:
    """One report on disk: its date folder, portfolio, kind, extension, file name (the portfolio id
    percent-encoded as allsuse.reports.files writes it), and the URL the page serves it at."""

    date: str
    portfolio_id: str
    kind: str
    ext: str
    name: str

    @property
    def url(self) -> str:
        """Where the page serves it (`/reports/<date>/<file>`, the file name quoted once more for the path)."""
        return f"/reports/{self.date}/{quote(self.name, safe='@._-')}"


def latest_reports(root: Path, portfolio_id: str | None = None) -> list[ReportFile]:
    """The newest report of each (portfolio, kind), HTML and JSON both when present; one portfolio's only with
    `portfolio_id`. Sorted by portfolio, then kind in KINDS order, then HTML first."""
    if not root.is_dir():
        return []
    seen: dict[tuple[str, str], str] = {}
    found: list[ReportFile] = []
    for folder in sorted((p for p in root.iterdir() if p.is_dir() and _DATE.fullmatch(p.name)), reverse=True):
        for path in sorted(folder.iterdir()):
            match = _FILE.fullmatch(path.name)
            parsed = parse_name(path.name)
            if match is None or parsed is None or not path.is_file():
                continue
            pid, kind = parsed
            if portfolio_id is not None and pid != portfolio_id:
                continue
            newest = seen.setdefault((pid, kind), folder.name)
            if newest == folder.name:
                found.append(ReportFile(folder.name, pid, kind, match["ext"], path.name))
    found.sort(key=lambda r: (r.portfolio_id, KINDS.index(r.kind), r.ext != "html"))
    return found


def report_path(root: Path, date: str, name: str) -> tuple[Path, str]:
    """The file a `/reports/<date>/<name>` URL names and its content type; InvalidInputError naming `date` or
    `file` for anything but the layout (no other file under the folder is ever served)."""
    if not _DATE.fullmatch(date):
        raise InvalidInputError.of("date", f"must be YYYY-MM-DD, got {date[:20]!r}")
    match = _FILE.fullmatch(name)
    if match is None:
        raise InvalidInputError.of("file", "must be <portfolio_id>-<daily|weekly|quarterly>.<html|json>")
    base = root.resolve()
    path = (base / date / name).resolve()
    if not path.is_relative_to(base):
        raise InvalidInputError.of("file", "must name a report inside the reports folder")
    return path, CONTENT_TYPES[match["ext"]]


__all__ = ["CONTENT_TYPES", "KINDS", "ReportFile", "latest_reports", "report_path", "reports_dir"]
