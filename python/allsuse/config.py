"""Configuration: config/base.yaml, then config/<environment>.yaml, then ALLSUSE_* environment variables.

Validated on load: an invalid value raises InvalidInputError naming the key and the reason.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from allsuse.errors import InvalidInputError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
ENV_PREFIX = "ALLSUSE_"


@dataclass(frozen=True)
class ServerConfig:
    """Where and how the gRPC server listens."""

    host: str
    port: int
    shutdown_grace_seconds: float
    max_message_bytes: int
    max_concurrent_rpcs: int


@dataclass(frozen=True)
class Config:
    """The whole validated configuration."""

    environment: str
    server: ServerConfig


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise InvalidInputError.of("environment", f"no configuration file {path.name}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise InvalidInputError.of(path.name, "must be a mapping at the top level")
    return data


def _env_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for section, values in raw.items():
        if not isinstance(values, dict):
            continue
        for key in values:
            env_key = f"{ENV_PREFIX}{section}_{key}".upper()
            if env_key in environ:
                out[section][key] = yaml.safe_load(environ[env_key])
    return out


def _typed(section: Mapping[str, Any], prefix: str, key: str, kind: type, *, minimum: float | None = None) -> Any:
    if key not in section:
        raise InvalidInputError.of(f"{prefix}.{key}", "is missing")
    value = section[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InvalidInputError.of(f"{prefix}.{key}", f"must be of type {kind.__name__}, got {value!r}")
    if minimum is not None and isinstance(value, (int, float)) and value < minimum:
        raise InvalidInputError.of(f"{prefix}.{key}", f"must be >= {minimum}, got {value!r}")
    return value


def load(environment: str = "development", environ: Mapping[str, str] | None = None) -> Config:
    """Loads and validates the configuration for `environment` ("development", "production", ...)."""
    env = os.environ if environ is None else environ
    raw = _merge(_read(CONFIG_DIR / "base.yaml"), _read(CONFIG_DIR / f"{environment}.yaml"))
    raw = _env_overrides(raw, env)
    server = raw.get("server")
    if not isinstance(server, dict):
        raise InvalidInputError.of("server", "must be a mapping")
    port = _typed(server, "server", "port", int, minimum=0)
    if port > 65535:
        raise InvalidInputError.of("server.port", f"must be <= 65535, got {port}")
    return Config(
        environment=environment,
        server=ServerConfig(
            host=_typed(server, "server", "host", str),
            port=port,
            shutdown_grace_seconds=_typed(server, "server", "shutdown_grace_seconds", float, minimum=0.0),
            max_message_bytes=_typed(server, "server", "max_message_bytes", int, minimum=1024),
            max_concurrent_rpcs=_typed(server, "server", "max_concurrent_rpcs", int, minimum=1),
        ),
    )
