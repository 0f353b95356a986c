"""The staff-voice gate on one multichannel voice window: analyse it (mono customer audio) or drop it.

Both gates judge the window's speech frames (32 ms frames above the window's noise floor) one by one, as the
staff's, the customer's or ambiguous, by the staff microphone's level (channel gate) or by direction of arrival
(direction gate), each frame seen together with its speech neighbours within a few frames (``CHANNEL_SPAN``,
``DIRECTION_SPAN``: levels summed, steered responses averaged by power; one 32 ms frame alone is too often misled by
reverberation, docs/bench/staff_gate.md), and apply one rule: a window is analysed only when at most
``staff_voice_max_share`` of its speech frames are the staff's and at least ``customer_voice_min_share`` clearly the
customer's. Overlapping speech and
windows without a clear side are therefore dropped. The gates fail safe: a window without speech frames, with a
sample that is not finite, or (channel gate) with a staff microphone that gives no signal at all is dropped too, not
passed on to a VAD that might judge the mix differently, and so is a window whose speech shows a microphone fault
(``DEAD_GAP_DB``: a channel far below the others though not silent; ``COPY_DB``: every channel one signal). Frame
levels are measured without each frame's DC offset.
Pure logic on arrays: no I/O, no clock.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import numpy as np

from edge.config import KioskConfig
from edge.privacy.gate_config import effective_gate, in_sector
from edge.voicegate.doa import FRAME, DirectionEstimator, frame_power, neighbour_sum, smooth

log = logging.getLogger(__name__)

ACTIVE_MARGIN_DB = 6.0  # a speech frame rises this far above the window's noise floor (10th percentile of frames)
FLOOR_DBFS = -65.0  # and above this absolute level
CACHE_FRAMES = 256  # responses of the last ~8 s of frames: consecutive windows share all but their newest hop
# Each speech frame is judged with its speech neighbours up to this many frames (32 ms) either side; chosen on the
# benchmark's tuning rooms (seed 101), not its test rooms (docs/bench/staff_gate.md). 0 = each frame alone.
CHANNEL_SPAN = 2
DIRECTION_SPAN = 2
_EPS = 1e-10
DEAD_RMS = 1e-5  # -100 dBFS: below any working microphone's self-noise; a staff channel this quiet is dead or muted
# On the window's speech frames a working microphone of the counter hears the speech too (crosstalk is some 5-25 dB
# below the nearest microphone): one this far below the loudest channel (median over the frames) is dead, muted or
# unplugged though it still shows a trace of noise or hum; so is one whose level stays within STEADY_DB over a window
# in which another channel swings by SPEECH_SWING_DB (speech it would hear as crosstalk).
DEAD_GAP_DB = 40.0
STEADY_DB = 3.0
SPEECH_SWING_DB = 20.0
# Every channel of an array within this of the first (difference power below the level): one microphone copied onto
# all channels (a sound server's mono device), so no direction can be told. Real microphones differ by at least
# their independent self-noise (some 55 dB below speech); a copy differs by nothing.
COPY_DB = 80.0


@dataclass(frozen=True)
class Decision:
    """What the gate made of a window: mono audio to analyse (None: dropped), why, and the frame shares."""

    audio: np.ndarray | None
    verdict: str  # "customer" (passed), "staff", "ambiguous", "silent" (no speech frames), "invalid" (a sample
    # not finite), "fault" (a dead staff microphone): dropped; "ungated": no gate, passed
    staff_share: float = 0.0
    customer_share: float = 0.0


def speech_frames(window: np.ndarray, end: int | None = None) -> tuple[np.ndarray, np.ndarray, int | None]:
    """(frames (n, FRAME, channels), which are speech frames by level, stream index of the first frame or None).

    With ``end`` (the stream position just after the window) frames lie on the stream's FRAME grid, so consecutive
    windows share frames; without it they are the window's newest whole frames.
    """
    frames, first = _split(window, end)
    return frames, _speech(ac_power(frames)), first


def _split(window: np.ndarray, end: int | None) -> tuple[np.ndarray, int | None]:
    """The window's frames (n, FRAME, channels) and the stream index of the first (see ``speech_frames``)."""
    x = np.asarray(window, np.float32)
    if x.ndim == 1:
        x = x[:, None]
    size = x.shape[0]
    skip = (-(end - size)) % FRAME if end is not None else size % FRAME
    n = (size - skip) // FRAME
    first = None if end is None else (end - size + skip) // FRAME
    return x[skip:skip + n * FRAME].reshape(n, FRAME, x.shape[1]), first


def _speech(power: np.ndarray) -> np.ndarray:
    """Speech frames from per-channel frame power (n, channels): above the window's floor and an absolute level."""
    if power.shape[0] == 0:
        return np.zeros(0, bool)
    db = 10.0 * np.log10(power.mean(axis=1) + _EPS)
    floor = float(np.percentile(db, 10))
    return np.asarray((db > floor + ACTIVE_MARGIN_DB) & (db > FLOOR_DBFS))


def ac_power(frames: np.ndarray) -> np.ndarray:
    """Per-channel power of each frame (n, FRAME, channels) without the frame's mean: a DC offset on one
    microphone must not raise the level that speech and the staff channel are measured against."""
    x = np.asarray(frames, np.float32)
    ones = np.full(x.shape[1], 1.0 / max(x.shape[1], 1), np.float32)
    mean = ones @ x  # each frame's mean per channel, batched (x.mean(axis=1) is several times slower here)
    return frame_power(x - mean[:, None, :])


def channel_flags(power: np.ndarray, ids: np.ndarray, staff_channel: int, margin_db: float,
                  span: int) -> tuple[np.ndarray, np.ndarray]:
    """(staff, customer) flags from per-channel frame power (n, channels) of speech frames at stream ``ids``.

    Staff: the staff channel ``margin_db`` above every other over the frame and its neighbours within ``span``;
    customer: another channel louder than it.
    """
    db = 10.0 * np.log10(neighbour_sum(power, ids, span) + _EPS)
    diff = db[:, staff_channel] - np.delete(db, staff_channel, axis=1).max(axis=1)
    return diff > margin_db, diff < 0.0


def direction_flags(resp: np.ndarray, power: np.ndarray, ids: np.ndarray, span: int, min_coherence: float,
                    est: DirectionEstimator, staff_grid: np.ndarray,
                    customer_grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(staff, customer) flags from steered responses (n, grid) and power (n,) of speech frames at stream ``ids``.

    A frame's direction is the peak of its response averaged with its neighbours' within ``span`` (by power); it is a
    side's when that peak is at least ``min_coherence`` and lies in the side's sector (``*_grid``: per grid step).
    """
    az, coh = est.peaks(smooth(resp, power, ids, span))
    idx = np.searchsorted(est.grid, az)
    clear = coh >= min_coherence
    return clear & staff_grid[idx], clear & customer_grid[idx]


def _gaps_db(db: np.ndarray) -> np.ndarray:
    """Per channel: its level minus the loudest channel's, in dB, median over the speech frames' levels (n, ch)."""
    return np.asarray(np.median(db - db.max(axis=1, keepdims=True), axis=0))


def _steady(db: np.ndarray, channels: list[int]) -> bool:
    """Whether one of ``channels`` keeps its frame level (``db``: (n, channels) over the whole window) within
    STEADY_DB (10th to 90th percentile) while another channel swings by SPEECH_SWING_DB (speech): a microphone that
    hears none of the speech is dead."""
    lo, hi = np.percentile(db, [10, 90], axis=0)
    spread = hi - lo
    for c in channels:
        others = np.delete(spread, c)
        if spread[c] < STEADY_DB and others.size > 0 and others.max() > SPEECH_SWING_DB:
            return True
    return False


def judge(staff: np.ndarray, customer: np.ndarray, max_staff_share: float, min_customer_share: float,
          audio: np.ndarray) -> Decision:
    """The window rule over per-speech-frame flags: customer (analyse ``audio``), staff or ambiguous (dropped)."""
    n = staff.size
    if n == 0:
        return Decision(None, "silent")  # fail safe: the gate saw no speech; the VAD must not judge the mix alone
    s, c = float(staff.mean()), float(customer.mean())
    if s > max_staff_share:
        return Decision(None, "staff", s, c)
    if c < min_customer_share:
        return Decision(None, "ambiguous", s, c)
    return Decision(audio, "customer", s, c)


class VoiceGate:
    """No gate: every window is analysed, multichannel audio mixed to mono; subclasses judge the frames."""

    kind = "none"

    def __init__(self, max_staff_share: float = 0.1, min_customer_share: float = 0.5) -> None:
        """The window rule's two shares (``privacy.staff_voice_max_share``, ``customer_voice_min_share``)."""
        self.max_staff_share = float(max_staff_share)
        self.min_customer_share = float(min_customer_share)
        self.counts: Counter[str] = Counter()  # windows per verdict (the voice worker's thread only)

    def mono(self, window: np.ndarray) -> np.ndarray:
        """The audio the voice model gets from a window."""
        x = np.asarray(window, np.float32)
        return x if x.ndim == 1 else np.asarray(x.mean(axis=1), np.float32)

    def classify(self, frames: np.ndarray, ids: np.ndarray, streaming: bool) -> tuple[np.ndarray, np.ndarray]:
        """(staff, customer) flags of each speech frame (n, FRAME, channels); ``ids``: their frame indices (in the
        stream when ``streaming``, else in the window)."""
        raise NotImplementedError

    def fault(self, frames: np.ndarray, db: np.ndarray, active: np.ndarray) -> bool:
        """Whether the window's frames (n, FRAME, channels; ``db``: their per-channel levels; ``active``: its
        speech frames) show a microphone fault the gate cannot judge past."""
        return False

    def decide(self, window: np.ndarray, end: int | None = None) -> Decision:
        """Judge one window (samples, channels) ending at stream position ``end``; counted in ``counts``."""
        d = self._decide(window, end)
        self.counts[d.verdict] += 1
        return d

    def _decide(self, window: np.ndarray, end: int | None) -> Decision:
        x = np.asarray(window, np.float32)
        if not np.all(np.isfinite(x)):
            return Decision(None, "invalid")  # a NaN would silence every level comparison below
        frames, first = _split(x, end)
        power = ac_power(frames)  # once per window: the speech frames and the fault checks both read it
        active = _speech(power)
        if active.any() and self.fault(frames, 10.0 * np.log10(power + _EPS), active):
            return Decision(None, "fault")
        ids = (first or 0) + np.flatnonzero(active)
        staff, customer = self.classify(frames[active], ids, first is not None)
        return judge(staff, customer, self.max_staff_share, self.min_customer_share, self.mono(window))


class UngatedVoice(VoiceGate):
    """Voice analysed without a staff-voice gate (allowed outside the eu profile)."""

    def _decide(self, window: np.ndarray, end: int | None) -> Decision:
        return Decision(self.mono(window), "ungated")


class ChannelGate(VoiceGate):
    """A staff microphone: frames where it is ``margin_db`` louder than every other channel are the staff's."""

    kind = "channel"

    def __init__(self, staff_channel: int, margin_db: float = 3.0, max_staff_share: float = 0.1,
                 min_customer_share: float = 0.5, span: int = CHANNEL_SPAN) -> None:
        """``staff_channel``: index of the staff microphone in each window; ``span``: see ``CHANNEL_SPAN``."""
        super().__init__(max_staff_share, min_customer_share)
        self.staff_channel = int(staff_channel)
        self.margin_db = float(margin_db)
        self.span = int(span)

    def _decide(self, window: np.ndarray, end: int | None) -> Decision:
        x = np.asarray(window, np.float32)
        if x.ndim == 2 and 0 <= self.staff_channel < x.shape[1]:
            staff = x[:, self.staff_channel]
            if np.all(np.isfinite(staff)) and float(np.sqrt(np.mean(np.square(staff - staff.mean())))) < DEAD_RMS:
                return Decision(None, "fault")  # a dead or unplugged staff mic: every frame would look the customer's
        return super()._decide(window, end)

    def fault(self, frames: np.ndarray, db: np.ndarray, active: np.ndarray) -> bool:
        """The staff microphone far below the loudest channel on speech, or steady while the others carry speech
        (dead but for noise or hum, or muted)."""
        if frames.shape[2] < 2 or not 0 <= self.staff_channel < frames.shape[2]:
            return False  # classify names the problem
        return bool(_gaps_db(db[active])[self.staff_channel] < -DEAD_GAP_DB) or _steady(db, [self.staff_channel])

    def mono(self, window: np.ndarray) -> np.ndarray:
        """Every channel but the staff microphone, mixed."""
        x = np.asarray(window, np.float32)
        return np.asarray(np.delete(x, self.staff_channel, axis=1).mean(axis=1), np.float32)

    def classify(self, frames: np.ndarray, ids: np.ndarray, streaming: bool) -> tuple[np.ndarray, np.ndarray]:
        """Staff: the staff channel ``margin_db`` above every other; customer: another channel louder than it."""
        if frames.shape[2] < 2 or not 0 <= self.staff_channel < frames.shape[2]:
            raise ValueError(f"staff channel {self.staff_channel} not in a {frames.shape[2]}-channel window")
        return channel_flags(ac_power(frames), ids, self.staff_channel, self.margin_db, self.span)


class DirectionGate(VoiceGate):
    """A microphone array: frames whose direction lies in the staff sector are the staff's (GCC-PHAT, doa.py)."""

    kind = "direction"

    def __init__(self, positions_m: list[tuple[float, float]], staff_sector: tuple[float, float],
                 customer_sector: tuple[float, float], min_coherence: float = 0.15, max_staff_share: float = 0.1,
                 min_customer_share: float = 0.5, rate: int = 16000, span: int = DIRECTION_SPAN) -> None:
        """Geometry and sectors as in ``privacy.direction``; ``span``: see ``DIRECTION_SPAN``."""
        super().__init__(max_staff_share, min_customer_share)
        self.doa = DirectionEstimator(positions_m, rate)
        self.staff_sector = staff_sector
        self.customer_sector = customer_sector
        self.min_coherence = float(min_coherence)
        self.span = int(span)
        self._staff_grid = np.array([in_sector(a, staff_sector) for a in self.doa.grid])
        self._customer_grid = np.array([in_sector(a, customer_sector) for a in self.doa.grid])
        self._cache: dict[tuple[int, int], np.ndarray] = {}  # (frame index, content hash) -> steered response

    def _responses(self, frames: np.ndarray, ids: np.ndarray, streaming: bool) -> np.ndarray:
        """Each frame's steered response (n, grid); frames seen in an earlier overlapping window come from the cache."""
        if not streaming:
            return self.doa.responses(frames)
        keys = [(int(i), hash(f.tobytes())) for i, f in zip(ids, frames, strict=True)]
        todo = [k for k, key in enumerate(keys) if key not in self._cache]
        if todo:
            resp = self.doa.responses(frames[todo])
            self._cache.update({keys[k]: r for k, r in zip(todo, resp, strict=True)})
        while len(self._cache) > CACHE_FRAMES:  # oldest first (insertion order)
            del self._cache[next(iter(self._cache))]
        if not keys:
            return np.zeros((0, self.doa.grid.size), np.float32)
        return np.stack([self._cache[key] for key in keys])

    def fault(self, frames: np.ndarray, db: np.ndarray, active: np.ndarray) -> bool:
        """A microphone of the array far below the others on speech or steady while they carry it (dead), or all
        carrying one signal (copied)."""
        if frames.shape[2] < 2:
            return False
        if bool((_gaps_db(db[active]) < -DEAD_GAP_DB).any()) or _steady(db, list(range(frames.shape[2]))):
            return True
        x = np.asarray(frames[active], np.float32)
        level = float(frame_power(x).mean())
        copies = float(frame_power(x[:, :, 1:] - x[:, :, :1]).max(axis=1).mean())  # a copy differs by nothing
        return 10.0 * np.log10((copies + _EPS) / (level + _EPS)) < -COPY_DB  # every channel one signal

    def mono(self, window: np.ndarray) -> np.ndarray:
        """The array's first microphone (a mix of closely spaced mics would comb-filter the speech)."""
        return np.ascontiguousarray(np.asarray(window, np.float32)[:, 0])

    def classify(self, frames: np.ndarray, ids: np.ndarray, streaming: bool) -> tuple[np.ndarray, np.ndarray]:
        """Staff / customer: a coherent frame whose (smoothed) direction lies in that side's sector."""
        resp = self._responses(frames, ids, streaming)
        return direction_flags(resp, frame_power(frames).mean(axis=1), ids, self.span, self.min_coherence, self.doa,
                               self._staff_grid, self._customer_grid)


def make_gate(cfg: KioskConfig) -> VoiceGate:
    """The configured staff-voice gate (``privacy.staff_voice_gate``; ``UngatedVoice`` when none)."""
    p = cfg.privacy
    kind = effective_gate(p.staff_voice_gate, p.staff_audio_channel, p.direction)
    shares = (p.staff_voice_max_share, p.customer_voice_min_share)
    if kind == "channel" and p.staff_audio_channel is not None:
        return ChannelGate(p.staff_audio_channel, p.staff_voice_margin_db, *shares)
    if kind == "direction" and p.direction is not None:
        d = p.direction
        return DirectionGate(list(d.mic_positions_m), d.staff_sector_deg, d.customer_sector_deg, d.min_coherence,
                             *shares, rate=cfg.microphone.sample_rate)
    return UngatedVoice(*shares)
