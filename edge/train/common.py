"""Helpers shared by the training pipelines: manifest updates under a file lock."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path
from typing import Any

from edge.runtime.manifest import MANIFEST_NAME, sha256_file


def tensor_entry(detail: dict[str, Any]) -> dict[str, Any]:
    """Manifest tensor spec from an interpreter input/output detail dict."""
    import numpy as np

    scale, zero = detail["quantization"]
    return {
        "shape": [int(v) for v in detail["shape"]],
        "dtype": np.dtype(detail["dtype"]).name,
        "quantization": [float(scale), int(zero)] if scale else None,
    }


def update_manifest(models_dir: Path, name: str, entry: dict[str, Any]) -> None:
    """Insert or replace ``name`` in ``models_dir/manifest.json`` (sha256 recomputed from the file)."""
    models_dir = Path(models_dir)
    path = models_dir / MANIFEST_NAME
    with open(models_dir / ".manifest.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        raw: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"schema": 1, "models": {}}
        entry = dict(entry)
        entry["sha256"] = sha256_file(models_dir / entry["file"])
        raw.setdefault("models", {})[name] = entry
        raw["models"] = dict(sorted(raw["models"].items()))
        path.write_text(json.dumps(raw, indent=2) + "\n")


def drop_manifest_entry(models_dir: Path, name: str) -> bool:
    """Remove ``name`` from ``models_dir/manifest.json`` unless another entry blends it in; True if removed."""
    path = Path(models_dir) / MANIFEST_NAME
    with open(Path(models_dir) / ".manifest.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            return False
        raw = json.loads(path.read_text())
        models = raw.get("models", {})
        used = any(isinstance(e, dict) and isinstance(e.get("blend"), dict) and e["blend"].get("model") == name
                   for k, e in models.items() if k != name)
        if name not in models or used:
            return False
        del models[name]
        path.write_text(json.dumps(raw, indent=2) + "\n")
        return True
