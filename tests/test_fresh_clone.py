"""A fresh clone without ../shared: every test that needs the research corpora skips with a reason, none fails."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Ignored files that scripts/setup installs into a clone (third-party models, the tablet's mqtt.js).
INSTALLED = ("models/face_detection_short_range.tflite", "edge/tablet/vendor")
# A test file reads the research data when it names ../shared or edge's DATA_DIR (scenario, bench media).
USES_DATA = re.compile(r'"shared"|\bDATA_DIR\b')


def _tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [p for p in out.decode().split("\0") if p]


def _clone(dest: Path) -> None:
    """The project's tracked files (as in the working tree) plus what scripts/setup installs."""
    for rel in [*_tracked(), *INSTALLED]:
        src = ROOT / rel
        if src.is_dir():
            shutil.copytree(src, dest / rel)
        elif src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def test_data_tests_skip_without_shared(tmp_path: Path) -> None:
    """Issue 22: ``scripts/test`` in a clone without ../shared raised in test_built_media_follow_the_timeline."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the tracked files cannot be listed")
    clone = tmp_path / "fresh" / "edge-emotion"
    _clone(clone)
    assert not (clone.parent / "shared").exists()
    files = sorted(f"tests/{p.name}" for p in (clone / "tests").glob("test_*.py")
                   if p.name != Path(__file__).name and USES_DATA.search(p.read_text(encoding="utf-8")))
    assert "tests/test_scenarios.py" in files and len(files) >= 8, files
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *files],
                         cwd=clone, env=env, capture_output=True, text=True, timeout=900)
    tail = run.stdout[-4000:] + run.stderr[-2000:]
    assert run.returncode == 0, tail
    skips = [line for line in run.stdout.splitlines() if line.startswith("SKIPPED")]
    assert skips and all("shared" in line or "not present" in line or "not found" in line for line in skips), tail
