"""The model manifest (``models/manifest.json``): one declaration per model, verified at load."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
SCHEMA = 1  # the manifest's own format version
ENTRY_KEYS = frozenset({"file", "sha256", "version", "task", "input", "output", "labels", "licence", "optional",
                        "source", "preprocess", "metrics", "features", "blend", "note"})  # anything else: a typo
VERSION_MAX = 64  # status/health schemas bound a model version to 64 characters


class ModelError(RuntimeError):
    """A model is missing, corrupted or does not match its manifest entry."""


@dataclass(frozen=True)
class TensorSpec:
    """Declared shape, dtype and (scale, zero_point) quantization of one tensor."""

    shape: tuple[int, ...]
    dtype: str
    quantization: tuple[float, int] | None

    @classmethod
    def parse(cls, raw: dict[str, Any], where: str) -> TensorSpec:
        """Build from a manifest dict, naming ``where`` in errors."""
        def whole(v: Any) -> int:  # 48.7 is a typo, not 48; true is not 1
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{v!r} is not an integer")
            return v

        try:
            q = raw.get("quantization")
            if q and (isinstance(q[0], bool) or not isinstance(q[0], (int, float)) or len(q) != 2):
                raise TypeError(f"quantization {q!r} is not [scale, zero_point]")
            if not isinstance(raw["dtype"], str):
                raise TypeError(f"dtype {raw['dtype']!r} is not a name")
            return cls(
                shape=tuple(whole(v) for v in raw["shape"]),
                dtype=raw["dtype"],
                quantization=(float(q[0]), whole(q[1])) if q else None,
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ModelError(f"manifest {where}: malformed tensor spec {raw!r} ({exc})") from exc


@dataclass(frozen=True)
class ModelSpec:
    """One manifest entry."""

    name: str
    file: str
    sha256: str
    version: str
    input: TensorSpec
    output: TensorSpec
    labels: tuple[str, ...]
    licence: str
    task: str
    optional: bool
    path: Path
    features: str = ""  # the input features a model was trained on (voice models: edge.voice.frontends)
    blend: tuple[str, float] | None = None  # (other entry, its weight): outputs averaged with it at load

    def verify_file(self) -> None:
        """Check that the file exists and its sha256 matches the manifest."""
        self.read_verified()

    def read_verified(self) -> bytes:
        """The file's bytes, read once and checked against the manifest's sha256 (the interpreter is given these
        very bytes, so a file replaced after the check is never what runs)."""
        if not self.path.is_file():
            hint = " (run scripts/install-models)" if self.optional else ""
            raise ModelError(f"model '{self.name}': file not found: {self.path}{hint}")
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise ModelError(f"model '{self.name}': {self.path} cannot be read: {exc.strerror or exc}") from exc
        digest = hashlib.sha256(data).hexdigest()
        if digest != self.sha256:
            raise ModelError(
                f"model '{self.name}': sha256 mismatch for {self.path}: expected {self.sha256}, got {digest}"
                " (corrupted or replaced file; reinstall the model)"
            )
        return data


@dataclass(frozen=True)
class Manifest:
    """All declared models of one models directory."""

    root: Path
    models: dict[str, ModelSpec]

    def get(self, name: str) -> ModelSpec:
        """Return the entry ``name`` or raise a ModelError listing what exists."""
        if name not in self.models:
            raise ModelError(f"model '{name}' is not declared in {self.root / MANIFEST_NAME}"
                             f" (declared: {', '.join(sorted(self.models)) or 'none'})")
        return self.models[name]


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def default_models_dir() -> Path:
    """``$EDGE_EMOTION_MODELS`` if set, else the ``models/`` folder beside the ``edge`` package."""
    env = os.environ.get("EDGE_EMOTION_MODELS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "models"


def _blend(raw: Any, where: str) -> tuple[str, float] | None:
    """``{"model": NAME, "weight": W}`` with 0 < W < 1, or None when absent."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) != {"model", "weight"}:
        raise ModelError(f"{where} must be {{\"model\": NAME, \"weight\": W}}, got {raw!r}")
    if isinstance(raw["weight"], bool) or not isinstance(raw["weight"], (int, float)):
        raise ModelError(f"{where}.weight must be a number, got {raw['weight']!r}")
    weight = float(raw["weight"])
    if not 0.0 < weight < 1.0:
        raise ModelError(f"{where}.weight must be between 0 and 1 (exclusive), got {weight}")
    return str(raw["model"]), weight


def load_manifest(root: Path | None = None) -> Manifest:
    """Parse ``root/manifest.json``; raise ModelError naming the problem."""
    root = Path(root) if root is not None else default_models_dir()
    path = root / MANIFEST_NAME
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(f"model manifest not found: {path}") from exc
    except json.JSONDecodeError as exc:
        raise ModelError(f"model manifest {path} is not valid JSON: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ModelError(f"model manifest {path} is not UTF-8 text: {exc}") from exc
    except OSError as exc:
        raise ModelError(f"model manifest {path} cannot be read: {exc.strerror or exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("models", {}), dict):
        raise ModelError(f"model manifest {path} must be an object with a \"models\" object, "
                         f"got {type(raw.get('models') if isinstance(raw, dict) else raw).__name__}")
    if raw.get("schema", SCHEMA) != SCHEMA:
        raise ModelError(f"model manifest {path}: schema {raw.get('schema')!r} is not {SCHEMA}, the one this version "
                         "reads")
    models: dict[str, ModelSpec] = {}
    for name, entry in raw.get("models", {}).items():
        where = f"{path}: models.{name}"
        if not isinstance(entry, dict):
            raise ModelError(f"{where} must be an object, got {type(entry).__name__}")
        unknown = sorted(set(entry) - ENTRY_KEYS)
        if unknown:  # a misspelt "blend" would silently load one file of a blended model
            import difflib

            near = {k: difflib.get_close_matches(k, ENTRY_KEYS, 1) for k in unknown}
            raise ModelError(f"{where}: unknown field(s) " + ", ".join(
                f"{k!r}" + (f" (did you mean {near[k][0]!r}?)" if near[k] else "") for k in unknown))
        try:
            models[name] = ModelSpec(
                name=name,
                file=str(entry["file"]),
                sha256=str(entry["sha256"]).lower(),
                version=str(entry["version"]),
                input=TensorSpec.parse(entry["input"], f"{where}.input"),
                output=TensorSpec.parse(entry["output"], f"{where}.output"),
                labels=tuple(str(x) for x in entry.get("labels", [])),
                licence=str(entry.get("licence", "")),
                task=str(entry.get("task", "")),
                optional=bool(entry.get("optional", False)),
                path=root / str(entry["file"]),
                features=str(entry.get("features", "")),
                blend=_blend(entry.get("blend"), f"{where}.blend"),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ModelError(f"{where}: missing or malformed field {exc}") from exc
        if not 0 < len(models[name].version) <= VERSION_MAX:
            raise ModelError(f"{where}.version must be 1 to {VERSION_MAX} characters (status and health carry it), "
                             f"got {len(models[name].version)}")
        if re.fullmatch(r"[0-9a-f]{64}", models[name].sha256) is None:
            raise ModelError(f"{where}.sha256 must be 64 hex digits, got {str(entry['sha256'])!r}")
        if not isinstance(entry.get("optional", False), bool):
            raise ModelError(f"{where}.optional must be true or false, got {entry['optional']!r}")
        if os.path.isabs(models[name].file) or ".." in Path(models[name].file).parts:
            raise ModelError(f"{where}.file must be a plain relative path, got {models[name].file!r}")
    return Manifest(root=root, models=models)
