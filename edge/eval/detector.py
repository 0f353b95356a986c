"""``edge-emotion eval detector``: face-detector recall, false detections and speed on faces_wild (640x480 frames).

Every faces_wild photo is letterboxed (scaled to fit, centred, black borders) into a 640x480 frame. Counts are
count-based against the hand counts in ``index.csv`` (the photos have no boxes): found = min(detected, true),
recall = sum(found) / sum(true), false = sum(max(detected - true, 0)). Times are per frame, one thread.
With the fer peer installed it also times the whole face path on the one-face frames: ours (the service's
``FaceAnalyzer.analyze``: detector, customer, crop, int8 model) against fer's own ``detect_emotions`` pipeline
(Haar cascade at fer's defaults + its TFLite model), on the same frames.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.eval.face import DEFAULT_DATA, EvalDataError, machine
from edge.face.detector import FaceDetector, HaarDetector
from edge.runtime import ModelError, load_manifest
from edge.runtime.manifest import default_models_dir
from edge.types import Frame

FRAME_W, FRAME_H = 640, 480


@dataclass(frozen=True)
class WildFrame:
    """One faces_wild photo letterboxed to 640x480 with its hand-counted number of faces."""

    name: str
    image: np.ndarray
    true: int


def letterbox(img: np.ndarray, width: int = FRAME_W, height: int = FRAME_H) -> np.ndarray:
    """Scale ``img`` to fit ``width`` x ``height`` (aspect kept, INTER_AREA down / LINEAR up), centre on black."""
    h, w = img.shape[:2]
    s = min(width / w, height / h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    out = np.zeros((height, width, 3), np.uint8)
    x0, y0 = (width - nw) // 2, (height - nh) // 2
    out[y0:y0 + nh, x0:x0 + nw] = small
    return out


def wild_frames(data_dir: Path, names: Sequence[str] | None = None) -> list[WildFrame]:
    """faces_wild photos (all, or the named files) as 640x480 frames with ``faces_true`` from index.csv."""
    root = data_dir / "face" / "faces_wild"
    index = root / "index.csv"
    if not index.is_file():
        raise EvalDataError(f"faces_wild not found: {index}")
    with open(index, newline="") as fh:
        rows = {r["file"]: int(r["faces_true"]) for r in csv.DictReader(fh)}
    out = []
    for name in names if names is not None else sorted(rows):
        if name not in rows:
            raise EvalDataError(f"{name} is not listed in {index}")
        img = cv2.imread(str(root / "images" / name), cv2.IMREAD_COLOR)
        if img is None:
            raise EvalDataError(f"cannot read {root / 'images' / name}")
        out.append(WildFrame(name, letterbox(img), rows[name]))
    return out


def _timed(fn: Callable[[], Any], repeats: int) -> tuple[Any, list[float], list[float]]:
    """Result of the first call and wall/CPU ms of ``repeats`` further calls."""
    res = fn()
    wall, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.thread_time(), time.perf_counter()
        fn()
        wall.append((time.perf_counter() - t0) * 1000.0)
        cpu.append((time.thread_time() - c0) * 1000.0)
    return res, wall, cpu


def _stats(wall: list[float], cpu: list[float]) -> dict[str, float]:
    return {"ms_median": round(float(np.median(wall)), 3), "ms_p95": round(float(np.percentile(wall, 95)), 3),
            "cpu_ms_median": round(float(np.median(cpu)), 3)}


def bench_counts(detect: Callable[[np.ndarray], int], frames: Sequence[WildFrame], repeats: int = 3
                 ) -> dict[str, Any]:
    """Count-based recall, false detections, exact-count images and per-frame times of a face-count function."""
    per: list[dict[str, Any]] = []
    wall: list[float] = []
    cpu: list[float] = []
    for f in frames:
        n, w, c = _timed(lambda f=f: detect(f.image), repeats)  # type: ignore[misc]
        per.append({"file": f.name, "true": f.true, "detected": int(n)})
        wall += w
        cpu += c
    true = sum(p["true"] for p in per)
    found = sum(min(p["detected"], p["true"]) for p in per)
    return {"frames": len(per), "faces_true": true, "faces_found": found,
            "recall": round(found / true, 4) if true else float("nan"),
            "false_detections": sum(max(p["detected"] - p["true"], 0) for p in per),
            "exact_count_frames": sum(p["detected"] == p["true"] for p in per),
            **_stats(wall or [float("nan")], cpu or [float("nan")]), "per_frame": per}


def bench_detector(detector: FaceDetector, frames: Sequence[WildFrame], repeats: int = 3) -> dict[str, Any]:
    """bench_counts for one of our detectors (``detect`` on the BGR frame)."""
    return bench_counts(lambda img: len(detector.detect(img)), frames, repeats)


def bench_paths(frames: Sequence[WildFrame], models_dir: Path, repeats: int) -> dict[str, Any]:
    """Whole face path per one-face frame: ours (BlazeFace if installed) vs fer's own pipeline, same frames."""
    from edge.eval.peer import FerPeer, FerPipeline
    from edge.face.detector import make_detector
    from edge.face.expression import FaceAnalyzer
    from edge.runtime import load_model

    manifest = load_manifest(models_dir)
    analyzer = FaceAnalyzer(make_detector("auto", manifest, 1), load_model(manifest, "face_expression", 1),
                            min_face_frac=0.0)
    pipe = FerPipeline(FerPeer(models_dir, 1))
    one = [f for f in frames if f.true == 1]
    res: dict[str, Any] = {"frames": len(one), "ours_detector": type(analyzer.detector).__name__}
    for key, fn in (("ours", lambda im: analyzer.analyze(Frame(image=im, t=0.0, seq=0)) is not None),
                    ("fer", lambda im: len(pipe.detect_emotions(im)) > 0)):
        wall, cpu, hits = [], [], 0
        for f in one:
            ok, w, c = _timed(lambda f=f, fn=fn: fn(f.image), repeats)  # type: ignore[misc]
            hits += int(ok)
            wall += w
            cpu += c
        res[key] = {**_stats(wall, cpu), "frames_with_face": hits}
    res["speed_ratio_wall"] = round(res["fer"]["ms_median"] / res["ours"]["ms_median"], 2)
    res["speed_ratio_cpu"] = round(res["fer"]["cpu_ms_median"] / res["ours"]["cpu_ms_median"], 2)
    return res


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Benchmark the detectors (and the face paths); print a table; return the results."""
    cv2.setNumThreads(1)
    models_dir = args.models or default_models_dir()
    frames = wild_frames(args.data, args.files or None)
    dets: dict[str, Callable[[np.ndarray], int]] = {}
    try:
        from edge.face.blazeface import BlazeFaceDetector

        bf = BlazeFaceDetector.from_manifest(load_manifest(models_dir), threads=1)
        dets["BlazeFace short-range (default)"] = lambda img: len(bf.detect(img))
    except ModelError as exc:
        print(f"BlazeFace not benchmarked: {exc} (scripts/install-models)", file=sys.stderr)
    haar = HaarDetector(threads=1)
    dets["Haar (our fallback)"] = lambda img: len(haar.detect(img))
    from edge.eval.peer import FerHaar

    fer_haar = FerHaar()
    dets["Haar at fer's defaults (peer)"] = lambda img: len(fer_haar.find_faces(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)))
    true = sum(f.true for f in frames)
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
                              "frames": len(frames), "faces_true": true, "repeats": args.repeats, "detectors": {}}
    lines = [f"edge-emotion eval detector: faces_wild, {len(frames)} photos letterboxed to {FRAME_W}x{FRAME_H}, "
             f"{true} faces (hand counts), 1 thread, {args.repeats} timed runs per frame",
             f"{'detector':32s} {'recall':>7s} {'false':>6s} {'found/true':>11s} {'exact':>7s} "
             f"{'ms/frame':>9s} {'p95':>7s} {'CPU ms':>7s}"]
    for name, fn in dets.items():
        r = bench_counts(fn, frames, args.repeats)
        result["detectors"][name] = r
        lines.append(f"{name:32s} {r['recall']:7.3f} {r['false_detections']:6d} "
                     f"{r['faces_found']:>5d}/{r['faces_true']:<5d} {r['exact_count_frames']:>3d}/{r['frames']:<3d} "
                     f"{r['ms_median']:9.2f} {r['ms_p95']:7.2f} {r['cpu_ms_median']:7.2f}")
        wrong = [f"{p['file']} {p['detected']}/{p['true']}" for p in r["per_frame"] if p["detected"] != p["true"]]
        if wrong:
            lines.append(f"  count differs (detected/true): {', '.join(wrong)}")
    if not args.no_paths:
        try:
            p = bench_paths(frames, models_dir, args.repeats)
        except ModelError as exc:
            lines.append(f"face path vs fer not timed: {exc}")
        else:
            result["face_path"] = p
            lines.append(f"face path per 640x480 frame, {p['frames']} one-face frames (detect + crop + classify):")
            lines.append(f"  ours ({p['ours_detector']} + face_expression int8): {p['ours']['ms_median']:.2f} ms "
                         f"(p95 {p['ours']['ms_p95']:.2f}, CPU {p['ours']['cpu_ms_median']:.2f}), "
                         f"customer face in {p['ours']['frames_with_face']} frames")
            lines.append(f"  fer own pipeline (Haar + emotion_model_quantized.tflite): {p['fer']['ms_median']:.2f} ms "
                         f"(p95 {p['fer']['ms_p95']:.2f}, CPU {p['fer']['cpu_ms_median']:.2f}), "
                         f"a face in {p['fer']['frames_with_face']} frames")
            lines.append(f"  speed ratio fer / ours: {p['speed_ratio_wall']:.1f}x wall, "
                         f"{p['speed_ratio_cpu']:.1f}x CPU")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "detector.json").write_text(json.dumps(result, indent=1) + "\n")
        lines.append(f"results: {args.out / 'detector.json'}")
    print("\n".join(lines), flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; exit 2 when faces_wild is missing."""
    ap = argparse.ArgumentParser(prog="edge-emotion eval detector", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="research data root (face/faces_wild)")
    ap.add_argument("--files", nargs="*", help="only these faces_wild files (default: all 64)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per frame")
    ap.add_argument("--no-paths", action="store_true", help="skip the face-path timing against the fer peer")
    ap.add_argument("--models", type=Path, help="models folder with manifest.json (default: the project's)")
    ap.add_argument("--out", type=Path, default=Path("models/work/eval"), help="where detector.json goes")
    args = ap.parse_args(argv)
    try:
        run(args)
    except EvalDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
