"""Service-hall noise added to test clips at a given SNR: babble of real talkers and HVAC-like brown noise."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from edge.train.voice_data import Clip
from edge.voice.features import SAMPLE_RATE, active_level_dbfs

if TYPE_CHECKING:
    from edge.train.voice_corpora import CorpusClip

NOISES = ("babble", "babble-ravdess", "hvac")


def _shaped_noise(n: int, rng: np.random.Generator, lo_hz: float = 20.0, hi_hz: float = 800.0) -> np.ndarray:
    """HVAC-like noise: brown (1/f amplitude) spectrum, high-passed at lo_hz, 4th-order low-pass at hi_hz."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    spec *= np.where(f >= lo_hz, 1.0 / np.maximum(f, lo_hz), 0.0) / np.sqrt(1.0 + (f / hi_hz) ** 8)
    return np.fft.irfft(spec, n).astype(np.float32)


def babble(n: int, pool: list[np.ndarray], rng: np.random.Generator, talkers: int = 6) -> np.ndarray:
    """Sum of ``talkers`` speech-only signals from ``pool``, each at the same RMS, random offsets, looped."""
    out = np.zeros(n, np.float64)
    for i in rng.choice(len(pool), size=min(talkers, len(pool)), replace=False):
        s = pool[int(i)]
        seg = np.resize(np.roll(s, -int(rng.integers(0, s.size))), n)
        out += seg / (np.sqrt(np.mean(seg.astype(np.float64) ** 2)) + 1e-9)
    return out.astype(np.float32)


def speech_pool(clips: list[Clip], max_clips: int = 48, seed: int = 0) -> list[np.ndarray]:
    """Speech-only (VAD) signals of up to ``max_clips`` clips, for babble."""
    from edge.voice.vad import Vad

    vad = Vad(2)
    idx = np.random.default_rng(seed).permutation(len(clips))[:max_clips]
    return [s for i in idx if (s := vad.speech_only(clips[int(i)].audio)).size > SAMPLE_RATE // 2]


NOISE_SPEAKERS = 3  # per corpus: the voices of training babble, kept out of every test and validation set


@dataclass
class Pools:
    """Babble talkers per corpus: ``train`` from a few reserved speakers (``speakers``; always on the training side
    of a split), ``test`` from the corpus's other speakers: test noise is never a voice the head heard as noise."""

    train: dict[str, list[np.ndarray]] = field(default_factory=dict)
    test: dict[str, list[np.ndarray]] = field(default_factory=dict)
    speakers: frozenset[str] = frozenset()


def noise_speakers(clips: list[CorpusClip], n: int = NOISE_SPEAKERS, seed: int = 3) -> frozenset[str]:
    """``n`` speakers per corpus (seeded, among those with ≥ 4 clips; fewer if the corpus has under 2n speakers)
    whose clips make its training babble: evaluation and the export's held-out speakers leave them out."""
    out: set[str] = set()
    for k in sorted({c.corpus for c in clips}):
        counts: dict[str, int] = {}
        for c in clips:
            if c.corpus == k:
                counts[c.speaker] = counts.get(c.speaker, 0) + 1
        spk = sorted(s for s, m in counts.items() if m >= 4)
        take = min(n, len(counts) // (2 * n) * n, len(spk))  # a corpus of few speakers keeps them all for tests
        out |= {spk[int(i)] for i in np.random.default_rng(seed).permutation(len(spk))[:take]}
    return frozenset(out)


def corpus_pools(clips: list[CorpusClip], per_corpus: int = 12, seed: int = 3) -> Pools:
    """Per corpus: training babble from its reserved noise speakers' clips, test babble from its other speakers'
    clips, so no corpus's voices reach another's noise and no test noise was training noise."""
    reserved = noise_speakers(clips, seed=seed)
    pools = Pools(speakers=reserved)
    for k in sorted({c.corpus for c in clips}):
        mine = [c for c in clips if c.corpus == k]
        res = [c for c in mine if c.speaker in reserved]
        pools.train[k] = speech_pool(res, per_corpus, seed) if res else []
        pools.test[k] = speech_pool([c for c in mine if c.speaker not in reserved], per_corpus, seed)
    return pools


def pool_for(pools: Pools, corpus: str, own: bool) -> list[np.ndarray]:
    """Babble talkers for a clip of ``corpus``: its own corpus's reserved voices (training copies), or the *other*
    corpora's test voices (a left-out corpus's test noise, so its voices are never in the noise it is tested under
    nor in a fold's training noise); a single corpus (a customer's clips alone) is tested under its own."""
    if own:
        return pools.train.get(corpus, [])
    others = [s for k in sorted(pools.test) if k != corpus for s in pools.test[k]]
    return others or pools.test.get(corpus, [])


def mix_noise(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """x + noise scaled so active-speech level (as the features measure it) minus noise RMS = snr_db."""
    level = active_level_dbfs(x)
    if level is None:
        return x.copy()
    n_db = 20 * np.log10(np.sqrt(np.mean(noise.astype(np.float64) ** 2)) + 1e-12)
    return np.clip(x + noise * np.float32(10 ** ((level - snr_db - n_db) / 20)), -1, 1).astype(np.float32)


def add_noise(clips: list[Clip], kind: str, snr_db: float, pool: list[np.ndarray] | None, seed: int = 0) -> list[Clip]:
    """Noisy copies of ``clips`` (seeded per clip, so the model and the baseline hear the same noise)."""
    out = []
    for i, c in enumerate(clips):
        rng = np.random.default_rng([seed, i])
        if kind == "hvac":
            noise = _shaped_noise(c.audio.size, rng)
        else:
            if not pool:
                raise ValueError("babble noise needs a speech pool")
            noise = babble(c.audio.size, pool, rng)
        out.append(Clip(c.path, c.speaker, c.label, mix_noise(c.audio, noise, snr_db)))
    return out
