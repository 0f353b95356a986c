"""Kiosk-condition augmentation of 48x48 grey training faces (geometry, light, blur, noise, occlusion)."""

from __future__ import annotations

import cv2
import numpy as np

from edge.face.preprocess import INPUT_SIZE


def occlude_parts(f: np.ndarray, rng: np.random.Generator, rate: float) -> None:
    """Hide the mouth band (2/3 of picks) or the eye band of ``rate`` of float faces in place, so no class can
    rest on one part of the face alone (FER2013 anger is mostly an open mouth; posed anger elsewhere is the brows)."""
    for j in np.flatnonzero(rng.random(len(f)) < rate):
        y0, y1 = (29, 46) if rng.random() < 2 / 3 else (9, 24)
        y0 += int(rng.integers(-2, 3))
        f[j, y0:y1 + int(rng.integers(-2, 3))] = float(f[j].mean()) + rng.normal(0, 0.03)


def augment(x: np.ndarray, rng: np.random.Generator, parts: float = 0.0,
            scale_range: tuple[float, float] = (0.9, 1.12)) -> np.ndarray:
    """Kiosk-condition augmentation of uint8 (N,48,48) faces: geometry, flip, light, blur, noise, occlusion."""
    n = len(x)
    out = np.empty_like(x)
    c = INPUT_SIZE / 2.0
    ang, scale = rng.uniform(-12, 12, n), rng.uniform(*scale_range, n)
    shift = rng.uniform(-3, 3, (n, 2))
    flip = rng.random(n) < 0.5
    for i in range(n):
        m = cv2.getRotationMatrix2D((c, c), float(ang[i]), float(scale[i]))
        m[:, 2] += shift[i]
        img = x[i][:, ::-1] if flip[i] else x[i]
        out[i] = cv2.warpAffine(np.ascontiguousarray(img), m, (INPUT_SIZE, INPUT_SIZE),
                                flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    blur = np.flatnonzero(rng.random(n) < 0.15)
    for j in blur:
        k = int(rng.choice([3, 5]))
        out[j] = cv2.GaussianBlur(out[j], (k, k), 0)
    f = out.astype(np.float32) / 255.0
    f = f ** rng.uniform(0.6, 1.6, (n, 1, 1))
    mean = f.mean((1, 2), keepdims=True)
    f = (f - mean) * rng.uniform(0.6, 1.4, (n, 1, 1)) + mean + rng.uniform(-0.15, 0.15, (n, 1, 1))
    f += rng.normal(0, 1, f.shape).astype(np.float32) * rng.uniform(0, 0.03, (n, 1, 1))
    occ = np.flatnonzero(rng.random(n) < 0.2)
    for j in occ:
        hh, ww = rng.integers(8, 20, 2)
        y0, x0 = rng.integers(0, INPUT_SIZE - hh), rng.integers(0, INPUT_SIZE - ww)
        f[j, y0:y0 + hh, x0:x0 + ww] = rng.uniform(0, 1)
    if parts:
        occlude_parts(f, rng, parts)
    return np.clip(f * 255.0 + 0.5, 0, 255).astype(np.uint8)
