"""Ship the Whisper-encoder voice model: head on every corpus, one int8 TFLite (encoder + head), manifest entry.

The TFLite graph is the float encoder rebuilt from the smart-turn ONNX plus a softmax layer with the head's weights,
quantized with the same calibration windows as the encoder the head was trained on, so the features match.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.train.common import tensor_entry, update_manifest
from edge.train.voice_head import Head
from edge.types import EMOTIONS

log = logging.getLogger(__name__)

NAME, FILE, VERSION = "voice_emotion", "voice_emotion.tflite", "0.2.4"
FEATURES = "whisper-logmel80"
LICENCE = ("Encoder: the first encoder blocks of smart-turn v3.2 (Daily; PyPI pipecat-ai 1.14.0, BSD-2-Clause), a "
           "fine-tune of OpenAI Whisper-tiny (MIT). Head trained by the edge-emotion project on RAVDESS (CC BY-NC-SA "
           "4.0), EmoDB, URDU and ASED (research use; no commercial licence stated): the weights are for research / "
           "non-commercial use only. Retrain the head on licensed data with one command: python -m "
           "edge.train.voice_loco export --corpora --manifest-csv your.csv --version 1.0.0 (see models/README.md).")
ENCODER_LICENCE = ("Encoder: the first encoder blocks of smart-turn v3.2 (Daily; PyPI pipecat-ai 1.14.0, "
                   "BSD-2-Clause), a fine-tune of OpenAI Whisper-tiny (MIT).")


def licence(corpora: list[str], csvs: list[str]) -> str:
    """The entry's licence text for what the head was trained on: the research corpora's limits only when one of
    them was used (a customer's own clips carry the customer's terms, named by their CSV)."""
    if corpora:
        return LICENCE if not csvs else LICENCE + f" Also trained on the clips listed in {', '.join(csvs)}."
    return (f"{ENCODER_LICENCE} Head trained on the clips listed in {', '.join(csvs)} (the deployer's own data): "
            "their licence applies; no research corpus was used.")


def build(onnx: Path, taps: tuple[int, ...], head: Head) -> Any:
    """Keras model: Whisper log-mel (1, 200, 80) -> pooled encoder taps (concatenated) -> softmax over EMOTIONS."""
    from tensorflow import keras

    from edge.train.voice_fe import FRAMES
    from edge.train.whisper_encoder import build_encoder, onnx_weights

    enc = build_encoder(onnx_weights(onnx), FRAMES, taps)
    feats = keras.layers.Concatenate(name="taps")(enc.outputs) if len(taps) > 1 else enc.output
    dense = keras.layers.Dense(len(EMOTIONS), activation="softmax", name="probs")
    model = keras.Model(enc.input, dense(feats), name="voice_emotion")
    dense.set_weights(list(head.dense()))
    return model


def manifest_entry(models_dir: Path, taps: tuple[int, ...], c: float, version: str = VERSION,
                   licence_text: str = LICENCE) -> dict[str, Any]:
    """Manifest entry for the exported file; tensor specs read from the interpreter."""
    from edge.runtime import interpreter_class

    cls, _ = interpreter_class()
    it = cls(model_path=str(models_dir / FILE), num_threads=1)
    it.allocate_tensors()
    return {"file": FILE, "version": version, "task": "voice-emotion", "features": FEATURES,
            "input": tensor_entry(it.get_input_details()[0]), "output": tensor_entry(it.get_output_details()[0]),
            "labels": list(EMOTIONS), "licence": licence_text, "optional": False,
            "preprocess": f"edge.voice.whisper_mel.whisper_log_mel on 2 s windows; Whisper-tiny encoder, the "
                          f"layer-normed outputs after {'+'.join(map(str, taps))} block(s) averaged over time, "
                          f"linear head (C={c})",
            "metrics": "voice_emotion.metrics.json"}


def write_metrics(models_dir: Path, info: dict[str, Any]) -> None:
    """``voice_emotion.metrics.json`` beside the file."""
    (models_dir / "voice_emotion.metrics.json").write_text(json.dumps(info, indent=1, default=str) + "\n")


def publish(onnx: Path, taps: tuple[int, ...], head: Head, rep: np.ndarray, models_dir: Path, info: dict[str, Any],
            version: str = VERSION, licence_text: str = LICENCE) -> Path:
    """Export the file, register it in the manifest and write its metrics JSON."""
    from edge.train.voice_fe import export_int8

    t0 = time.time()
    models_dir.mkdir(parents=True, exist_ok=True)
    export_int8(build(onnx, taps, head), rep, models_dir / FILE)
    update_manifest(models_dir, NAME, manifest_entry(models_dir, taps, head.c, version, licence_text))
    info.update({"model": NAME, "version": version, "file_bytes": (models_dir / FILE).stat().st_size,
                 "labels": list(EMOTIONS), "features": FEATURES, "taps": list(taps), "C": head.c,
                 "export_seconds": round(time.time() - t0, 1)})
    write_metrics(models_dir, info)
    log.info("published %s v%s in %s", FILE, version, models_dir)
    return models_dir / FILE
