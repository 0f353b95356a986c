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
    d = load_custom(_npz(tmp_path, images=FACES, votes=votes, vote_names=np.array(["neutral", "surprised"])))
    assert set(EMOTIONS[i] for i in d["major"]) == {"surprise"}
    assert {"Training", "PublicTest"} <= set(d["split"].tolist())


@pytest.mark.parametrize(("arrays", "message"), [
    ({"images": FACES.astype(np.float32) / 255, "labels": np.array(["happy"] * N)}, "must be uint8"),
    ({"images": FACES[:, :40, :40], "labels": np.array(["happy"] * N)}, r"must be \(N, 48, 48\)"),
    ({"images": FACES, "labels": np.r_[-1, np.zeros(N - 1, int)], "label_names": np.array(["happy"])},
     "label\\(s\\) outside 0..0 \\(first at row 0: -1\\)"),
    ({"images": FACES, "labels": np.zeros(N, int)}, "integer labels need 'label_names'"),
    ({"images": FACES, "labels": np.array(["excited"] * N)}, "labels: label 'excited' is not one of"),
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
])
def test_bad_customer_voice_csv_is_one_error_naming_the_line(tmp_path: Path, rows: list[str], header: str,
                                                              message: str) -> None:
    from edge.train.voice_corpora import CustomerCsvError, load_customer

    with pytest.raises(CustomerCsvError, match=message) as exc:
        load_customer(_clips(tmp_path, rows, header), "mine")
    assert "clips.csv" in str(exc.value)
