"""The zones drawing of the privacy report: staff polygons hatched, the customer zone outlined (zones.png)."""

from __future__ import annotations

import cv2
import numpy as np

from edge.config import KioskConfig
from edge.privacy.masking import zone_pixels


def draw_zones(cfg: KioskConfig, width: int | None = None, height: int | None = None) -> np.ndarray:
    """A blank frame outline with the staff polygons hatched red and the customer zone drawn green (BGR)."""
    w, h = width or cfg.camera.width or 640, height or cfg.camera.height or 480
    img = np.full((h, w, 3), 255, np.uint8)
    cv2.rectangle(img, (0, 0), (w - 1, h - 1), (60, 60, 60), 2)
    hatch = np.full_like(img, 255)
    for k in range(-h, w, 14):
        cv2.line(hatch, (k, h), (k + h, 0), (40, 40, 200), 2)
    for zone in cfg.privacy.staff_zones:
        pts = zone_pixels(zone, w, h)
        mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(mask, [pts], 255)
        img[mask > 0] = hatch[mask > 0]
        cv2.polylines(img, [pts], True, (40, 40, 200), 3)
        x, y = pts.mean(axis=0).astype(int)
        _label(img, "STAFF: masked", (int(x) - 60, int(y)), (40, 40, 200))
    x0, y0, x1, y1 = cfg.analysis.customer_zone
    p0, p1 = (int(x0 * (w - 1)), int(y0 * (h - 1))), (int(x1 * (w - 1)), int(y1 * (h - 1)))
    cv2.rectangle(img, p0, p1, (40, 150, 40), 3)
    _label(img, "CUSTOMER ZONE: faces analysed", (p0[0] + 8, p1[1] - 12), (40, 150, 40))
    return img


def _label(img: np.ndarray, text: str, org: tuple[int, int], color: tuple[int, int, int]) -> None:
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    x, y = max(2, org[0]), max(th + 4, org[1])
    cv2.rectangle(img, (x - 3, y - th - 4), (x + tw + 3, y + 4), (255, 255, 255), -1)
    cv2.putText(img, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA)
