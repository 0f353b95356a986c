"""Direction of arrival per speech frame: SRP-PHAT (summed GCC-PHAT of every microphone pair) on an azimuth grid.

Far field, in the array's plane: a source at azimuth u reaches microphone m ``-(p_m . u) / c`` seconds early. For
each frame the phase-transform-weighted cross-spectra of all pairs are steered to every candidate azimuth and summed;
the peak (normalised to 0..1) is the frame's direction and its height the coherence. A collinear array (2 mics)
cannot tell a direction from its mirror image across the axis, so it measures 0..180 degrees from the axis
(mic 0 -> mic 1 is 0 degrees); other arrays measure 0..360 counter-clockwise from +x. Pure numpy, no I/O.
"""

from __future__ import annotations

import numpy as np

from edge.gate_config import collinear

SPEED_OF_SOUND = 343.0
FRAME = 512  # 32 ms at 16 kHz
BAND_HZ = (200.0, 5000.0)


class DirectionEstimator:
    """Azimuth and coherence of each frame of a (frames, FRAME, channels) block, for one array geometry."""

    def __init__(self, positions_m: list[tuple[float, float]] | np.ndarray, rate: int = 16000,
                 step_deg: float = 2.0) -> None:
        """Precompute the steering phases of every microphone pair for a grid of ``step_deg`` degrees."""
        pos = np.asarray(positions_m, np.float64).reshape(-1, 2)
        self.channels = pos.shape[0]
        self.linear = collinear([(float(x), float(y)) for x, y in pos])
        if self.linear:
            far = int(np.argmax(np.linalg.norm(pos - pos[0], axis=1)))
            axis = (pos[far] - pos[0]) / np.linalg.norm(pos[far] - pos[0])
            if far == 0 or pos.shape[0] > 1 and np.dot(pos[1] - pos[0], axis) < 0:
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
        self.bins = np.flatnonzero((freqs >= BAND_HZ[0]) & (freqs <= BAND_HZ[1]))
        f = freqs[self.bins]
        self.pairs = [(i, j) for i in range(self.channels) for j in range(i + 1, self.channels)]
        lead = dirs @ pos.T / SPEED_OF_SOUND  # (grid, mics): how early each mic hears a source in that direction
        # X_i X_j* of a source in direction d has phase 2 pi f (lead_i - lead_j); steering undoes it.
        tau = np.stack([lead[:, i] - lead[:, j] for i, j in self.pairs], axis=1)  # (grid, pairs)
        steer = np.exp(-2j * np.pi * tau[:, :, None] * f[None, None, :])  # (grid, pairs, bins)
        self._steer = np.ascontiguousarray(steer.reshape(len(self.grid), -1).T)  # (pairs*bins, grid)
        self._norm = float(len(self.pairs) * len(f))
        self._win = np.hanning(FRAME).astype(np.float32)
        self._i = np.array([i for i, _ in self.pairs])
        self._j = np.array([j for _, j in self.pairs])

    def estimate(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(azimuth in degrees, coherence 0..1) of each frame of ``frames`` (n, FRAME, channels)."""
        if frames.shape[0] == 0:
            return np.zeros(0), np.zeros(0)
        spec = np.fft.rfft(frames * self._win[None, :, None], axis=1)[:, self.bins, :]  # (n, bins, mics)
        cross = spec[:, :, self._i] * np.conj(spec[:, :, self._j])  # (n, bins, pairs)
        cross /= np.abs(cross) + 1e-12  # phase transform
        resp = np.real(cross.transpose(0, 2, 1).reshape(frames.shape[0], -1) @ self._steer) / self._norm
        best = np.argmax(resp, axis=1)
        return self.grid[best], resp[np.arange(resp.shape[0]), best]
