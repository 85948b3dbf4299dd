"""Reports on disk: `<reports.dir>/<YYYY-MM-DD>/<portfolio_id>-<kind>.html` and `.json` (the date is the report's
as-of date). A portfolio id's characters other than letters, digits and `_.@-` are percent-encoded in the file
name (`a/b` -> `a%2Fb`), so an id never names a folder. Each file is written beside its target and renamed into
place: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from allsuse.reports.gather import check_kind


def file_stem(portfolio_id: str, kind: str) -> str:
    """`<portfolio_id>-<kind>` with the id percent-encoded as the module docstring says."""
    return f"{quote(portfolio_id, safe='@._-')}-{check_kind(kind)}"


def parse_name(name: str) -> tuple[str, str] | None:
    """(portfolio_id, kind) of a report file's name, None for another file."""
    stem = name.rsplit(".", 1)[0]
    for kind in ("daily", "weekly", "quarterly"):
        if stem.endswith(f"-{kind}") and name.endswith((".html", ".json")):
            return unquote(stem[: -len(kind) - 1]), kind
    return None


def report_paths(root: Path, day: dt.date, portfolio_id: str, kind: str) -> tuple[Path, Path]:
    """(html, json) paths of one report."""
    folder = root / day.isoformat()
    stem = file_stem(portfolio_id, kind)
    return folder / f"{stem}.html", folder / f"{stem}.json"


def _replace(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_files(root: Path, body: dict[str, Any], html: str) -> tuple[Path, Path]:
    """Writes a report's HTML and JSON under `root` (see the module docstring); returns their paths."""
    html_path, json_path = report_paths(root, dt.date.fromisoformat(body["date"]), body["portfolio_id"], body["kind"])
    _replace(json_path, json.dumps(body, sort_keys=True, indent=1))
    _replace(html_path, html)
    return html_path, json_path


__all__ = ["file_stem", "parse_name", "report_paths", "write_files"]
