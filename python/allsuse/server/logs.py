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
import math
import re
import sys
from typing import Any

from allsuse.config import LoggingConfig, redact

ACCESS_LOGGER = "allsuse.access"
_ACCESS_FIELDS = "access_fields"


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)  # json.dumps with options builds one per call
_FIELDS_ENCODER = json.JSONEncoder(separators=(",", ":"))
_MAYBE_SECRET = re.compile(r"://|password", re.IGNORECASE)  # what either pattern of `redact` needs to match


def _masked(text: str) -> str:
    """`redact(text)`, skipping its two substitutions when neither can match."""
    return redact(text) if _MAYBE_SECRET.search(text) is not None else text


class _Timestamps:
    """ISO 8601 UTC times with milliseconds, as datetime.isoformat gives them, the date part made once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def iso(self, created: float) -> str:
        """`created` (seconds since the epoch) as 2026-11-21T05:08:46.249+00:00."""
        second = int(created)
        micros = round((created - second) * 1e6)
        if micros >= 1_000_000:
            second, micros = second + 1, micros - 1_000_000
        if second != self._second:
            prefix = dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second, self._prefix = second, prefix
            return f"{prefix}.{micros // 1000:03d}+00:00"
        return f"{self._prefix}.{micros // 1000:03d}+00:00"


class RedactingFormatter(logging.Formatter):
    """The standard text format with DSN passwords masked."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The line, masked."""
        fields = getattr(record, _ACCESS_FIELDS, None)
        if isinstance(fields, dict):
            record.msg, record.args = _FIELDS_ENCODER.encode(fields), None
        return _masked(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message (or the access fields), exc (traceback text)."""

    def __init__(self) -> None:
        super().__init__()
        self._times = _Timestamps()

    def format(self, record: logging.LogRecord) -> str:
        """The JSON line, masked."""
        fields = getattr(record, _ACCESS_FIELDS, None)
        if isinstance(fields, dict) and not record.exc_info and _RESERVED.isdisjoint(fields):
            line = self._access_line(record, fields)
            if line is not None:
                return _masked(line)
        out: dict[str, Any] = {
            "ts": self._times.iso(record.created),
            "level": record.levelname,
            "logger": record.name,
        }
        if isinstance(fields, dict):
            out.update(fields)
        else:
            out["message"] = record.getMessage()
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return _masked(_ENCODER.encode(out))

    def _access_line(self, record: logging.LogRecord, fields: dict[str, Any]) -> str | None:
        """The same text as the general path gives for an access record, joined from the encoded values (an access
        line per RPC: json.dumps of the whole dict costs about twice as much); None for a key that is not a str."""
        parts = [
            f'{{"ts":"{self._times.iso(record.created)}","level":{_string(record.levelname)},'
            f'"logger":{_string(record.name)}'
        ]
        for key, value in fields.items():
            if type(key) is not str:
                return None
            parts.append(f",{_string(key)}:{_json(value)}")
        parts.append("}")
        return "".join(parts)


_RESERVED = frozenset(("ts", "level", "logger", "message", "exc"))
_string = json.encoder.encode_basestring_ascii  # what json.dumps uses for a string (ensure_ascii)


def _json(value: Any) -> str:
    """`value` as json.dumps(..., default=str) writes it."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return _string(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return int.__repr__(value)
    if type(value) is float and math.isfinite(value):
        return float.__repr__(value)
    return _ENCODER.encode(value)


_ACCESS = logging.getLogger(ACCESS_LOGGER)  # bound once: getLogger takes the logging module's lock


def access_logging() -> bool:
    """Whether access lines are written now (the level may change at run time); callers build nothing otherwise."""
    return _ACCESS.isEnabledFor(logging.INFO)


def access_log(fields: dict[str, Any]) -> None:
    """Writes one access line (the fields must not hold secrets or message bodies).

    The record is made and handled directly: `logger.info` would also walk the stack for the caller's file and
    line, which an access line does not show."""
    if _ACCESS.isEnabledFor(logging.INFO):
        _ACCESS.handle(
            _ACCESS.makeRecord(ACCESS_LOGGER, logging.INFO, "", 0, "rpc", (), None, extra={_ACCESS_FIELDS: fields})
        )


def configure_logging(config: LoggingConfig, *, stream: Any = None) -> None:
    """Sends every log line to stderr (or `stream`) at `config.level`, as text or JSON."""
    # Neither format shows the process, thread or multiprocessing names: records need not look them up (the
    # logging module's documented switches; an access line per RPC makes them count).
    logging.logProcesses = logging.logThreads = logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if config.json else RedactingFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.level)
    logging.getLogger("grpc").setLevel(max(logging.WARNING, logging.getLevelName(config.level)))


__all__ = ["ACCESS_LOGGER", "JsonFormatter", "RedactingFormatter", "access_log", "access_logging", "configure_logging"]
