"""Configuration: base.yaml, then <environment>.yaml, then ALLSUSE_* environment variables.

The YAML files are the repository's config/ folder, shipped inside the package as `allsuse/defaults` (a link to
config/ in a checkout, package data in a wheel) and found through importlib.resources, so an installed wheel
serves with its packaged defaults from any working directory (`CONFIG_DIR`). Relative paths in them are relative
to the checkout, or to the current working directory outside one (`PROJECT_DIR`).

Every key of every section is declared below with its type and bounds. An environment variable
`ALLSUSE_<SECTION>_<KEY>` overrides a key (`ALLSUSE_SERVER_PORT=50052`), and `ALLSUSE_<SECTION>_<KEY>_FILE`
reads the value from a file (a mounted secret: `ALLSUSE_STORE_URL_FILE=/run/secrets/dsn`). The result is
validated on load: an invalid value raises InvalidInputError naming the key, the reason and where the value
came from. Secrets (a DSN password) are refused in the YAML files: they come from the environment or a file,
and `Config.describe()` masks them for logs.
"""

from __future__ import annotations

import importlib.resources
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from allsuse.errors import InvalidInputError


def _config_dir() -> Path:
    """The packaged configuration files: allsuse/defaults inside the package. In a checkout that folder is a
    symbolic link to the repository's config/ (the one source of truth); maturin ships its files in the wheel."""
    return Path(str(importlib.resources.files("allsuse").joinpath("defaults")))


def _project_dir(config_dir: Path) -> Path:
    """Where relative paths (store.url, TLS files) start: the checkout when running from one (the parent of
    config/), else the current working directory (a wheel installed in site-packages)."""
    real = config_dir.resolve()
    if real.name == "config" and (real.parent / "pyproject.toml").is_file():
        return real.parent
    return Path.cwd()


CONFIG_DIR = _config_dir()
PROJECT_DIR = _project_dir(CONFIG_DIR)
ENV_PREFIX = "ALLSUSE_"
FILE_SUFFIX = "_FILE"
ROLES = ("viewer", "trader", "admin")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_SERVICE_MODULES = (
    "allsuse.server.decision",
    "allsuse.server.portfolio",
    "allsuse.server.monitor",
    "allsuse.server.agent",
    "allsuse.server.marketdata",
)

_DSN_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` with DSN passwords masked: `postgresql://u:***@h/db`, `password=***`."""
    return _KV_PASSWORD.sub(r"\1***", _DSN_PASSWORD.sub(r"\1***@", text))


def has_password(url: str) -> bool:
    """Whether a store URL carries a password (then it must not live in a config file)."""
    return bool(_DSN_PASSWORD.search(url) or _KV_PASSWORD.search(url))


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback name or address (localhost, 127.0.0.0/8, ::1)."""
    name = host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerConfig:
    """Where and how the gRPC server listens, how long it drains, and its transport limits."""

    host: str
    port: int
    shutdown_grace_seconds: float
    max_message_bytes: int
    max_concurrent_rpcs: int
    drain_delay_seconds: float = 0.5
    blocking_workers: int = 4
    keepalive_time_seconds: float = 60.0
    keepalive_timeout_seconds: float = 20.0
    keepalive_min_ping_interval_seconds: float = 30.0
    allow_plaintext_remote: bool = False
    service_modules: tuple[str, ...] = DEFAULT_SERVICE_MODULES
    max_calls_per_key: int = 64
    max_streams: int = 256
    max_streams_per_key: int = 8
    max_streams_per_connection: int = 256
    request_message_timeout_seconds: float = 5.0
    workers: int = 1


@dataclass(frozen=True)
class TlsConfig:
    """Server certificate chain and private key (PEM files); both empty means plaintext."""

    cert_file: str = ""
    key_file: str = ""

    @property
    def enabled(self) -> bool:
        """Whether TLS is configured."""
        return bool(self.cert_file and self.key_file)


@dataclass(frozen=True)
class AuthConfig:
    """API-key authentication, the per-key token bucket (rate_limit_per_second 0 = no limit), and the bucket of
    failed authentications per peer and per key id that is checked before any secret is hashed
    (failed_rate_per_second 0 = no limit)."""

    enabled: bool = False
    rate_limit_per_second: float = 0.0
    rate_limit_burst: int = 1
    cache_seconds: float = 30.0
    failed_rate_per_second: float = 1.0
    failed_burst: int = 10


@dataclass(frozen=True)
class StoreConfig:
    """Where the store lives: a SQLite path (relative to the project directory) or a PostgreSQL DSN."""

    url: str = str(PROJECT_DIR / "var" / "allsuse.db")
    # Portfolios kept loaded between requests (with their engine state), least recently used dropped first; 0 = none.
    portfolio_cache: int = 256
    # Requests that may wait for one portfolio's turn; one more is refused with RESOURCE_EXHAUSTED.
    portfolio_queue: int = 512

    def describe(self) -> str:
        """The URL with any password masked."""
        return redact(self.url)


@dataclass(frozen=True)
class MetricsConfig:
    """The Prometheus text endpoint (HTTP, GET /metrics)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 9464


@dataclass(frozen=True)
class WebConfig:
    """The operator web page (allsuse.web): off by default; on loopback unless TLS is configured (it then serves
    HTTPS with the tls section's files); a login session lasts session_seconds."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 8080
    session_seconds: float = 28_800.0


def _web(raw: dict[str, Any], tls: TlsConfig, server: ServerConfig) -> WebConfig:
    """The web section: plaintext HTTP on loopback only (like gRPC), and not on the gRPC server's port."""
    web = WebConfig(**raw)
    if not tls.enabled and not is_loopback(web.host):
        raise InvalidInputError.of(
            "web.host",
            f"{web.host} is not a loopback address and TLS is off; the operator page serves plaintext on loopback "
            "only (set tls.cert_file and tls.key_file to serve HTTPS)",
        )
    if web.port and web.port == server.port:
        raise InvalidInputError.of("web.port", f"must differ from server.port ({server.port})")
    return web


@dataclass(frozen=True)
class LoggingConfig:
    """Log level and format (one JSON object per line when json is true)."""

    level: str = "INFO"
    json: bool = False


@dataclass(frozen=True)
class MarketConfig:
    """Market data: the cache of converted snapshot symbols and the server's market history (docs/operations.md,
    "Market data")."""

    snapshot_cache_size: int = 256
    history_bars: int = 520
    history_refresh_seconds: float = 1.0
    # Data quality on load (allsuse.data_quality): a close-to-close move above quality_max_jump is a jump; this many
    # equal closes in a row are stale; a gap of at most quality_max_fill_sessions sessions is forward-filled.
    quality_max_jump: float = 0.25
    quality_stale_sessions: int = 5
    quality_max_fill_sessions: int = 3


@dataclass(frozen=True)
class MonitoringConfig:
    """Thresholds of the monitoring modules (docs/monitoring.md). Factor crowding: a level is MEDIUM or HIGH when
    any of its measures reaches that threshold (HHI of position weights, the largest correlation cluster's share of
    the weights, the absorption ratio); symbols whose returns correlate above 1 - cluster_distance join a cluster."""

    crowding_hhi_medium: float = 0.25
    crowding_hhi_high: float = 0.40
    crowding_cluster_medium: float = 0.50
    crowding_cluster_high: float = 0.70
    crowding_absorption_medium: float = 0.70
    crowding_absorption_high: float = 0.85
    crowding_cluster_distance: float = 0.5
    # Alerts (allsuse.server.alerting): routes from a YAML file ("" = one log route), repeats within the dedupe
    # window counted on the first alert, more than burst_count alerts in burst_seconds summed into one.
    alert_routes_file: str = ""
    alert_dedupe_seconds: float = 300.0
    alert_burst_count: int = 20
    alert_burst_seconds: float = 60.0
    # Real-time metrics (allsuse.server.performance): daily equity marks kept this long; Prometheus gauges for the
    # first metrics_gauge_portfolios portfolios (by id), so the label set stays bounded.
    metrics_retention_days: int = 3650
    metrics_gauge_portfolios: int = 50


@dataclass(frozen=True)
class ExecutionConfig:
    """Orders worked on a broker (docs/execution.md): the paper market's model, the adaptive schedule by urgency,
    commissions, and how fast the paper market's minutes pass (tick_seconds of real time per simulated minute)."""

    enabled: bool = False
    broker: str = "paper"
    seed: int = 0
    tick_seconds: float = 1.0
    impact_coefficient: float = 0.5
    permanent_impact_coefficient: float = 0.314
    option_daily_volume: float = 2000.0
    stock_daily_volume: float = 2_000_000.0
    spread_base: float = 0.02
    spread_iv: float = 0.03
    spread_moneyness: float = 0.5
    stock_spread: float = 0.0002
    stock_spread_iv: float = 0.0005
    profile_curvature: float = 2.0
    passive_fill_intensity: float = 1.0
    passive_fill_decay: float = 1.0
    adverse_selection_share: float = 0.5
    passive_steps_normal: int = 2
    passive_steps_risk_reduction: int = 1
    participation_normal: float = 0.1
    participation_risk_reduction: float = 0.25
    participation_emergency: float = 0.5
    slice_contracts: int = 10
    replace_timeout_minutes: int = 5
    horizon_minutes: int = 390
    commission_per_contract: float = 0.65
    commission_per_share: float = 0.0
    fallback_iv: float = 0.3
    reconcile_decisions: int = 500


@dataclass(frozen=True)
class ReportsConfig:
    """Where reports are written: `<dir>/<YYYY-MM-DD>/<portfolio_id>-<kind>.html|json` (relative to the project
    directory, like store.url)."""

    dir: str = str(PROJECT_DIR / "var" / "reports")


@dataclass(frozen=True)
class Config:
    """The whole validated configuration."""

    environment: str
    server: ServerConfig
    tls: TlsConfig = field(default_factory=TlsConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    web: WebConfig = field(default_factory=WebConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    market: MarketConfig = field(default_factory=MarketConfig)
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    reports: ReportsConfig = field(default_factory=ReportsConfig)

    def describe(self) -> dict[str, dict[str, Any]]:
        """Every section as plain values for a start-up log line; secrets masked."""
        out: dict[str, dict[str, Any]] = {}
        for name in (
            "server",
            "tls",
            "auth",
            "store",
            "metrics",
            "logging",
            "market",
            "monitoring",
            "execution",
            "reports",
        ):
            section = getattr(self, name)
            out[name] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(section).items()}
        out["store"]["url"] = self.store.describe()
        out["web"] = dict(vars(self.web))
        return out


# --- the schema --------------------------------------------------------------------------------------------------

Check = Callable[[Any], str | None]  # returns the reason a value is wrong, or None


def _range(low: float | None = None, high: float | None = None) -> Check:
    def check(value: Any) -> str | None:
        if low is not None and value < low:
            return f"must be >= {low}, got {value!r}"
        if high is not None and value > high:
            return f"must be <= {high}, got {value!r}"
        return None

    return check


def _choice(options: tuple[str, ...]) -> Check:
    def check(value: Any) -> str | None:
        return None if value in options else f"must be one of {', '.join(options)}, got {value!r}"

    return check


def _non_empty(value: Any) -> str | None:
    return None if value.strip() else "must not be empty"


@dataclass(frozen=True)
class _Key:
    kind: type
    check: Check | None = None


_SCHEMA: dict[str, dict[str, _Key]] = {
    "server": {
        "host": _Key(str, _non_empty),
        "port": _Key(int, _range(0, 65535)),
        "shutdown_grace_seconds": _Key(float, _range(0.0, 60.0)),
        "drain_delay_seconds": _Key(float, _range(0.0, 60.0)),
        "max_message_bytes": _Key(int, _range(1024, 1 << 30)),
        "max_concurrent_rpcs": _Key(int, _range(1, 1_000_000)),
        "blocking_workers": _Key(int, _range(1, 64)),
        "keepalive_time_seconds": _Key(float, _range(1.0, 86_400.0)),
        "keepalive_timeout_seconds": _Key(float, _range(1.0, 3_600.0)),
        "keepalive_min_ping_interval_seconds": _Key(float, _range(1.0, 86_400.0)),
        "allow_plaintext_remote": _Key(bool),
        "service_modules": _Key(list),
        "max_calls_per_key": _Key(int, _range(1, 1_000_000)),
        "max_streams": _Key(int, _range(1, 1_000_000)),
        "max_streams_per_key": _Key(int, _range(1, 1_000_000)),
        "max_streams_per_connection": _Key(int, _range(1, 1_000_000)),
        "request_message_timeout_seconds": _Key(float, _range(0.1, 600.0)),
        "workers": _Key(int, _range(1, 64)),
    },
    "tls": {"cert_file": _Key(str), "key_file": _Key(str)},
    "auth": {
        "enabled": _Key(bool),
        "rate_limit_per_second": _Key(float, _range(0.0, 1e9)),
        "rate_limit_burst": _Key(int, _range(1, 1_000_000_000)),
        "cache_seconds": _Key(float, _range(0.0, 3_600.0)),
        "failed_rate_per_second": _Key(float, _range(0.0, 1e6)),
        "failed_burst": _Key(int, _range(1, 1_000_000)),
    },
    "store": {
        "url": _Key(str, _non_empty),
        "portfolio_cache": _Key(int, _range(0, 1_000_000)),
        "portfolio_queue": _Key(int, _range(1, 1_000_000)),
    },
    "metrics": {"enabled": _Key(bool), "host": _Key(str, _non_empty), "port": _Key(int, _range(0, 65535))},
    "web": {
        "enabled": _Key(bool),
        "host": _Key(str, _non_empty),
        "port": _Key(int, _range(0, 65535)),
        "session_seconds": _Key(float, _range(60.0, 2_592_000.0)),
    },
    "logging": {"level": _Key(str, _choice(LOG_LEVELS)), "json": _Key(bool)},
    "market": {
        "snapshot_cache_size": _Key(int, _range(0, 1_000_000)),
        "history_bars": _Key(int, _range(1, 20_000)),
        "history_refresh_seconds": _Key(float, _range(0.0, 3_600.0)),
        "quality_max_jump": _Key(float, _range(0.01, 10.0)),
        "quality_stale_sessions": _Key(int, _range(2, 10_000)),
        "quality_max_fill_sessions": _Key(int, _range(0, 20)),
    },
    "monitoring": {
        "crowding_hhi_medium": _Key(float, _range(0.0, 1.0)),
        "crowding_hhi_high": _Key(float, _range(0.0, 1.0)),
        "crowding_cluster_medium": _Key(float, _range(0.0, 1.0)),
        "crowding_cluster_high": _Key(float, _range(0.0, 1.0)),
        "crowding_absorption_medium": _Key(float, _range(0.0, 1.0)),
        "crowding_absorption_high": _Key(float, _range(0.0, 1.0)),
        "crowding_cluster_distance": _Key(float, _range(0.0, 2.0)),
        "alert_routes_file": _Key(str),
        "alert_dedupe_seconds": _Key(float, _range(0.0, 86_400.0)),
        "alert_burst_count": _Key(int, _range(1, 1_000_000)),
        "alert_burst_seconds": _Key(float, _range(0.001, 86_400.0)),
        "metrics_retention_days": _Key(int, _range(1, 100_000)),
        "metrics_gauge_portfolios": _Key(int, _range(0, 10_000)),
    },
    "execution": {
        "enabled": _Key(bool),
        "broker": _Key(str, _choice(("paper",))),
        "seed": _Key(int, _range(0, 2**63 - 1)),
        "tick_seconds": _Key(float, _range(0.0, 60.0)),
        "impact_coefficient": _Key(float, _range(0.0, 10.0)),
        "permanent_impact_coefficient": _Key(float, _range(0.0, 10.0)),
        "option_daily_volume": _Key(float, _range(1.0, 1e9)),
        "stock_daily_volume": _Key(float, _range(1.0, 1e12)),
        "spread_base": _Key(float, _range(0.0, 1.0)),
        "spread_iv": _Key(float, _range(0.0, 1.0)),
        "spread_moneyness": _Key(float, _range(0.0, 10.0)),
        "stock_spread": _Key(float, _range(0.0, 0.1)),
        "stock_spread_iv": _Key(float, _range(0.0, 0.1)),
        "profile_curvature": _Key(float, _range(0.0, 100.0)),
        "passive_fill_intensity": _Key(float, _range(0.0, 1000.0)),
        "passive_fill_decay": _Key(float, _range(0.0, 100.0)),
        "adverse_selection_share": _Key(float, _range(0.0, 10.0)),
        "passive_steps_normal": _Key(int, _range(0, 2)),
        "passive_steps_risk_reduction": _Key(int, _range(0, 2)),
        "participation_normal": _Key(float, _range(0.001, 1.0)),
        "participation_risk_reduction": _Key(float, _range(0.001, 1.0)),
        "participation_emergency": _Key(float, _range(0.001, 1.0)),
        "slice_contracts": _Key(int, _range(1, 100_000)),
        "replace_timeout_minutes": _Key(int, _range(1, 390)),
        "horizon_minutes": _Key(int, _range(1, 100_000)),
        "commission_per_contract": _Key(float, _range(0.0, 100.0)),
        "commission_per_share": _Key(float, _range(0.0, 10.0)),
        "fallback_iv": _Key(float, _range(0.01, 5.0)),
        "reconcile_decisions": _Key(int, _range(0, 100_000)),
    },
    "reports": {"dir": _Key(str, _non_empty)},
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _env_value(kind: type, text: str) -> Any:
    """An environment variable's text as the key's type (strings stay verbatim: a DSN may hold any character)."""
    if kind is str:
        return text
    stripped = text.strip()
    if kind is bool:
        if stripped.lower() in _TRUE:
            return True
        if stripped.lower() in _FALSE:
            return False
        return stripped
    if kind is list:
        if stripped.startswith("["):
            return yaml.safe_load(stripped)
        return [part.strip() for part in stripped.split(",") if part.strip()]
    return yaml.safe_load(stripped) if stripped else stripped


def _coerce(key: str, spec: _Key, value: Any, origin: str) -> Any:
    where = f" (from {origin})"
    if spec.kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if spec.kind is list:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise InvalidInputError.of(key, f"must be a list of non-empty strings, got {value!r}{where}")
        value = tuple(value)
    elif not isinstance(value, spec.kind) or (isinstance(value, bool) and spec.kind is not bool):
        raise InvalidInputError.of(key, f"must be of type {spec.kind.__name__}, got {value!r}{where}")
    if spec.kind is float and value != value:
        raise InvalidInputError.of(key, f"must be a number, got NaN{where}")
    if spec.check is not None:
        reason = spec.check(value)
        if reason is not None:
            raise InvalidInputError.of(key, f"{reason}{where}")
    return value


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise InvalidInputError.of("environment", f"no configuration file {path.name} in {path.parent.name}/")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InvalidInputError.of(path.name, f"is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInputError.of(path.name, "must be a mapping at the top level")
    return data


def _layer(values: dict[str, dict[str, tuple[Any, str]]], data: Mapping[str, Any], origin: str) -> None:
    for section, body in data.items():
        if section not in _SCHEMA:
            raise InvalidInputError.of(str(section), f"unknown section in {origin}")
        if not isinstance(body, Mapping):
            raise InvalidInputError.of(section, f"must be a mapping in {origin}")
        for key, value in body.items():
            if key not in _SCHEMA[section]:
                raise InvalidInputError.of(f"{section}.{key}", f"unknown key in {origin}")
            values.setdefault(section, {})[key] = (value, origin)


def _resolve_path(text: str) -> str:
    path = Path(text).expanduser()
    return str(path if path.is_absolute() else PROJECT_DIR / path)


def _resolve_store_url(url: str) -> str:
    text = url.strip()
    if text.startswith(("postgresql://", "postgres://")) or re.match(r"^(host|dbname|user|port)=", text):
        return text
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", text)
    if scheme is not None and scheme.group(1).lower() != "sqlite":
        return text  # an unknown scheme: the store refuses it, naming the scheme
    for prefix in ("sqlite://", "sqlite:"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    if text in ("", ":memory:") or text.startswith("file::memory:"):
        return text  # the store refuses it with its own message
    return _resolve_path(text)


def load(
    environment: str = "development",
    environ: Mapping[str, str] | None = None,
    *,
    config_dir: Path | None = None,
) -> Config:
    """Loads and validates the configuration for `environment` ("development", "production", or a YAML path).

    Layers: `base.yaml`, then the environment's file, then `ALLSUSE_<SECTION>_<KEY>[_FILE]` from `environ`
    (default os.environ). Raises InvalidInputError("section.key: reason (from origin)").
    """
    env = os.environ if environ is None else environ
    folder = CONFIG_DIR if config_dir is None else config_dir
    if environment.endswith((".yaml", ".yml")):
        env_path = Path(environment)
        name = env_path.stem
    else:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", environment):
            raise InvalidInputError.of("environment", f"must be a name such as development, got {environment!r}")
        env_path, name = folder / f"{environment}.yaml", environment
    values: dict[str, dict[str, tuple[Any, str]]] = {}
    _layer(values, _read(folder / "base.yaml"), "base.yaml")
    _layer(values, _read(env_path), env_path.name)
    url_value = values.get("store", {}).get("url")
    if url_value is not None and isinstance(url_value[0], str) and has_password(url_value[0]):
        raise InvalidInputError.of(
            "store.url",
            f"a password must not be written in {url_value[1]}; set ALLSUSE_STORE_URL or ALLSUSE_STORE_URL_FILE",
        )
    for section, keys in _SCHEMA.items():
        for key, spec in keys.items():
            var = f"{ENV_PREFIX}{section}_{key}".upper()
            file_var = var + FILE_SUFFIX
            if var in env and file_var in env:
                raise InvalidInputError.of(f"{section}.{key}", f"set either {var} or {file_var}, not both")
            if var in env:
                values.setdefault(section, {})[key] = (_env_value(spec.kind, env[var]), var)
            elif file_var in env:
                try:
                    text = Path(env[file_var]).read_text().strip()
                except OSError as exc:
                    raise InvalidInputError.of(
                        f"{section}.{key}", f"cannot read {file_var}={env[file_var]}: {exc.strerror}"
                    ) from None
                values.setdefault(section, {})[key] = (_env_value(spec.kind, text), file_var)
    typed: dict[str, dict[str, Any]] = {}
    for section, keys in _SCHEMA.items():
        typed[section] = {}
        for key, spec in keys.items():
            if key not in values.get(section, {}):
                raise InvalidInputError.of(f"{section}.{key}", "is missing (declare it in base.yaml)")
            value, origin = values[section][key]
            typed[section][key] = _coerce(f"{section}.{key}", spec, value, origin)
    return _validated(name, typed, {s: {k: o for k, (_, o) in kv.items()} for s, kv in values.items()})


def _validated(name: str, typed: dict[str, dict[str, Any]], origins: dict[str, dict[str, str]]) -> Config:
    tls_raw = typed["tls"]
    for key in ("cert_file", "key_file"):
        if tls_raw[key]:
            tls_raw[key] = _resolve_path(tls_raw[key])
    if bool(tls_raw["cert_file"]) != bool(tls_raw["key_file"]):
        missing = "key_file" if tls_raw["cert_file"] else "cert_file"
        raise InvalidInputError.of(f"tls.{missing}", "must be set together with the other TLS file (or neither)")
    for key in ("cert_file", "key_file"):
        path = tls_raw[key]
        if path and not Path(path).is_file():
            raise InvalidInputError.of(f"tls.{key}", f"{path} is not a readable file (from {origins['tls'][key]})")
    tls = TlsConfig(**tls_raw)
    server = ServerConfig(**typed["server"])
    if not tls.enabled and not server.allow_plaintext_remote and not is_loopback(server.host):
        raise InvalidInputError.of(
            "server.host",
            f"{server.host} is not a loopback address and TLS is off; plaintext gRPC listens on loopback only "
            "(set tls.cert_file and tls.key_file, or server.allow_plaintext_remote behind a TLS proxy)",
        )
    if server.keepalive_timeout_seconds >= server.keepalive_time_seconds:
        raise InvalidInputError.of(
            "server.keepalive_timeout_seconds",
            f"must be shorter than server.keepalive_time_seconds ({server.keepalive_time_seconds})",
        )
    if server.workers > 1 and server.port == 0:
        raise InvalidInputError.of(
            "server.port", f"must be a fixed port when server.workers is {server.workers} (the workers share it)"
        )
    for per_key, total in (("max_calls_per_key", "max_concurrent_rpcs"), ("max_streams_per_key", "max_streams")):
        if getattr(server, per_key) > getattr(server, total):
            raise InvalidInputError.of(f"server.{per_key}", f"must be <= server.{total} ({getattr(server, total)})")
    store = StoreConfig(**{**typed["store"], "url": _resolve_store_url(typed["store"]["url"])})
    auth = AuthConfig(**typed["auth"])
    metrics = MetricsConfig(**typed["metrics"])
    if metrics.enabled and metrics.port and metrics.port + server.workers - 1 > 65535:
        raise InvalidInputError.of(
            "metrics.port", f"must leave room for {server.workers} workers (each serves metrics on port + its index)"
        )
    return Config(
        environment=name,
        server=server,
        tls=tls,
        auth=auth,
        store=store,
        metrics=metrics,
        web=_web(typed["web"], tls, server),
        logging=LoggingConfig(**typed["logging"]),
        market=MarketConfig(**typed["market"]),
        monitoring=_monitoring(typed["monitoring"]),
        execution=_execution(typed["execution"]),
        reports=_reports(typed["reports"], origins.get("reports", {})),
    )


def _execution(raw: dict[str, Any]) -> ExecutionConfig:
    """The execution section; participation rates ordered normal <= risk_reduction <= emergency, passive steps
    risk_reduction <= normal."""
    if not raw["participation_normal"] <= raw["participation_risk_reduction"] <= raw["participation_emergency"]:
        raise InvalidInputError.of(
            "execution.participation_risk_reduction",
            "must lie between execution.participation_normal and execution.participation_emergency "
            "(risk reduction works at least as fast as a normal order, an emergency fastest)",
        )
    if raw["passive_steps_risk_reduction"] > raw["passive_steps_normal"]:
        raise InvalidInputError.of(
            "execution.passive_steps_risk_reduction",
            "must be at most execution.passive_steps_normal (risk reduction rests passively no longer than normal)",
        )
    return ExecutionConfig(**raw)


def _reports(raw: dict[str, Any], origins: dict[str, str]) -> ReportsConfig:
    """The reports section: the folder resolved like store.url; an existing file there is refused."""
    folder = _resolve_path(raw["dir"].strip())
    if Path(folder).exists() and not Path(folder).is_dir():
        raise InvalidInputError.of(
            "reports.dir", f"{folder} exists and is not a folder (from {origins.get('dir', '?')})"
        )
    return ReportsConfig(dir=folder)


def _monitoring(raw: dict[str, Any]) -> MonitoringConfig:
    """The monitoring section, each MEDIUM threshold at most its HIGH one."""
    if raw["alert_routes_file"]:
        raw = {**raw, "alert_routes_file": _resolve_path(raw["alert_routes_file"])}
        from allsuse.monitoring.alerts import load_routes

        load_routes(raw["alert_routes_file"])  # a bad route file stops the start, naming the route and key
    config = MonitoringConfig(**raw)
    for measure in ("hhi", "cluster", "absorption"):
        medium, high = raw[f"crowding_{measure}_medium"], raw[f"crowding_{measure}_high"]
        if medium > high:
            raise InvalidInputError.of(
                f"monitoring.crowding_{measure}_medium", f"must be <= monitoring.crowding_{measure}_high ({high})"
            )
    return config


__all__ = [
    "CONFIG_DIR",
    "DEFAULT_SERVICE_MODULES",
    "ENV_PREFIX",
    "LOG_LEVELS",
    "PROJECT_DIR",
    "ROLES",
    "AuthConfig",
    "Config",
    "ExecutionConfig",
    "LoggingConfig",
    "MarketConfig",
    "MetricsConfig",
    "MonitoringConfig",
    "ReportsConfig",
    "ServerConfig",
    "StoreConfig",
    "TlsConfig",
    "WebConfig",
    "has_password",
    "is_loopback",
    "load",
    "redact",
]
