"""The four emotional-speech corpora of ../shared/data/speech as labelled clips, with each corpus' known traps handled.

- RAVDESS (English, 24 actors), EmoDB (German, 10), URDU (Urdu talk shows, 29 codes; SF1 and SF4 share audio, so they
  are one speaker here), ASED (Amharic, 65; Ogg Opus).
- ASED pads clips with digital silence to emotion-specific lengths: leading and trailing zeros are trimmed, so clip
  length cannot reach a model; of each pair in its ``duplicates.csv`` only the first file is kept.
Labels map onto the product's classes through ``voice_data.map_label`` (EmoDB boredom is dropped).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from edge.eval.speakers import canonical_speaker
from edge.train.voice_data import Clip, map_label
from edge.types import EMOTIONS
from edge.voice.features import SAMPLE_RATE

log = logging.getLogger(__name__)

CORPORA = ("ravdess", "emodb", "urdu", "ased")
LANGUAGE = {"ravdess": "English", "emodb": "German", "urdu": "Urdu", "ased": "Amharic"}
SILENCE = 1e-4  # |sample| below this at a clip's ends is padding


@dataclass
class CorpusClip(Clip):
    """A clip with the corpus it came from."""

    corpus: str = ""


def trim_silence(x: np.ndarray, level: float = SILENCE) -> np.ndarray:
    """Drop leading and trailing samples quieter than ``level`` (digital padding); all-silent clips stay whole."""
    loud = np.flatnonzero(np.abs(x) >= level)
    return x if loud.size == 0 else x[loud[0]:loud[-1] + 1]


def _skipped(root: Path, name: str) -> set[str]:
    """Paths to leave out: the second file of each duplicate pair (ASED), and both files of a pair whose labels
    disagree (one recording filed under two emotions: its label is unknown)."""
    dup = root / "duplicates.csv"
    if name != "ased" or not dup.is_file():
        return set()
    with open(dup, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {r["path_b"] for r in rows} | {r["path_a"] for r in rows if "cross-emotion" in r["kind"]}


def load(data: Path, name: str, limit: int = 0, manifest: Path | None = None) -> list[CorpusClip]:
    """Clips of one corpus (``limit``: every k-th clip only, for tests); FileNotFoundError if it is not staged.

    ``manifest``: a customer's own ``path,speaker,emotion`` CSV (paths relative to it) instead of a staged corpus."""
    if manifest is not None:
        return load_customer(manifest, name, limit)
    root = Path(data) / "speech" / name
    manifest = root / "MANIFEST.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"corpus {name}: {manifest} not found")
    skip = _skipped(root, name)
    out = []
    with open(manifest, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["path"] not in skip]
    for row in rows[::limit or 1]:
        lab = map_label(row["emotion"])
        if lab is None:
            continue
        audio, sr = sf.read(root / row["path"], dtype="float32", always_2d=True)
        if sr != SAMPLE_RATE:
            raise ValueError(f"{root / row['path']}: {sr} Hz, expected {SAMPLE_RATE}")
        x = audio.mean(axis=1)
        if name == "ased":
            x = trim_silence(x)
        spk = canonical_speaker(name, row["speaker"])
        out.append(CorpusClip(f"{name}/{row['path']}", f"{name}:{spk}", EMOTIONS.index(lab), x, corpus=name))
    log.info("%s: %d clips, %d speakers", name, len(out), len({c.speaker for c in out}))
    return out


class CustomerCsvError(ValueError):
    """A customer's clip list cannot be trained on; the message names the CSV, the line and what is wrong."""


def load_customer(manifest: Path, name: str, limit: int = 0) -> list[CorpusClip]:
    """A customer's ``path,speaker,emotion`` CSV (paths relative to it; any sample rate): every row checked, rows
    whose label the product does not use (boredom, contempt) counted and logged; CustomerCsvError otherwise."""
    from collections import Counter

    from edge.capture.media import MediaError, read_audio_file
    from edge.train.voice_data import LABEL_MAP, label_column

    if not manifest.is_file():
        raise CustomerCsvError(f"{manifest}: not found")
    try:
        with open(manifest, newline="", encoding="utf-8-sig") as fh:  # -sig: a spreadsheet's byte-order mark
            reader = csv.DictReader(fh)
            cols = set(reader.fieldnames or [])
            try:
                lab_col = label_column(cols, manifest)
            except ValueError as exc:
                raise CustomerCsvError(str(exc)) from None
            missing = [c for c in ("path", "speaker", lab_col) if c not in cols]
            if missing:
                raise CustomerCsvError(f"{manifest}: needs columns path, speaker, emotion; missing {missing}, has "
                                       f"{sorted(cols)}")
            rows = list(enumerate(reader, start=2))
    except UnicodeDecodeError as exc:
        raise CustomerCsvError(f"{manifest}: not UTF-8 text (byte {exc.start}); save it as \"CSV UTF-8\"") from None
    out, dropped = [], Counter[str]()
    for line, row in rows[::limit or 1]:
        path_s, spk, label = ((row.get(k) or "").strip() for k in ("path", "speaker", lab_col))
        if not (path_s and spk and label):
            raise CustomerCsvError(f"{manifest} line {line}: path, speaker and {lab_col} are all needed")
        key = label.lower()
        if key not in LABEL_MAP:
            raise CustomerCsvError(f"{manifest} line {line}: unknown emotion {label!r} (known: "
                                   f"{', '.join(sorted(LABEL_MAP))})")
        if LABEL_MAP[key] is None:
            dropped[key] += 1
            continue
        try:
            x = read_audio_file(manifest.parent / path_s, SAMPLE_RATE)  # resampled, channels mixed
        except MediaError as exc:
            raise CustomerCsvError(f"{manifest} line {line}: {exc}") from None
        out.append(CorpusClip(f"{name}/{path_s}", f"{name}:{spk}", EMOTIONS.index(str(LABEL_MAP[key])), x,
                              corpus=name))
    if dropped:
        log.warning("%s: %d row(s) left out, labels the product does not use: %s", manifest, sum(dropped.values()),
                    ", ".join(f"{k} {n}" for k, n in sorted(dropped.items())))
    speakers, classes = {c.speaker for c in out}, {c.label for c in out}
    if len(classes) < 2:
        raise CustomerCsvError(f"{manifest}: {len(out)} usable clip(s) of {len(classes)} emotion class(es); at least 2 "
                               "are needed (a one-class model would give that class to everyone)")
    if len(speakers) < 2:
        raise CustomerCsvError(f"{manifest}: {len(out)} usable clip(s) from {len(speakers)} speaker(s); at least 2 "
                               "speakers are needed (the last quarter of them are held out to score the file)")
    log.info("%s: %d clips, %d speakers", name, len(out), len(speakers))
    return out


def load_all(data: Path, names: tuple[str, ...] = CORPORA, limit: int = 0,
             csvs: tuple[Path, ...] = ()) -> list[CorpusClip]:
    """Clips of every named corpus, then of every ``path,speaker,emotion`` CSV (named by its folder), in order."""
    return ([c for n in names for c in load(data, n, limit)]
            + [c for f in csvs for c in load(data, f.resolve().parent.name, limit, f)])
