"""``python -m edge.train.voice_loco table``: the encoder is built in a child process, never beside openSMILE."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edge.train import voice_loco


def test_table_builds_features_in_a_child_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No encoder yet: the same arguments go to a child ``features`` step; a failing child stops the table."""
    calls: list[list[str]] = []

    def fake_run(cmd: list[str], check: bool = False) -> Any:
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 3)

    monkeypatch.setattr(voice_loco.subprocess, "run", fake_run)
    argv = ["table", "--out", str(tmp_path), "--corpora", "emodb", "--variants", "0"]
    with pytest.raises(SystemExit, match="child process"):
        voice_loco.main(argv)
    assert calls == [[sys.executable, "-m", "edge.train.voice_loco", "features", "--out", str(tmp_path),
                      "--corpora", "emodb", "--variants", "0"]]


def test_table_with_an_encoder_runs_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Encoder already built: no child process; the table itself runs (stubbed here) in this process."""
    work = voice_loco.work_dir(tmp_path)
    work.mkdir(parents=True)
    (work / voice_loco.ENCODER_FILE).write_bytes(b"x")
    monkeypatch.setattr(voice_loco.subprocess, "run", lambda *a, **k: pytest.fail("no child expected"))

    def stop(args: Any) -> Any:
        raise RuntimeError("table reached")

    monkeypatch.setattr(voice_loco, "loco_table", stop)
    with pytest.raises(RuntimeError, match="table reached"):
        voice_loco.main(["table", "--out", str(tmp_path)])
