"""Voice benchmark: our int8 model vs the eGeMAPS baseline on the same splits, noise, cross-corpus, RTF.

``nice -n 10 python -m edge.train.voice_bench [--data ../shared/data] [--json docs/bench/voice.json]``
(needs the ``eval`` extra for the baseline; ``--no-baseline`` and ``--rtf-only`` skip parts). Splits: our model
was trained on RAVDESS Actor_01-16 (17-18 picked the checkpoint); the baseline trains on Actor_01-18, both are
tested on Actor_19-24 and on all of EmoDB. Noise is added to the test clips with ``voice_noise.add_noise``
(seeded per clip: both systems hear the same noisy audio). Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.train.voice_data import CALM, Clip, classification_metrics, fold_speakers, roc_auc
from edge.train.voice_eval import (
    DATA,
    clip_metrics,
    load_analyzer,
    load_clips,
    noise_pool,
    predict_clips,
    read_manifest,
)
from edge.train.voice_noise import add_noise
from edge.types import AGITATED, EMOTIONS
from edge.voice.model import label_index_map

log = logging.getLogger(__name__)

CACHE = Path(__file__).resolve().parents[2] / "models" / "work" / "voice" / "egemaps_cache.npz"
CONDITIONS = [("babble", 20.0), ("babble", 10.0), ("babble", 5.0), ("babble", 0.0), ("babble-ravdess", 10.0),
              ("hvac", 10.0)]
BASELINE_CONDITIONS = {("babble", 10.0), ("babble-ravdess", 10.0), ("hvac", 10.0)}
AGI = [EMOTIONS.index(e) for e in AGITATED]


def rtf(analyzer: Any, clip: np.ndarray, runs: int = 300, hop_s: float = 0.25) -> dict[str, float]:
    """Median wall and process-CPU ms of one 2 s window on one core: VAD, features, int8 inference, whole analyze.

    ``analyze_stream``: the service's case, consecutive windows ``hop_s`` apart of one stream (shared mel frames
    reused); the stream is the chosen speech window repeated, so every streamed window holds the same speech.
    """
    from edge.voice.features import SAMPLE_RATE

    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    n = analyzer.window_samples
    w = max((clip[s:s + n] for s in range(0, max(1, clip.size - n), 1600)), key=analyzer.vad.speech_ratio)
    if analyzer.analyze(w, 0.0) is None:
        raise ValueError("RTF clip has no 2 s window with speech")
    x = analyzer.frontend.features(w).reshape(analyzer.model.input_shape).astype(np.float32)
    hop = int(round(hop_s * SAMPLE_RATE))
    stream = np.tile(w, 2 + (runs + 20) * hop // n)
    ends = iter(range(n, stream.size + 1, hop))

    def streamed() -> None:
        end = next(ends)
        analyzer.analyze(stream[end - n:end], 0.0, end=end)

    parts = {"vad": lambda: analyzer.vad.speech_ratio(w), "features": lambda: analyzer.frontend.features(w),
             "infer": lambda: analyzer.model.infer(x), "analyze": lambda: analyzer.analyze(w, 0.0),
             "analyze_stream": streamed}
    analyzer.reset()
    from threadpoolctl import threadpool_limits

    ts: dict[str, list[float]] = {k: [] for k in parts}
    cpu: dict[str, list[float]] = {k: [] for k in parts}
    with threadpool_limits(1):  # one BLAS thread: no spinning helper threads competing for the one core
        for i in range(runs + 20):  # interleaved, so every part sees the same load from other processes
            for name, fn in parts.items():
                t0, c0 = time.perf_counter(), time.process_time()
                fn()
                if i >= 20:
                    ts[name].append(time.perf_counter() - t0)
                    cpu[name].append(time.process_time() - c0)
    out = {f"{k}_ms": round(float(np.median(v)) * 1000, 3) for k, v in ts.items()}
    out |= {f"{k}_cpu_ms": round(float(np.median(v)) * 1000, 3) for k, v in cpu.items()}
    out["analyze_p90_ms"] = round(float(np.percentile(ts["analyze"], 90)) * 1000, 3)
    out["stream_hop_s"] = hop_s
    out["stream_cpu_ms_per_audio_s"] = round(out["analyze_stream_cpu_ms"] / hop_s, 2)
    out["load_avg_1min"] = round(os.getloadavg()[0], 2)
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _baseline_res(model: Any, x: np.ndarray, y: np.ndarray, classes: list[int]) -> dict[str, Any]:
    from edge.train.baseline import predict_probs

    return classification_metrics(y, predict_probs(model, x), sorted(set(y.tolist()) & set(classes)))


def emodb_cv(data: Path) -> dict[str, list[dict[str, Any]]]:
    """eGeMAPS+LR on EmoDB leave-2-speakers-out: the folds of ``edge.train.voice --manifest <emodb> --folds 5``."""
    from edge.train.baseline import egemaps, speaker_cv

    clips = load_clips(read_manifest(data / "speech" / "emodb" / "MANIFEST.csv"))  # boredom dropped, as in training
    y, spk = np.array([c.label for c in clips]), [c.speaker for c in clips]
    folds = [fold_speakers(clips, k, 5)[2] for k in range(5)]
    return {("gain-normalised" if g else "raw"): speaker_cv(egemaps(clips, g, CACHE), y, spk, folds) for g in (0, 1)}


def cv_table(cv: dict[str, list[dict[str, Any]]]) -> str:
    """Markdown: per fold and mean ± sample std of accuracy / macro-F1 / agitated AUC, per baseline variant."""
    keys = ("accuracy", "macro_f1", "agitated_auc")
    lines = ["| baseline | test speakers | acc | macro-F1 | agitated AUC |", "|---|---|---|---|---|"]
    for v, folds in cv.items():
        lines += [f"| {v} | {','.join(f['test_speakers'])} | " + " | ".join(f"{f[k]:.3f}" for k in keys) + " |"
                  for f in folds]
        lines.append(f"| {v} | mean ± sample std | " + " | ".join(_mean_std(folds, k) for k in keys) + " |")
    return "\n".join(lines)


def _mean_std(folds: list[dict[str, Any]], key: str) -> str:
    v = np.array([f[key] for f in folds], np.float64)
    return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}"


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark, print Markdown tables, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--json", type=Path, help="write all results here (e.g. docs/bench/voice.json)")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--rtf-only", action="store_true")
    ap.add_argument("--emodb-cv", action="store_true", help="only the baseline's EmoDB leave-2-speakers-out folds")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.emodb_cv:
        print(cv_table(emodb_cv(args.data)))
        return
    t_start = time.time()
    analyzer = load_analyzer(None)
    classes = label_index_map(analyzer.model.spec.labels).tolist()
    rav_csv = args.data / "speech" / "ravdess" / "MANIFEST.csv"
    items = read_manifest(rav_csv)
    native_names = [r["emotion"] for r in _rows(rav_csv)]
    folds = [fold_speakers(items, k)[2] for k in range(4)]  # uses .speaker only
    test_spk, base_train = folds[3], set().union(*folds[:3])
    out: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "model_file_bytes":
                           (Path(__file__).resolve().parents[2] / "models" / "voice_emotion.tflite").stat().st_size}
    test_items = [i for i in items if i.speaker in test_spk]
    test = load_clips(test_items)
    out["rtf"] = rtf(analyzer, test[0].audio)
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    log.info("RTF %s", out["rtf"])
    if args.rtf_only:
        print(json.dumps(out, indent=1))
        return
    emo_csv = args.data / "speech" / "emodb" / "MANIFEST.csv"
    emodb = load_clips(read_manifest(emo_csv, {"boredom": "neutral"}))
    bored = np.array([r["emotion"] == "boredom" for r in _rows(emo_csv)])
    sets: dict[str, list[Clip]] = {"RAVDESS test (Actor_19-24) clean": test}
    base_names = ["RAVDESS test (Actor_19-24) clean"]
    for kind, snr in CONDITIONS:
        sets[f"RAVDESS test + {kind} {snr:g} dB"] = add_noise(test, kind, snr, noise_pool(kind, args.data))
        if (kind, snr) in BASELINE_CONDITIONS:
            base_names.append(f"RAVDESS test + {kind} {snr:g} dB")
    ours: dict[str, dict[str, Any]] = {}
    for name, clips in sets.items():
        ours[name] = clip_metrics(*predict_clips(analyzer, clips), classes)
        log.info("ours %s: acc %.4f AUC %.4f", name, ours[name]["accuracy"], ours[name]["agitated_auc"])
    if CALM in analyzer.labels:  # a model trained with --calm: score its 8 native RAVDESS classes too
        native_test = load_clips([i for i in read_manifest(rav_csv, {CALM: CALM}) if i.speaker in test_spk])
        ours["RAVDESS test (Actor_19-24) clean, 8 native classes"] = clip_metrics(
            *predict_clips(analyzer, native_test, native=True), list(range(len(analyzer.labels))), analyzer.labels)
    y, p, ok = predict_clips(analyzer, emodb)
    ours["EmoDB (boredom dropped)"] = clip_metrics(y[~bored], p[~bored], ok[~bored], classes)
    ours["EmoDB agitated AUC, boredom counted as rest"] = {"agitated_auc": round(
        roc_auc(np.where(ok, p[:, AGI].sum(1), 0.0), np.isin(y, AGI)), 4), "n": int(y.size)}
    out["ours"] = ours
    if not args.no_baseline:
        out["baseline"], out["baseline_cv"] = run_baseline(
            items, native_names, base_train, folds, {k: sets[k] for k in base_names}, emodb, bored, classes)
    out["wall_s"] = round(time.time() - t_start)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    print(report(out))


def run_baseline(items: list[Any], native_names: list[str], train_spk: set[str], folds: list[set[str]],
                 sets: dict[str, list[Clip]], emodb: list[Clip], bored: np.ndarray,
                 classes: list[int]) -> tuple[dict[str, Any], dict[str, Any]]:
    """eGeMAPS+LR (raw and gain-normalised): trained on train_spk, scored on the sets and EmoDB; 4-fold CV."""
    from edge.train.baseline import egemaps, fit, predict_probs, speaker_cv

    rav = load_clips(items)
    y = np.array([c.label for c in rav])
    native = np.array([sorted(set(native_names)).index(n) for n in native_names])
    tr = np.array([c.speaker in train_spk for c in rav])
    res: dict[str, Any] = {}
    cv: dict[str, Any] = {}
    for gain in (False, True):
        v = "gain-normalised" if gain else "raw"
        x = egemaps(rav, gain, CACHE)
        cv[v] = speaker_cv(x, y, [c.speaker for c in rav], folds, native)
        m = fit(x[tr], y[tr])
        for name, clips in sets.items():
            xs = egemaps(clips, gain, CACHE, tag="clean" if "clean" in name else name)  # noise is seeded
            res.setdefault(name, {})[v] = _baseline_res(m, xs, np.array([c.label for c in clips]), classes)
        xe = egemaps(emodb, gain, CACHE)
        ye = np.array([c.label for c in emodb])
        res.setdefault("EmoDB (boredom dropped)", {})[v] = _baseline_res(m, xe[~bored], ye[~bored], classes)
        pe = predict_probs(m, xe)
        res.setdefault("EmoDB agitated AUC, boredom counted as rest", {})[v] = {
            "agitated_auc": round(roc_auc(pe[:, AGI].sum(1), np.isin(ye, AGI)), 4), "n": int(ye.size)}
        log.info("baseline %s done", v)
    return res, cv


def report(out: dict[str, Any]) -> str:
    """Markdown tables of the results."""
    r = out["rtf"]
    lines = [f"Real-time factor (one core, median of 300): VAD {r['vad_ms']} ms, features {r['features_ms']} ms, "
             f"int8 inference {r['infer_ms']} ms, whole `analyze` of a 2 s window {r['analyze_ms']} ms "
             f"(p90 {r['analyze_p90_ms']} ms; process CPU time {r['analyze_cpu_ms']} ms; "
             f"1-min load average {r['load_avg_1min']} on 2 cores)."]
    if "analyze_stream_ms" in r:
        lines.append(f"Streamed windows {r['stream_hop_s']} s apart (mel frames shared): `analyze` "
                     f"{r['analyze_stream_ms']} ms, CPU {r['analyze_stream_cpu_ms']} ms, i.e. "
                     f"{r['stream_cpu_ms_per_audio_s']} ms of CPU per second of audio.")
    lines.append("")
    if "ours" not in out:
        return "\n".join(lines)
    base = out.get("baseline", {})
    lines += ["| test set | n (no reading) | ours acc | ours macro-F1 | ours agitated AUC | eGeMAPS raw acc / AUC | "
              "eGeMAPS gain-norm acc / AUC | AUC ours − best baseline |", "|---|---|---|---|---|---|---|---|"]
    for name, o in out["ours"].items():
        b = base.get(name, {})
        bcell = [f"{b[v]['accuracy']:.3f} / {b[v]['agitated_auc']:.3f}" if v in b and "accuracy" in b[v]
                 else (f"– / {b[v]['agitated_auc']:.3f}" if v in b else "–") for v in ("raw", "gain-normalised")]
        best = max((b[v]["agitated_auc"] for v in b), default=None)
        diff = f"{o['agitated_auc'] - best:+.3f}" if best is not None else "–"
        if "accuracy" in o:
            lines.append(f"| {name} | {o['n']} ({o['no_reading']}) | {o['accuracy']:.3f} | {o['macro_f1']:.3f} | "
                         f"{o['agitated_auc']:.3f} | {bcell[0]} | {bcell[1]} | {diff} |")
        else:
            lines.append(f"| {name} | {o['n']} | – | – | {o['agitated_auc']:.3f} | {bcell[0]} | {bcell[1]} | {diff} |")
    for v, folds in out.get("baseline_cv", {}).items():
        lines.append(f"\neGeMAPS+LR ({v}) RAVDESS 4-fold speaker CV (6 actors per fold): 7-class accuracy "
                     f"{_mean_std(folds, 'accuracy')}, macro-F1 {_mean_std(folds, 'macro_f1')}, agitated AUC "
                     f"{_mean_std(folds, 'agitated_auc')}, 8 native classes accuracy "
                     f"{_mean_std(folds, 'native_accuracy')}"
                     f"; fold 4 (Actor_19-24) acc {folds[3]['accuracy']:.3f}, AUC {folds[3]['agitated_auc']:.3f}.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
