"""A secure first start: the operator's admin key file, or a key generated into the data dir
on a first start beyond loopback; never an open appliance there by accident."""

from __future__ import annotations

import logging
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from appliance.api.app import create_app
from appliance.cli import main
from appliance.config import Settings
from appliance.errors import InvalidConfig
from appliance.service import Appliance
from appliance.store import keys as key_store

OPERATOR_KEY = "site-secret-0123456789-abcdefghijklmnop"


def _keys(appliance: Appliance) -> list[key_store.ApiKeyRow]:
    with appliance.db.read() as session:
        return key_store.list_keys(session)


def _status(appliance: Appliance, key: str | None) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with TestClient(create_app(appliance.settings, appliance)) as client:
        return client.post("/collections", json={"name": "pets"}, headers=headers).status_code


def test_first_public_start_generates_a_private_admin_key(
    open_appliance: Callable[..., Appliance], caplog: pytest.LogCaptureFixture
) -> None:
    appliance = open_appliance(host="0.0.0.0")
    with caplog.at_level(logging.INFO):
        create_app(appliance.settings)
    path = appliance.settings.data_path / "admin.key"
    key = path.read_text().strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    [row] = _keys(appliance)
    assert row.scope == "admin" and row.key_hash == key_store.hash_key(key)
    # The log says where the key is, never the key.
    assert str(path) in caplog.text and key not in caplog.text
    assert _status(appliance, None) == 401
    assert _status(appliance, key) == 201
    # Written once: a restart adds nothing and leaves the file as it is.
    create_app(appliance.settings)
    assert len(_keys(appliance)) == 1 and path.read_text().strip() == key


def test_a_generated_key_file_outlives_a_fresh_store(
    settings_for: Callable[..., Settings],
) -> None:
    settings = settings_for(host="0.0.0.0")
    create_app(settings)
    key = (settings.data_path / "admin.key").read_text().strip()
    settings.database_path.unlink()
    create_app(settings)
    assert key_store.match_key(_active(settings), key) is not None


def _active(settings: Settings) -> dict[str, key_store.ActiveKey]:
    from appliance.store.database import Database

    db = Database(settings.database_path)
    try:
        with db.read() as session:
            return key_store.active_keys(session)
    finally:
        db.close()


def test_operator_key_file_is_hashed_in_once_and_revocation_sticks(
    open_appliance: Callable[..., Appliance], tmp_path: Path
) -> None:
    secret = tmp_path / "admin_key"
    secret.write_text(OPERATOR_KEY + "\n")
    appliance = open_appliance(host="0.0.0.0", admin_key_file=str(secret))
    create_app(appliance.settings)
    assert not (appliance.settings.data_path / "admin.key").exists()
    [row] = _keys(appliance)
    assert row.scope == "admin" and OPERATOR_KEY not in row.label
    assert _status(appliance, OPERATOR_KEY) == 201
    create_app(appliance.settings)
    assert len(_keys(appliance)) == 1
    with appliance.db.write() as session:
        assert key_store.revoke_key(session, row.key_id)
    other = open_appliance(host="127.0.0.1", admin_key_file=str(secret))
    create_app(other.settings)
    assert len(_keys(appliance)) == 1 and _keys(appliance)[0].revoked_at is not None


@pytest.mark.parametrize("content", ["short", "two words " + "x" * 40, ""])
def test_a_weak_or_missing_key_file_is_refused(
    settings_for: Callable[..., Settings], tmp_path: Path, content: str
) -> None:
    secret = tmp_path / "admin_key"
    if content:
        secret.write_text(content)
    with pytest.raises(InvalidConfig, match="admin key file"):
        create_app(settings_for(host="0.0.0.0", admin_key_file=str(secret)))


def test_admin_key_file_from_the_environment(
    settings_for: Callable[..., Settings], tmp_path: Path, monkeypatch: Any
) -> None:
    secret = tmp_path / "admin_key"
    secret.write_text(OPERATOR_KEY)
    monkeypatch.setenv("APPLIANCE_ADMIN_KEY_FILE", str(secret))
    settings = settings_for(host="0.0.0.0")
    assert settings.admin_key_file == str(secret)
    create_app(settings)
    assert key_store.match_key(_active(settings), OPERATOR_KEY) is not None


def test_keys_generate_prints_a_key_and_stores_nothing(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["keys", "generate"])
    key = result.stdout.strip()
    assert result.exit_code == 0 and key.startswith("lsa_") and len(key) > 40
    assert key_store.key_id_of(key) == key.split("_")[1]
