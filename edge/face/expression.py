"""Customer face selection and expression classification into a face Reading."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from edge.face.detector import FaceDetector
from edge.face.preprocess import DEFAULT_MARGIN, crop_face, square_region, to_tensor
from edge.privacy.masking import Zone, blank, staff_mask, staff_share
from edge.runtime import Model, ModelError
from edge.types import EMOTIONS, FaceBox, Frame, Reading

log = logging.getLogger(__name__)

# Other spellings of our classes that a declared model label may use (FER+ names, contempt folded into disgust).
# A face whose crop (the pixels the model would see) lies more than this share inside a staff zone is a staff
# member leaning across the zone's edge (the detector still finds the unmasked part): never the customer.
MAX_STAFF_OVERLAP = 0.05
LABEL_ALIASES = {"happiness": "happy", "sadness": "sad", "anger": "angry", "contempt": "disgust",
                 "fearful": "fear", "surprised": "surprise", "disgusted": "disgust"}


def label_map(labels: tuple[str, ...] | list[str], n_outputs: int) -> np.ndarray:
    """Matrix (n_outputs, len(EMOTIONS)) that sums model outputs onto EMOTIONS by declared label name."""
    if len(labels) != n_outputs:
        raise ModelError(f"model declares {len(labels)} labels for {n_outputs} outputs; labels must be declared")
    m = np.zeros((n_outputs, len(EMOTIONS)), np.float32)
    names = [LABEL_ALIASES.get(raw.lower(), raw.lower()) for raw in labels]
    unknown = [raw for raw, name in zip(labels, names, strict=True) if name not in EMOTIONS]
    if unknown:  # a misspelt label dropped its output's probability without a word
        raise ModelError(f"face model labels {unknown} are not product emotions {EMOTIONS} nor aliases of one "
                         f"({', '.join(sorted(LABEL_ALIASES))})")
    if len({raw.lower() for raw in labels}) != len(labels):
        raise ModelError(f"face model labels repeat a class: {list(labels)}")
    for i, name in enumerate(names):  # an alias may share a class on purpose (contempt counts as disgust)
        m[i, EMOTIONS.index(name)] = 1.0
    return m


def select_customer(boxes: list[FaceBox], frame_shape: tuple[int, ...],
                    zone: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0),
                    min_face_frac: float = 0.05) -> FaceBox | None:
    """Largest face whose centre is inside the normalised zone (x0, y0, x1, y1) and tall enough, else None."""
    h, w = float(frame_shape[0]), float(frame_shape[1])
    x0, y0, x1, y1 = zone
    best: FaceBox | None = None
    for b in boxes:
        cx, cy = b.center
        if not (x0 * w <= cx <= x1 * w and y0 * h <= cy <= y1 * h):
            continue
        if b.h < min_face_frac * h:
            continue
        if best is None or b.w * b.h > best.w * best.h:
            best = b
    return best


def confidence_of(probs: np.ndarray, det_score: float) -> float:
    """Confidence in [0, 1]: mean of top probability and (1 - normalised entropy), scaled by detector score."""
    p = np.clip(np.asarray(probs, np.float64), 1e-12, 1.0)
    p = p / p.sum()
    certainty = 0.5 * float(p.max()) + 0.5 * (1.0 - float(-(p * np.log(p)).sum()) / math.log(len(p)))
    return float(np.clip(certainty * (0.5 + 0.5 * float(np.clip(det_score, 0.0, 1.0))), 0.0, 1.0))


class FaceAnalyzer:
    """Detect faces, pick the customer, classify their expression into a Reading over EMOTIONS."""

    def __init__(self, detector: FaceDetector, model: Model,
                 customer_zone: tuple[float, float, float, float] = (0, 0, 1, 1),
                 min_face_frac: float = 0.05, staff_zones: Sequence[Zone] = ()) -> None:
        """Bind a detector and a verified expression model; labels come from the model's manifest entry."""
        self.detector = detector
        self.model = model
        self._mask_cache: tuple[tuple[object, ...], np.ndarray] | None = None
        self.configure(customer_zone, min_face_frac, staff_zones)
        n_out = int(model.spec.output.shape[-1])
        self._map = label_map(model.spec.labels, n_out)
        self._margin = float(getattr(detector, "crop_margin", DEFAULT_MARGIN))

    def configure(self, customer_zone: tuple[float, float, float, float], min_face_frac: float,
                  staff_zones: Sequence[Zone]) -> None:
        """Set the zones (also live, from remote config): each attribute is swapped whole, never edited in place."""
        z = customer_zone
        self.customer_zone = (float(z[0]), float(z[1]), float(z[2]), float(z[3]))
        self.min_face_frac = float(min_face_frac)
        self.staff_zones = tuple(tuple((float(x), float(y)) for x, y in z) for z in staff_zones)

    def _staff_mask(self, zones: tuple[tuple[tuple[float, float], ...], ...], width: int, height: int) -> np.ndarray:
        """The pixel mask of ``zones`` for this frame size, kept until the zones or the size change. The cache is one
        (key, mask) tuple, read and replaced whole: a live ``configure`` on another thread can never pair a key
        with another key's mask (two attributes could be interleaved into a valid key over an empty mask)."""
        key = (zones, width, height)
        cached = self._mask_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        mask = staff_mask(zones, width, height)
        self._mask_cache = (key, mask)
        return mask

    def classify(self, face48: np.ndarray) -> np.ndarray:
        """Probabilities over EMOTIONS (float32, sums to 1) for one uint8 48x48 face crop."""
        out = self.model.infer(to_tensor(face48)).reshape(-1)
        probs = np.clip(out, 0.0, None) @ self._map
        s = float(probs.sum())
        if s <= 0:
            return np.full(len(EMOTIONS), 1.0 / len(EMOTIONS), np.float32)
        return (probs / s).astype(np.float32)

    def find_customer(self, image: np.ndarray) -> tuple[list[FaceBox], FaceBox | None, np.ndarray | None]:
        """(faces outside the staff zones, the customer's, their 48x48 crop) in a frame; the crop None without one."""
        # Staff pixels are blanked in a copy before anything looks at the frame: the single entry point for
        # the service, replay and the camera check, so no path can skip it.
        zones = self.staff_zones  # read once: a live reconfiguration applies from the next frame
        mask = self._staff_mask(zones, image.shape[1], image.shape[0]) if zones else None
        if mask is not None:
            image = blank(image, mask)  # the zones rasterised once per frame size, not for every frame
        boxes = self.detector.detect(image)
        if mask is not None:  # a face leaning across a staff zone's edge is half blanked, not a customer's
            boxes = [b for b in boxes if staff_share(mask, *square_region(b, self._margin)) <= MAX_STAFF_OVERLAP]
        box = select_customer(boxes, image.shape, self.customer_zone, self.min_face_frac)
        return boxes, box, None if box is None else crop_face(image, box, self._margin)

    def analyze(self, frame: Frame) -> Reading | None:
        """Reading for the customer's face in ``frame``, or None when no customer face is visible."""
        image = frame.image
        boxes, box, crop = self.find_customer(image)
        if box is None or crop is None:
            return None
        probs = self.classify(crop)
        return Reading(
            modality="face", t=frame.t, probs=probs, confidence=confidence_of(probs, box.score),
            extra={"face_frac": float(box.h) / float(image.shape[0]), "det_score": float(box.score),
                   "faces": float(len(boxes))},
        )
