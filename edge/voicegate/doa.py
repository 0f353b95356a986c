"""Direction of arrival per speech frame: SRP-PHAT (summed GCC-PHAT of every microphone pair) on an azimuth grid.

Far field, in the array's plane: a source at azimuth u reaches microphone m ``-(p_m . u) / c`` seconds early. For
each frame the phase-transform-weighted cross-spectra of all pairs are steered to every candidate azimuth and summed;
the peak (normalised to 0..1) is the frame's direction and its height the coherence. A collinear array (2 mics)
cannot tell a direction from its mirror image across the axis, so it measures 0..180 degrees from the axis
(mic 0 -> mic 1 is 0 degrees); other arrays measure 0..360 counter-clockwise from +x.

One 32 ms frame in a reverberant room often points at a reflection (the staff-gate benchmark found 5-20 % of a
customer's frames in the staff's sector at RT60 0.6 s); ``smooth`` averages each frame's steered response with its
neighbours' (weighted by their power: the loud parts of a syllable carry the most direct sound) before the peak is
taken, which is what the gate and the calibration use. Pure numpy, no I/O.
"""

from __future__ import annotations

import numpy as np

from edge.privacy.gate_config import collinear

SPEED_OF_SOUND = 343.0
FRAME = 512  # 32 ms at 16 kHz
BAND_HZ = (200.0, 5000.0)


GEMM_SINGLE_THREAD = 262144  # OpenBLAS runs a product with m*n*k below this on the calling thread only


def _small_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` in row blocks small enough for OpenBLAS to stay on this thread (its pool costs 30x here)."""
    # On 2 loaded cores OpenBLAS's spinning threads made a 48x462x120 product take 32 ms instead of 0.1 ms.
    rows = max(1, (GEMM_SINGLE_THREAD - 1) // (a.shape[1] * b.shape[1]))
    if a.shape[0] <= rows:
        return a @ b
    return np.concatenate([a[i:i + rows] @ b for i in range(0, a.shape[0], rows)])


class DirectionEstimator:
    """Azimuth and coherence of each frame of a (frames, FRAME, channels) block, for one array geometry."""

    def __init__(self, positions_m: list[tuple[float, float]] | np.ndarray, rate: int = 16000,
                 step_deg: float = 3.0) -> None:
        """Precompute the steering phases of every microphone pair for a grid of ``step_deg`` degrees."""
        pos = np.asarray(positions_m, np.float64).reshape(-1, 2)
        self.channels = pos.shape[0]
        self.linear = collinear([(float(x), float(y)) for x, y in pos])
        if self.linear:
            far = int(np.argmax(np.linalg.norm(pos - pos[0], axis=1)))
            axis = (pos[far] - pos[0]) / np.linalg.norm(pos[far] - pos[0])
            if np.dot(pos[1] - pos[0], axis) < 0:
                axis = -axis
            normal = np.array([-axis[1], axis[0]])
            self.grid = np.arange(0.0, 180.0 + 1e-9, step_deg)
            rad = np.deg2rad(self.grid)
            dirs = np.cos(rad)[:, None] * axis[None, :] + np.sin(rad)[:, None] * normal[None, :]
        else:
            self.grid = np.arange(0.0, 360.0, step_deg)
            rad = np.deg2rad(self.grid)
            dirs = np.stack([np.cos(rad), np.sin(rad)], axis=1)
        freqs = np.fft.rfftfreq(FRAME, 1.0 / rate)
        self.bins = np.flatnonzero((freqs >= BAND_HZ[0]) & (freqs <= BAND_HZ[1]))[::2]  # every other bin: 62 Hz
        f = freqs[self.bins]
        pairs = [(i, j) for i in range(self.channels) for j in range(i + 1, self.channels)]
        lead = dirs @ pos.T / SPEED_OF_SOUND  # (grid, mics): how early each mic hears a source in that direction
        # X_i X_j* of a source in direction d has phase 2 pi f (lead_i - lead_j); steering undoes it. The real part
        # of the steered sum is Re(C) cos(phi) + Im(C) sin(phi), two float32 matrix products.
        tau = np.stack([lead[:, i] - lead[:, j] for i, j in pairs], axis=1)  # (grid, pairs)
        phi = (2 * np.pi * tau[:, :, None] * f[None, None, :]).reshape(len(self.grid), -1)  # (grid, pairs*bins)
        self._cos = np.ascontiguousarray(np.cos(phi).T, np.float32) / np.float32(phi.shape[1])
        self._sin = np.ascontiguousarray(np.sin(phi).T, np.float32) / np.float32(phi.shape[1])
        self._win = np.hanning(FRAME).astype(np.float32)
        self._i = np.array([i for i, _ in pairs])
        self._j = np.array([j for _, j in pairs])

    def estimate(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(azimuth in degrees, coherence 0..1) of each frame of ``frames`` (n, FRAME, channels), unsmoothed."""
        return self.peaks(self.responses(frames))

    def peaks(self, resp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(azimuth, coherence): the grid direction and height of each row's peak of ``resp`` (n, grid)."""
        if resp.shape[0] == 0:
            return np.zeros(0), np.zeros(0)
        best = np.argmax(resp, axis=1)
        return self.grid[best], resp[np.arange(resp.shape[0]), best].astype(np.float64)

    def responses(self, frames: np.ndarray) -> np.ndarray:
        """Steered response (n, grid), float32, of each frame of ``frames`` (n, FRAME, channels): 1 = coherent."""
        n = frames.shape[0]
        if n == 0:
            return np.zeros((0, self.grid.size), np.float32)
        x = np.asarray(frames, np.float32) * self._win[None, :, None]
        spec = np.fft.rfft(x, axis=1)[:, self.bins, :]  # (n, bins, mics)
        cross = spec[:, :, self._i] * np.conj(spec[:, :, self._j])  # (n, bins, pairs)
        cross /= np.abs(cross) + 1e-12  # phase transform
        c = cross.transpose(0, 2, 1).reshape(n, -1)
        resp = _small_matmul(np.real(c).astype(np.float32), self._cos)
        resp += _small_matmul(np.imag(c).astype(np.float32), self._sin)
        return np.asarray(resp, np.float32)


def frame_power(frames: np.ndarray) -> np.ndarray:
    """Mean power of each frame (n, samples, channels) per channel: (n, channels), float64 (summed in float32)."""
    x = np.asarray(frames, np.float32)
    ones = np.full(x.shape[1], 1.0 / max(x.shape[1], 1), np.float32)
    return np.asarray(ones @ np.square(x), np.float64)  # a batched product: 25x faster than mean(axis=1) here


def neighbour_sum(values: np.ndarray, ids: np.ndarray, span: int) -> np.ndarray:
    """Each row of ``values`` (n, ...) plus the rows whose frame index in ``ids`` (sorted) is within ``span`` of it.

    Only the frames given count (a window's speech frames): a pause is not bridged by silence's directions.
    """
    out = np.array(values, copy=True)
    if span <= 0 or ids.size < 2:
        return out
    last = ids.size - 1
    for off in [o for k in range(1, span + 1) for o in (k, -k)]:
        want = ids + off
        pos = np.minimum(np.searchsorted(ids, want), last)
        hit = ids[pos] == want
        out[hit] += values[pos[hit]]
    return out


def smooth(resp: np.ndarray, power: np.ndarray, ids: np.ndarray, span: int) -> np.ndarray:
    """Steered responses (n, grid) averaged over each frame's speech neighbours within ``span`` frames, by power."""
    if span <= 0 or resp.shape[0] < 2:
        return resp
    w = np.asarray(power, np.float64).reshape(-1)
    w = (w / max(float(w.max()), 1e-20)).astype(np.float32)
    num = neighbour_sum(resp * w[:, None], ids, span)
    den = neighbour_sum(w, ids, span)
    return np.asarray(num / np.maximum(den, 1e-12)[:, None], np.float32)
