"""Opening cameras, streams, video/audio files and microphones, with clear errors naming the source.

Nothing here writes to disk: decoded audio from containers is piped from ffmpeg into memory.
sounddevice (and so PortAudio) is imported lazily, so a kiosk without libportaudio2 can still run video.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from edge.redact import URL_SCHEME
from edge.redact import redact as redact  # re-exported: the capture modules and their tests use it from here

log = logging.getLogger(__name__)

_AUDIO_TIMEOUT_S = 300.0
# A source's last error as the service reports it: `status.degraded` items are "camera: reopening (ERROR)" and
# may be 200 characters (status schema), so the error is cut here, where it is made, for every consumer at once.
ERROR_MAX = 160


class Capture(Protocol):
    """The part of cv2.VideoCapture this module uses (a seam for tests)."""

    def read(self) -> tuple[bool, Any]: ...
    def get(self, prop: int) -> float: ...
    def set(self, prop: int, value: float) -> bool: ...
    def release(self) -> None: ...


class MediaError(RuntimeError):
    """A camera, stream, microphone or media file cannot be used; the message names it and says why."""


def clip(text: str, limit: int = ERROR_MAX) -> str:
    """``text`` cut to at most ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def _existing_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a long pipeline is no file name (ENAMETOOLONG), nor one with a NUL
        return False


def _char_device(source: str) -> bool:
    """Whether ``source`` names a character device under /dev (a symlink such as /dev/v4l/by-id/... included)."""
    if not source.startswith("/dev/"):
        return False
    try:
        return stat.S_ISCHR(os.stat(source).st_mode)
    except (OSError, ValueError):
        return False


def classify_video_source(source: str, kind: str = "auto", resolve: Callable[[str], Path] = Path) -> str:
    """How to open a camera source: 'device', 'gstreamer', 'rtsp' or 'file' (``kind`` wins unless auto);
    ``resolve`` turns a relative file name into the path the service opens (the config file's folder)."""
    if kind != "auto":
        return kind
    s = source.strip()
    if s.isdigit() or s.startswith("/dev/video") or _char_device(s):  # /dev/v4l/by-id/...: a stable camera name
        return "device"
    if _existing_file(resolve(s)):  # an existing file is a file, whatever its name holds ("clip!.mp4")
        return "file"
    if "!" in s or s.endswith("appsink"):
        return "gstreamer"
    if URL_SCHEME.match(s):  # rtsp, http, rtmp, srt, udp, ...: FFmpeg's network protocols, never a file name
        return "rtsp"
    return "file"


def source_label(source: str, kind: str) -> str:
    """Human name of a video source for error messages."""
    names = {"device": "camera source", "gstreamer": "gstreamer pipeline", "rtsp": "stream", "file": "video file"}
    return f"{names.get(kind, 'video source')} '{redact(source)}'"


def _check_file(path: Path, what: str) -> None:
    """Raise MediaError unless ``path`` is an existing readable regular file."""
    name = redact(str(path))
    if not path.exists():
        raise MediaError(f"{what} '{name}': not found")
    if not path.is_file():
        raise MediaError(f"{what} '{name}': not a regular file")
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise MediaError(f"{what} '{name}': cannot read ({exc.strerror or exc})") from None


STREAM_TIMEOUT_S = 5.0  # opening or reading a network stream gives up after this (well under the watchdog's 15 s)


def open_video(source: str, kind: str = "auto") -> cv2.VideoCapture:
    """Open a camera device, GStreamer pipeline, RTSP/HTTP stream or video file; MediaError if impossible."""
    kind = classify_video_source(source, kind)
    label = source_label(source, kind)
    if kind == "device":
        s = source.strip()
        cap = cv2.VideoCapture(int(s)) if s.isdigit() else cv2.VideoCapture(s, cv2.CAP_V4L2)
        if not cap.isOpened():
            raise MediaError(f"{label}: cannot open (device missing or busy)")
        return cap
    if kind == "gstreamer":
        if not cv2.videoio_registry.hasBackend(cv2.CAP_GSTREAMER):
            raise MediaError(f"{label}: this OpenCV build has no GStreamer support (use a device index or file)")
        cap = cv2.VideoCapture(source, cv2.CAP_GSTREAMER)
        if not cap.isOpened():
            raise MediaError(f"{label}: cannot open (pipeline failed to start; it must end in appsink)")
        return cap
    if kind == "rtsp":
        # FFmpeg waits 30 s by default on a host that accepts and never answers: longer than the watchdog allows a
        # source (15 s), so systemd would restart the whole kiosk, microphone analysis included, again and again
        ms = int(STREAM_TIMEOUT_S * 1000)
        cap = cv2.VideoCapture(source, cv2.CAP_FFMPEG,
                               [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
        if not cap.isOpened():
            raise MediaError(f"{label}: cannot open (unreachable, refused or unsupported stream)")
        return cap
    if kind != "file":
        raise MediaError(f"{label}: unknown source kind {kind!r}")
    _check_file(Path(source), "video file")
    cap = cv2.VideoCapture(source, cv2.CAP_FFMPEG)
    if not cap.isOpened():
        raise MediaError(f"{label}: not a readable video (unknown or corrupt format)")
    return cap


def file_fps(cap: Capture, default: float = 25.0) -> float:
    """Frame rate a capture reports, or ``default`` when it reports none."""
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    return fps if math.isfinite(fps) and 0.5 <= fps <= 1000 else default


def iter_video_file(path: str | Path, fps: float | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (media time in seconds, BGR frame), keeping at most ``fps`` frames per second of media time."""
    cap = open_video(str(path), "file")
    try:
        src_fps = file_fps(cap)
        step = 1.0 / fps if fps else 0.0
        due = -math.inf
        index = 0
        while cap.grab():
            msec = float(cap.get(cv2.CAP_PROP_POS_MSEC))
            t = msec / 1000.0 if math.isfinite(msec) and (msec > 0 or index == 0) else index / src_fps
            index += 1
            if step:
                if t + 1e-6 < due:
                    continue
                due = due + step if t < due + step else t + step  # keep the cadence unless far behind
            ok, frame = cap.retrieve()
            if not ok or frame is None:
                raise MediaError(f"video file '{path}': frame {index - 1} cannot be decoded")
            yield t, frame
        if index == 0:
            raise MediaError(f"video file '{path}': not a readable video (no frames decoded)")
    finally:
        cap.release()


def resample(x: np.ndarray, rate_in: int, rate_out: int, zero_crossings: int = 12) -> np.ndarray:
    """Band-limited (Hann-windowed sinc) resampling of mono float32 audio between any two rates."""
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    if rate_in == rate_out or x.size == 0:
        return x.copy()
    ratio = rate_out / rate_in
    cutoff = min(1.0, ratio) * 0.95  # of the input Nyquist
    half = int(math.ceil(zero_crossings / cutoff))
    n_out = int(math.floor(x.size * ratio))
    taps = np.arange(-half, half + 1)
    out = np.empty(n_out, dtype=np.float32)
    padded = np.concatenate([np.zeros(half, np.float32), x, np.zeros(half + 1, np.float32)])
    chunk = max(1, 2_000_000 // taps.size)
    for s in range(0, n_out, chunk):
        pos = np.arange(s, min(n_out, s + chunk)) / ratio  # output sample positions in input samples
        base = np.floor(pos).astype(np.int64)
        d = (base[:, None] + taps[None, :]) - pos[:, None]  # distance of each tap from the position
        w = cutoff * np.sinc(cutoff * d) * (0.5 + 0.5 * np.cos(np.pi * np.clip(d / (half + 1), -1, 1)))
        out[s:s + pos.size] = np.sum(padded[base[:, None] + taps[None, :] + half] * w, axis=1)
    return out


def _ffmpeg_audio(path: Path, rate: int) -> np.ndarray:
    """Decode the first audio track of any container ffmpeg knows into mono float32 at ``rate`` (in memory)."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise MediaError(f"audio file '{path}': not a wav/flac/ogg file and ffmpeg is not installed to decode it")
    cmd = [exe, "-nostdin", "-v", "error", "-i", f"file:{path.resolve()}", "-map", "0:a:0", "-vn",
           "-f", "s16le", "-ac", "1", "-ar", str(rate), "-"]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=_AUDIO_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise MediaError(f"audio file '{path}': ffmpeg took longer than {_AUDIO_TIMEOUT_S:.0f} s") from None
    err = proc.stderr.decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        if "matches no streams" in err:
            raise MediaError(f"audio file '{path}': no audio track")
        last = err.splitlines()[-1] if err else f"ffmpeg exit status {proc.returncode}"
        raise MediaError(f"audio file '{path}': not a readable audio/video file ({last})")
    if len(proc.stdout) < 2:
        raise MediaError(f"audio file '{path}': audio track is empty")
    pcm = np.frombuffer(proc.stdout[: len(proc.stdout) // 2 * 2], dtype="<i2")
    return (pcm.astype(np.float32) / 32768.0).astype(np.float32)


def _soundfile_knows(sf: Any, path: Path) -> bool:
    """Whether libsndfile recognises the file's format from its header (then a failed read means damage)."""
    try:
        sf.info(str(path))
    except Exception:  # noqa: BLE001 - not its format: another decoder may read it
        return False
    return True


def read_audio_file(path: str | Path, rate: int = 16000) -> np.ndarray:
    """Whole audio file as mono float32 in [-1, 1] at ``rate`` Hz (wav/flac/ogg via soundfile, else ffmpeg)."""
    import soundfile as sf

    p = Path(path)
    _check_file(p, "audio file")
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        if _soundfile_knows(sf, p):  # its own format, failing part-way: damaged (ffmpeg would return a fragment)
            raise MediaError(f"audio file '{p}': damaged or truncated ({exc})") from None
        data, sr = None, rate
    if data is None:
        samples = _ffmpeg_audio(p, rate)
    else:
        if data.size == 0:
            raise MediaError(f"audio file '{p}': contains no samples")
        if not np.isfinite(data).all():  # a float file with NaN/inf: every feature of it would be garbage
            raise MediaError(f"audio file '{p}': holds {int((~np.isfinite(data)).sum())} sample(s) that are not "
                             "numbers (NaN or infinite)")
        samples = resample(data.mean(axis=1, dtype=np.float32), int(sr), rate)
    return np.clip(samples, -1.0, 1.0).astype(np.float32, copy=False)


def read_audio_channels(path: str | Path, rate: int = 16000) -> np.ndarray:
    """Whole wav/flac/ogg file as float32 (samples, channels) at ``rate`` Hz, channels kept apart (staff gating)."""
    import soundfile as sf

    p = Path(path)
    _check_file(p, "audio file")
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise MediaError(f"audio file '{p}': cannot read its channels ({exc})") from None
    if data.size == 0:
        raise MediaError(f"audio file '{p}': contains no samples")
    if not np.isfinite(data).all():
        raise MediaError(f"audio file '{p}': holds {int((~np.isfinite(data)).sum())} sample(s) that are not "
                         "numbers (NaN or infinite)")
    chans = [resample(np.ascontiguousarray(data[:, c]), int(sr), rate) for c in range(data.shape[1])]
    return np.clip(np.stack(chans, axis=1), -1.0, 1.0).astype(np.float32, copy=False)


def _sounddevice() -> Any:
    """The sounddevice module, or MediaError when it or the PortAudio library is unavailable."""
    try:
        import sounddevice
    except (OSError, ImportError) as exc:
        raise MediaError(f"microphone: sounddevice/PortAudio unavailable ({exc}); install libportaudio2") from None
    return sounddevice


def list_input_devices() -> list[dict[str, Any]]:
    """Input-capable audio devices: index, name, channels, default_samplerate."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
    except Exception as exc:  # PortAudioError and friends
        raise MediaError(f"microphone: cannot list audio devices ({exc})") from None
    return [{"index": i, "name": str(d["name"]), "channels": int(d["max_input_channels"]),
             "default_samplerate": float(d["default_samplerate"])}
            for i, d in enumerate(devices) if int(d["max_input_channels"]) > 0]


def resolve_input_device(source: str) -> int | str | None:
    """sounddevice ``device`` for a config source: None for 'default', else the index of the named/numbered input."""
    devices = list_input_devices()
    s = source.strip()
    if not devices:
        raise MediaError(f"microphone '{s}': no input devices found (PortAudio sees no microphone)")
    available = ", ".join(f"{d['index']} {d['name']!r}" for d in devices)
    if s.lower() == "default":
        return None
    if s.isdigit():
        if any(d["index"] == int(s) for d in devices):
            return int(s)
        raise MediaError(f"microphone '{s}': no input device with that index (available: {available})")
    for d in devices:
        if s.lower() in d["name"].lower():
            return int(d["index"])
    raise MediaError(f"microphone '{s}': no such input device (available: {available})")


def check_input_channels(source: str, device: int | str | None, channels: int) -> None:
    """MediaError unless the input ``device`` (None: PortAudio's default) offers at least ``channels`` channels."""
    if channels <= 1:
        return
    sd = _sounddevice()
    try:
        info = sd.query_devices(device, "input") if device is not None else sd.query_devices(kind="input")
        have = int(info["max_input_channels"])
    except Exception as exc:  # PortAudioError, no default input device, ...
        raise MediaError(f"microphone '{source}': cannot query its channels ({exc})") from None
    if have < channels:
        raise MediaError(f"microphone '{source}': offers {have} input channel(s), microphone.channels = {channels} "
                         f"(the staff-voice gate needs them all)")
