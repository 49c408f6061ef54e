import shutil
from pathlib import Path

import pytest

from appliance.errors import ModelIntegrityError, ModelNotFound
from appliance.models.model_id import ModelId
from appliance.models.registry import ModelRegistry


def test_bundled_model_resolves_and_matches_its_registered_sha256() -> None:
    model = ModelRegistry().resolve("all-MiniLM-L6-v2", verify=True)
    assert (model.directory / "model.safetensors").is_file()
    assert model.record is not None and model.record.dimension == 384
    assert model.model_id.startswith("all-MiniLM-L6-v2@")


def _copy_bundled(tmp_path: Path) -> Path:
    source = ModelRegistry().resolve("all-MiniLM-L6-v2", verify=False).directory
    target = tmp_path / "minilm"
    shutil.copytree(source, target)
    return target


def test_import_records_sha256_and_detects_a_changed_file(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry.json")
    directory = _copy_bundled(tmp_path)
    record = registry.import_model(directory, "copy")
    assert len(record.files["model.safetensors"]) == 64
    assert (
        registry.resolve("copy").fingerprint
        == ModelRegistry().resolve("all-MiniLM-L6-v2").fingerprint
    )
    (directory / "vocab.txt").write_text("tampered\n")
    with pytest.raises(ModelIntegrityError, match=r"vocab\.txt"):
        registry.resolve("copy")


def test_missing_model_names_the_path_and_never_downloads(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="sentence-transformers/all-mpnet-base-v2"):
        ModelRegistry(tmp_path / "r.json").resolve("sentence-transformers/all-mpnet-base-v2")


def test_incomplete_model_directory_is_refused_with_its_path(tmp_path: Path) -> None:
    directory = _copy_bundled(tmp_path)
    (directory / "model.safetensors").unlink()
    with pytest.raises(ModelNotFound, match=f"{directory}.*incomplete.*model.safetensors"):
        ModelRegistry(tmp_path / "r.json").resolve(str(directory))


@pytest.mark.parametrize(
    ("text", "name", "variant", "fingerprint", "label"),
    [
        ("all-MiniLM-L6-v2@707f563058cc13d5", "all-MiniLM-L6-v2", None, "707f563058cc13d5", None),
        ("all-MiniLM-L6-v2+int8@1a2b", "all-MiniLM-L6-v2", "int8", "1a2b", "all-MiniLM-L6-v2+int8"),
        ("tiny", "tiny", None, "", None),
    ],
)
def test_model_ids_parse_and_print_back(
    text: str, name: str, variant: str | None, fingerprint: str, label: str | None
) -> None:
    model_id = ModelId.parse(text)
    assert (model_id.name, model_id.variant, model_id.fingerprint) == (name, variant, fingerprint)
    assert model_id.label == (label or name)
    if fingerprint:
        assert str(model_id) == text
