"""Exported model files under `<data_dir>/models/<fingerprint>-<backend>/`: built once, in a
temporary directory renamed into place, and verified (sha256 of every file) when reused.

The manifest also records the export recipe (exporter, opset, quantisation): an export made
by another recipe is made again rather than silently reused.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from appliance.checksums import file_sha256

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


def export_path(cache_root: Path, fingerprint: str, backend: str) -> Path:
    return cache_root / f"{fingerprint}-{backend}"


def is_valid(directory: Path, fingerprint: str, backend: str, recipe: str) -> bool:
    """The manifest names this model, backend and recipe, and every file has its sha256."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    expected = {"fingerprint": fingerprint, "backend": backend, "recipe": recipe}
    if any(manifest.get(key) != value for key, value in expected.items()):
        return False
    files: dict[str, str] = manifest.get("files") or {}
    return bool(files) and all(
        (directory / name).is_file() and file_sha256(directory / name) == digest
        for name, digest in files.items()
    )


def ensure_export(
    cache_root: Path,
    fingerprint: str,
    backend: str,
    recipe: str,
    build: Callable[[Path], None],
) -> Path:
    """The directory of a verified export, running `build(tmp_dir)` first when there is none.

    Two processes exporting at once each build their own temporary directory; the first rename
    wins and the other process uses the winner's files.
    """
    final = export_path(cache_root, fingerprint, backend)
    if is_valid(final, fingerprint, backend, recipe):
        return final
    if final.exists():
        log.warning(
            "export %s is incomplete, altered or of another recipe: exporting it again", final
        )
        stale = Path(tempfile.mkdtemp(prefix=f".stale-{final.name}-", dir=cache_root))
        final.rename(stale / "old")
        shutil.rmtree(stale, ignore_errors=True)
    cache_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=cache_root))
    try:
        log.info("exporting model %s for backend %s into %s", fingerprint, backend, final)
        build(tmp)
        files = {
            path.relative_to(tmp).as_posix(): file_sha256(path)
            for path in sorted(tmp.rglob("*"))
            if path.is_file()
        }
        manifest: dict[str, object] = {"fingerprint": fingerprint, "backend": backend}
        manifest["recipe"] = recipe
        manifest["files"] = files
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        try:
            os.rename(tmp, final)
        except OSError:
            if not is_valid(final, fingerprint, backend, recipe):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
