"""Evaluate the exported int8 face-expression file through edge.runtime and publish manifest, metrics, plot."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.face.preprocess import to_tensor
from edge.runtime import interpreter_class, load_manifest, load_model
from edge.runtime.tflite import Model
from edge.train.common import tensor_entry, update_manifest
from edge.types import EMOTIONS

log = logging.getLogger(__name__)

NAME = "face_expression"
FILE = "face_expression.tflite"
LICENCE = ("Trained by us on FER2013 (research-only, no licence stated; images scraped from the web) with FER+ "
           "labels (MIT, Microsoft). The weights inherit the research-only limits of FER2013: get a legal review "
           "before commercial use, or retrain on licensed data with "
           "`python -m edge.train.face --npz YOUR.npz --out models`.")


def manifest_entry(models_dir: Path) -> dict[str, Any]:
    """Manifest entry for the exported file, tensor specs read from the interpreter itself."""
    cls, _ = interpreter_class()
    interp = cls(model_path=str(models_dir / FILE), num_threads=1)
    interp.allocate_tensors()
    return {
        "file": FILE, "version": "0.1.0", "task": "face-expression",
        "input": tensor_entry(interp.get_input_details()[0]),
        "output": tensor_entry(interp.get_output_details()[0]),
        "labels": list(EMOTIONS), "licence": LICENCE, "optional": False,
        "preprocess": "edge.face.preprocess.crop_face + to_tensor (gray 48x48, float [0,1])",
        "metrics": "face_expression.metrics.json",
    }


def predict(model: Model, faces: np.ndarray) -> np.ndarray:
    """Probabilities (N, 7) for uint8 (N, 48, 48) faces, one invoke per face as at runtime."""
    return np.stack([model.infer(to_tensor(f))[0] for f in faces])


def scores(y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class recall/precision and confusion matrix (rows = truth) over EMOTIONS."""
    k = len(EMOTIONS)
    cm = np.zeros((k, k), np.int64)
    np.add.at(cm, (y, pred), 1)
    tp = np.diag(cm).astype(float)
    recall = tp / np.maximum(cm.sum(1), 1)
    precision = tp / np.maximum(cm.sum(0), 1)
    f1 = np.where(recall + precision > 0, 2 * recall * precision / np.maximum(recall + precision, 1e-12), 0.0)
    present = cm.sum(1) > 0
    return {
        "n": int(len(y)), "accuracy": float((y == pred).mean()) if len(y) else float("nan"),
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "per_class_recall": {e: round(float(r), 4) for e, r in zip(EMOTIONS, recall, strict=True)},
        "per_class_precision": {e: round(float(p), 4) for e, p in zip(EMOTIONS, precision, strict=True)},
        "support": {e: int(s) for e, s in zip(EMOTIONS, cm.sum(1), strict=True)},
        "confusion": cm.tolist(),
    }


def plot_confusion(cm: np.ndarray, path: Path, title: str) -> None:
    """Row-normalised confusion matrix PNG with counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(EMOTIONS)), EMOTIONS, rotation=45, ha="right")
    ax.set_yticks(range(len(EMOTIONS)), EMOTIONS)
    for i in range(len(EMOTIONS)):
        for j in range(len(EMOTIONS)):
            ax.text(j, i, f"{norm[i, j]:.2f}\n{cm[i, j]}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (FER+ majority)")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def latency_ms(model: Model, face: np.ndarray, runs: int = 500) -> float:
    """Median wall milliseconds of one Model.infer call (quantize + invoke + dequantize)."""
    x = to_tensor(face)
    for _ in range(20):
        model.infer(x)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        model.infer(x)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000.0)


def evaluate_and_publish(models_dir: Path, docs_dir: Path, data: dict[str, np.ndarray], source: str,
                         train_s: float, threads: int = 1) -> dict[str, Any]:
    """Register the file in the manifest, load it verified, score PrivateTest, write metrics JSON and PNG."""
    update_manifest(models_dir, NAME, manifest_entry(models_dir))
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
