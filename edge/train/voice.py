"""Train, int8-export and evaluate the voice-emotion CNN.

``python -m edge.train.voice --data ../shared/data --out models [--epochs N] [--resume] [--manifest CSV] [--fold K]``

Trains on RAVDESS Actor_01-16, selects the checkpoint on Actor_17-18 (clip-level macro-F1), exports a
full-integer int8 TFLite file and evaluates *that file* through ``edge.runtime.load_model`` and
``VoiceAnalyzer.analyze_clip`` on RAVDESS Actor_19-24 (never seen) and all of EmoDB (cross-corpus).

``--fold K`` (0-3) holds out speaker fold K of 4 instead (RAVDESS: Actor_01-06, 07-12, 13-18, 19-24; fold 3
is the shipped split) and writes to ``OUT/work/folds/foldK``, never over the shipped model. ``--calm`` keeps
RAVDESS calm as an eighth output (the corpus' 8 native classes, scored as such; the runtime folds calm into
neutral); fold runs then write to ``OUT/work/folds/foldK-calm``. ``--swa N`` adds N constant-rate epochs whose
weights are averaged into the output (``edge.train.voice_swa``; fold runs get a ``-swa`` suffix).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.train.voice_data import (
    LABELS8,
    WINDOW_S,
    Clip,
    build_features,
    corpus_name,
    fold_dir,
    fold_speakers,
    load_corpus,
    product_index,
    split_speakers,
)
from edge.train.voice_plot import plot_confusions
from edge.train.voice_swa import WeightAverage, lr_at
from edge.voice.features import N_MELS, fit_length, n_frames
from edge.voice.stream import StreamFeatures

log = logging.getLogger(__name__)

FRAMES = n_frames(int(WINDOW_S * 16000))
VERSION = "0.1.0"
LICENCE = ("Trained by the edge-emotion project on RAVDESS (Livingstone & Russo 2018, CC BY-NC-SA 4.0): "
           "weights are for research/non-commercial use only. For commercial deployment retrain on licensed "
           "data with one command: python -m edge.train.voice --manifest your.csv --out models")


def build_model(n_classes: int, batch: int | None = None) -> Any:
    """Small log-mel CNN: 4 conv blocks (16-32-64-96), global average pool, dropout, softmax."""
    import tensorflow as tf

    L = tf.keras.layers
    inp = tf.keras.Input(shape=(FRAMES, N_MELS, 1), batch_size=batch)
    x = inp
    for i, ch in enumerate((16, 32, 64, 96)):
        x = L.Conv2D(ch, 3, padding="same", use_bias=False)(x)
        x = L.BatchNormalization(momentum=0.9)(x)
        x = L.ReLU()(x)
        if i < 3:
            x = L.MaxPooling2D(2)(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dropout(0.3)(x)
    out = L.Dense(n_classes, activation="softmax")(x)
    return tf.keras.Model(inp, out)


def spec_augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One time mask (<=20 frames) and one mel mask (<=8 bands) per example, filled with the example's min."""
    x = x.copy()
    for i in range(x.shape[0]):
        fill = x[i].min()
        t, f = int(rng.integers(0, 21)), int(rng.integers(0, 9))
        t0, f0 = int(rng.integers(0, FRAMES - t + 1)), int(rng.integers(0, N_MELS - f + 1))
        x[i, t0:t0 + t, :] = fill
        x[i, :, f0:f0 + f] = fill
    return x


def clip_windows(audio: np.ndarray, vad: Any, hop_s: float = 0.5) -> np.ndarray:
    """Feature windows of a clip as the runtime's analyze_clip slides them (VAD-gated; last window if none)."""
    n, hop = int(WINDOW_S * 16000), int(hop_s * 16000)
    ends = list(range(n, audio.size + 1, hop)) or [audio.size]
    if ends[-1] != audio.size:
        ends.append(audio.size)
    wins = [(audio[max(0, e - n):e], e) for e in ends]
    kept = [(w, e) for w, e in wins if vad.speech_ratio(w) >= 0.3] or wins[-1:]
    stream = StreamFeatures()  # kept windows share mel frames, as in analyze_clip
    return np.stack([stream.features(fit_length(w, n), e - n) for w, e in kept])


def val_scores(model: Any, val_x: list[np.ndarray], val_y: np.ndarray, n_classes: int) -> tuple[float, float]:
    """Clip-level (accuracy, macro-F1) of the float model: the mean of each clip's window probabilities."""
    pred = np.stack([model.predict(w[..., None], verbose=0).mean(0) for w in val_x]).argmax(1)
    f1s = []
    for c in range(n_classes):
        tp = np.sum((pred == c) & (val_y == c))
        p, r = tp / max(1, np.sum(pred == c)), tp / max(1, np.sum(val_y == c))
        f1s.append(0.0 if tp == 0 else 2 * p * r / (p + r))
    return float((pred == val_y).mean()), float(np.mean(f1s))


def train(args: argparse.Namespace, train_c: list[Clip], val_c: list[Clip], classes: list[int], work: Path) -> Any:
    """Train with resume support; returns the Keras model with the best-validation (--swa: averaged) weights."""
    import tensorflow as tf

    from edge.voice.vad import Vad

    cache = work / f"feats_v{args.variants}_s{args.seed}_n{len(train_c)}.npz"
    labels = np.repeat([c.label for c in train_c], args.variants)  # build_features' order: clip by clip
    d = np.load(cache) if cache.exists() else None
    if d is not None and np.array_equal([product_index(v) for v in labels], d["y"]):
        x, y = d["x"], labels  # the windows do not depend on calm being kept or folded
        log.info("loaded cached features %s", cache)
    else:
        t0 = time.time()
        x, y = build_features(train_c, args.variants, args.seed)
        np.savez(cache, x=x, y=y)
        log.info("built %d training windows in %.0f s -> %s", len(y), time.time() - t0, cache)
    remap = {c: i for i, c in enumerate(classes)}
    y = np.array([remap[v] for v in y])
    vad = Vad(2)
    val_x = [clip_windows(c.audio, vad) for c in val_c]
    val_y = np.array([remap[c.label] for c in val_c])
    counts = np.bincount(y, minlength=len(classes)).astype(np.float64)
    class_w = counts.sum() / (len(classes) * np.maximum(counts, 1))

    state_path, last_path, best_path = work / "state.json", work / "last.keras", work / "best.weights.h5"
    state: dict[str, Any] = {"epoch": 0, "best_f1": -1.0, "best_epoch": -1, "history": []}
    if args.resume and last_path.exists() and state_path.exists():
        model = tf.keras.models.load_model(last_path)
        state = json.loads(state_path.read_text())
        log.info("resuming after epoch %d (best macro-F1 %.3f @ %d)", state["epoch"], state["best_f1"],
                 state["best_epoch"])
    else:
        model = build_model(len(classes))
        model.compile(optimizer=tf.keras.optimizers.Adam(args.lr), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    rng = np.random.default_rng(args.seed + int(state["epoch"]))
    done = max(0, int(state["epoch"]) - args.epochs)  # SWA epochs already in the saved mean
    swa = WeightAverage(work / "swa_mean.npz", keep=done > 0)
    if swa.n != done:
        raise SystemExit(f"{swa.path} averages {swa.n} epochs, {state_path} says {done}: run again without --resume")
    for epoch in range(int(state["epoch"]), args.epochs + args.swa):
        t0 = time.time()
        lr = lr_at(epoch, args.epochs, args.lr, args.swa, args.swa_lr)
        model.optimizer.learning_rate.assign(lr)
        idx = rng.permutation(len(y))[: args.per_epoch or None]
        xb = spec_augment(x[idx].astype(np.float32), rng)[..., None]
        h = model.fit(xb, y[idx], sample_weight=class_w[y[idx]], batch_size=64, epochs=1, verbose=0)
        if epoch >= args.epochs:
            swa.update(model.get_weights())
        acc, f1 = val_scores(model, val_x, val_y, len(classes))
        state["epoch"] = epoch + 1
        state["history"].append({"epoch": epoch + 1, "loss": float(h.history["loss"][0]), "val_acc": acc, "val_f1": f1})
        if f1 > state["best_f1"]:
            state.update(best_f1=f1, best_epoch=epoch + 1)
            model.save_weights(best_path)
        model.save(last_path)
        state_path.write_text(json.dumps(state, indent=1))
        log.info("epoch %d/%d lr %.2e loss %.3f val acc %.3f macro-F1 %.3f (best %.3f @ %d) %.0f s", epoch + 1,
                 args.epochs + args.swa, lr, h.history["loss"][0], acc, f1, state["best_f1"], state["best_epoch"],
                 time.time() - t0)
    if args.swa:  # the recipe's output is the average, whatever the single epochs scored on validation
        swa.apply(model, x, seed=args.seed)
        best_path = work / "swa.weights.h5"
        model.save_weights(best_path)
        state["swa_val_acc"], state["swa_val_f1"] = val_scores(model, val_x, val_y, len(classes))
        state_path.write_text(json.dumps(state, indent=1))
        log.info("SWA of epochs %d-%d: val acc %.3f macro-F1 %.3f", args.epochs + 1, args.epochs + args.swa,
                 state["swa_val_acc"], state["swa_val_f1"])
    best = build_model(len(classes), batch=1)
    best.load_weights(best_path)
    return best, x


def export_int8(model: Any, rep: np.ndarray, path: Path, seed: int) -> None:
    """Full-integer int8 TFLite (int8 in/out), calibrated on 300 training windows."""
    import tensorflow as tf

    idx = np.random.default_rng(seed).choice(len(rep), size=min(300, len(rep)), replace=False)

    def gen() -> Any:
        for i in idx:
            yield [rep[i].astype(np.float32)[None, ..., None]]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = gen
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    path.write_bytes(conv.convert())
    log.info("wrote %s (%d bytes)", path, path.stat().st_size)


def evaluate(analyzer: Any, clips: list[Clip], classes: list[int], native: bool = False) -> dict[str, Any]:
    """Clip-level metrics of the runtime analyzer (sliding windows, VAD-gated) over ``clips``.

    Product classes (calm counted as neutral) by default; ``native`` scores the model's own outputs (LABELS8).
    """
    from edge.train.voice_eval import clip_metrics, predict_clips

    if native:
        return clip_metrics(*predict_clips(analyzer, clips, native=True), classes, names=LABELS8)
    return clip_metrics(*predict_clips(analyzer, clips), sorted({product_index(c) for c in classes}))


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("models"))
    ap.add_argument("--manifest", type=Path, help="path,speaker,emotion CSV to train on instead of RAVDESS")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--per-epoch", type=int, default=0, help="training windows per epoch (0 = all)")
    ap.add_argument("--variants", type=int, default=6, help="crops per clip: 1 clean + N-1 augmented")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--swa", type=int, default=0, help="after --epochs, N epochs at --swa-lr whose weights are "
                    "averaged into the output model (stochastic weight averaging; 0 = pick the best epoch)")
    ap.add_argument("--swa-lr", type=float, default=5e-4)
    ap.add_argument("--fold", type=int, help="hold out speaker fold K of --folds (cross-validation run)")
    ap.add_argument("--folds", type=int, default=4, help="speaker folds (4: RAVDESS 6 actors each; 5 for EmoDB's "
                    "10 speakers = leave-2-speakers-out)")
    ap.add_argument("--calm", action="store_true",
                    help="keep RAVDESS calm as its own (eighth) output instead of merging it into neutral")
    args = ap.parse_args(argv)
    if args.fold is not None:
        if not 0 <= args.fold < args.folds:
            ap.error(f"--fold {args.fold}: must be 0..{args.folds - 1} (--folds {args.folds})")
        args.out = args.out / "work" / "folds" / fold_dir(args.manifest, args.fold, args.folds, args.calm, args.swa > 0)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import tensorflow as tf

    with contextlib.suppress(RuntimeError):  # TensorFlow already running in this process (a test): keep its threads
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.keras.utils.set_random_seed(args.seed)
    t_start = time.time()
    work = args.out / "work" / "voice"
    work.mkdir(parents=True, exist_ok=True)
    corpus = load_corpus(args.manifest or args.data / "speech" / "ravdess" / "MANIFEST.csv", keep_calm=args.calm)
    tr_s, va_s, te_s = split_speakers(corpus) if args.fold is None else fold_speakers(corpus, args.fold, args.folds)
    log.info("speakers train %s | val %s | test %s", sorted(tr_s), sorted(va_s), sorted(te_s))
    train_c = [c for c in corpus if c.speaker in tr_s]
    classes = sorted({c.label for c in train_c})
    model, feats = train(args, train_c, [c for c in corpus if c.speaker in va_s], classes, work)
    tfl = args.out / "voice_emotion.tflite"
    export_int8(model, feats, tfl, args.seed)
    from ai_edge_litert.interpreter import Interpreter

    from edge.runtime import load_manifest, load_model
    from edge.train.common import tensor_entry, update_manifest
    from edge.voice.model import VoiceAnalyzer

    it = Interpreter(model_path=str(tfl))
    update_manifest(args.out, "voice_emotion", {
        "file": tfl.name, "version": VERSION, "task": "voice-emotion",
        "input": tensor_entry(it.get_input_details()[0]), "output": tensor_entry(it.get_output_details()[0]),
        "labels": [LABELS8[c] for c in classes], "licence": LICENCE, "optional": False,
    })
    analyzer = VoiceAnalyzer(load_model(load_manifest(args.out), "voice_emotion", threads=1))
    test_c = [c for c in corpus if c.speaker in te_s]
    held_out = f"{corpus_name(args.manifest)} held-out " + ",".join(sorted(te_s))
    results = {held_out: evaluate(analyzer, test_c, classes)}
    if args.calm:
        results[held_out + " (8 native classes)"] = evaluate(analyzer, test_c, classes, native=True)
    other = args.data / "speech" / ("emodb" if args.manifest is None else "ravdess") / "MANIFEST.csv"
    if other.exists() and corpus_name(other).lower() != corpus_name(args.manifest).lower():  # the other corpus
        name = ("EmoDB cross-corpus (all speakers, boredom dropped)" if args.manifest is None else
                "RAVDESS cross-corpus (all actors, calm as neutral, classes the model has)")
        results[name] = evaluate(analyzer, [c for c in load_corpus(other) if c.label in classes], classes)
    for name, res in results.items():
        log.info("%s: acc %.3f macro-F1 %.3f agitated AUC %.3f recall %s", name, res["accuracy"], res["macro_f1"],
                 res["agitated_auc"], res["per_class_recall"])
    state = json.loads((work / "state.json").read_text())
    metrics = {
        "model": "voice_emotion", "version": VERSION, "file_bytes": tfl.stat().st_size,
        "labels": [LABELS8[c] for c in classes],
        "evaluated": "int8 TFLite via edge.runtime.load_model + VoiceAnalyzer.analyze_clip"
                     " (2 s windows, 0.5 s hop, VAD-gated)",
        "speakers": {"train": sorted(tr_s), "val": sorted(va_s), "test": sorted(te_s)},
        "selected_epoch": f"SWA {args.epochs + 1}-{args.epochs + args.swa}" if args.swa else state["best_epoch"],
        "val_macro_f1_float": round(state["swa_val_f1"] if args.swa else state["best_f1"], 4),
        "swa_epochs": args.swa, "swa_lr": args.swa_lr if args.swa else None,
        "epochs": args.epochs, "variants": args.variants, "train_wall_s": round(time.time() - t_start),
        "results": results,
    }
    (args.out / "voice_emotion.metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    docs = args.out.parent / "docs" if args.fold is None else args.out
    plot_confusions(results, docs / "voice_emotion_confusion.png")
    log.info("done in %.0f s", time.time() - t_start)


if __name__ == "__main__":
    main()
