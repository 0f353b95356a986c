"""Microphone capture thread: PortAudio callback (or an audio file) into an AudioRing; never does inference.

Device mode opens ``sounddevice.InputStream`` at 16 kHz float32 with ``microphone.channels`` channels (a staff
microphone or a microphone array, kept apart in the ring) whose callback only copies into the ring. A device with
fewer input channels than configured is a clear error, retried with back-off like a missing one. A device that
is missing, errors, stops or goes silent (no callbacks) is reopened with exponential back-off, rescanning
PortAudio's device list each time so a re-plugged USB microphone is found again. File mode decodes the file once
into memory (its first ``channels`` channels; fewer is an error) and writes ``block_ms`` blocks, paced in real
time or ("fast", for evaluation) as fast as possible; the ring then overwrites unread audio, which is counted in
``overrun_samples``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edge.capture import media
from edge.capture.media import MediaError, clip, read_audio_channels, read_audio_file
from edge.config import MicrophoneConfig
from edge.queues import AudioRing

log = logging.getLogger(__name__)

RATE = 16000
_MAX_LAG_S = 1.0
_FILE_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".mp4", ".m4a", ".aac", ".webm", ".mkv",
                  ".mov", ".avi"}


def classify_audio_source(source: str, kind: str = "auto") -> str:
    """'file' or 'device' for a microphone source (``kind`` wins unless auto)."""
    if kind != "auto":
        return kind
    s = source.strip()
    if Path(s).suffix.lower() in _FILE_SUFFIXES or "/" in s or "\\" in s:
        return "file"
    return "device"


class AudioSource(threading.Thread):
    """Thread that captures microphone (or file) audio into ``ring`` until ``stop`` is set."""

    def __init__(self, cfg: MicrophoneConfig, ring: AudioRing, stop: threading.Event,
                 resolve: Callable[[str], Path] = Path, clock: Callable[[], float] = time.monotonic) -> None:
        """Prepare (not start) capture from ``cfg.source``."""
        super().__init__(name="capture-audio", daemon=True)
        self.cfg = cfg
        self.ring = ring
        self.stop_event = stop
        self.stopped_on_request = False  # set when run() returns: whether it left because of the stop event
        self.clock = clock
        self.kind = classify_audio_source(cfg.source, cfg.kind)
        self.source = str(resolve(cfg.source)) if self.kind == "file" else cfg.source
        self.block = cfg.block_ms * RATE // 1000
        self.channels = cfg.channels
        self._lock = threading.Lock()
        self.state = "starting"
        self.error: str | None = None
        self.blocks_in = 0
        self.overflows = 0
        self.reopens = 0
        self._last_cb = 0.0
        self._cb_error: str | None = None

    def stats(self) -> dict[str, Any]:
        """Snapshot: state, error, blocks_in, overflows, reopens, overrun_samples."""
        with self._lock:
            return {"state": self.state, "error": self.error, "blocks_in": self.blocks_in,
                    "overflows": self.overflows, "reopens": self.reopens,
                    "overrun_samples": self.ring.overrun_samples}

    def run(self) -> None:
        """Capture until stopped (or, for a non-looping file, until its end)."""
        try:
            if self.kind == "file":
                self._run_file()
            else:
                self._run_device()
        finally:  # left because the service stopped: not a fault, whatever its last state says
            self.stopped_on_request = self.stop_event.is_set()

    # -- shared -------------------------------------------------------------------------------------------
    def _set(self, state: str, error: str | None) -> None:
        with self._lock:
            self.state, self.error = state, None if error is None else clip(error)

    def _lost(self, reason: str, backoff: float) -> float:
        """Enter/stay in "reopening", wait ``backoff`` seconds (interruptible), return the next back-off."""
        if self.state != "reopening":
            log.warning("%s; reopening with back-off (%g..%g s)", reason, self.cfg.reopen_min_s,
                        self.cfg.reopen_max_s)
        else:
            log.debug("%s; next attempt in %.1f s", reason, backoff)
        with self._lock:
            self.state, self.error = "reopening", clip(reason)
            self.reopens += 1
        self.stop_event.wait(backoff)
        return min(backoff * 2.0, self.cfg.reopen_max_s)

    # -- file mode ----------------------------------------------------------------------------------------
    def _run_file(self) -> None:
        try:
            samples = self._read_file()
        except MediaError as exc:
            self._set("failed", str(exc))
            log.error("%s", exc)
            return
        except Exception as exc:  # noqa: BLE001 - e.g. PermissionError on the folder: a clear state, not a dead thread
            why = f"audio file '{media.redact(self.source)}': cannot read ({type(exc).__name__}: {exc})"
            self._set("failed", why)
            log.error("%s", why)
            return
        self._set("ok", None)
        realtime = self.cfg.pace == "realtime"
        anchor = time.monotonic()
        played = 0
        pos = 0
        while not self.stop_event.is_set():
            if pos >= samples.shape[0]:
                if not self.cfg.loop:
                    self._set("ended", None)
                    log.info("audio file '%s': end of file", media.redact(self.source))
                    return
                pos = 0
            chunk = samples[pos:pos + self.block]
            pos += chunk.shape[0]
            played += chunk.shape[0]
            if realtime:
                delay = anchor + played / RATE - time.monotonic()
                if delay > 0 and self.stop_event.wait(delay):
                    return
                if delay < -_MAX_LAG_S:
                    anchor = time.monotonic() - played / RATE
            else:
                time.sleep(0)  # let other threads run between blocks
            self.ring.write(chunk, self.clock())
            with self._lock:
                self.blocks_in += 1

    def _read_file(self) -> np.ndarray:
        """The whole file: mono (one channel configured, others mixed in) or its first ``channels`` channels."""
        if self.channels == 1:
            samples = read_audio_file(self.source, RATE)
        else:
            samples = read_audio_channels(self.source, RATE)
            if samples.shape[1] < self.channels:
                raise MediaError(f"audio file '{media.redact(self.source)}': has {samples.shape[1]} channel(s), "
                                 f"microphone.channels = {self.channels}")
            samples = np.ascontiguousarray(samples[:, :self.channels])
        if samples.shape[0] == 0:  # looping an empty file would spin a core writing empty blocks
            raise MediaError(f"audio file '{media.redact(self.source)}': no audio samples at {RATE} Hz")
        return samples

    # -- device mode --------------------------------------------------------------------------------------
    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        """PortAudio callback: copy into the ring and count; nothing else (it runs on the audio thread)."""
        try:
            self.ring.write(indata if self.channels > 1 else indata[:, 0] if indata.ndim == 2 else indata,
                            self.clock())
            with self._lock:
                self.blocks_in += 1
                if status and getattr(status, "input_overflow", False):
                    self.overflows += 1
            self._last_cb = time.monotonic()
        except Exception as exc:  # an exception here would silently abort the stream
            self._cb_error = f"audio callback failed: {exc}"

    def _run_device(self) -> None:
        try:
            sd = media._sounddevice()
        except MediaError as exc:
            self._set("failed", str(exc))
            log.error("%s", exc)
            return
        label = f"microphone '{media.redact(self.cfg.source)}'"
        backoff = self.cfg.reopen_min_s
        while not self.stop_event.is_set():
            try:
                device = media.resolve_input_device(self.cfg.source)
                media.check_input_channels(self.cfg.source, device, self.channels)
                try:
                    sd.check_input_settings(device=device, channels=self.channels, samplerate=RATE, dtype="float32")
                except Exception as exc:  # PortAudioError or ValueError; only a rate problem gets the rate hint
                    if "sample rate" not in str(exc).lower():
                        raise  # busy, unplugged, ...: the generic "cannot open" below, retried
                    raise MediaError(f"{label}: cannot capture {self.channels} channel(s) at {RATE} Hz ({exc}); "
                                     "use the ALSA 'default' or a 'plughw:' device, which convert the rate") from None
                stream = sd.InputStream(samplerate=RATE, channels=self.channels, dtype="float32",
                                        blocksize=self.block, device=device, callback=self._callback)
                self._cb_error = None
                self._last_cb = time.monotonic()
                stream.start()
            except MediaError as exc:
                backoff = self._lost(str(exc), backoff)
                _rescan(sd)
                continue
            except Exception as exc:  # sounddevice.PortAudioError, ValueError for bad settings, ...
                backoff = self._lost(f"{label}: cannot open ({exc})", backoff)
                _rescan(sd)
                continue
            start_blocks = self.blocks_in
            try:
                reason = self._watch(stream, label)
            except Exception as exc:  # e.g. PortAudioError from stream.active: treat as a lost device, reopen
                reason = f"{label}: stream error ({exc})"
            finally:
                try:
                    stream.close(ignore_errors=True)
                except Exception as exc:
                    log.debug("%s: close failed: %s", label, exc)
            if reason is None:
                return
            if self.blocks_in > start_blocks:
                backoff = self.cfg.reopen_min_s
            backoff = self._lost(reason, backoff)
            _rescan(sd)

    def _watch(self, stream: Any, label: str) -> str | None:
        """Supervise a running stream; return None when stopped, else why it is considered lost."""
        block_s = self.block / RATE
        stall_s = max(2.0, 10 * block_s)
        seen = self.blocks_in
        while not self.stop_event.wait(min(0.25, block_s)):
            if self._cb_error:
                return f"{label}: {self._cb_error}"
            if not stream.active:
                return f"{label}: stream stopped (device lost?)"
            if time.monotonic() - self._last_cb > stall_s:
                return f"{label}: no audio for {stall_s:.1f} s (device lost?)"
            if self.blocks_in > seen and self.state != "ok":
                if self.state == "reopening":
                    log.info("%s: capturing again", label)
                self._set("ok", None)
        return None


def _rescan(sd: Any) -> None:
    """Re-initialise PortAudio so newly plugged devices become visible (its device list is cached)."""
    try:  # separately: after one failed initialisation, terminating raises "not initialized" for ever after
        sd._terminate()
    except Exception as exc:
        log.debug("PortAudio termination before a rescan failed: %s", exc)
    try:
        sd._initialize()
    except Exception as exc:
        log.debug("PortAudio re-initialisation failed: %s", exc)
