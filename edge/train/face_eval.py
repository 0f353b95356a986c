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
from edge.train.common import drop_manifest_entry, tensor_entry, update_manifest
from edge.types import EMOTIONS

log = logging.getLogger(__name__)

NAME = "face_expression"
FILE = "face_expression.tflite"
VERSION = "0.2.0"  # of the shipped file; a retrain sets its own with ``--version``
LICENCE = ("Trained by us on FER2013 (research-only, no licence stated; images scraped from the web) with FER+ "
           "labels (MIT, Microsoft). The weights inherit the research-only limits of FER2013: get a legal review "
           "before commercial use, or retrain on licensed data with "
           "`python -m edge.train.face --npz YOUR.npz --out models`.")


MEMBER, MEMBER_FILE = "face_expression_faceapi", "face_expression_faceapi.tflite"  # what 0.3.0 blends in
MEMBER_LICENCE = ("face-api.js's expression network (Vincent Muehler, MIT; republished in the npm package "
                  "@vladmandic/face-api@1.7.15, MIT; its training data are not documented) fine-tuned by us on "
                  "FER2013 (research-only, no licence stated) with FER+ labels (MIT, Microsoft): research / "
                  "non-commercial use; get a legal review before commercial use, or retrain on licensed data with "
                  "`python -m edge.train.face --npz YOUR.npz --arch faceapi --out models`.")


def manifest_entry(models_dir: Path, version: str = VERSION, file: str = FILE,
                   licence: str = LICENCE) -> dict[str, Any]:
    """Manifest entry for the exported file, tensor specs read from the interpreter itself."""
    cls, _ = interpreter_class()
    interp = cls(model_path=str(models_dir / file), num_threads=1)
    interp.allocate_tensors()
    return {
        "file": file, "version": version, "task": "face-expression",
        "input": tensor_entry(interp.get_input_details()[0]),
        "output": tensor_entry(interp.get_output_details()[0]),
        "labels": list(EMOTIONS), "licence": licence, "optional": False,
        "preprocess": "edge.face.preprocess.crop_face + to_tensor (gray 48x48, float [0,1])",
        "metrics": "face_expression.metrics.json",
    }


def own_data_licence(npz: str) -> str:
    """The licence text of a file trained on a deployer's own faces (no FER2013)."""
    return (f"Trained on the faces in {npz} (the deployer's own data): their licence applies; no research data set "
            "was used.")


def licence_text(npz: str | None, pretrained: bool, teacher_mix: float = 0.0) -> str:
    """The manifest licence of a trained file: its data (FER2013 or the deployer's npz) and, when it starts from
    face-api.js's network (``pretrained``), that network's licence and undocumented data."""
    if npz is None:
        return MEMBER_LICENCE if pretrained else LICENCE
    if not pretrained:
        return own_data_licence(npz)
    taught = (" Its training targets mix in that network's own readings (--teacher-mix), so its unknown data shape "
              "them too." if teacher_mix > 0 else "")
    return (f"Fine-tuned on the faces in {npz} (the deployer's own data: their licence applies), starting from "
            "face-api.js's expression network (Vincent Muehler, MIT; npm @vladmandic/face-api@1.7.15, MIT), whose "
            f"own training data are not documented (may include research-only sets).{taught} Get a legal review "
            "before commercial use, or train without it (default --arch).")


def register(models_dir: Path, version: str, blend: float | None = None, licence: str = LICENCE) -> None:
    """Manifest entries for the exported file: ``face_expression`` itself, or (``blend``) the member file that the
    existing ``face_expression`` entry then averages in with that weight (its version becomes ``version``)."""
    if blend is None:
        update_manifest(models_dir, NAME, manifest_entry(models_dir, version, licence=licence))
        if drop_manifest_entry(models_dir, MEMBER):  # no longer blended in: kiosks must not get its file
            log.info("manifest: %s dropped (the new %s blends nothing in); %s is unused", MEMBER, NAME, MEMBER_FILE)
        return
    update_manifest(models_dir, MEMBER, manifest_entry(models_dir, version, MEMBER_FILE, licence))
    entry = dict(load_manifest_raw(models_dir)["models"][NAME])
    entry.update(version=version, blend={"model": MEMBER, "weight": round(float(blend), 4)})
    update_manifest(models_dir, NAME, entry)


def load_manifest_raw(models_dir: Path) -> dict[str, Any]:
    """The manifest JSON as written."""
    raw: dict[str, Any] = json.loads((models_dir / "manifest.json").read_text())
    return raw


def predict(model: Model, faces: np.ndarray) -> np.ndarray:
    """Probabilities (N, 7) for uint8 (N, 48, 48) faces, one invoke per face as at runtime."""
    return np.stack([model.infer(to_tensor(f))[0] for f in faces])


def latency_ms(model: Model, face: np.ndarray, runs: int = 500) -> float:
    """Median wall milliseconds of one Model.infer call (quantize + invoke + dequantize)."""
    x = to_tensor(face)
    return median_ms(lambda: model.infer(x), runs=runs)


def evaluate_and_publish(models_dir: Path, docs_dir: Path, data: dict[str, np.ndarray], source: str,
                         train_s: float, threads: int = 1, version: str = VERSION,
                         extra: dict[str, Any] | None = None, blend: float | None = None,
                         licence: str = LICENCE) -> dict[str, Any]:
    """Register the file in the manifest, load it verified, score PrivateTest, write metrics JSON and PNG."""
    register(models_dir, version, blend, licence)
    model = load_model(load_manifest(models_dir), NAME, threads=1)
    test = np.flatnonzero(data["split"] == "PrivateTest")
    probs = predict(model, data["x"][test])
    pred = probs.argmax(1)
    maj = (data["major"][test] >= 0) & data["keep"][test]
    ferplus = scores(data["major"][test][maj], pred[maj])
    fer_ok = data["fer"][test] >= 0
    fer = scores(data["fer"][test][fer_ok], pred[fer_ok]) if fer_ok.any() else None
    size = sum((models_dir / f).stat().st_size for f in ([FILE] if blend is None else [FILE, MEMBER_FILE]))
    metrics = {
        "model": NAME, "file": FILE if blend is None else [FILE, MEMBER_FILE], "file_bytes": size,
        **({} if blend is None else {"blend": {"model": MEMBER, "weight": blend}}),
        "evaluated": "int8 TFLite via edge.runtime.load_model",
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
