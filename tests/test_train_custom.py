"""A customer's npz for face retraining is checked whole before any training: one error naming file and problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.train.face_custom import CustomDataError, load_custom
from edge.types import EMOTIONS

N = 20
FACES = np.random.default_rng(0).integers(0, 256, (N, 48, 48), dtype=np.uint8)


def _npz(tmp_path: Path, **arrays: Any) -> Path:
    path = tmp_path / "mine.npz"
    np.savez(path, **arrays)
    return path


def test_names_indices_and_aliased_votes_map_by_name(tmp_path: Path) -> None:
    idx = np.arange(N) % 2
    d = load_custom(_npz(tmp_path, images=FACES, labels=idx, label_names=np.array(["anger", "happiness"])))
    assert [EMOTIONS[i] for i in d["major"][:2]] == ["angry", "happy"] and d["x"].dtype == np.uint8
    votes = np.zeros((N, 2))
    votes[:, 1] = 3
    votes[::2] = [3, 0]
    d = load_custom(_npz(tmp_path, images=FACES, votes=votes, vote_names=np.array(["neutral", "surprised"])))
    assert set(EMOTIONS[i] for i in d["major"]) == {"neutral", "surprise"}
    d = load_custom(_npz(tmp_path, images=FACES, labels=np.array([b"angry", b"happy"] * (N // 2))))
    assert {EMOTIONS[i] for i in d["major"]} == {"angry", "happy"}  # bytes names are their text
    assert {"Training", "PublicTest"} <= set(d["split"].tolist())


@pytest.mark.parametrize(("arrays", "message"), [
    ({"images": FACES.astype(np.float32) / 255, "labels": np.array(["happy"] * N)}, "must be uint8"),
    ({"images": FACES[:, :40, :40], "labels": np.array(["happy"] * N)}, r"must be \(N, 48, 48\)"),
    ({"images": FACES, "labels": np.r_[-1, np.zeros(N - 1, int)], "label_names": np.array(["happy"])},
     "label\\(s\\) outside 0..0 \\(first at row 0: -1\\)"),
    ({"images": FACES, "labels": np.zeros(N, int)}, "integer labels need 'label_names'"),
    ({"images": FACES, "labels": np.array(["excited"] * N)}, "labels row 0: label 'excited' is not one of"),
    ({"images": FACES, "labels": np.array(["happy"] * N)}, "Training faces hold 1 emotion class"),
    ({"images": FACES, "labels": np.array(["happy", "sad"] * (N // 2)),
      "usage": np.array(["Training", "PublicTest"] * (N // 2))}, "no PrivateTest rows"),
    ({"images": FACES, "votes": np.r_[np.tile([[2, 0], [0, 2]], (8, 1)), np.tile([[1, 1]], (4, 1))],
      "vote_names": np.array(["happy", "sad"]), "usage": np.array(["Training"] * 16 + ["PublicTest",
                                                                                       "PrivateTest"] * 2)},
     "no PublicTest face with a clear majority"),
    ({"images": FACES, "votes": np.ones((N, 8))}, r"votes must be \(N, 7\).*without vote_names"),
    ({"images": FACES, "labels": np.array(["happy"] * N), "usage": np.array(["train"] * N)}, "unknown values"),
    ({"images": FACES, "labels": np.array(["happy"] * N), "usage": np.array(["Training"] * N)}, "no PublicTest"),
    ({"labels": np.array(["happy"] * N)}, "needs 'images' and 'labels'"),
    ({"images": FACES, "labels": np.array(["happy"] * N, dtype=object)}, "mine.npz: "),
])
def test_bad_files_are_refused_by_name(tmp_path: Path, arrays: dict[str, Any], message: str) -> None:
    with pytest.raises(CustomDataError, match=message) as exc:
        load_custom(_npz(tmp_path, **arrays))
    assert "mine.npz" in str(exc.value)


def test_subject_splits_by_person_and_no_subject_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    n = 240
    faces = np.random.default_rng(1).integers(0, 256, (n, 48, 48), dtype=np.uint8)
    labels = np.array(["happy", "sad", "angry"] * (n // 3))
    subject = np.repeat(np.arange(n // 12), 12)  # 20 people, 12 faces each
    d = load_custom(_npz(tmp_path, images=faces, labels=labels, subject=subject))
    sides = {s: set(d["split"][subject == s].tolist()) for s in np.unique(subject)}
    assert all(len(v) == 1 for v in sides.values())  # one person's faces are on one side of the split only
    assert {"Training", "PublicTest", "PrivateTest"} <= set(d["split"].tolist())
    assert "split one by one" not in caplog.text
    load_custom(_npz(tmp_path, images=faces, labels=labels))
    assert "no 'subject' or 'usage' array" in caplog.text
    with pytest.raises(CustomDataError, match="subject must be one id"):
        load_custom(_npz(tmp_path, images=faces, labels=labels, subject=subject[:-1]))


def test_not_an_npz(tmp_path: Path) -> None:
    path = tmp_path / "mine.npz"
    path.write_text("images,labels\n")
    with pytest.raises(CustomDataError, match="not a readable .npz"):
        load_custom(path)


def _clips(tmp_path: Path, rows: list[str], header: str = "path,speaker,emotion", bom: bool = False) -> Path:
    import soundfile as sf

    rng = np.random.default_rng(1)
    for name, rate in (("a.wav", 16000), ("b.wav", 44100), ("c.flac", 16000)):
        sf.write(str(tmp_path / name), rng.normal(0, 0.1, rate).astype(np.float32), rate)
    data = (tmp_path / "c.flac").read_bytes()
    (tmp_path / "broken.flac").write_bytes(data[: len(data) // 3])
    csv_path = tmp_path / "clips.csv"
    csv_path.write_text(("\ufeff" if bom else "") + "\n".join([header, *rows]) + "\n", encoding="utf-8")
    return csv_path


def test_customer_voice_csv_loads_resampled_and_counts_left_out_rows(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    from edge.train.voice_corpora import load_customer

    path = _clips(tmp_path, ["a.wav,s1,angry", "b.wav,s2,Happiness", "c.flac,s2,boredom"], bom=True)
    clips = load_customer(path, "mine")
    assert [(c.speaker, EMOTIONS[c.label], len(c.audio)) for c in clips] == [("mine:s1", "angry", 16000),
                                                                            ("mine:s2", "happy", 16000)]
    assert "1 row(s) left out" in caplog.text and "boredom 1" in caplog.text


@pytest.mark.parametrize(("rows", "header", "message"), [
    (["a.wav,s1,angry"], "path,emotion", "missing \\['speaker'\\]"),
    (["a.wav,s1,excited", "b.wav,s2,sad"], "path,speaker,emotion", "line 2: unknown emotion 'excited'"),
    (["a.wav,s1,angry", "gone.wav,s2,sad"], "path,speaker,emotion", "line 3: .*not found"),
    (["a.wav,s1,angry", "broken.flac,s2,sad"], "path,speaker,emotion", "line 3: .*damaged or truncated"),
    (["a.wav,s1,angry", "b.wav,,sad"], "path,speaker,emotion", "line 3: path, speaker and emotion are all needed"),
    (["a.wav,s1,angry", "b.wav,s1,sad"], "path,speaker,emotion", "from 1 speaker\\(s\\); at least 2"),
    ([], "path,speaker,emotion", "0 usable clip"),
    (["a.wav,s1,angry", "b.wav,s2,angry"], "path,speaker,emotion", "of 1 emotion class\\(es\\); at least 2"),
    (["a.wav,s1,angry,sad", "b.wav,s2,sad,sad"], "path,speaker,emotion,label", "both an 'emotion' and a 'label'"),
])
def test_bad_customer_voice_csv_is_one_error_naming_the_line(tmp_path: Path, rows: list[str], header: str,
                                                              message: str) -> None:
    from edge.train.voice_corpora import CustomerCsvError, load_customer

    with pytest.raises(CustomerCsvError, match=message) as exc:
        load_customer(_clips(tmp_path, rows, header), "mine")
    assert "clips.csv" in str(exc.value)


def test_a_csv_saved_in_a_legacy_code_page_is_one_error(tmp_path: Path) -> None:
    from edge.train.voice_corpora import CustomerCsvError, load_customer

    path = _clips(tmp_path, ["a.wav,s1,angry"])
    path.write_bytes("path,speaker,emotion\na.wav,Müller,angry\n".encode("cp1252"))
    with pytest.raises(CustomerCsvError, match='not UTF-8 text.*save it as "CSV UTF-8"'):
        load_customer(path, "mine")


def test_training_needs_speech_in_every_own_clip_and_classes_beyond_the_held_out_speakers() -> None:
    """A clip the service would never analyse (no 2 s window 30 % voiced), one class, or a class only the held-out
    speakers have (never predictable) stop the export with the reason, before any training."""
    from edge.train.voice_corpora import CorpusClip, CustomerCsvError
    from edge.train.voice_fe import Feats
    from edge.train.voice_loco import check_trainable

    clips = [CorpusClip(f"own/{i}.wav", f"own:s{i % 3}", i % 2, np.zeros(1), corpus="own") for i in range(6)]
    y = np.array([c.label for c in clips])
    clean = Feats(np.zeros((6, 2, 4), np.float32), np.arange(6), np.full(6, 0.8, np.float32))
    check_trainable(clips, clean, y, np.ones(6, bool))  # fine
    quiet = Feats(clean.x, clean.clip, np.array([0.8, 0.8, 0.1, 0.8, 0.8, 0.8], np.float32))
    with pytest.raises(CustomerCsvError, match="1 clip\\(s\\) without .* own/2.wav"):
        check_trainable(clips, quiet, y, np.ones(6, bool))
    research = [CorpusClip(c.path, c.speaker, c.label, c.audio, corpus="urdu") for c in clips]
    check_trainable(research, quiet, y, np.ones(6, bool))  # a research corpus's few silent clips stay, as before
    with pytest.raises(CustomerCsvError, match="1 emotion class"):
        check_trainable(clips, clean, y, y == 0)
    with pytest.raises(CustomerCsvError, match="only the held-out speakers have happy"):
        check_trainable(clips, clean, np.array([0, 4, 0, 4, 1, 1]), np.array([1, 1, 1, 1, 0, 0], bool))


def test_licence_names_data_and_starting_network() -> None:
    from edge.train.face_eval import LICENCE, MEMBER_LICENCE, licence_text

    assert licence_text(None, False) == LICENCE and licence_text(None, True) == MEMBER_LICENCE
    own = licence_text("mine.npz", False)
    assert "mine.npz" in own and "face-api" not in own
    ft = licence_text("mine.npz", True, 0.5)
    assert "mine.npz" in ft and "face-api.js" in ft and "not documented" in ft and "--teacher-mix" in ft
    assert "--teacher-mix" not in licence_text("mine.npz", True, 0.0)


def test_eval_voice_csv_with_both_label_columns_is_refused(tmp_path: Path) -> None:
    """Training and ``eval voice`` read one label column by one rule: a CSV with both is refused, not split."""
    from edge.train.voice_eval import read_manifest

    with pytest.raises(ValueError, match="both an 'emotion' and a 'label'"):
        read_manifest(_clips(tmp_path, ["a.wav,s1,angry,sad"], "path,speaker,emotion,label"))
    assert [i.label for i in read_manifest(_clips(tmp_path, ["a.wav,s1,angry"], "path,speaker,label"))] == ["angry"]


def test_voice_export_with_own_clips_needs_a_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A head trained partly on a customer's clips must not carry the shipped model's version."""
    from edge.train.voice_loco import main

    with pytest.raises(SystemExit) as exc:
        main(["export", "--corpora", "ravdess", "--manifest-csv", str(tmp_path / "mine.csv"), "--out", str(tmp_path)])
    assert exc.value.code == 2 and "--version is needed" in capsys.readouterr().err
