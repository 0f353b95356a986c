"""Manifest updates by the training pipelines: entries replaced in place, unreferenced blend members dropped."""

from __future__ import annotations

import json
from pathlib import Path

from edge.train.common import drop_manifest_entry, update_manifest


def _write(models: Path, name: str, data: bytes) -> dict[str, object]:
    (models / f"{name}.tflite").write_bytes(data)
    return {"file": f"{name}.tflite", "version": "1"}


def test_member_dropped_only_when_nothing_blends_it(tmp_path: Path) -> None:
    """An entry another entry blends in stays; once nothing does, it goes and the rest is untouched."""
    update_manifest(tmp_path, "member", _write(tmp_path, "member", b"m"))
    main = _write(tmp_path, "main", b"a") | {"blend": {"model": "member", "weight": 0.5}}
    update_manifest(tmp_path, "main", main)
    assert drop_manifest_entry(tmp_path, "member") is False
    assert drop_manifest_entry(tmp_path, "absent") is False
    update_manifest(tmp_path, "main", _write(tmp_path, "main", b"b"))
    assert drop_manifest_entry(tmp_path, "member") is True
    models = json.loads((tmp_path / "manifest.json").read_text())["models"]
    assert list(models) == ["main"] and "blend" not in models["main"]
    assert (tmp_path / "member.tflite").exists()  # the file itself is left for the user to delete


def test_drop_without_manifest(tmp_path: Path) -> None:
    """No manifest yet: nothing to drop, nothing written."""
    assert drop_manifest_entry(tmp_path, "member") is False
    assert not (tmp_path / "manifest.json").exists()
