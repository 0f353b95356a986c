"""Retraining on a customer's own data is one command: tiny end-to-end runs (train, int8 export, manifest entry).

They need the ``train`` extra (TensorFlow) and, for voice, the smart-turn encoder file (``scripts/install-models
--train``); the README's test command installs both. The runs use generated data only, never the research corpora.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ONNX = ROOT / "models" / "work" / "pretrained" / "smart-turn-v3.2-cpu.onnx"


def _faces(path: Path, n: int = 60) -> None:
    """Generated 48x48 'faces': a bright ellipse with a mouth bar whose shape depends on the label."""
    rng = np.random.default_rng(0)
    imgs = np.zeros((n, 48, 48), np.uint8)
    yy, xx = np.mgrid[:48, :48]
    labels = np.array(["neutral", "happy", "angry"])[np.arange(n) % 3]
    for i, lab in enumerate(labels):
        face = ((yy - 24) / 20) ** 2 + ((xx - 24) / 16) ** 2 < 1
        img = np.where(face, 170, 40) + rng.normal(0, 8, (48, 48))
        y0 = {"neutral": 34, "happy": 36, "angry": 31}[lab]
        img[y0:y0 + 3, 16:32] = 30
        imgs[i] = np.clip(img, 0, 255)
    np.savez(path, images=imgs, labels=labels)


def test_face_retrain_on_own_npz(tmp_path: Path) -> None:
    """``python -m edge.train.face --npz`` trains, exports int8, registers it, and the service can load it."""
    pytest.importorskip("tensorflow", reason="needs the train extra: pip install -e '.[train]'")
    from edge.runtime import load_manifest, load_model
    from edge.train.face import main

    _faces(tmp_path / "own.npz")
    out = tmp_path / "models"
    assert main(["--npz", str(tmp_path / "own.npz"), "--out", str(out), "--docs", str(tmp_path / "docs"),
                 "--epochs", "1", "--version", "9.9.9-test"]) == 0
    spec = load_manifest(out).get("face_expression")
    assert spec.version == "9.9.9-test" and spec.input.dtype == "int8" and spec.input.shape == (1, 48, 48, 1)
    model = load_model(load_manifest(out), "face_expression")
    assert model.infer(np.zeros((1, 48, 48, 1), np.float32)).shape == (1, 7)
    assert json.loads((out / "face_expression.metrics.json").read_text())["data"].endswith("own.npz")
    licence = json.loads((out / "manifest.json").read_text())["models"]["face_expression"]["licence"]
    assert "own.npz" in licence and "face-api" not in licence and "FER2013" not in licence
    with pytest.raises(SystemExit, match="holds a run of --epochs 1"):  # its LR schedule is sized for 1 epoch
        main(["--npz", str(tmp_path / "own.npz"), "--out", str(out), "--docs", str(tmp_path / "docs"),
              "--epochs", "2", "--version", "9.9.9-test", "--resume"])
    _faces(tmp_path / "other.npz", n=63)  # --resume on other faces would continue the first run's weights
    with pytest.raises(SystemExit, match="other training faces"):
        main(["--npz", str(tmp_path / "other.npz"), "--out", str(out), "--docs", str(tmp_path / "docs"),
              "--epochs", "2", "--version", "9.9.9-test", "--resume"])


def _voices(folder: Path, n: int = 12) -> Path:
    """Generated voiced 'speech' (harmonics in syllable-like bursts): low, slow = neutral; high, fast = angry."""
    import soundfile as sf

    rng = np.random.default_rng(1)
    rows = []
    for i in range(n):
        lab = ("neutral", "angry")[i % 2]
        f0, rate = (110.0, 3.0) if lab == "neutral" else (220.0, 6.0)
        t = np.arange(int(2.6 * 16000)) / 16000
        x = sum(np.sin(2 * np.pi * k * f0 * (1 + 0.05 * np.sin(2 * np.pi * 0.5 * t)) * t) / k for k in range(1, 9))
        x = 0.1 * x * (np.sin(2 * np.pi * rate * t) > -0.3) + 0.003 * rng.standard_normal(t.size)
        name = f"{lab}_{i:02d}.wav"
        sf.write(folder / name, x.astype(np.float32), 16000)
        rows.append({"path": name, "speaker": f"s{i % 4}", "emotion": lab})
    with open(folder / "clips.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, ["path", "speaker", "emotion"])
        w.writeheader()
        w.writerows(rows)
    return folder / "clips.csv"


def test_voice_retrain_on_own_csv(tmp_path: Path) -> None:
    """``python -m edge.train.voice_loco export --manifest-csv`` gives a loadable int8 model the service uses."""
    pytest.importorskip("tensorflow", reason="needs the train extra: pip install -e '.[train]'")
    pytest.importorskip("sklearn", reason="needs the train extra: pip install -e '.[train]'")
    if not ONNX.is_file():
        pytest.skip(f"{ONNX} missing: scripts/install-models --train")
    from edge.runtime import load_manifest, load_model
    from edge.train.voice_loco import main
    from edge.voice.model import VoiceAnalyzer

    own = tmp_path / "own"
    own.mkdir()
    csv_path = _voices(own)
    out = tmp_path / "models"
    out.mkdir()
    shutil.copy(ROOT / "models" / "manifest.json", out / "manifest.json")  # other entries are kept as they are
    assert main(["export", "--corpora", "--manifest-csv", str(csv_path), "--out", str(out), "--variants", "0",
                 "--conditions", "clean", "--C", "0.1", "--taps", "2", "--hold-out", "0.25",
                 "--onnx", str(ONNX), "--version", "9.9.9-test"]) == 0
    manifest = load_manifest(out)
    spec = manifest.get("voice_emotion")
    assert spec.version == "9.9.9-test" and spec.features == "whisper-logmel80" and spec.input.shape == (1, 200, 80)
    assert "face_expression" in manifest.models  # the rest of the manifest is untouched
    analyzer = VoiceAnalyzer(load_model(manifest, "voice_emotion"))
    import soundfile as sf

    x, _ = sf.read(own / "angry_01.wav", dtype="float32")
    r = analyzer.analyze_clip(x)
    assert r is not None and r.probs.shape == (7,)
    metrics = json.loads((out / "voice_emotion.metrics.json").read_text())
    assert metrics["held_out_speakers"] == ["own:s3"] and "own" in metrics["held_out"]


FACEAPI = ROOT / "models" / "work" / "pretrained" / "face-api" / "face_expression_model.bin"


def test_face_retrain_from_pretrained_network(tmp_path: Path) -> None:
    """``--arch faceapi`` fine-tunes the pretrained network on one's own npz into a loadable int8 file."""
    pytest.importorskip("tensorflow", reason="needs the train extra: pip install -e '.[train]'")
    if not FACEAPI.is_file():
        pytest.skip(f"{FACEAPI} missing: scripts/install-models --train")
    from edge.runtime import load_manifest, load_model
    from edge.train.face import main

    _faces(tmp_path / "own.npz")
    out = tmp_path / "models"
    assert main(["--npz", str(tmp_path / "own.npz"), "--out", str(out), "--docs", str(tmp_path / "docs"),
                 "--epochs", "1", "--arch", "faceapi", "--calm-watch", "0.02", "--version", "9.9.9-test"]) == 0
    spec = load_manifest(out).get("face_expression")
    assert spec.input.dtype == "int8" and spec.input.shape == (1, 48, 48, 1)
    probs = load_model(load_manifest(out), "face_expression").infer(np.zeros((1, 48, 48, 1), np.float32))
    assert probs.shape == (1, 7) and abs(float(probs.sum()) - 1.0) < 0.05
    state = json.loads((out / "work" / "face" / "state.json").read_text())
    assert state["epoch"] == 1 and state["arch"] == "faceapi"
    metrics = json.loads((out / "face_expression.metrics.json").read_text())
    assert metrics["arch"] == "faceapi" and metrics["neutral_bias"]["calm_watch_after"] <= 0.02


def test_face_retrain_as_blend_member(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--blend W`` exports a second file that the existing face_expression entry averages in (model 0.3.0's form);
    without a face_expression to blend into it stops before training."""
    pytest.importorskip("tensorflow", reason="needs the train extra: pip install -e '.[train]'")
    from edge.runtime import load_manifest, load_model
    from edge.runtime.tflite import BlendedModel
    from edge.train.face import main

    _faces(tmp_path / "own.npz")
    out, docs = tmp_path / "models", str(tmp_path / "docs")
    base = ["--npz", str(tmp_path / "own.npz"), "--out", str(out), "--docs", docs, "--epochs", "1", "--arch", "small"]
    with pytest.raises(SystemExit):  # nothing in --out to blend into
        main([*base, "--blend", "0.4", "--version", "0.0.1-test"])
    assert "--blend needs" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a model of one's own faces needs its own version
        main(base)
    assert "--version is needed with --npz" in capsys.readouterr().err
    assert main([*base, "--version", "1.0.0-test"]) == 0
    first = load_manifest(out).get("face_expression")
    assert main([*base, "--blend", "0.4", "--version", "2.0.0-test", "--seed", "2"]) == 0
    man = load_manifest(out)
    spec = man.get("face_expression")
    assert spec.blend == ("face_expression_faceapi", 0.4) and spec.version == "2.0.0-test"
    assert spec.sha256 == first.sha256  # the file blended into is untouched
    assert man.get("face_expression_faceapi").version == "2.0.0-test"
    model = load_model(man, "face_expression")
    assert isinstance(model, BlendedModel) and model.infer(np.zeros((1, 48, 48, 1), np.float32)).shape == (1, 7)
    metrics = json.loads((out / "face_expression.metrics.json").read_text())
    assert metrics["blend"] == {"model": "face_expression_faceapi", "weight": 0.4}
    # a plain retrain afterwards blends nothing in: the member's entry goes, so deploys no longer ship its file
    assert main([*base, "--version", "3.0.0-test", "--seed", "3"]) == 0
    man = load_manifest(out)
    assert man.get("face_expression").blend is None and man.get("face_expression").version == "3.0.0-test"
    assert "face_expression_faceapi" not in json.loads((out / "manifest.json").read_text())["models"]
