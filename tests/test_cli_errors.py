"""User errors on the command line end in one `error:` line and a documented exit code, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.cli import EXIT_FILES, EXIT_MODEL, main


def test_make_demo_refuses_non_positive_seconds(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["make-demo", str(tmp_path / "d"), "--seconds", "-3"])
    assert exc.value.code == 2 and "must be a number of seconds above 0" in capsys.readouterr().err


def test_an_interrupted_make_demo_leaves_no_file_the_demo_would_reuse(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """scripts/demo only checks that demo.mp4 and demo.wav exist: a run stopped half-way must leave neither."""
    from edge.demo import media

    def stop(*_a: object, **_k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(media.sf, "write", stop)
    with pytest.raises(KeyboardInterrupt):
        media.make_demo(tmp_path, seconds=1.0)
    assert not (tmp_path / "demo.mp4").exists() and not (tmp_path / "demo.wav").exists()


def test_a_path_that_cannot_be_written_is_one_error_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(["make-demo", str(blocker / "out"), "--seconds", "2"]) == EXIT_FILES
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(blocker) in err and "Traceback" not in err


def test_models_dir_pointing_at_a_file_is_a_model_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text("{}")
    cfg = tmp_path / "k.toml"
    cfg.write_text('[identity]\nsite_id = "s"\nkiosk_id = "k"\n[mqtt]\nenabled = false\n'
                   f'[models]\ndir = "{manifest}"\n')
    assert main(["check-config", str(cfg)]) == EXIT_MODEL
    err = capsys.readouterr().err
    assert "manifest" in err and "cannot be read" in err and "Traceback" not in err
