"""Generate demo media from public-domain material: a counter scene with a portrait, and synthetic speech.

The portrait is Grace Hopper's official US Navy photograph (public domain), which matplotlib ships as
sample data; the speech is produced by espeak-ng. No corpus data is used, so the demo can be redistributed.
"""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import soundfile as sf

log = logging.getLogger(__name__)

W, H, FPS, RATE = 640, 480, 15, 16000
# (start_s, end_s) while the customer stands at the counter, per 60 s cycle.
PRESENT = ((3.0, 38.0), (48.0, 58.0))
LINES = (
    "Good morning. I would like to open an account, please.",
    "I have been waiting here for forty minutes already.",
    "Why does this take so long? I filled in the form twice!",
    "This is really not acceptable. I want to speak to a manager.",
    "All right. Thank you for explaining it to me.",
    "Yes, that works for me. Thank you very much.",
)


def _portrait() -> np.ndarray:
    try:
        from matplotlib import cbook
    except ImportError as exc:  # pragma: no cover - the demo extra installs matplotlib
        raise RuntimeError("the demo needs matplotlib's sample portrait: pip install 'edge-emotion[demo]'") from exc
    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    img = cv2.imread(str(path))
    if img is None:
        raise RuntimeError(f"cannot read the sample portrait {path}")
    return img


def _present(t: float, seconds: float) -> bool:
    c = t % 60.0
    return any(a <= c < b for a, b in PRESENT) and t < seconds


def _scene(portrait: np.ndarray, t: float, present: bool) -> np.ndarray:
    """One 640x480 frame: a counter background, a staff side on the left, the customer in the middle."""
    frame = np.zeros((H, W, 3), np.uint8)
    frame[:] = np.linspace(60, 120, H, dtype=np.uint8)[:, None, None]
    cv2.rectangle(frame, (0, int(H * 0.8)), (W, H), (40, 60, 90), -1)  # the counter top
    if present:
        scale = 0.62 + 0.02 * np.sin(t * 0.9)
        ph, pw = int(portrait.shape[0] * scale), int(portrait.shape[1] * scale)
        p = cv2.resize(portrait, (pw, ph), interpolation=cv2.INTER_AREA)
        x = int(W / 2 - pw / 2 + 12 * np.sin(t * 0.7))
        y = int(H * 0.02 + 6 * np.sin(t * 1.3))
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + pw, W), min(y + ph, int(H * 0.8))
        frame[y0:y1, x0:x1] = p[y0 - y:y1 - y, x0 - x:x1 - x]
    return frame


def _speech(text: str) -> np.ndarray:
    exe = shutil.which("espeak-ng")
    if exe is None:
        return np.zeros(0, np.float32)
    wav = subprocess.run([exe, "--stdout", "-s", "150", "-v", "en", text], capture_output=True, check=True).stdout
    data, rate = sf.read(io.BytesIO(wav), dtype="float32")
    if data.ndim > 1:
        data = data.mean(axis=1)
    n = int(len(data) * RATE / rate)
    return np.interp(np.linspace(0, len(data) - 1, n), np.arange(len(data)), data).astype(np.float32)


def make_demo(outdir: Path, seconds: float = 60.0) -> tuple[Path, Path]:
    """Write ``demo.mp4`` (15 fps, 640x480) and ``demo.wav`` (16 kHz mono) into ``outdir``."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    video, audio = outdir / "demo.mp4", outdir / "demo.wav"
    # written under temporary names and renamed when complete: an interrupted run leaves no half file that the next
    # `scripts/demo` (which only checks that both exist) would take as the demo
    video_tmp, audio_tmp = outdir / "demo.part.mp4", outdir / "demo.part.wav"  # the container follows the suffix
    portrait = _portrait()
    writer = cv2.VideoWriter(str(video_tmp), cv2.VideoWriter.fourcc(*"mp4v"), FPS, (W, H))
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {video} (OpenCV has no mp4v encoder?)")
    for i in range(int(seconds * FPS)):
        t = i / FPS
        writer.write(_scene(portrait, t, _present(t, seconds)))
    writer.release()
    track = np.zeros(int(seconds * RATE), np.float32)
    rng = np.random.default_rng(7)
    track += rng.normal(0, 0.002, track.size).astype(np.float32)  # a quiet room, not digital silence
    t, k = PRESENT[0][0] + 1.0, 0
    while t < seconds:
        if _present(t, seconds):
            clip = _speech(LINES[k % len(LINES)]) * (0.5 if k % len(LINES) in (2, 3) else 0.3)
            a = int(t * RATE)
            b = min(a + clip.size, track.size)
            track[a:b] += clip[: b - a]
            t += clip.size / RATE + 1.5
            k += 1
        else:
            t += 1.0
    sf.write(str(audio_tmp), np.clip(track, -1, 1), RATE, subtype="PCM_16", format="WAV")
    video_tmp.replace(video)
    audio_tmp.replace(audio)
    log.info("demo media written: %s, %s", video, audio)
    return video, audio
