"""Whisper-encoder voice features for training and benchmarks: runtime window selection, int8 encoder, cache.

Every clip is cut into the windows the service would analyse (2 s, ending every ``hop_s``, kept when the VAD finds
enough speech), each window becomes Whisper log-mel (``edge.voice.whisper_mel``) and runs through the int8 TFLite
encoder; the pooled features of every tap are cached per (corpus, its clips, condition, seed) under ``models/work``.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.train import voice_kiosk, voice_noise
from edge.train.voice_corpora import CorpusClip
from edge.train.voice_kiosk import augment, condition, speed_copy
from edge.train.voice_noise import Pools, pool_for
from edge.voice import features as voice_features
from edge.voice import vad as vad_module
from edge.voice import whisper_mel
from edge.voice.features import SAMPLE_RATE, fit_length
from edge.voice.vad import Vad
from edge.voice.whisper_mel import whisper_log_mel

log = logging.getLogger(__name__)

WINDOW_N = 2 * SAMPLE_RATE
FRAMES = WINDOW_N // 160
MIN_RATIO = 0.3
TRAINING = ("aug", "speed")  # training-copy kinds (``conditioned``): never a benchmark condition


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
        data = conv.convert()
    part = path.with_name(path.name + ".part")  # complete or absent: a killed run leaves no half file behind
    part.write_bytes(data)
    os.replace(part, path)
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


def clip_seed(path: str) -> int:
    """A clip's own random stream (its name, not its place in a list): adding or dropping clips elsewhere leaves
    every other clip's noise, and so its cached features, as they were."""
    return int.from_bytes(hashlib.blake2b(path.encode(), digest_size=8).digest(), "little")


def conditioned(c: CorpusClip, cond: str, pools: Pools, seed: int = 0) -> np.ndarray:
    """``c``'s audio under ``cond`` (or ``aug``: random training conditions, babble from its own corpus only;
    ``speed``: a training copy resampled by 0.9-1.1, conditions on half; ``babble10``: talkers from the *other*
    corpora): the features and the eGeMAPS baseline hear the same audio."""
    rng = np.random.default_rng([seed, clip_seed(c.path)])
    if cond == "aug":
        return augment(c.audio, rng, pool_for(pools, c.corpus, own=True))
    if cond == "speed":
        return speed_copy(c.audio, rng, pool_for(pools, c.corpus, own=True))
    return condition(c.audio, cond, rng, pool_for(pools, c.corpus, own=False))


def _code_digest() -> str:
    """The source of everything that shapes a window's audio before the encoder (VAD, mel, features, kiosk
    conditions, noise, window selection): a changed VAD or condition must compute features again, never reuse the
    old ones. (Library versions are not in it: after upgrading webrtcvad or the Opus codec, clear the cache.)"""
    h = hashlib.sha256()
    for m in (vad_module, whisper_mel, voice_features, voice_kiosk, voice_noise):
        h.update(Path(str(m.__file__)).read_bytes())
    for f in (clip_windows, conditioned, _corpus_features):  # this module's own part of the path, not its cache code
        h.update(inspect.getsource(f).encode())
    h.update(f"{MIN_RATIO}|{WINDOW_N}".encode())
    return h.hexdigest()[:16]


def _digest(arrays: list[np.ndarray]) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.digest()


def _key(clips: list[CorpusClip], cond: str, seed: int, enc: Path, hop_s: float, pools: Pools) -> str:
    """Cache key: the condition, the encoder file, the audio path's code, the babble talkers these clips can get, and
    every clip's name *and audio* (a file re-recorded or trimmed in place under the same name gets new features)."""
    h = hashlib.sha256(f"{cond}|{seed}|{hop_s}|{enc.stat().st_size}|{enc.stat().st_mtime_ns}|{_code_digest()}"
                       .encode())
    if cond in ("aug", "speed", "babble10") and clips:
        h.update(_digest(pool_for(pools, clips[0].corpus, own=cond != "babble10")))
    for c in clips:
        h.update(c.path.encode())
        h.update(_digest([c.audio]))
    return h.hexdigest()[:16]


def features(clips: list[CorpusClip], cond: str, enc_path: Path, cache: Path, pools: Pools,
             seed: int = 0, hop_s: float = 0.5) -> Feats:
    """Features of ``clips`` under ``cond`` (a benchmark condition, or ``aug`` for random training conditions),
    cached per corpus: a customer's clips added beside the research corpora reuse those corpora's files."""
    parts = []
    for name in dict.fromkeys(c.corpus for c in clips):
        idx = np.array([i for i, c in enumerate(clips) if c.corpus == name])
        f = _corpus_features([clips[i] for i in idx], cond, enc_path, cache, pools, seed, hop_s)
        parts.append(Feats(f.x, idx[f.clip], f.ratio))
    return Feats(np.concatenate([p.x for p in parts]), np.concatenate([p.clip for p in parts]),
                 np.concatenate([p.ratio for p in parts]))


def _corpus_features(clips: list[CorpusClip], cond: str, enc_path: Path, cache: Path, pools: Pools,
                     seed: int, hop_s: float) -> Feats:
    """Features of one corpus's clips (clip indices local to ``clips``), from the cache or computed."""
    f = cache / f"{cond}-{seed}-{clips[0].corpus}-{_key(clips, cond, seed, enc_path, hop_s, pools)}.npz"
    if f.is_file():
        try:
            with np.load(f) as d:
                return Feats(d["x"].astype(np.float32), d["clip"], d["ratio"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:  # cut short by a killed run
            log.warning("feature cache %s unreadable (%s): computing it again", f.name, exc)
            f.unlink(missing_ok=True)
    enc, vad = Encoder(enc_path), Vad(2)
    xs, idx, rs = [], [], []
    for i, c in enumerate(clips):
        wins, ratios = clip_windows(conditioned(c, cond, pools, seed), vad, hop_s, fallback=cond in TRAINING)
        for w, r in zip(wins, ratios, strict=True):
            xs.append(np.stack([o.reshape(-1) for o in enc(whisper_log_mel(w))]))
            idx.append(i)
            rs.append(r)
        if i % 500 == 0:
            log.info("features %s %s: clip %d/%d, %d windows", clips[0].corpus, cond, i, len(clips), len(xs))
    # no window of this corpus may have speech under ``cond`` (a tiny corpus, a -20 dB copy): (0, taps, D) then
    x = np.stack(xs) if xs else np.stack([o.reshape(-1) for o in enc(np.zeros((FRAMES, 80), np.float32))])[None][:0]
    out = Feats(x.astype(np.float32), np.array(idx, np.int64), np.array(rs, np.float32))
    cache.mkdir(parents=True, exist_ok=True)
    part = f.with_name(f.name + ".part")
    with open(part, "wb") as fh:  # then renamed: a run killed while saving leaves no half file under the real name
        np.savez(fh, x=out.x.astype(np.float16), clip=out.clip, ratio=out.ratio)
    os.replace(part, f)
    return out
