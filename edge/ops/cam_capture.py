"""The ``check-camera`` command: read the counter camera (or a video or image file) as the kiosk's config says, find
the customer's face in each frame with the service's own path, and assess the view (``edge.ops.cam_check``)."""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edge.bench.commands import positive

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
CHECK_FPS = 4.0  # frames looked at per second: enough for a median, light on a Pi
STALL_S = 5.0  # a live camera that delivers no frame this long has stopped


class Stalled(Exception):
    """A live camera stopped delivering frames part-way."""


def _live_frames(cap: Any, seconds: float) -> Iterator[Any]:
    """About CHECK_FPS frames a second for ``seconds`` of wall time, read in a thread so a blocked read cannot hang
    the check; Stalled when no frame comes for STALL_S (the reader thread is left to the capture's own timeout)."""
    frames: queue.Queue[Any] = queue.Queue(maxsize=2)  # the newest frames; the reader drops older ones
    stop = threading.Event()

    def offer(item: Any) -> None:
        """Never blocks: the oldest frame makes room (the check wants the current view)."""
        with contextlib.suppress(queue.Empty):
            if frames.full():
                frames.get_nowait()
        with contextlib.suppress(queue.Full):
            frames.put_nowait(item)

    def read() -> None:
        while not stop.is_set():
            ok, frame = cap.read()
            if not ok or frame is None:
                offer(None)
                return
            offer(frame)

    threading.Thread(target=read, name="check-camera-read", daemon=True).start()
    start, due = time.monotonic(), 0.0
    try:
        while time.monotonic() - start < seconds:
            try:
                frame = frames.get(timeout=STALL_S)
            except queue.Empty:
                raise Stalled(f"no frame for {STALL_S:g} s after {time.monotonic() - start - STALL_S:.1f} s") from None
            if frame is None:
                raise Stalled(f"the stream ended after {time.monotonic() - start:.1f} s")
            t = time.monotonic() - start
            if t >= due:
                due = t + 1.0 / CHECK_FPS
                yield frame
    finally:
        stop.set()


def frames_of(source: str, kind: str, seconds: float, size: tuple[int | None, int | None] = (None, None)
              ) -> Iterator[Any]:
    """BGR frames: an image file's one frame, a video file's first ``seconds`` of media time or a live camera's
    next ``seconds``, about CHECK_FPS a second; MediaError when it cannot be read, Stalled when a camera stops."""
    import cv2

    from edge.capture.media import MediaError, iter_video_file, open_video

    if kind == "file" and Path(source).suffix.lower() in IMAGE_SUFFIXES:
        img = cv2.imread(source, cv2.IMREAD_COLOR)
        if img is None:
            raise MediaError(f"image '{source}': not found or not a readable image")
        yield img
        return
    if kind == "file":
        for t, frame in iter_video_file(source, CHECK_FPS):
            if t >= seconds:
                return
            yield frame
        return
    cap = open_video(source, kind)
    stalled = False
    try:
        w, h = size
        if w:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, w)
        if h:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, h)
        yield from _live_frames(cap, seconds)
    except Stalled:
        stalled = True
        raise
    finally:
        if not stalled:  # the reader thread may still be inside cap.read(): releasing under it can crash a backend
            cap.release()


def check(frames: Iterator[Any], analyzer: Any) -> dict[str, Any]:
    """``assess``'s arguments from the frames: customer faces and why the other frames had none."""
    from edge.face.expression import select_customer
    from edge.ops.cam_check import measure

    out: dict[str, Any] = {"frames": 0, "faces": [], "too_small": 0, "outside_zone": 0, "min_face_px": None,
                           "stalled": None}
    try:
        for frame in frames:
            out["frames"] += 1
            out["min_face_px"] = analyzer.min_face_frac * frame.shape[0]
            boxes, box, crop = analyzer.find_customer(frame)
            if box is not None and crop is not None:
                out["faces"].append(measure(box, crop))
            elif boxes:
                if select_customer(boxes, frame.shape, analyzer.customer_zone, 0.0) is not None:
                    out["too_small"] += 1  # in the zone, but under min_face_frac
                else:
                    out["outside_zone"] += 1
    except Stalled as exc:
        out["stalled"] = str(exc)
    return out


def cli(args: argparse.Namespace) -> int:
    """Assess the camera view; exit 0 when usable, 2 when it needs fixing or nothing could be checked."""
    import cv2

    from edge.capture.media import MediaError, classify_video_source, redact
    from edge.config import load_config, parse_config
    from edge.config_check import read_env_file
    from edge.ops.cam_check import assess, render
    from edge.pipeline.analyzers import build_analyzers
    from edge.runtime import ModelError

    source = "?"
    try:
        if args.env_file is not None:
            os.environ.update(read_env_file(args.env_file))
        if args.config is not None:
            cfg = load_config(args.config, credentials=False)  # the broker's password is not needed here
        else:
            cfg = parse_config({"identity": {"site_id": "check", "kiosk_id": "check"}, "mqtt": {"enabled": False}})
        if not (cfg.analysis.face and cfg.camera.enabled):
            raise ValueError("the config turns face analysis or the camera off: nothing to check")
        analyzer = build_analyzers(cfg.model_copy(update={"microphone": cfg.microphone.model_copy(
            update={"enabled": False})})).face  # only the face models: the voice model is not needed
        if args.file is not None:
            source, kind = str(args.file), "file"
        elif args.source is not None:
            source = args.source
            kind = classify_video_source(source, "auto")
        else:
            source = cfg.camera.source
            kind = classify_video_source(source, cfg.camera.kind, cfg.resolve)  # as the service opens it
            if kind == "file":
                source = str(cfg.resolve(source))
        if kind != "file":
            print(f"stand or sit where customers do and look at the counter for {args.seconds:g} s ...",
                  file=sys.stderr)
        got = check(frames_of(source, kind, args.seconds, (cfg.camera.width, cfg.camera.height)), analyzer)
        rep = assess(got["frames"], got["faces"], got["too_small"], got["outside_zone"], got["min_face_px"])
    except (MediaError, ModelError, ValueError, OSError, RuntimeError, cv2.error) as exc:
        print(f"error: {redact(source)}: {exc}" if source != "?" else f"error: {exc}", file=sys.stderr)
        return 2
    if got["stalled"]:
        rep.problems.insert(0, f"the camera stopped delivering frames ({got['stalled']}): check its cable, power "
                               "and that nothing else holds it (systemctl stop edge-emotion)")
    if args.config is None:
        rep.warnings.append("no --config: the kiosk's staff zones and customer zone were not applied, so the face "
                            "measured may be a member of staff's")
    print(render(rep))
    return 0 if rep.ok else 2


def add_subcommand(sub: Any) -> None:
    """Register ``check-camera`` on the CLI's subparsers."""
    p = sub.add_parser("check-camera", help="look at someone where customers stand; say whether the camera shows "
                       "their face as the expression model needs (size, light, contrast, focus, tilt); exit 2: fix it")
    p.add_argument("--config", "-c", type=Path, help="kiosk TOML: its camera, customer and staff zones, "
                   "min_face_frac and face detector")
    p.add_argument("--env-file", type=Path, help="read ${VAR} values from this systemd EnvironmentFile first, as the "
                   "unit does (a camera URL's password)")
    p.add_argument("--source", help="camera instead of the config's (device index, /dev/videoN, rtsp://...)")
    p.add_argument("--seconds", type=positive(" of seconds", least=1, most=60), default=5.0,
                   help="seconds to look (1-60, default 5)")
    p.add_argument("--file", type=Path, help="check a video or a still image instead of the camera")
    p.set_defaults(func=cli)
