"""Whisper-encoder voice features for training and benchmarks: runtime window selection, int8 encoder, cache.

Every clip is cut into the windows the service would analyse (2 s, ending every ``hop_s``, kept when the VAD finds
enough speech), each window becomes Whisper log-mel (``edge.voice.whisper_mel``) and runs through the int8 TFLite
encoder; the pooled features of every tap are cached per (corpus clips, condition, seed) under ``models/work``.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.train.voice_corpora import CorpusClip
from edge.train.voice_kiosk import augment, condition
from edge.voice.features import SAMPLE_RATE, fit_length
from edge.voice.vad import Vad
from edge.voice.whisper_mel import whisper_log_mel

log = logging.getLogger(__name__)

WINDOW_N = 2 * SAMPLE_RATE
FRAMES = WINDOW_N // 160
MIN_RATIO = 0.3


def clip_windows(x: np.ndarray, vad: Vad, hop_s: float = 0.5, min_ratio: float = MIN_RATIO,
                 fallback: bool = False) -> tuple[list[np.ndarray], list[float]]:
    """The windows ``VoiceAnalyzer.clip_model_probs`` analyses (and their speech ratios); ``fallback``: the last
    window when none has enough speech (training), else none (the service gives no reading)."""
    hop = int(round(hop_s * SAMPLE_RATE))
    ends = list(range(WINDOW_N, x.size + 1, hop)) or [x.size]
    if ends[-1] != x.size:
        ends.append(x.size)
    wins = [fit_length(x[max(0, e - WINDOW_N):e], WINDOW_N) for e in ends]
    ratios = [vad.speech_ratio(w) for w in wins]
    keep = [i for i, r in enumerate(ratios) if r >= min_ratio]
    if not keep and fallback:
        keep = [len(wins) - 1]
    return [wins[i] for i in keep], [ratios[i] for i in keep]


def export_int8(model: Any, rep: np.ndarray, path: Path) -> None:
    """Full-integer int8 TFLite of a Keras model on (1, FRAMES, 80) mel input, calibrated on ``rep``."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        sig = [tf.TensorSpec([1, FRAMES, 80], tf.float32, name="mel")]
        model.export(tmp, format="tf_saved_model", input_signature=sig, verbose=False)
        conv = tf.lite.TFLiteConverter.from_saved_model(tmp)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([m[None].astype(np.float32)] for m in rep)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
        path.write_bytes(conv.convert())
    log.info("wrote %s (%d bytes)", path, path.stat().st_size)


class Encoder:
    """An int8 TFLite file run one window at a time, as at runtime; outputs dequantized, in output order."""

    def __init__(self, path: Path) -> None:
        """Load the file (ai-edge-litert, one thread)."""
        from edge.runtime import interpreter_class

        cls, _ = interpreter_class()
        self.it = cls(model_path=str(path), num_threads=1)
        self.it.allocate_tensors()
        self.inp = self.it.get_input_details()[0]
        self.outs = sorted(self.it.get_output_details(), key=lambda d: d["name"])

    def __call__(self, mel: np.ndarray) -> list[np.ndarray]:
        """Dequantized outputs for one (FRAMES, 80) window."""
        s, z = self.inp["quantization"]
        self.it.set_tensor(self.inp["index"], np.clip(np.round(mel[None] / s + z), -128, 127).astype(np.int8))
        self.it.invoke()
        return [(self.it.get_tensor(o["index"]).astype(np.float32) - o["quantization"][1]) * o["quantization"][0]
                for o in self.outs]


@dataclass
class Feats:
    """Pooled encoder features of every analysed window: x (W, taps, D), the window's clip index and speech ratio."""

    x: np.ndarray
    clip: np.ndarray
    ratio: np.ndarray


def _key(clips: list[CorpusClip], cond: str, seed: int, enc: Path, hop_s: float) -> str:
    """Cache key: the condition, the encoder file and every clip's name *and audio* (a file re-recorded or trimmed
    in place under the same name gets new features, not the old ones)."""
    h = hashlib.sha256(f"{cond}|{seed}|{hop_s}|{enc.stat().st_size}|{enc.stat().st_mtime_ns}".encode())
    for c in clips:
        h.update(c.path.encode())
        h.update(hashlib.blake2b(np.ascontiguousarray(c.audio).tobytes(), digest_size=16).digest())
    return h.hexdigest()[:16]


def features(clips: list[CorpusClip], cond: str, enc_path: Path, cache: Path, pool: list[np.ndarray],
             seed: int = 0, hop_s: float = 0.5) -> Feats:
    """Features of ``clips`` under ``cond`` (a benchmark condition, or ``aug`` for random training conditions)."""
    f = cache / f"{cond}-{seed}-{_key(clips, cond, seed, enc_path, hop_s)}.npz"
    if f.is_file():
        d = np.load(f)
        return Feats(d["x"].astype(np.float32), d["clip"], d["ratio"])
    enc, vad = Encoder(enc_path), Vad(2)
    xs, idx, rs = [], [], []
    for i, c in enumerate(clips):
        rng = np.random.default_rng([seed, i])
        a = augment(c.audio, rng, pool) if cond == "aug" else condition(c.audio, cond, rng, pool)
        wins, ratios = clip_windows(a, vad, hop_s, fallback=cond == "aug")
        for w, r in zip(wins, ratios, strict=True):
            xs.append(np.stack([o.reshape(-1) for o in enc(whisper_log_mel(w))]))
            idx.append(i)
            rs.append(r)
        if i % 500 == 0:
            log.info("features %s: clip %d/%d, %d windows", cond, i, len(clips), len(xs))
    out = Feats(np.stack(xs).astype(np.float32), np.array(idx), np.array(rs, np.float32))
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(f, x=out.x.astype(np.float16), clip=out.clip, ratio=out.ratio)
    return out
