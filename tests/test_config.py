from pathlib import Path

import pytest

from appliance.config import load_settings
from appliance.errors import InvalidConfig


def test_defaults_serve_on_loopback_with_data_in_var() -> None:
    settings = load_settings(Path("/nonexistent.toml"))
    assert (settings.host, settings.port, settings.data_dir) == ("127.0.0.1", 8000, "var")


def test_environment_overrides_file_and_flags_override_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "appliance.toml"
    config.write_text('port = 9000\nhost = "0.0.0.0"\nembedding_cache_size = 5\n')
    monkeypatch.setenv("APPLIANCE_PORT", "9100")
    monkeypatch.setenv("APPLIANCE_DATA_DIR", str(tmp_path / "d"))
    settings = load_settings(config)
    assert settings.port == 9100
    assert settings.host == "0.0.0.0"
    assert settings.embedding_cache_size == 5
    assert settings.database_path == tmp_path / "d" / "appliance.sqlite3"
    assert load_settings(config, port=9200).port == 9200


def test_bad_setting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPLIANCE_PORT", "eighty")
    with pytest.raises(InvalidConfig, match="port"):
        load_settings(Path("/nonexistent.toml"))
