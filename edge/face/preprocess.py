"""The one face preprocessing shared by training and runtime: FER2013-like square crop and tensor scaling."""

from __future__ import annotations

import cv2
import numpy as np

from edge.types import FaceBox

INPUT_SIZE = 48

# Margin added on each side of a detector box, as a fraction of the box side. FER2013 faces were framed by
# a (Haar-like) detector: OpenCV Haar boxes on 4x-upscaled FER2013 Training faces are centred and cover a median
# 0.974 of the side (IQR 0.91-1.04, n=475), so margin = (1 / 0.974 - 1) / 2 ~= 0.015 for Haar boxes.
DEFAULT_MARGIN = 0.015


def to_gray(image: np.ndarray) -> np.ndarray:
    """Return a uint8 single-channel view of a BGR, BGRA or grayscale image."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        img = cv2.cvtColor(img, code)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    return img


def square_region(box: FaceBox, margin: float = DEFAULT_MARGIN) -> tuple[int, int, int]:
    """Integer (x0, y0, side) of the square around ``box`` grown by ``margin`` of its side on each edge."""
    cx, cy = box.center
    side = max(box.w, box.h) * (1.0 + 2.0 * margin)
    side_i = max(1, int(round(side)))
    x0 = int(round(cx - side_i / 2.0))
    y0 = int(round(cy - side_i / 2.0))
    return x0, y0, side_i


def crop_face(image_bgr_or_gray: np.ndarray, box: FaceBox, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """Square grayscale crop around ``box`` (edge-replicated outside the frame), resized to INPUT_SIZE."""
    gray = to_gray(image_bgr_or_gray)
    h, w = gray.shape
    x0, y0, side = square_region(box, margin)
    pad_l, pad_t = max(0, -x0), max(0, -y0)
    pad_r, pad_b = max(0, x0 + side - w), max(0, y0 + side - h)
    if pad_l or pad_t or pad_r or pad_b:
        if pad_l >= side or pad_t >= side or pad_r >= side or pad_b >= side:
            return np.zeros((INPUT_SIZE, INPUT_SIZE), np.uint8)
        gray = cv2.copyMakeBorder(gray, pad_t, pad_b, pad_l, pad_r, cv2.BORDER_REPLICATE)
        x0 += pad_l
        y0 += pad_t
    patch = gray[y0:y0 + side, x0:x0 + side]
    interp = cv2.INTER_AREA if side > INPUT_SIZE else cv2.INTER_LINEAR
    return cv2.resize(patch, (INPUT_SIZE, INPUT_SIZE), interpolation=interp)


def to_tensor(gray: np.ndarray) -> np.ndarray:
    """float32 tensor in [0, 1] shaped (N, 48, 48, 1) from one (48, 48) or a batch (N, 48, 48) of uint8 faces."""
    arr = np.asarray(gray)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.shape[1:] != (INPUT_SIZE, INPUT_SIZE):
        raise ValueError(f"expected (N, {INPUT_SIZE}, {INPUT_SIZE}) faces, got {arr.shape}")
    return (arr.astype(np.float32) / 255.0)[..., None]
