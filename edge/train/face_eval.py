"""Publish the exported int8 face-expression file: manifest entry, PrivateTest metrics JSON, confusion PNG.

The evaluation command for any data set is ``edge-emotion eval face`` (``edge.eval.face``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from edge.eval.metrics import median_ms, plot_confusion, scores
from edge.face.preprocess import to_tensor
from edge.runtime import interpreter_class, load_manifest, load_model
from edge.runtime.tflite import Model
from edge.train.common import tensor_entry, update_manifest
from edge.types import EMOTIONS

log = logging.getLogger(__name__)

NAME = "face_expression"
FILE = "face_expression.tflite"
VERSION = "0.2.0"  # of the shipped file; a retrain sets its own with ``--version``
LICENCE = ("Trained by us on FER2013 (research-only, no licence stated; images scraped from the web) with FER+ "
           "labels (MIT, Microsoft). The weights inherit the research-only limits of FER2013: get a legal review "
           "before commercial use, or retrain on licensed data with "
           "`python -m edge.train.face --npz YOUR.npz --out models`.")


def manifest_entry(models_dir: Path, version: str = VERSION) -> dict[str, Any]:
    """Manifest entry for the exported file, tensor specs read from the interpreter itself."""
    cls, _ = interpreter_class()
    interp = cls(model_path=str(models_dir / FILE), num_threads=1)
    interp.allocate_tensors()
    return {
        "file": FILE, "version": version, "task": "face-expression",
        "input": tensor_entry(interp.get_input_details()[0]),
        "output": tensor_entry(interp.get_output_details()[0]),
        "labels": list(EMOTIONS), "licence": LICENCE, "optional": False,
        "preprocess": "edge.face.preprocess.crop_face + to_tensor (gray 48x48, float [0,1])",
        "metrics": "face_expression.metrics.json",
    }


def predict(model: Model, faces: np.ndarray) -> np.ndarray:
    """Probabilities (N, 7) for uint8 (N, 48, 48) faces, one invoke per face as at runtime."""
    return np.stack([model.infer(to_tensor(f))[0] for f in faces])


def latency_ms(model: Model, face: np.ndarray, runs: int = 500) -> float:
    """Median wall milliseconds of one Model.infer call (quantize + invoke + dequantize)."""
    x = to_tensor(face)
    return median_ms(lambda: model.infer(x), runs=runs)


def evaluate_and_publish(models_dir: Path, docs_dir: Path, data: dict[str, np.ndarray], source: str,
                         train_s: float, threads: int = 1, version: str = VERSION,
                         extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Register the file in the manifest, load it verified, score PrivateTest, write metrics JSON and PNG."""
    update_manifest(models_dir, NAME, manifest_entry(models_dir, version))
    model = load_model(load_manifest(models_dir), NAME, threads=1)
    test = np.flatnonzero(data["split"] == "PrivateTest")
    probs = predict(model, data["x"][test])
    pred = probs.argmax(1)
    maj = (data["major"][test] >= 0) & data["keep"][test]
    ferplus = scores(data["major"][test][maj], pred[maj])
    fer_ok = data["fer"][test] >= 0
    fer = scores(data["fer"][test][fer_ok], pred[fer_ok]) if fer_ok.any() else None
    size = (models_dir / FILE).stat().st_size
    metrics = {
        "model": NAME, "file": FILE, "file_bytes": size, "evaluated": "int8 TFLite via edge.runtime.load_model",
        "data": source, "split": "PrivateTest",
        "ferplus_majority": ferplus,
        "fer2013_labels": fer,
        "latency_ms_median_1thread": round(latency_ms(model, data["x"][test[0]]), 4),
        "train_seconds": round(train_s, 1), "train_threads": threads,
        "contempt": "folded into disgust (votes and majorities)",
        "backend": model.backend,
        **(extra or {}),
    }
    (models_dir / "face_expression.metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    cm = np.array(ferplus["confusion"])
    plot_confusion(cm, docs_dir / "face_expression_confusion.png",
                   f"face_expression int8, PrivateTest FER+ majority (n={ferplus['n']}), "
                   f"acc {ferplus['accuracy']:.3f}, macro-F1 {ferplus['macro_f1']:.3f}")
    log.info("PrivateTest int8: FER+ acc %.4f macro-F1 %.4f; FER2013 acc %s; %.3f ms/face; %d bytes",
             ferplus["accuracy"], ferplus["macro_f1"], f"{fer['accuracy']:.4f}" if fer else "n/a",
             metrics["latency_ms_median_1thread"], size)
    return metrics
