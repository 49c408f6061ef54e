"""The registry of installed models: where their files are, what they produce, and their sha256.

Entries live in a JSON file (the bundled `appliance/models/registry.json` by default). A model
path is either a filesystem path or `package:<module>/<subdir>`, resolved inside an installed Python
package (that is how the bundled all-MiniLM-L6-v2 ships). Nothing here ever downloads.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Literal

import msgspec

from appliance.checksums import file_sha256
from appliance.errors import ModelIntegrityError, ModelNotFound
from appliance.models.model_id import ModelId

# Package data (pyproject.toml), so an installed wheel has it too.
DEFAULT_REGISTRY_FILE = Path(__file__).resolve().parent / "registry.json"

# Files a sentence-transformers directory cannot load without.
_REQUIRED_FILES = ("modules.json", "config.json")
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_SKIPPED_FILES = {".gitattributes", "README.md"}


class ModelRecord(msgspec.Struct, kw_only=True):
    name: str
    path: str
    kind: Literal["embedding", "cross-encoder"] = "embedding"
    dimension: int | None = None
    max_seq_length: int | None = None
    # Output sizes the model was trained to be cut to (Matryoshka): its vectors keep their
    # meaning when only the first n dimensions are kept and renormalised. Empty: none.
    matryoshka_dimensions: list[int] = msgspec.field(default_factory=list)
    files: dict[str, str] = msgspec.field(default_factory=dict)
    description: str = ""


class LocalModel(msgspec.Struct, kw_only=True, frozen=True):
    """A model resolved to a directory on disk, with a fingerprint of its files."""

    name: str
    directory: Path
    fingerprint: str
    record: ModelRecord | None = None

    @property
    def model_id(self) -> str:
        """What a stored vector records as the model that made it."""
        return str(ModelId(self.name, self.fingerprint))


def directory_hashes(directory: Path) -> dict[str, str]:
    """sha256 of every file a model directory holds, keyed by relative POSIX path."""
    hashes: dict[str, str] = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        hidden = any(part.startswith(".") for part in relative.parts)
        if path.is_file() and not hidden and path.name not in _SKIPPED_FILES:
            hashes[relative.as_posix()] = file_sha256(path)
    return hashes


def fingerprint_of(hashes: dict[str, str]) -> str:
    lines = "\n".join(f"{name}:{digest}" for name, digest in sorted(hashes.items()))
    return hashlib.sha256(lines.encode()).hexdigest()[:16]


def resolve_path(path: str, base: Path) -> Path:
    """A registry path (`package:mod/sub`, absolute, or relative to the registry) as a dir."""
    if path.startswith("package:"):
        module, _, subdir = path.removeprefix("package:").partition("/")
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise ModelNotFound(
                f"model package {module!r} is not installed; install it (pip install "
                f"{module.replace('_', '-')}) or point the registry at a local directory"
            )
        return Path(spec.origin).parent / subdir
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else (base / candidate).resolve()


def check_complete(directory: Path, kind: str = "embedding") -> None:
    """Raise a clear error naming the path when a model directory is missing or incomplete."""
    if not directory.is_dir():
        raise ModelNotFound(f"model directory {directory} does not exist")
    # A cross-encoder is a plain transformers classifier: no sentence-transformers modules.
    required = _REQUIRED_FILES if kind == "embedding" else ("config.json",)
    missing = [name for name in required if not (directory / name).is_file()]
    if not any((directory / name).is_file() for name in _WEIGHT_FILES):
        missing.append(" or ".join(_WEIGHT_FILES))
    if missing:
        raise ModelNotFound(
            f"model directory {directory} is incomplete: missing {', '.join(missing)}. "
            "Copy the complete sentence-transformers directory there; nothing is downloaded."
        )


class ModelRegistry:
    """Reads and writes the registry file; resolves names or paths to verified local models."""

    def __init__(self, registry_file: Path = DEFAULT_REGISTRY_FILE) -> None:
        self.registry_file = registry_file

    def records(self) -> list[ModelRecord]:
        if not self.registry_file.is_file():
            return []
        raw = json.loads(self.registry_file.read_text())
        return msgspec.convert(raw.get("models", []), list[ModelRecord])

    def get(self, name: str) -> ModelRecord | None:
        return next((record for record in self.records() if record.name == name), None)

    def resolve(
        self, name_or_path: str, *, verify: bool = True, kind: str = "embedding"
    ) -> LocalModel:
        """A registered name, or a path to any local model directory of that kind."""
        record = self.get(name_or_path)
        if record is None:
            directory = Path(name_or_path).expanduser()
            if not directory.exists():
                known = ", ".join(r.name for r in self.records()) or "none"
                raise ModelNotFound(
                    f"model {name_or_path!r} is neither a registered model (registered: "
                    f"{known}) nor an existing directory"
                )
            directory = directory.resolve()
            check_complete(directory, kind)
            hashes = directory_hashes(directory)
            return LocalModel(
                name=directory.name, directory=directory, fingerprint=fingerprint_of(hashes)
            )
        directory = resolve_path(record.path, self.registry_file.parent)
        check_complete(directory, record.kind)
        if verify and record.files:
            hashes = directory_hashes(directory)
            changed = sorted(
                name for name, digest in record.files.items() if hashes.get(name) != digest
            )
            if changed:
                raise ModelIntegrityError(
                    f"model {record.name!r} at {directory} does not match its registered "
                    f"sha256 for: {', '.join(changed)}"
                )
            fingerprint = fingerprint_of(record.files)
        else:
            fingerprint = fingerprint_of(record.files or directory_hashes(directory))
        return LocalModel(
            name=record.name, directory=directory, fingerprint=fingerprint, record=record
        )

    def import_model(
        self,
        directory: Path,
        name: str,
        *,
        kind: Literal["embedding", "cross-encoder"] = "embedding",
        dimension: int | None = None,
        max_seq_length: int | None = None,
    ) -> ModelRecord:
        """Verify a local model directory and record it, with the sha256 of every file."""
        directory = directory.expanduser().resolve()
        check_complete(directory, kind)
        record = ModelRecord(
            name=name,
            path=str(directory),
            kind=kind,
            dimension=dimension,
            max_seq_length=max_seq_length,
            files=directory_hashes(directory),
        )
        others = [r for r in self.records() if r.name != name]
        self._write([*others, record])
        return record

    def _write(self, records: list[ModelRecord]) -> None:
        payload = {"models": msgspec.to_builtins(records)}
        tmp = self.registry_file.with_suffix(".tmp")
        self.registry_file.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(payload, indent=2) + "\n")
        tmp.replace(self.registry_file)
