"""Train the int8 face-expression CNN on FER2013 images with FER+ soft labels (or a customer's own npz)."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.face.preprocess import INPUT_SIZE, to_tensor
from edge.train.face_augment import augment
from edge.train.face_calibrate import CALM
from edge.train.face_custom import CustomDataError, load_custom
from edge.types import EMOTIONS

log = logging.getLogger(__name__)

# FER2013 label index (0 angry .. 6 neutral) -> index in EMOTIONS.
FER_TO_EMOTIONS = np.array([EMOTIONS.index(n) for n in
                            ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")])
# FER+ vote columns 0..7 (neutral, happiness, surprise, sadness, anger, disgust, fear, contempt) -> EMOTIONS.
# Contempt is folded into disgust (both negative-valence "rejection" expressions; 119 training majorities).
FERPLUS_TO_EMOTIONS = np.array([EMOTIONS.index(n) for n in
                                ("neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "disgust")])


def fold_votes(votes: np.ndarray) -> np.ndarray:
    """Map (N, 8) FER+ emotion votes onto (N, 7) EMOTIONS columns, contempt added to disgust."""
    out = np.zeros((len(votes), len(EMOTIONS)), np.float32)
    for src, dst in enumerate(FERPLUS_TO_EMOTIONS):
        out[:, dst] += votes[:, src]
    return out


def load_fer(data_dir: Path) -> dict[str, np.ndarray]:
    """FER2013 pixels + FER+ soft targets: keys x, soft, major (-1 = no majority), fer, split."""
    fer = np.load(data_dir / "face" / "fer2013" / "fer2013.npz")
    plus = np.load(data_dir / "face" / "ferplus" / "ferplus.npz")
    votes = plus["votes"].astype(np.int32)
    thr = np.where(votes <= 1, 0, votes)  # FER+ rule: a single vote is noise
    winner, total = thr.argmax(1), thr.sum(1)
    has_major = thr.max(1) > 0.5 * np.maximum(total, 1)
    junk = has_major & (winner >= 8)  # majority says unknown / not-a-face
    emo = fold_votes(thr[:, :8])
    raw = fold_votes(votes[:, :8])
    emo = np.where(emo.sum(1, keepdims=True) > 0, emo, raw)
    keep = ~junk & (emo.sum(1) > 0) & fer["row_order_exact"]
    major = np.where(has_major & (winner < 8), FERPLUS_TO_EMOTIONS[np.minimum(winner, 7)], -1)
    soft = emo / np.maximum(emo.sum(1, keepdims=True), 1e-9)
    log.info("FER+: kept %d / %d rows (dropped %d unknown/NF majorities)", keep.sum(), len(keep), junk.sum())
    return {"x": fer["images"], "soft": soft.astype(np.float32), "major": major, "keep": keep,
            "fer": FER_TO_EMOTIONS[fer["labels"]], "split": fer["usage"]}


ARCHS = {  # (filters, separable blocks) per stage; "small" is model 0.1.0, "medium" 0.2.0
    "small": ((32, 2), (64, 2), (128, 2), (256, 2)),
    "medium": ((32, 2), (64, 3), (128, 3), (256, 3)),
}
PRETRAINED = "faceapi"  # face-api.js's expression network (edge.train.face_pretrained), fine-tuned
PEAK_LR = {"small": 2e-3, "medium": 2e-3, PRETRAINED: 5e-4}


def build_model(n_classes: int, arch: str = "small") -> Any:
    """Small CNN: one plain conv then depthwise-separable stages (``ARCHS``), GAP, dropout, softmax; or, for
    ``faceapi``, the pretrained network with its installed weights."""
    from tensorflow import keras

    if arch == PRETRAINED:
        from edge.train import face_pretrained

        return face_pretrained.build_model(face_pretrained.load_weights(), dropout=0.2)

    lay = keras.layers
    inp = keras.Input((INPUT_SIZE, INPUT_SIZE, 1), name="face")
    x = inp
    for i, (filters, reps) in enumerate(ARCHS[arch]):
        for j in range(reps):
            conv = lay.Conv2D if i == 0 and j == 0 else lay.SeparableConv2D
            x = conv(filters, 3, padding="same", use_bias=False)(x)
            x = lay.BatchNormalization()(x)
            x = lay.ReLU()(x)
        if i < 3:
            x = lay.MaxPooling2D()(x)
    x = lay.GlobalAveragePooling2D()(x)
    x = lay.Dropout(0.3)(x)
    out = lay.Dense(n_classes, activation="softmax", name="probs")(x)
    return keras.Model(inp, out, name="face_expression")


def _majority_acc(model: Any, x: np.ndarray, major: np.ndarray) -> float:
    m = major >= 0
    p = model.predict(to_tensor(x[m]), batch_size=256, verbose=0)
    return float((p.argmax(1) == major[m]).mean())


def teacher_model(arch: str, mix: tuple[float, float]) -> Any:
    """The frozen pretrained network whose own readings are mixed into the targets (a mix > 0), else None."""
    if arch != PRETRAINED or max(mix) <= 0:
        return None
    from edge.train import face_pretrained

    return face_pretrained.build_model(face_pretrained.load_weights())


def train(data: dict[str, np.ndarray], work: Path, epochs: int, resume: bool, seed: int, max_train: int,
          arch: str = "small", parts: float = 0.0, scale_range: tuple[float, float] = (0.9, 1.12),
          teacher_mix: tuple[float, float] = (0.0, 0.0)) -> Any:
    """Train with per-epoch checkpoints in ``work``; returns the Keras model with the best PublicTest weights.

    With the pretrained arch and ``teacher_mix`` (m, m_calm) each face's target is (1 - m) x its votes + m x the
    untouched pretrained network's reading of the same augmented face, so fine-tuning keeps what that network knew;
    faces whose votes say neutral or happy take m_calm instead (0: their votes alone)."""
    import tensorflow as tf
    from tensorflow import keras

    tr = np.flatnonzero(data["keep"] & (data["split"] == "Training"))[: max_train or None]
    va = np.flatnonzero(data["keep"] & (data["split"] == "PublicTest"))
    xt, yt = data["x"][tr], data["soft"][tr]
    freq = np.bincount(yt.argmax(1), minlength=len(EMOTIONS)) + 1.0
    cw = (freq / freq.sum()) ** -0.3  # mild rebalancing towards rare classes (disgust, fear)
    sw = cw[yt.argmax(1)]
    sw = (sw / sw.mean()).astype(np.float32)
    log.info("train %d, select on %d PublicTest; class weights %s", len(tr), len(va), np.round(cw / cw.min(), 2))
    work.mkdir(parents=True, exist_ok=True)
    state_path, last_path, best_path = work / "state.json", work / "last.keras", work / "best.weights.h5"
    import hashlib

    data_id = hashlib.sha256(xt.tobytes() + yt.astype(np.float32).tobytes()).hexdigest()[:16]
    recipe = {"parts": parts, "scale_range": [float(v) for v in scale_range], "seed": seed}
    state: dict[str, Any] = {"epoch": 0, "best_acc": -1.0, "best_epoch": -1, "history": [], "epochs": epochs,
                             "arch": arch, "teacher_mix": list(teacher_mix), "data": data_id, "recipe": recipe}
    if resume and state_path.exists() and last_path.exists():
        state = json.loads(state_path.read_text())
        if state.get("data", data_id) != data_id:  # another npz (or another split of it): not this run's weights
            raise SystemExit(f"--resume: {work} holds a run on other training faces; give the same data or a "
                             "fresh --out")
        if state.get("epochs", epochs) != epochs:  # the saved optimizer's cosine schedule is sized for its count
            raise SystemExit(f"--resume: {work} holds a run of --epochs {state['epochs']} (its learning-rate "
                             f"schedule is sized for that), not {epochs}; give the same --epochs or a fresh --out")
        if state.get("recipe", recipe) != recipe:
            raise SystemExit(f"--resume: {work} holds a run with {state['recipe']}; give the same --parts, "
                             "--scale-range and --seed, or a fresh --out")
        saved = state.get("teacher_mix", list(teacher_mix))
        run = (state.get("arch", arch), tuple(saved) if isinstance(saved, list) else (saved, saved))
        if run != (arch, tuple(teacher_mix)):
            raise SystemExit(f"--resume: {work} holds a run with --arch {run[0]} --teacher-mix {run[1]}; "
                             "give the same flags or a fresh --out")
        model = keras.models.load_model(last_path)
        log.info("resumed after epoch %d (best %.4f at %d)", state["epoch"], state["best_acc"], state["best_epoch"])
    else:
        if resume:
            log.warning("--resume: no run to continue in %s (state.json and last.keras); starting a new one", work)
        tf.keras.utils.set_random_seed(seed)
        model = build_model(len(EMOTIONS), arch)
        steps = epochs * int(np.ceil(len(tr) / 64))
        peak = PEAK_LR[arch]
        lr = keras.optimizers.schedules.CosineDecay(peak / 20, steps, alpha=0.02, warmup_target=peak,
                                                    warmup_steps=min(500, steps // 10))
        model.compile(keras.optimizers.AdamW(lr, weight_decay=1e-4), "categorical_crossentropy")
    teacher = teacher_model(arch, teacher_mix)
    mix = np.where(np.isin(yt.argmax(1), CALM), teacher_mix[1], teacher_mix[0]).astype(np.float32)[:, None]
    for ep in range(int(state["epoch"]), epochs):
        t0 = time.time()
        rng = np.random.default_rng(seed * 1000 + ep)
        xa = to_tensor(augment(xt, rng, parts, scale_range))
        target = yt if teacher is None else (1 - mix) * yt + mix * teacher.predict(xa, batch_size=256, verbose=0)
        hist = model.fit(xa, target, sample_weight=sw, batch_size=64, epochs=1, shuffle=True, verbose=0)
        acc = _majority_acc(model, data["x"][va], data["major"][va])
        loss = float(hist.history["loss"][-1])
        if acc > state["best_acc"]:
            state["best_acc"], state["best_epoch"] = acc, ep + 1
            model.save_weights(best_path)
        state["epoch"] = ep + 1
        state["history"].append({"epoch": ep + 1, "loss": loss, "val_acc": acc, "seconds": time.time() - t0})
        model.save(last_path)
        state_path.write_text(json.dumps(state, indent=1))
        log.info("epoch %d/%d loss %.4f PublicTest FER+ acc %.4f (best %.4f @%d) %.0fs", ep + 1, epochs, loss,
                 acc, state["best_acc"], state["best_epoch"], time.time() - t0)
    model.load_weights(best_path)
    return model


def with_mirror(model: Any) -> Any:
    """One graph that averages the model's probabilities over the face and its mirror image (2 invokes' cost)."""
    import tensorflow as tf
    from tensorflow import keras

    inp = keras.Input((INPUT_SIZE, INPUT_SIZE, 1), name="face")
    mirrored = keras.layers.Lambda(lambda t: tf.reverse(t, axis=[2]), name="mirror")(inp)
    out = keras.layers.Average(name="probs_avg")([model(inp), model(mirrored)])
    return keras.Model(inp, out, name=f"{model.name}_mirror")


def export_int8(model: Any, rep: np.ndarray, out_path: Path) -> None:
    """Full-integer int8 TFLite (int8 input and output) calibrated on ``rep`` uint8 faces via to_tensor."""
    import tempfile

    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        sig = [tf.TensorSpec([1, INPUT_SIZE, INPUT_SIZE, 1], tf.float32, name="face")]
        model.export(tmp, format="tf_saved_model", input_signature=sig, verbose=False)
        conv = tf.lite.TFLiteConverter.from_saved_model(tmp)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([to_tensor(face)] for face in rep)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
        out_path.write_bytes(conv.convert())
    log.info("wrote %s (%d bytes)", out_path, out_path.stat().st_size)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"),
                    help="folder holding face/fer2013 and face/ferplus")
    ap.add_argument("--npz", type=Path, help="train on your own npz instead (images + labels or votes [+ usage])")
    ap.add_argument("--out", type=Path, default=Path("models"))
    ap.add_argument("--docs", type=Path, help="where the confusion-matrix PNG goes (default: --out, beside the "
                    "model; the project's card links docs/)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--arch", choices=sorted([*ARCHS, PRETRAINED]), default="medium",
                    help="network (medium: model 0.2.0, small: model 0.1.0, faceapi: the pretrained face-api.js "
                    "expression network fine-tuned; needs scripts/install-models --train)")
    ap.add_argument("--teacher-mix", type=float, default=0.5,
                    help="faceapi only: share of each target taken from the untouched pretrained network")
    ap.add_argument("--teacher-mix-calm", type=float,
                    help="faceapi only: the same share for faces whose votes say neutral or happy (default: "
                    "--teacher-mix)")
    ap.add_argument("--version", help="model version for the manifest entry (default: the shipped model's; needed "
                    "with --npz: your model is not the shipped one)")
    ap.add_argument("--parts", type=float, default=0.3,
                    help="share of training faces with the mouth or eye band hidden (model 0.1.0: 0)")
    ap.add_argument("--scale-range", type=float, nargs=2, default=(0.85, 1.2), metavar=("LO", "HI"),
                    help="random zoom range of the augmentation (model 0.1.0: 0.9 1.12)")
    ap.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=None,
                    help="export one graph averaging face and mirror image (twice the cost; default: on for small "
                    "and medium (model 0.2.0), off for faceapi, whose one pass already costs ~3x theirs)")
    ap.add_argument("--calm-watch", type=float, default=None, metavar="SHARE",
                    help="fit a neutral-logit bias on the validation faces so at most SHARE of those voted neutral "
                    "or happy reach the alert policy's watch level, folded into the model (e.g. 0.02)")
    ap.add_argument("--blend", type=float, metavar="W",
                    help="export as the member that --out's existing face_expression averages in with weight W "
                    "(model 0.3.0: --arch faceapi --teacher-mix 0 --blend 0.5)")
    ap.add_argument("--max-train", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.npz is not None and args.version is None:
        ap.error("--version is needed with --npz (e.g. --version 1.0.0): the model is yours, not the shipped one")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    except RuntimeError:  # TensorFlow already running in this process (e.g. a test): keep its threads
        log.warning("TensorFlow already initialised: --threads %d not applied", args.threads)
    from edge.train.face_eval import FILE, MEMBER_FILE, VERSION, evaluate_and_publish, load_manifest_raw

    if args.blend is not None:
        if not 0.0 < args.blend < 1.0:
            ap.error(f"--blend must be between 0 and 1 (exclusive), got {args.blend}")
        try:
            load_manifest_raw(args.out)["models"]["face_expression"]
        except (OSError, ValueError, KeyError):
            ap.error(f"--blend needs {args.out}/manifest.json with a face_expression entry to blend into")
    t0 = time.time()
    try:
        data = load_custom(args.npz) if args.npz else load_fer(args.data)
    except CustomDataError as exc:
        raise SystemExit(f"error: {exc}") from None
    model = train(data, args.out / "work" / "face", args.epochs, args.resume, args.seed, args.max_train,
                  args.arch, args.parts, tuple(args.scale_range),
                  (args.teacher_mix, args.teacher_mix if args.teacher_mix_calm is None else args.teacher_mix_calm))
    extra: dict[str, Any] = {"arch": args.arch}
    if args.calm_watch is not None:
        from edge.train.face_calibrate import calibrate

        extra["neutral_bias"] = calibrate(model, data, args.calm_watch)
    if args.mirror if args.mirror is not None else args.arch != PRETRAINED:
        model = with_mirror(model)
    train_s = time.time() - t0
    tr = np.flatnonzero(data["keep"] & (data["split"] == "Training"))
    rep = data["x"][np.random.default_rng(0).choice(tr, min(400, len(tr)), replace=False)]
    args.out.mkdir(parents=True, exist_ok=True)
    export_int8(model, rep, args.out / (FILE if args.blend is None else MEMBER_FILE))
    source = str(args.npz) if args.npz else "FER2013 + FER+"
    from edge.train.face_eval import licence_text

    evaluate_and_publish(args.out, args.docs or args.out, data, source, train_s, args.threads,
                         args.version or VERSION, extra, args.blend,
                         licence_text(args.npz.name if args.npz else None, args.arch == PRETRAINED,
                                      max(args.teacher_mix, args.teacher_mix_calm or 0.0)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
