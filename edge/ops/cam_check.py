"""``edge-emotion check-camera``: does the counter camera show the customer's face the way the expression model needs?

The expression model reads a 48x48 grey crop and was trained on FER2013 faces; measured on FER+ PrivateTest faces
degraded like kiosk crops (``edge-emotion eval face-slices``, docs/bench/face_slices.md), small faces, blur, low light
and strong roll cost accuracy and, above all, angry faces reaching the watch level. Someone stands or sits where
customers do for a few seconds; per frame the service's own path finds the customer's face (staff zones blanked,
customer zone, smallest face), and this reports the face size in pixels, the crop's brightness, contrast and
sharpness (against the training faces' range) and the eye line's roll, with what to change. Frames stay in memory and
are dropped: nothing is stored or sent. ``assess`` and ``measure`` are pure. Sensor noise raises the sharpness figure
(Laplacian energy): a blurred face in a noisy, dark image can read as sharp enough.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from edge.types import FaceBox

# FER2013 PrivateTest crops (3,589): brightness (mean grey) 1st / 5th / 95th / 99th percentiles 50 / 74 / 183 / 205,
# contrast (grey std) 1st / 5th 24 / 32.5, relative sharpness (Laplacian variance / grey variance) 1st / 5th 0.20 /
# 0.32; blurred (sigma 1.5) crops median 0.02, faces 24 / 32 px wide 0.08 / 0.15 (measured 2026-12-05, see the card).
DARK, DIM, BRIGHT, GLARE = 50.0, 74.0, 183.0, 205.0
FLAT, SOFT_CONTRAST = 24.0, 32.5
BLURRED, SOFT = 0.10, 0.20
SMALL_PX, MODEST_PX = 32.0, 48.0  # face height: under 32 px a problem, under 48 (the model's input) a warning
ROLL_DEG = 20.0  # median eye-line tilt over which the camera should be levelled
MIN_FACE_SHARE = 0.5  # share of the checked frames that must show a customer face


@dataclass
class FaceSample:
    """One frame's customer face: its height in pixels, its 48x48 crop's statistics and its eye-line roll."""

    face_px: float
    brightness: float
    contrast: float
    sharpness: float
    roll_deg: float | None


@dataclass
class CameraReport:
    """What the check measured and concludes; ``problems`` empty means the camera is usable."""

    frames: int
    faces: list[FaceSample]
    too_small: int  # frames whose faces were all under analysis.min_face_frac
    outside_zone: int  # frames whose faces were all outside the customer zone
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing needs changing before the kiosk goes live."""
        return not self.problems


def roll_of(box: FaceBox) -> float | None:
    """Eye-line angle in degrees from the detector's first two keypoints (BlazeFace: the eyes), None without them."""
    if len(box.keypoints) < 2:
        return None
    (x0, y0), (x1, y1) = box.keypoints[0], box.keypoints[1]
    a = math.degrees(math.atan2(y1 - y0, x1 - x0))
    return (a + 90.0) % 180.0 - 90.0  # either eye first: the line's tilt, -90..90


def measure(box: FaceBox, crop48: np.ndarray) -> FaceSample:
    """The figures of one customer face from its box and the model's 48x48 grey crop."""
    x = np.asarray(crop48, np.float64)
    var = float(x.var())
    sharp = float(cv2.Laplacian(x, cv2.CV_64F).var()) / var if var > 1e-6 else 0.0
    return FaceSample(float(box.h), float(x.mean()), float(x.std()), sharp, roll_of(box))


def _median(values: list[float]) -> float:
    return float(np.median(np.asarray(values, np.float64)))


def assess(frames: int, faces: list[FaceSample], too_small: int = 0, outside_zone: int = 0,
           min_face_px: float | None = None) -> CameraReport:
    """Report over ``frames`` checked frames, ``faces`` the customer faces found in them; ``min_face_px``: the
    smallest face the kiosk analyses (analysis.min_face_frac of the frame height)."""
    rep = CameraReport(frames, faces, too_small, outside_zone)
    if frames == 0:
        rep.problems.append("no frames could be read from the camera")
        return rep
    if len(faces) < MIN_FACE_SHARE * frames:
        why = []
        if too_small:
            lower = min_face_px is None or min_face_px >= MODEST_PX  # lowering it must not admit faces under 32 px
            why.append(f"in {too_small} frames the faces were smaller than analysis.min_face_frac of the frame "
                       "height (move the camera closer or zoom in" + (", or lower min_face_frac)" if lower else ")"))
        if outside_zone:
            why.append(f"in {outside_zone} frames the faces were outside analysis.customer_zone (aim the camera or "
                       "widen the zone)")
        rep.problems.append(f"a customer face in only {len(faces)} of {frames} frames: stand or sit where customers "
                            "do and face the camera" + ("; " + "; ".join(why) if why else ""))
        if not faces:
            return rep
    px = _median([f.face_px for f in faces])
    if px < SMALL_PX:
        rep.problems.append(f"the face is {px:.0f} px tall: under {SMALL_PX:.0f} px the model loses most of the "
                            "expression (move the camera closer, zoom in or raise the capture resolution)")
    elif px < MODEST_PX:
        rep.warnings.append(f"the face is {px:.0f} px tall, less than the model's 48 px input: readings lose some "
                            "accuracy (closer or a higher resolution helps)")
    light = _median([f.brightness for f in faces])
    if light < DARK or light > GLARE:
        rep.problems.append(f"the face is {'too dark' if light < DARK else 'overexposed'} (mean grey {light:.0f} of "
                            f"255; training faces {DARK:.0f}-{GLARE:.0f}): light the customer's side of the counter, "
                            "or fix the camera's exposure (a window behind the customer darkens the face)")
    elif light < DIM or light > BRIGHT:
        rep.warnings.append(f"the face is {'dim' if light < DIM else 'bright'} (mean grey {light:.0f}; most training "
                            f"faces {DIM:.0f}-{BRIGHT:.0f})")
    contrast = _median([f.contrast for f in faces])
    if not DARK <= light <= GLARE:
        pass  # the exposure problem above explains the contrast too
    elif contrast < FLAT:
        rep.problems.append(f"the face has little contrast (grey std {contrast:.0f}; training faces above "
                            f"{FLAT:.0f}): backlight or haze; light the face from the front")
    elif contrast < SOFT_CONTRAST:
        rep.warnings.append(f"the face's contrast is low (grey std {contrast:.0f})")
    sharp = _median([f.sharpness for f in faces])
    if sharp < BLURRED:
        rep.problems.append(f"the face is blurred (relative sharpness {sharp:.2f}; training faces above "
                            f"{SOFT:.2f}): focus the camera, or move it closer")
    elif sharp < SOFT:
        rep.warnings.append(f"the face is softer than most training faces (relative sharpness {sharp:.2f})")
    rolls = [f.roll_deg for f in faces if f.roll_deg is not None]
    if rolls and abs(_median(rolls)) > ROLL_DEG:
        rep.warnings.append(f"faces appear tilted by {_median(rolls):.0f} degrees: level the camera")
    return rep


def render(rep: CameraReport) -> str:
    """Human-readable report: figures, problems, warnings, verdict."""
    lines = [f"{rep.frames} frames, a customer face in {len(rep.faces)}"]
    if rep.faces:
        rolls = [f.roll_deg for f in rep.faces if f.roll_deg is not None]
        lines.append(f"median face {_median([f.face_px for f in rep.faces]):.0f} px tall, brightness "
                     f"{_median([f.brightness for f in rep.faces]):.0f}, contrast "
                     f"{_median([f.contrast for f in rep.faces]):.0f}, sharpness "
                     f"{_median([f.sharpness for f in rep.faces]):.2f}"
                     + (f", roll {_median(rolls):.0f} degrees" if rolls else ""))
    lines.append(f"usable: face at least {SMALL_PX:.0f} px tall (48 or more is best), brightness "
                 f"{DARK:.0f}-{GLARE:.0f}, contrast above {FLAT:.0f}, sharpness above {BLURRED:.2f}")
    lines += [f"PROBLEM: {p}" for p in rep.problems] + [f"warning: {w}" for w in rep.warnings]
    lines.append("OK: the expression model can use this view" if rep.ok else "NOT OK: fix the problem(s) above and "
                 "check again")
    return "\n".join(lines)
