"""Manifest ``blend``: an entry averaged with a second verified model at load, and every bad declaration refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.runtime import ModelError, load_manifest, load_model
from edge.runtime.manifest import default_models_dir
from edge.runtime.tflite import BlendedModel

MODELS = default_models_dir()


def _pair(tmp: Path, blend: Any, other: str = "face_expression") -> Path:
    """A models folder with face_expression and a second entry 'b' (a copy of ``other``), the first blending."""
    raw = json.loads((MODELS / "manifest.json").read_text())
    a, b = dict(raw["models"]["face_expression"]), dict(raw["models"][other])
    a.pop("blend", None)
    b.pop("blend", None)
    for entry in (a, b):
        shutil.copy(MODELS / entry["file"], tmp / entry["file"])
    if blend is not None:
        a["blend"] = blend
    (tmp / "manifest.json").write_text(json.dumps({"schema": 1, "models": {"face_expression": a, "b": b}}))
    return tmp


def test_shipped_blend_is_the_weighted_mean_of_both_files(tmp_path: Path) -> None:
    """What the service runs: each file through its own interpreter, outputs averaged with the declared weight."""
    man = load_manifest(MODELS)
    spec = man.get("face_expression")
    if spec.blend is None:
        pytest.skip("the shipped face model blends nothing")
    blended = load_model(man, "face_expression")
    assert isinstance(blended, BlendedModel)
    name, w = spec.blend
    own = load_model(load_manifest(_unblended(tmp_path)), "face_expression")
    other = load_model(man, name)
    x = np.random.default_rng(0).random((1, 48, 48, 1)).astype(np.float32)
    want = (1 - w) * own.infer(x) + w * other.infer(x)
    got = blended.infer(x)
    assert np.allclose(got, want, atol=1e-6) and abs(float(got.sum()) - 1.0) < 0.05
    assert not np.allclose(own.infer(x), other.infer(x), atol=1e-3)  # two different networks


def _unblended(tmp: Path) -> Path:
    """A folder with the shipped face_expression file alone, its entry without the blend."""
    entry = json.loads((MODELS / "manifest.json").read_text())["models"]["face_expression"]
    entry.pop("blend", None)
    shutil.copy(MODELS / entry["file"], tmp / entry["file"])
    (tmp / "manifest.json").write_text(json.dumps({"schema": 1, "models": {"face_expression": entry}}))
    return tmp


def test_blend_with_itself_equals_the_model(tmp_path: Path) -> None:
    man = load_manifest(_pair(tmp_path, {"model": "b", "weight": 0.3}))
    m = load_model(man, "face_expression")
    x = np.random.default_rng(1).random((1, 48, 48, 1)).astype(np.float32)
    assert isinstance(m, BlendedModel) and np.allclose(m.infer(x), load_model(man, "b").infer(x), atol=1e-6)


@pytest.mark.parametrize("blend, match", [
    ({"model": "b", "weight": 0.0}, "between 0 and 1"),
    ({"model": "b", "weight": 1.5}, "between 0 and 1"),
    ({"model": "b", "weight": "half"}, "must be a number"),
    ({"model": "b"}, "must be"),
    ("b", "must be"),
])
def test_bad_blend_declarations_are_refused(tmp_path: Path, blend: Any, match: str) -> None:
    with pytest.raises(ModelError, match=match) as exc:
        load_manifest(_pair(tmp_path, blend))
    assert "models.face_expression.blend" in str(exc.value)


def test_blend_of_a_missing_or_mismatched_model_is_refused(tmp_path: Path) -> None:
    man = load_manifest(_pair(tmp_path, {"model": "nope", "weight": 0.5}))
    with pytest.raises(ModelError, match="'nope' is not declared"):
        load_model(man, "face_expression")
    (tmp_path / "y").mkdir()
    man = load_manifest(_pair(tmp_path / "y", {"model": "b", "weight": 0.5}, other="voice_emotion_cnn"))
    with pytest.raises(ModelError, match=r"cannot blend 'b': input shape \[1, 48, 48, 1\] != "):
        load_model(man, "face_expression")


def test_a_wrong_declaration_of_a_blended_member_is_named_as_such(tmp_path: Path) -> None:
    """The member's own check speaks first (the blend check hid it behind "input shape, output shape or labels
    differ"), and a sha256 with a stray space is a manifest error, not two digests that look the same."""
    folder = _pair(tmp_path, {"model": "b", "weight": 0.5})
    raw = json.loads((folder / "manifest.json").read_text())
    raw["models"]["b"]["input"]["shape"] = [1, 64, 64, 1]
    (folder / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ModelError, match=r"model 'b'.*shape") as exc:
        load_model(load_manifest(folder), "face_expression")
    assert "cannot blend" not in str(exc.value)
    raw["models"]["b"]["input"]["shape"] = [1, 48, 48, 1]
    raw["models"]["b"]["sha256"] = " " + raw["models"]["b"]["sha256"]
    (folder / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ModelError, match="models.b.sha256 must be 64 hex digits"):
        load_manifest(folder)


def test_blend_of_a_tampered_member_is_refused(tmp_path: Path) -> None:
    folder = _pair(tmp_path, {"model": "b", "weight": 0.5})
    raw = json.loads((folder / "manifest.json").read_text())
    raw["models"]["b"]["sha256"] = "0" * 64
    (folder / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ModelError, match="sha256 mismatch"):
        load_model(load_manifest(folder), "face_expression")


def test_status_names_both_files_of_a_blended_face_model() -> None:
    """The member averaged into face_expression is a model in use: status/health carry its version too."""
    from edge.config import parse_config
    from edge.pipeline.analyzers import build_analyzers
    from edge.runtime import load_manifest

    manifest = load_manifest()
    spec = manifest.get("face_expression")
    if spec.blend is None:
        pytest.skip("the committed face_expression blends nothing")
    cfg = parse_config({"identity": {"site_id": "s", "kiosk_id": "k"}, "mqtt": {"enabled": False},
                        "analysis": {"voice": False}, "models": {"face_detector": "haar"}})
    got = build_analyzers(cfg, manifest).versions
    assert got["face_expression"] == spec.version and got[spec.blend[0]] == manifest.get(spec.blend[0]).version
