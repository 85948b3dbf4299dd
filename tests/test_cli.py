"""The command line: keys create / revoke / list, healthcheck, and serve refusing a bad configuration."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from allsuse import cli, config
from allsuse.server import build_server
from allsuse.store import Store


def test_keys_create_prints_the_token_once_and_revoke_disables_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "keys.db")
    assert cli.main(["keys", "create", "--role", "trader", "--store", db]) == 0
    out, err = capsys.readouterr()
    token = out.strip()
    key_id, dot, secret = token.partition(".")
    assert dot and key_id and len(secret) >= 32 and out.count(secret) == 1
    assert key_id in err and secret not in err
    with Store(db) as store:
        info = store.authenticate(token)
        assert info is not None and info.role == "trader"

    assert cli.main(["keys", "list", "--store", db]) == 0
    listing = capsys.readouterr().out
    assert key_id in listing and "trader" in listing and "active" in listing and secret not in listing

    assert cli.main(["keys", "revoke", key_id, "--store", db]) == 0
    assert f"revoked {key_id}" in capsys.readouterr().out
    with Store(db) as store:
        assert store.authenticate(token) is None
    assert cli.main(["keys", "list", "--store", db]) == 0
    assert "revoked 20" in capsys.readouterr().out

    assert cli.main(["keys", "revoke", "k-does-not-exist", "--store", db]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_keys_create_refuses_unknown_roles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["keys", "create", "--role", "root", "--store", str(tmp_path / "k.db")])
    assert exited.value.code == 2
    assert "invalid choice: 'root'" in capsys.readouterr().err


def test_healthcheck_exit_codes(capsys: pytest.CaptureFixture[str], free_port: int) -> None:
    cfg = config.load("development", environ={"ALLSUSE_SERVER_PORT": "0", "ALLSUSE_METRICS_ENABLED": "false"})

    async def scenario() -> None:
        server = build_server(cfg, None, [])
        await server.start()
        try:
            argv = ["healthcheck", "--address", server.address, "--timeout", "3"]
            assert await asyncio.to_thread(cli.main, argv) == 0
            await server.health.set_serving(False)
            assert await asyncio.to_thread(cli.main, argv) == 1
        finally:
            await server.stop(grace=0, drain_delay=0)

    asyncio.run(scenario())
    out = capsys.readouterr().out
    assert "(server): SERVING" in out and "(server): NOT_SERVING" in out
    # nothing listens on free_port: exit 1 with the reason
    assert cli.main(["healthcheck", "--address", f"127.0.0.1:{free_port}", "--timeout", "1"]) == 1
    err = capsys.readouterr().err
    assert "UNAVAILABLE" in err or "DEADLINE_EXCEEDED" in err


def test_serve_refuses_an_invalid_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--config", "development", "--port", "70000"]) == 2
    assert "server.port: must be <= 65535" in capsys.readouterr().err
    assert cli.main(["serve", "--config", "staging"]) == 2
    assert "no configuration file staging.yaml" in capsys.readouterr().err
