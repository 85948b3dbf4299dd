"""Configuration: layering, typed environment overrides, *_FILE secrets, and errors that name the key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from allsuse import config
from allsuse.errors import InvalidInputError


def test_development_and_production_load() -> None:
    dev = config.load("development", environ={})
    assert dev.environment == "development"
    assert (dev.server.host, dev.server.port) == ("127.0.0.1", 50051)
    assert dev.server.max_message_bytes == 4 * 1024 * 1024
    assert not dev.auth.enabled and not dev.tls.enabled and not dev.logging.json
    assert dev.store.url == str(config.PROJECT_DIR / "var" / "allsuse.db")
    assert dev.server.drain_delay_seconds + dev.server.shutdown_grace_seconds < 5.0
    prod = config.load("production", environ={})
    assert prod.auth.enabled and prod.auth.rate_limit_per_second > 0 and prod.logging.json
    assert prod.server.max_concurrent_rpcs == 512


def test_environment_overrides_are_typed() -> None:
    cfg = config.load(
        "development",
        environ={
            "ALLSUSE_SERVER_PORT": "50052",
            "ALLSUSE_AUTH_ENABLED": "yes",
            "ALLSUSE_AUTH_RATE_LIMIT_PER_SECOND": "2.5",
            "ALLSUSE_LOGGING_JSON": "0",
            "ALLSUSE_SERVER_SERVICE_MODULES": "pkg.a, pkg.b",
            "ALLSUSE_STORE_URL": "postgresql://app:s#cr:et@db.internal:5432/allsuse",
        },
    )
    assert cfg.server.port == 50052 and cfg.auth.enabled and cfg.auth.rate_limit_per_second == 2.5
    assert not cfg.logging.json
    assert cfg.server.service_modules == ("pkg.a", "pkg.b")
    assert cfg.store.url == "postgresql://app:s#cr:et@db.internal:5432/allsuse"  # verbatim, not YAML-parsed
    assert cfg.store.describe() == "postgresql://app:***@db.internal:5432/allsuse"
    assert "s#cr" not in str(cfg.describe())


@pytest.mark.parametrize(
    ("env", "pattern"),
    [
        ({"ALLSUSE_SERVER_PORT": "70000"}, r"^server\.port: must be <= 65535, got 70000 \(from ALLSUSE_SERVER_PORT\)"),
        ({"ALLSUSE_SERVER_PORT": "abc"}, r"^server\.port: must be of type int"),
        ({"ALLSUSE_AUTH_ENABLED": "maybe"}, r"^auth\.enabled: must be of type bool"),
        ({"ALLSUSE_SERVER_SHUTDOWN_GRACE_SECONDS": "-1"}, r"^server\.shutdown_grace_seconds: must be >= 0"),
        ({"ALLSUSE_SERVER_MAX_MESSAGE_BYTES": "10"}, r"^server\.max_message_bytes: must be >= 1024"),
        ({"ALLSUSE_LOGGING_LEVEL": "LOUD"}, r"^logging\.level: must be one of DEBUG, INFO"),
        ({"ALLSUSE_AUTH_RATE_LIMIT_BURST": "0"}, r"^auth\.rate_limit_burst: must be >= 1"),
        ({"ALLSUSE_SERVER_HOST": "0.0.0.0"}, r"^server\.host: 0\.0\.0\.0 is not a loopback address and TLS is off"),
        ({"ALLSUSE_TLS_CERT_FILE": "/nonexistent/cert.pem"}, r"^tls\.key_file: must be set together"),
        (
            {"ALLSUSE_TLS_CERT_FILE": "/nonexistent/c.pem", "ALLSUSE_TLS_KEY_FILE": "/nonexistent/k.pem"},
            r"^tls\.cert_file: /nonexistent/c\.pem is not a readable file",
        ),
        ({"ALLSUSE_SERVER_KEEPALIVE_TIMEOUT_SECONDS": "90"}, r"^server\.keepalive_timeout_seconds: must be shorter"),
        ({"ALLSUSE_STORE_URL": "  "}, r"^store\.url: must not be empty"),
        ({"ALLSUSE_SERVER_SERVICE_MODULES": "[1, 2]"}, r"^server\.service_modules: must be a list"),
    ],
)
def test_validation_errors_name_the_key(env: dict[str, str], pattern: str) -> None:
    with pytest.raises(InvalidInputError, match=pattern):
        config.load("development", environ=env)


def test_plaintext_remote_needs_an_explicit_yes() -> None:
    cfg = config.load(
        "development", environ={"ALLSUSE_SERVER_HOST": "0.0.0.0", "ALLSUSE_SERVER_ALLOW_PLAINTEXT_REMOTE": "true"}
    )
    assert cfg.server.host == "0.0.0.0"
    assert config.is_loopback("127.0.0.2") and config.is_loopback("::1") and config.is_loopback("[::1]")
    assert config.is_loopback("localhost") and not config.is_loopback("10.0.0.1")


def test_file_variant_reads_a_secret_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "dsn"
    secret.write_text("postgresql://app:pw@db/allsuse\n")
    cfg = config.load("development", environ={"ALLSUSE_STORE_URL_FILE": str(secret)})
    assert cfg.store.url == "postgresql://app:pw@db/allsuse"
    with pytest.raises(InvalidInputError, match=r"^store\.url: set either ALLSUSE_STORE_URL or ALLSUSE_STORE_URL_FILE"):
        config.load("development", environ={"ALLSUSE_STORE_URL_FILE": str(secret), "ALLSUSE_STORE_URL": "x.db"})
    with pytest.raises(InvalidInputError, match=r"^store\.url: cannot read ALLSUSE_STORE_URL_FILE="):
        config.load("development", environ={"ALLSUSE_STORE_URL_FILE": str(tmp_path / "missing")})


def _config_dir(tmp_path: Path, extra: str) -> Path:
    folder = tmp_path / "config"
    folder.mkdir(parents=True)
    shutil.copy(config.CONFIG_DIR / "base.yaml", folder / "base.yaml")
    (folder / "custom.yaml").write_text(extra)
    return folder


def test_files_may_not_hold_passwords_or_unknown_keys(tmp_path: Path) -> None:
    folder = _config_dir(tmp_path, "store:\n  url: postgresql://app:hunter2@db/allsuse\n")
    with pytest.raises(InvalidInputError, match=r"^store\.url: a password must not be written in custom\.yaml") as exc:
        config.load("custom", environ={}, config_dir=folder)
    assert "hunter2" not in str(exc.value)
    folder2 = _config_dir(tmp_path / "b", "server:\n  prot: 1\n")
    with pytest.raises(InvalidInputError, match=r"^server\.prot: unknown key in custom\.yaml"):
        config.load("custom", environ={}, config_dir=folder2)
    folder3 = _config_dir(tmp_path / "c", "serverr:\n  port: 1\n")
    with pytest.raises(InvalidInputError, match=r"^serverr: unknown section"):
        config.load("custom", environ={}, config_dir=folder3)
    with pytest.raises(InvalidInputError, match=r"^environment: no configuration file staging\.yaml"):
        config.load("staging", environ={})
    with pytest.raises(InvalidInputError, match=r"^environment: must be a name"):
        config.load("../etc/passwd", environ={})


def test_a_yaml_path_and_relative_paths(tmp_path: Path) -> None:
    custom = tmp_path / "site.yaml"
    custom.write_text("server:\n  port: 6000\nstore:\n  url: sqlite:data/x.db\n")
    cfg = config.load(str(custom), environ={})
    assert cfg.environment == "site" and cfg.server.port == 6000
    assert cfg.store.url == str(config.PROJECT_DIR / "data" / "x.db")


def test_redact_masks_dsn_passwords() -> None:
    assert config.redact("postgresql://u:p@h/db and host=h password=secret") == (
        "postgresql://u:***@h/db and host=h password=***"
    )
    assert config.redact("nothing to hide") == "nothing to hide"
    assert config.has_password("postgres://u:p@h/db") and not config.has_password("postgres://u@h/db")


def test_the_web_section_defaults_and_errors_name_the_key(tmp_path: Path) -> None:
    """Issue 13 item 4: the operator page is off by default, on loopback port 8080; every key is checked."""
    web = config.load("development", environ={}).web
    assert (web.enabled, web.host, web.port, web.session_seconds) == (False, "127.0.0.1", 8080, 28_800.0)
    on = config.load("development", environ={"ALLSUSE_WEB_ENABLED": "true", "ALLSUSE_WEB_PORT": "0"}).web
    assert on.enabled and on.port == 0
    for env, pattern in [
        ({"ALLSUSE_WEB_ENABLED": "sometimes"}, r"^web\.enabled: must be of type bool"),
        ({"ALLSUSE_WEB_PORT": "65536"}, r"^web\.port: must be <= 65535"),
        ({"ALLSUSE_WEB_PORT": "-1"}, r"^web\.port: must be >= 0"),
        ({"ALLSUSE_WEB_HOST": " "}, r"^web\.host: must not be empty"),
        ({"ALLSUSE_WEB_SESSION_SECONDS": "5"}, r"^web\.session_seconds: must be >= 60"),
        ({"ALLSUSE_WEB_HOST": "0.0.0.0"}, r"^web\.host: 0\.0\.0\.0 is not a loopback address and TLS is off"),
        ({"ALLSUSE_WEB_PORT": "50051"}, r"^web\.port: must differ from server\.port"),
    ]:
        with pytest.raises(InvalidInputError, match=pattern):
            config.load("development", environ=env)
    # A remote host is fine once TLS is configured (the page then serves HTTPS with the same files).
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    remote = config.load(
        "development",
        environ={
            "ALLSUSE_WEB_HOST": "0.0.0.0",
            "ALLSUSE_TLS_CERT_FILE": str(cert),
            "ALLSUSE_TLS_KEY_FILE": str(key),
            "ALLSUSE_SERVER_HOST": "0.0.0.0",
        },
    )
    assert remote.web.host == "0.0.0.0" and remote.tls.enabled
    assert remote.describe()["web"] == {"enabled": False, "host": "0.0.0.0", "port": 8080, "session_seconds": 28800.0}
