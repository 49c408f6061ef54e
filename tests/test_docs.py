"""The operator docs say what the code does: every setting in the configuration reference with
its env var and its default, and the README's two set-up commands."""

from __future__ import annotations

import json
import re
from pathlib import Path

import msgspec

from appliance.config import Settings

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^\| (\w+) \| (.+?) \| `(.+?)` \| .+ \|$")


def _reference() -> dict[str, tuple[str, str]]:
    rows = {}
    for line in (ROOT / "docs" / "configuration.md").read_text().splitlines():
        if match := ROW.match(line):
            rows[match[1]] = (match[2], match[3])
    return rows


def test_configuration_reference_lists_every_setting_with_its_env_and_default() -> None:
    rows = _reference()
    assert set(rows) == set(Settings.__struct_fields__)
    defaults = Settings()
    for name, (env, default) in rows.items():
        # As JSON gives it (a tuple is a list there, as in the docs).
        value = json.loads(msgspec.json.encode(getattr(defaults, name)))
        assert json.loads(default) == value, f"{name}: the docs say {default}, Settings {value!r}"
        if isinstance(value, dict):
            assert env == "(TOML only)", name
        else:
            assert env == f"`APPLIANCE_{name.upper()}`", name


def test_readme_gives_the_two_set_up_commands_and_points_at_the_docs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    for link in re.findall(r"\]\((docs/[\w./-]+?)(?:#[\w-]+)?\)", readme):
        assert (ROOT / link).is_file(), link
