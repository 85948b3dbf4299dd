"""Logging set-up for the service: text or one JSON object per line, DSN passwords masked in every line.

The access log (logger "allsuse.access") writes one line per RPC; with `logging.json` each line is a JSON
object holding the access fields at the top level, otherwise the fields follow the logger name as JSON text:

    {"ts": "2026-11-21T05:08:46.249Z", "level": "INFO", "logger": "allsuse.access", "event": "rpc",
     "method": "/allsuse.v1.DecisionService/ClassifyWeek", "code": "OK", "duration_ms": 0.84,
     "request_id": "5f0c...", "key_id": "k3b2...", "role": "viewer", "peer": "ipv4:127.0.0.1:53412"}
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any

from allsuse.config import LoggingConfig, redact

ACCESS_LOGGER = "allsuse.access"
_ACCESS_FIELDS = "access_fields"


class RedactingFormatter(logging.Formatter):
    """The standard text format with DSN passwords masked."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The line, masked."""
        fields = getattr(record, _ACCESS_FIELDS, None)
        if isinstance(fields, dict):
            record.msg, record.args = json.dumps(fields, separators=(",", ":")), None
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message (or the access fields), exc (traceback text)."""

    def format(self, record: logging.LogRecord) -> str:
        """The JSON line, masked."""
        out: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
        }
        fields = getattr(record, _ACCESS_FIELDS, None)
        if isinstance(fields, dict):
            out.update(fields)
        else:
            out["message"] = record.getMessage()
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(out, separators=(",", ":"), default=str))


def access_log(fields: dict[str, Any]) -> None:
    """Writes one access line (the fields must not hold secrets or message bodies)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if logger.isEnabledFor(logging.INFO):
        logger.info("rpc", extra={_ACCESS_FIELDS: fields})


def configure_logging(config: LoggingConfig, *, stream: Any = None) -> None:
    """Sends every log line to stderr (or `stream`) at `config.level`, as text or JSON."""
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if config.json else RedactingFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.level)
    logging.getLogger("grpc").setLevel(max(logging.WARNING, logging.getLevelName(config.level)))


__all__ = ["ACCESS_LOGGER", "JsonFormatter", "RedactingFormatter", "access_log", "configure_logging"]
