"""config/protocol.yaml is validated eagerly: every key the code reads, once, at start-up; a bad value stops the
server naming the file and the key (ConfigError), instead of the first Decide blaming the client."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from allsuse import cli, config
from allsuse.errors import AllsuseError, InvalidInputError
from allsuse.protocol import settings
from allsuse.protocol.settings import ConfigError

SHIPPED = settings.CONFIG_DIR / "protocol.yaml"
ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, change: Any) -> Path:
    """A copy of the shipped protocol.yaml with `change(doc)` applied."""
    doc = yaml.safe_load(SHIPPED.read_text())
    change(doc)
    path = tmp_path / "protocol.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def set_key(path: str, value: Any) -> Any:
    """A change that sets the dotted `path` to `value` (None-valued `value` included)."""

    def change(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = doc
        for p in parents:
            node = node[p]
        node[last] = value

    return change


def delete_key(path: str) -> Any:
    """A change that removes the dotted `path`."""

    def change(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = doc
        for p in parents:
            node = node[p]
        del node[last]

    return change


@pytest.fixture
def protocol_file(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Points settings (and so the engine and the server) at another protocol file for one test."""

    def use(path: Path) -> None:
        monkeypatch.setattr(settings, "PROTOCOL_FILE", path)
        settings.default.cache_clear()

    yield use
    settings.default.cache_clear()


def test_the_shipped_file_is_valid() -> None:
    settings.validate(settings.default())
    assert settings.load_validated(SHIPPED).accounts["gen"].name == "Gen-Acc"


def test_a_bad_threshold_is_a_config_error_naming_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, set_key("vix_breakers.halted_at", "sixty"))
    with pytest.raises(ConfigError) as err:
        settings.load_validated(path)
    assert isinstance(err.value, AllsuseError) and not isinstance(err.value, InvalidInputError)
    assert err.value.key == "vix_breakers.halted_at" and err.value.file == str(path)
    assert str(path) in str(err.value) and "vix_breakers.halted_at" in str(err.value) and "sixty" in str(err.value)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (delete_key("trust.floor"), "trust.floor"),
        (set_key("risk.es_confidence", 0.3), "risk.es_confidence"),
        (set_key("drawdown_protection.thresholds", [0.05, 0.10]), "drawdown_protection.thresholds"),
        (set_key("drawdown_protection.thresholds", [0.05, 0.15, 0.10, 0.20]), "drawdown_protection.thresholds"),
        (set_key("drawdown_protection.light_vol_cut.cut", 1.5), "drawdown_protection.light_vol_cut.cut"),
        (set_key("vix_breakers.reducing_at", 40), "vix_breakers.reducing_at"),
        (set_key("vix_breakers.halted_at", 60), "vix_breakers.halted_at"),
        (set_key("protocol_levels.take_profit.com", "65%"), "protocol_levels.take_profit.com"),
        (set_key("market_label.scores.trend", None), "market_label.scores.trend"),
        (set_key("decision_confidence.close", 2), "decision_confidence.close"),
        (set_key("covered_calls.band", [30]), "covered_calls.band"),
        (set_key("near_fork_share", True), "near_fork_share"),
        (set_key("projection.market_years.good", [0.6]), "projection.market_years.good"),
        (set_key("accounts.gen.symbols", "TSLA"), "accounts.gen.symbols"),
        (set_key("accounts.rev.deployment_target", 0.99), "accounts.rev.deployment_target"),
        (set_key("accounts.gen.max_symbol_weight", 0.96), "accounts.gen.max_symbol_weight"),
        (set_key("accounts.gen.max_symbol_weight", 0.5), "accounts.gen.max_symbol_weight"),
        (set_key("entry_rules.rev.chop.m_label", 2.5), "entry_rules.rev.chop.m_label"),
        (set_key("vix_proxy_ratio", 0), "vix_proxy_ratio"),
        (set_key("cash_settled", "SPX"), "cash_settled"),
        (set_key("risk.tail_q", 1.0), "risk.tail_q"),
    ],
)
def test_every_key_is_checked(tmp_path: Path, change: Any, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        settings.load_validated(write(tmp_path, change))
    assert err.value.key == key, err.value


def test_single_symbol_account_may_raise_its_weight(tmp_path: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["accounts"]["gen"]["symbols"] = ["SPX"]
        doc["accounts"]["gen"]["max_symbol_weight"] = 0.95

    settings.load_validated(write(tmp_path, change))


def test_v2_keys_are_read_when_present(tmp_path: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        for kind, target in (("gen", 0.90), ("rev", 0.90), ("com", 0.85)):
            doc["accounts"][kind]["deployment_target"] = target
        doc["entry_rules"]["gen"]["green"]["m_label"] = 1.0
        doc["entry_rules"]["gen"]["chop"]["m_label"] = None  # no entry days: not read
        doc["vix_proxy_ratio"] = 1.2
        doc["cash_settled"] = ["SPX", "XSP", "NDX", "RUT"]

    settings.load_validated(write(tmp_path, change))


def _literal_keys(text: str) -> set[str]:
    pattern = r"\.(?:number|numbers|section|flag|strings|raw)\(\s*[\"']([A-Za-z0-9_]+)[\"']"
    return set(re.findall(pattern, text))


def test_the_table_lists_every_key_the_code_reads() -> None:
    """A key read with `.number("x")` etc. anywhere in the engine, backtest or server is in the one table."""
    sources = [
        *sorted((ROOT / "python" / "allsuse" / "protocol").glob("*.py")),
        *sorted((ROOT / "python" / "allsuse" / "server").glob("*.py")),
    ]
    known = {part for key in settings.PROTOCOL_KEYS for part in key.path.split(".")}
    read = set().union(*(_literal_keys(p.read_text()) for p in sources if p.name != "settings.py"))
    assert read, "no reads found: the pattern is stale"
    assert read <= known, sorted(read - known)


def _service_config(tmp_path: Path) -> config.Config:
    env = {
        "ALLSUSE_SERVER_PORT": "0",
        "ALLSUSE_METRICS_ENABLED": "false",
        "ALLSUSE_SERVER_DRAIN_DELAY_SECONDS": "0",
        "ALLSUSE_STORE_URL": str(tmp_path / "allsuse.db"),
    }
    return config.load("development", environ=env)


def test_server_start_fails_on_a_bad_protocol_file(tmp_path: Path, protocol_file: Any) -> None:
    from allsuse.server.app import Service

    path = write(tmp_path, set_key("vix_breakers.halted_at", "sixty"))
    protocol_file(path)
    with pytest.raises(ConfigError) as err:
        Service(_service_config(tmp_path))
    assert err.value.key == "vix_breakers.halted_at" and str(path) in str(err.value)


def test_server_start_names_a_parse_error_as_a_config_error(tmp_path: Path, protocol_file: Any) -> None:
    from allsuse.server.app import Service

    protocol_file(write(tmp_path, set_key("accounts.gen.allocation", "forty")))
    with pytest.raises(ConfigError) as err:
        Service(_service_config(tmp_path))
    assert err.value.key == "accounts.gen.allocation"


def test_allsuse_serve_prints_the_key_and_exits_non_zero(
    tmp_path: Path, protocol_file: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from allsuse.server import logs

    monkeypatch.setattr(logs, "configure_logging", lambda *a, **k: None)  # keep pytest's log handlers
    protocol_file(write(tmp_path, set_key("vix_breakers.halted_at", "sixty")))
    monkeypatch.setenv("ALLSUSE_STORE_URL", str(tmp_path / "allsuse.db"))
    monkeypatch.setenv("ALLSUSE_METRICS_ENABLED", "false")
    assert cli.main(["serve", "--config", "development", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "vix_breakers.halted_at" in err and "protocol.yaml" in err


def test_a_good_file_starts(tmp_path: Path) -> None:
    from allsuse.server.app import Service

    async def scenario() -> None:
        service = Service(_service_config(tmp_path))
        await service.start()
        await service.stop()

    asyncio.run(scenario())
