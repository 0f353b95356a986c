"""Model manifest verification and the interpreter loader (with the tflite_runtime fallback)."""

from __future__ import annotations

import json
import re
import shutil
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.runtime import ModelError, interpreter_class, load_manifest, load_model
from edge.runtime.manifest import default_models_dir

MODELS = default_models_dir()
NAME = "face_expression"


@pytest.fixture()
def models_copy(tmp_path: Path) -> Path:
    man = load_manifest(MODELS)
    spec = man.get(NAME)
    raw = json.loads((MODELS / "manifest.json").read_text())
    raw["models"][NAME].pop("blend", None)  # one file's checks here; blending: tests/test_runtime_blend.py
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    shutil.copy(spec.path, tmp_path / spec.file)
    return tmp_path


def test_shipped_models_verify() -> None:
    man = load_manifest(MODELS)
    assert {"face_expression", "voice_emotion"} <= set(man.models)
    for spec in man.models.values():
        if spec.optional and not spec.path.exists():
            continue
        spec.verify_file()
        m = load_model(man, spec.name)
        y = m.infer(np.zeros(spec.input.shape, np.float32))
        assert y.shape == spec.output.shape
        if spec.task in ("face-expression", "voice-emotion"):
            assert len(spec.labels) == spec.output.shape[-1], spec.name


def test_sha256_mismatch_refused(models_copy: Path) -> None:
    f = models_copy / load_manifest(models_copy).get(NAME).file
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256 mismatch"):
        load_model(load_manifest(models_copy), NAME)


def test_missing_file_and_undeclared_model(models_copy: Path) -> None:
    man = load_manifest(models_copy)
    man.get(NAME).path.unlink()
    with pytest.raises(ModelError, match="file not found"):
        load_model(man, NAME)
    with pytest.raises(ModelError, match="not declared"):
        man.get("nope")


def test_tensor_spec_mismatch_refused(models_copy: Path) -> None:
    raw = json.loads((models_copy / "manifest.json").read_text())
    raw["models"][NAME]["input"]["shape"] = [1, 64, 64, 1]
    (models_copy / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ModelError, match="input tensor does not match"):
        load_model(load_manifest(models_copy), NAME)


def test_bad_manifest(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="manifest not found"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"models": {"x": {"file": "/etc/passwd"}}}))
    with pytest.raises(ModelError, match="missing or malformed"):
        load_manifest(tmp_path)


@pytest.mark.parametrize(("body", "message"), [
    ("[]", "must be an object with a \"models\" object, got list"),
    ('{"models": "abc"}', "must be an object with a \"models\" object, got str"),
    ('{"models": {"x": 3}}', "models.x must be an object, got int"),
    (b"\xff\xfe{}", "is not UTF-8 text"),
    (None, "cannot be read"),
])
def test_damaged_manifest_is_a_model_error(tmp_path: Path, body: str | bytes | None, message: str) -> None:
    path = tmp_path / "manifest.json"
    if body is None:
        path.mkdir()  # e.g. a botched copy left a directory in its place
    elif isinstance(body, bytes):
        path.write_bytes(body)
    else:
        path.write_text(body)
    with pytest.raises(ModelError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_manifest(tmp_path)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda m: m["models"][NAME].update(blends=m["models"][NAME].pop("blend", None)),
     "unknown field(s) 'blends' (did you mean 'blend'?)"),
    (lambda m: m["models"][NAME]["input"].update(shape=[1, 48.7, 48.2, 1]), "48.7 is not an integer"),
    (lambda m: m["models"][NAME]["input"].update(quantization=[0.0039, -128.9]), "-128.9 is not an integer"),
    (lambda m: m["models"][NAME].update(blend={"model": "face_expression_faceapi", "weight": "0.5"}),
     "weight must be a number"),
    (lambda m: m.update(schema=99), "schema 99 is not 1"),
    (lambda m: m["models"][NAME].update(version="v" * 65), "version must be 1 to 64 characters"),
])
def test_manifest_mistakes_are_refused_not_read_loosely(models_copy: Path, edit: Any, message: str) -> None:
    """A misspelt key, a fractional shape or zero point, a weight in quotes, another manifest format or a version
    too long for status/health: each refused by name (a misspelt blend loaded one file of a blended model)."""
    raw = json.loads((models_copy / "manifest.json").read_text())
    edit(raw)
    (models_copy / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ModelError, match=re.escape(message)):
        load_manifest(models_copy)


@pytest.mark.parametrize("declared", [None, []])
def test_null_quantization_means_unquantized_not_unchecked(models_copy: Path, declared: list[float] | None) -> None:
    raw = json.loads((models_copy / "manifest.json").read_text())
    raw["models"][NAME]["input"]["quantization"] = declared  # the file's input is int8-quantized
    (models_copy / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ModelError, match=r"input tensor does not match.*manifest declares none"):
        load_model(load_manifest(models_copy), NAME)


def test_fallback_to_tflite_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    real_cls, backend = interpreter_class()
    assert backend == "ai_edge_litert.interpreter"
    fake = types.ModuleType("tflite_runtime.interpreter")
    fake.Interpreter = real_cls  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import now raises ImportError
    monkeypatch.setitem(sys.modules, "tflite_runtime", types.ModuleType("tflite_runtime"))
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", fake)
    cls, backend = interpreter_class()
    assert backend == "tflite_runtime.interpreter" and cls is real_cls
    m = load_model(load_manifest(MODELS), NAME)
    assert m.backend == "tflite_runtime.interpreter"


def test_no_interpreter_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    with pytest.raises(ModelError, match="no TFLite interpreter installed"):
        interpreter_class()
