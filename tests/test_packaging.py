"""What the offline bundle is built from: the locks agree with pyproject.toml, torch is the CPU
build, and the project's wheel holds the files the appliance reads at run time."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from appliance.ingest.sample import SAMPLE_CORPUS
from appliance.models.registry import DEFAULT_REGISTRY_FILE

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_PARENT = Path(__import__("appliance").__file__).resolve().parents[1]


def _pins(lock: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements" / lock).read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"{lock}: {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = version
    return pins


def _project() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]  # type: ignore[no-any-return]


def test_runtime_lock_pins_every_dependency_within_its_range() -> None:
    pins = _pins("runtime.lock")
    for line in _project()["dependencies"]:  # type: ignore[attr-defined]
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in requirements/runtime.lock: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (name, pins[name])


def test_dev_lock_pins_every_dev_dependency_and_repeats_no_runtime_pin() -> None:
    runtime, dev = _pins("runtime.lock"), _pins("dev.lock")
    assert not set(runtime) & set(dev)
    for line in _project()["optional-dependencies"]["dev"]:  # type: ignore[index]
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        version = dev.get(name) or runtime.get(name)
        assert version, f"{name} is in no lock: run `make lock`"
        assert requirement.specifier.contains(version, prereleases=True), (name, version)


def test_torch_is_pinned_to_its_cpu_build_and_the_makefile_reads_the_pin() -> None:
    assert _pins("runtime.lock")["torch"].endswith("+cpu")
    makefile = (ROOT / "Makefile").read_text()
    assert "TORCH_PIN := $(shell grep -m1 '^torch==' $(RUNTIME_LOCK))" in makefile
    # No second, hand-written torch version anywhere in the Makefile.
    assert not re.search(r"torch==\d", makefile)


def test_the_wheel_holds_the_registry_and_the_sample_corpus(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--wheel-dir",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        env={"PATH": "/usr/bin:/bin", "PIP_CONFIG_FILE": "/dev/null"},
    )
    (wheel,) = tmp_path.glob("local_search_appliance-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (DEFAULT_REGISTRY_FILE, SAMPLE_CORPUS):
        assert needed.relative_to(PACKAGE_PARENT).as_posix() in names
    # Every file of the package (modules, console and Swagger assets, Alembic's template).
    tracked = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "appliance"], capture_output=True, text=True
    ).stdout.split()
    files = {p.relative_to(ROOT).as_posix() for p in (ROOT / "appliance").rglob("*.py")}
    files |= set(tracked)
    assert files <= names, sorted(files - names)
