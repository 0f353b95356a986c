"""Camera capture thread: reads frames into a DropQueue and never does inference.

Live sources (devices, GStreamer, RTSP) and looping files that fail are reopened with exponential back-off
(``reopen_min_s`` .. ``reopen_max_s``) while the rest of the kiosk keeps running. A file that cannot be
opened at start, when not looping, is "failed"; a non-looping file that reaches its end is "ended".

Pacing (files only): "realtime" plays at the file's frame rate and the queue drops the oldest frame when
the analyser is slower (the consumer should use ``drain_latest``). "fast" reads as fast as decoding allows
for evaluation; the producer still never waits, so the consumer should use ``get`` and keep up, and any
frame it could not take is counted in ``dropped``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.capture.media import (
    Capture,
    MediaError,
    classify_video_source,
    clip,
    file_fps,
    open_video,
    redact,
    source_label,
)
from edge.config import CameraConfig
from edge.queues import DropQueue
from edge.types import Frame

log = logging.getLogger(__name__)

_FPS_WINDOW_S = 5.0
_MAX_LAG_S = 1.0  # realtime pacing: further behind than this, re-anchor instead of bursting


class VideoSource(threading.Thread):
    """Thread that captures frames from ``cfg.source`` into ``out`` until ``stop`` is set."""

    def __init__(self, cfg: CameraConfig, out: DropQueue[Frame], stop: threading.Event,
                 resolve: Callable[[str], Path] = Path, clock: Callable[[], float] = time.monotonic,
                 opener: Callable[[str, str], Capture] | None = None) -> None:
        """Prepare (not start) capture; ``opener(source, kind)`` replaces ``open_video`` in tests."""
        super().__init__(name="capture-video", daemon=True)
        self.cfg = cfg
        self.out = out
        self.stop_event = stop
        self.stopped_on_request = False  # set when run() returns: whether it left because of the stop event
        self.clock = clock
        self.kind = classify_video_source(cfg.source, cfg.kind, resolve)
        self.source = str(resolve(cfg.source)) if self.kind == "file" else cfg.source
        self._opener: Callable[[str, str], Capture] = opener or open_video
        self._lock = threading.Lock()
        self._times: deque[float] = deque()
        self.state = "starting"
        self.error: str | None = None
        self.frames_in = 0
        self.reopens = 0
        self._seq = 0

    # -- public -------------------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Snapshot: state, error, frames_in, fps_in (last ~5 s), reopens, dropped."""
        with self._lock:
            now = time.monotonic()
            while self._times and now - self._times[0] > _FPS_WINDOW_S:
                self._times.popleft()
            n = len(self._times)
            span = self._times[-1] - self._times[0] if n >= 2 else 0.0
            fps = (n - 1) / span if span > 0 else 0.0
            return {"state": self.state, "error": self.error, "frames_in": self.frames_in,
                    "fps_in": round(fps, 2), "reopens": self.reopens, "dropped": self.out.dropped}

    def run(self) -> None:
        """Capture loop: open, read, reopen with back-off, until stopped, ended or failed."""
        try:
            self._capture()
        finally:  # left because the service stopped: not a fault, whatever its last state says
            self.stopped_on_request = self.stop_event.is_set()

    def _capture(self) -> None:
        label = source_label(self.source, self.kind)
        is_file = self.kind == "file"
        backoff = self.cfg.reopen_min_s
        opened_once = False
        while not self.stop_event.is_set():
            try:
                cap = self._opener(self.source, self.kind)
            except MediaError as exc:
                if is_file and not (self.cfg.loop and opened_once):
                    self._set("failed", str(exc))
                    log.error("%s", exc)
                    return
                backoff = self._lost(str(exc), backoff)
                continue
            except Exception as exc:  # an OpenCV/driver error must not kill the kiosk
                backoff = self._lost(f"{label}: cannot open ({exc})", backoff)
                continue
            opened_once = True
            try:
                reason, delivered = self._pump(cap, label)
            except Exception as exc:
                reason, delivered = f"{label}: read error ({exc})", 0
            finally:
                cap.release()
            if delivered:
                backoff = self.cfg.reopen_min_s
            if reason is None:  # stopped
                return
            if reason == "eof":
                if not self.cfg.loop and self.frames_in == 0:  # opened, yet not one frame: not a video it can read
                    self._set("failed", f"{label}: not a readable video (no frames decoded)")
                    log.error("%s: not a readable video (no frames decoded)", label)
                    return
                if not self.cfg.loop:
                    self._set("ended", None)
                    log.info("%s: end of file", label)
                    return
                if delivered:
                    continue  # restart the file at once
                reason = f"{label}: no frames decoded"
            backoff = self._lost(reason, backoff)

    # -- internals ----------------------------------------------------------------------------------------
    def _set(self, state: str, error: str | None) -> None:
        with self._lock:
            self.state, self.error = state, None if error is None else clip(redact(error))

    def _lost(self, reason: str, backoff: float) -> float:
        """Enter/stay in "reopening", wait ``backoff`` seconds (interruptible), return the next back-off."""
        if self.state != "reopening":
            log.warning("%s; reopening with back-off (%g..%g s)", redact(reason),
                        self.cfg.reopen_min_s, self.cfg.reopen_max_s)
        else:
            log.debug("%s; next attempt in %.1f s", redact(reason), backoff)
        with self._lock:
            self.state, self.error = "reopening", clip(redact(reason))
            self.reopens += 1
        self.stop_event.wait(backoff)
        return min(backoff * 2.0, self.cfg.reopen_max_s)

    def _configure(self, cap: Capture) -> None:
        """Apply requested size and a minimal driver buffer to live sources."""
        if self.kind == "file":
            return
        if self.cfg.width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, float(self.cfg.width))
        if self.cfg.height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, float(self.cfg.height))
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1.0)

    def _pump(self, cap: Capture, label: str) -> tuple[str | None, int]:
        """Read frames until stop (None), end of file ("eof") or a failure (its reason); also frames delivered."""
        self._configure(cap)
        is_file = self.kind == "file"
        realtime = is_file and self.cfg.pace == "realtime"
        period = 1.0 / file_fps(cap) if is_file else 0.0
        anchor = time.monotonic()
        delivered = 0
        media_t = -period
        while not self.stop_event.is_set():
            ok, image = cap.read()
            if not ok or image is None:
                if is_file:
                    # the last frame holds for its period before a loop starts again (a one-frame file or a still
                    # image looped at once, thousands of times a second, and every loop ran one frame short)
                    end = anchor + media_t + period - time.monotonic()
                    if realtime and delivered and end > 0 and self.stop_event.wait(end):
                        return None, delivered
                    return "eof", delivered
                return f"{label}: read failed (device vanished or stream ended)", delivered
            if realtime:
                msec = cap.get(cv2.CAP_PROP_POS_MSEC)
                media_t = msec / 1000.0 if msec and msec > 0 else delivered * period
                delay = anchor + media_t - time.monotonic()
                if delay > 0 and self.stop_event.wait(delay):
                    return None, delivered
                if delay < -_MAX_LAG_S:
                    anchor = time.monotonic() - media_t
            self._deliver(np.ascontiguousarray(image))
            if delivered == 0 and self.state != "ok":
                if self.state == "reopening":
                    log.info("%s: capturing again", label)
                self._set("ok", None)
            delivered += 1
        return None, delivered

    def _deliver(self, image: np.ndarray) -> None:
        frame = Frame(image=image, t=self.clock(), seq=self._seq)
        self._seq += 1
        self.out.put(frame)
        with self._lock:
            self.frames_in += 1
            self._times.append(time.monotonic())
            if len(self._times) > 1000:
                self._times.popleft()
