"""Evaluate the int8 voice model on any labelled clips through the service's path (VAD -> windows -> int8 -> clip).

``edge-emotion eval voice --manifest X.csv`` (or ``python -m edge.train.voice_eval``). Input: a CSV with
``path`` and ``label`` (or ``emotion``), optional ``speaker`` (paths relative to the CSV); a folder holding a
``MANIFEST.csv`` or one sub-folder per label; or ``--ravdess-test`` (Actor_19-24, calm -> neutral) / ``--emodb``
(all 535 clips; boredom dropped unless ``--map boredom=neutral``). Corpus labels map to the product classes with
``edge.train.voice_data.LABEL_MAP``; ``--map LABEL=CLASS|drop`` adds or overrides. ``--noise babble:10`` adds noise
at an SNR (``edge.train.voice_noise``). Prints accuracy, macro-F1, per-class recall, agitated-vs-rest ROC AUC and
the confusion matrix; ``--png`` / ``--json`` write them.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.train.voice_data import (
    CALM,
    LABEL_MAP,
    LABELS8,
    Clip,
    classification_metrics,
    label_column,
    product_index,
    roc_auc,
    split_speakers,
)
from edge.train.voice_noise import NOISES, add_noise, speech_pool
from edge.types import AGITATED, EMOTIONS
from edge.voice.features import SAMPLE_RATE

log = logging.getLogger(__name__)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
AUDIO_EXT = {".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aac", ".opus"}


@dataclass(frozen=True)
class Item:
    """One labelled clip on disk (audio not loaded); ``label`` is a product emotion."""

    path: Path
    speaker: str
    label: str


def product_label(name: str, extra: dict[str, str | None] | None = None) -> str | None:
    """Product class for a corpus label (``extra`` first, then LABEL_MAP, then the class names); None = dropped."""
    key = name.strip().lower()
    table: dict[str, str | None] = {**{e: e for e in EMOTIONS}, **LABEL_MAP, **(extra or {})}
    if key not in table:
        raise ValueError(f"unknown emotion label {name!r}: known {sorted(table)}; add --map {key}=CLASS|drop")
    return table[key]


def read_manifest(path: Path, extra: dict[str, str | None] | None = None) -> list[Item]:
    """Items of a path,label|emotion[,speaker] CSV (paths relative to it); dropped labels skipped."""
    items, dropped = [], 0
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        cols = set(reader.fieldnames or [])
        lab_col = label_column(cols, path)
        if "path" not in cols or lab_col not in cols:
            raise ValueError(f"{path}: needs columns path and label (or emotion), has {sorted(cols)}")
        for line, row in enumerate(reader, start=2):
            if not (row.get("path") or "").strip() or not (row.get(lab_col) or "").strip():
                raise ValueError(f"{path} line {line}: path and {lab_col} are both needed")
            try:
                lab = product_label(row[lab_col], extra)
            except ValueError as exc:
                raise ValueError(f"{path} line {line}: {exc}") from None
            if lab is None:
                dropped += 1
                continue
            f = path.parent / row["path"].strip()
            if not f.is_file():
                raise ValueError(f"{path} line {line}: audio file not found: {f}")
            items.append(Item(f, (row.get("speaker") or "").strip(), lab))
    if dropped:
        log.warning("%s: %d row(s) left out, labels without a product class (e.g. boredom)", path, dropped)
    return items


def read_folder(folder: Path, extra: dict[str, str | None] | None = None) -> list[Item]:
    """Items of a folder: its MANIFEST.csv if present, else one sub-folder per label (audio files inside)."""
    if (folder / "MANIFEST.csv").is_file():
        return read_manifest(folder / "MANIFEST.csv", extra)
    items = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        lab = product_label(sub.name, extra)
        if lab is not None:
            items += [Item(f, "", lab) for f in sorted(sub.rglob("*")) if f.suffix.lower() in AUDIO_EXT]
    if not items:
        raise ValueError(f"{folder}: no MANIFEST.csv and no audio in label-named sub-folders")
    return items


def ravdess_test(data: Path, extra: dict[str, str | None] | None = None) -> list[Item]:
    """RAVDESS held-out actors (the training split rule: Actor_19-24)."""
    items = read_manifest(data / "speech" / "ravdess" / "MANIFEST.csv", extra)
    test = split_speakers(items)[2]  # uses .speaker only
    return [i for i in items if i.speaker in test]


def load_clips(items: list[Item]) -> list[Clip]:
    """Read the audio (mono float32, resampled to 16 kHz)."""
    from edge.capture.media import read_audio_file

    return [Clip(str(i.path), i.speaker, LABELS8.index(i.label), read_audio_file(i.path, SAMPLE_RATE))
            for i in items]


# ---------------------------------------------------------------- noise
def noise_pool(kind: str, data: Path) -> list[np.ndarray] | None:
    """Babble talkers: EmoDB speech ('babble'; unseen voices and language) or RAVDESS Actor_01-16 ('babble-ravdess')."""
    if kind == "hvac":
        return None
    if kind == "babble":
        items = read_manifest(data / "speech" / "emodb" / "MANIFEST.csv", {"boredom": "neutral"})
    else:
        items = read_manifest(data / "speech" / "ravdess" / "MANIFEST.csv")
        train = split_speakers(items)[0]
        items = [i for i in items if i.speaker in train]
    rng = np.random.default_rng(1)
    pick = [items[int(i)] for i in rng.permutation(len(items))[:64]]
    return speech_pool(load_clips(pick), max_clips=64)


# ---------------------------------------------------------------- metrics
def predict_clips(analyzer: Any, clips: list[Clip], native: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels (N,), clip probabilities (N, classes) and a has-reading mask (N,) via the analyzer's clip path.

    Over EMOTIONS (calm counted as neutral) by default; ``native`` scores the model's own labels (e.g. the 8
    RAVDESS classes) and needs every clip's label among them. webrtcvad adapts its internal state across
    calls, so each clip starts with a fresh VAD (``VoiceAnalyzer.reset``): otherwise a clip's figures depend on
    which clips were analysed before it.
    """
    names = analyzer.labels if native else EMOTIONS
    if native:
        missing = sorted({LABELS8[c.label] for c in clips} - set(names))
        if missing:
            raise ValueError(f"labels {missing} are not outputs of the voice model {list(names)}")
        y = np.array([names.index(LABELS8[c.label]) for c in clips], np.int64)
    else:
        y = np.array([product_index(c.label) for c in clips], np.int64)
    probs = np.zeros((len(clips), len(names)), np.float32)
    ok = np.zeros(len(clips), bool)
    for i, c in enumerate(clips):
        analyzer.reset()
        if native:
            clip = analyzer.clip_model_probs(c.audio)
            if clip is not None:
                probs[i], ok[i] = clip[0], True
        elif (r := analyzer.analyze_clip(c.audio)) is not None:
            probs[i], ok[i] = r.probs, True
    return y, probs, ok


def clip_metrics(y: np.ndarray, probs: np.ndarray, ok: np.ndarray, classes: list[int],
                 names: tuple[str, ...] = EMOTIONS) -> dict[str, Any]:
    """classification_metrics over clips with a reading, plus the AUC scoring no-reading clips as not agitated."""
    if not ok.any():
        raise ValueError(f"no clip of {len(y)} gave a voice reading (no speech found by the VAD)")
    res = classification_metrics(y[ok], probs[ok], sorted(set(y[ok].tolist()) & set(classes)), names)
    res["labels"] = list(names)
    res["no_reading"] = int((~ok).sum())
    agi = [names.index(e) for e in AGITATED]
    res["agitated_auc_all_clips"] = round(roc_auc(np.where(ok, probs[:, agi].sum(1), 0.0), np.isin(y, agi)), 4)
    return res


def format_metrics(name: str, res: dict[str, Any]) -> str:
    """The metric lines the command prints."""
    names = tuple(res.get("labels", EMOTIONS))
    rec = "  ".join(f"{k} {v:.3f}" for k, v in res["per_class_recall"].items())
    lines = [f"== {name}", f"clips          {res['n']} with a reading, {res['no_reading']} without (no speech)",
             f"accuracy       {res['accuracy']:.4f}", f"macro_f1       {res['macro_f1']:.4f}",
             f"agitated_auc   {res['agitated_auc']:.4f}  (angry+disgust+fear vs rest; "
             f"{res['agitated_auc_all_clips']:.4f} with no-reading clips scored 0)",
             f"recall         {rec}", "confusion      rows true, columns predicted: " + " ".join(names)]
    cm = np.array(res["confusion"])
    lines += [f"  {names[i]:<9}" + " ".join(f"{v:5d}" for v in cm[i]) for i in range(len(names)) if cm[i].sum()]
    return "\n".join(lines)


def load_analyzer(models: Path | None) -> Any:
    """The service's VoiceAnalyzer on the verified int8 voice_emotion model (1 thread)."""
    from edge.runtime import load_manifest, load_model
    from edge.voice.model import VoiceAnalyzer

    return VoiceAnalyzer(load_model(load_manifest(models) if models else load_manifest(), "voice_emotion", threads=1))


def _parse_map(pairs: list[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for p in pairs:
        k, sep, v = p.partition("=")
        if not sep or (v not in EMOTIONS and v != "drop"):
            raise ValueError(f"--map {p!r}: expected LABEL=CLASS (one of {', '.join(EMOTIONS)}) or LABEL=drop")
        out[k.strip().lower()] = None if v == "drop" else v
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (2 on bad input)."""
    ap = argparse.ArgumentParser(prog="edge-emotion eval voice", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--manifest", type=Path, help="CSV: path,label|emotion[,speaker]")
    src.add_argument("--folder", type=Path, help="folder with MANIFEST.csv or label-named sub-folders")
    src.add_argument("--ravdess-test", action="store_true", help="RAVDESS Actor_19-24 (held out in training)")
    src.add_argument("--emodb", action="store_true", help="all of EmoDB (German; cross-corpus)")
    ap.add_argument("--data", type=Path, default=DATA, help="research data root (default ../shared/data)")
    ap.add_argument("--models", type=Path, help="models folder with manifest.json (default: the project's)")
    ap.add_argument("--map", action="append", default=[], metavar="LABEL=CLASS", help="extra label mapping or =drop")
    ap.add_argument("--noise", metavar="KIND:SNR", help=f"add noise, KIND one of {', '.join(NOISES)}, SNR in dB")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--native", action="store_true",
                    help="score the model's own outputs (RAVDESS calm kept as its own class) instead of EMOTIONS")
    ap.add_argument("--png", type=Path, help="write the row-normalised confusion matrix PNG here")
    ap.add_argument("--json", type=Path, help="write the metrics JSON here")
    args = ap.parse_args(argv)
    try:
        extra = _parse_map(args.map)
        if args.native:
            extra.setdefault(CALM, CALM)
        if args.manifest:
            items, name = read_manifest(args.manifest, extra), str(args.manifest)
        elif args.folder:
            items, name = read_folder(args.folder, extra), str(args.folder)
        elif args.ravdess_test:
            items, name = ravdess_test(args.data, extra), "RAVDESS held-out Actor_19-24"
        else:
            items = read_manifest(args.data / "speech" / "emodb" / "MANIFEST.csv", extra)
            name = "EmoDB (boredom " + ("-> " + str(extra["boredom"]) if extra.get("boredom") else "dropped") + ")"
        if not items:
            raise ValueError(f"{name}: no clips left after label mapping")
        clips = load_clips(items)
        if args.noise:
            kind, _, snr = args.noise.partition(":")
            if kind not in NOISES or not snr:
                raise ValueError(f"--noise {args.noise!r}: expected KIND:SNR with KIND in {NOISES}")
            clips = add_noise(clips, kind, float(snr), noise_pool(kind, args.data), args.seed)
            name += f" + {kind} {float(snr):g} dB SNR"
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from edge.voice.model import label_index_map

    analyzer = load_analyzer(args.models)
    try:
        if args.native:
            res = clip_metrics(*predict_clips(analyzer, clips, native=True), list(range(len(analyzer.labels))),
                               analyzer.labels)
        else:
            res = clip_metrics(*predict_clips(analyzer, clips), label_index_map(analyzer.labels).tolist())
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_metrics(name, res), flush=True)
    if args.json:
        args.json.write_text(json.dumps({name: res}, indent=1) + "\n")
    if args.png:
        from edge.train.voice_plot import plot_confusions

        plot_confusions({name: res}, args.png)
        print(f"confusion PNG  {args.png}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
