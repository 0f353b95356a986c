"""Face detectors behind one protocol: OpenCV Haar cascade (always available) and BlazeFace (optional file)."""

from __future__ import annotations

import logging
from typing import Protocol

import cv2
import numpy as np

from edge.face.preprocess import DEFAULT_MARGIN, to_gray
from edge.runtime import Manifest, ModelError
from edge.types import FaceBox

log = logging.getLogger(__name__)

HAAR_FILE = "haarcascade_frontalface_default.xml"


class FaceDetector(Protocol):
    """Anything that returns face boxes (pixel coordinates of the given frame) for a BGR frame."""

    crop_margin: float

    def detect(self, image_bgr: np.ndarray) -> list[FaceBox]:
        """Detect faces in a BGR (or grayscale) uint8 frame."""
        ...


class HaarDetector:
    """OpenCV frontal-face Haar cascade; frames are downscaled to ``max_side`` for speed."""

    crop_margin = DEFAULT_MARGIN  # Haar boxes already frame faces like FER2013 (see preprocess.py)

    def __init__(self, min_size: int = 40, scale_factor: float = 1.1, min_neighbors: int = 5,
                 max_side: int = 640, threads: int = 1) -> None:
        """Load the cascade shipped with opencv-python; ``min_size`` is in pixels of the original frame."""
        path = cv2.data.haarcascades + HAAR_FILE  # type: ignore[attr-defined]
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise ModelError(f"cannot load Haar cascade {path}")
        self.min_size = int(min_size)
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.max_side = int(max_side)
        cv2.setNumThreads(int(threads))

    def detect(self, image_bgr: np.ndarray) -> list[FaceBox]:
        """Detect faces; score is a heuristic in [0, 1] from the number of merged neighbour detections."""
        gray = to_gray(image_bgr)
        h, w = gray.shape
        s = min(1.0, self.max_side / float(max(h, w)))
        small = cv2.resize(gray, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA) \
            if s < 1.0 else gray
        small = cv2.equalizeHist(small)
        ms = max(12, int(round(self.min_size * s)))
        rects, counts = self._cascade.detectMultiScale2(
            small, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(ms, ms))
        boxes = []
        for (x, y, bw, bh), n in zip(np.asarray(rects).reshape(-1, 4), np.asarray(counts).reshape(-1), strict=True):
            score = float(min(1.0, 0.5 + float(n) / 50.0))
            boxes.append(FaceBox(float(x / s), float(y / s), float(bw / s), float(bh / s), score))
        return boxes


def make_detector(kind: str, manifest: Manifest | None, threads: int = 1) -> FaceDetector:
    """Build "haar", "blazeface" or "auto" (BlazeFace when its file is installed and verifies, else Haar)."""
    kind = kind.lower()
    if kind not in ("auto", "blazeface", "haar"):
        raise ValueError(f"unknown face detector {kind!r} (expected auto, blazeface or haar)")
    if kind == "haar":
        log.info("face detector: OpenCV Haar cascade")
        return HaarDetector(threads=threads)
    try:
        if manifest is None:
            raise ModelError("no model manifest given")
        from edge.face.blazeface import BlazeFaceDetector

        det = BlazeFaceDetector.from_manifest(manifest, threads=threads)
        log.info("face detector: BlazeFace short-range (%s)", manifest.get("face_detector").path)
        return det
    except (ModelError, ImportError) as exc:
        if kind == "blazeface":
            raise
        present = False
        if manifest is not None and "face_detector" in manifest.models:
            present = manifest.models["face_detector"].path.exists()
        if present:  # there but failing its checks (sha256, shapes): a fault, never a quiet fall-back to Haar
            raise ModelError(f"face detector file is installed but unusable: {exc} (reinstall it with "
                             "scripts/install-models, or set analysis.face_detector = \"haar\")") from exc
        log.info("face detector: BlazeFace not installed (%s); using OpenCV Haar cascade", exc)  # optional file
        return HaarDetector(threads=threads)
