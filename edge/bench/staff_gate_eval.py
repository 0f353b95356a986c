"""One simulated counter room through every staff-voice gate at its defaults: windows labelled, judged, timed."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from edge.bench import staff_gate_sweep as sw
from edge.bench.rooms import FOUR_MIC, RATE, TWO_MIC, Room
from edge.privacy.config import PrivacyConfig
from edge.privacy.gate_config import DirectionConfig
from edge.voice.vad import FRAME as VAD_FRAME
from edge.voice.vad import Vad
from edge.voicegate.calibrate import MARGIN_DEG
from edge.voicegate.doa import DirectionEstimator
from edge.voicegate.gate import CHANNEL_SPAN, DIRECTION_SPAN, ChannelGate, DirectionGate, UngatedVoice, VoiceGate

log = logging.getLogger(__name__)

WIN, HOP = 2 * RATE, RATE // 4
MIN_SPEECH = 0.3  # analysis.min_speech_ratio's default: what the VAD needs to pass a window to the model
GATES = ("none", "channel", "direction-2mic", "direction-4mic")


def defaults() -> dict[str, Any]:
    """The gate settings in force by default: the config's thresholds and the gate's and calibration's constants."""
    p, d = PrivacyConfig.model_fields, DirectionConfig.model_fields
    return {"max_staff_share": float(p["staff_voice_max_share"].default),
            "min_customer_share": float(p["customer_voice_min_share"].default),
            "margin_db": float(p["staff_voice_margin_db"].default), "channel_span": CHANNEL_SPAN,
            "min_coherence": float(d["min_coherence"].default), "direction_span": DIRECTION_SPAN,
            "sector_margin_deg": MARGIN_DEG}


def default_variants(d: dict[str, Any]) -> dict[str, str]:
    """The sweep's names of the default channel and direction variants."""
    return {"channel": sw.key(margin_db=d["margin_db"], span=d["channel_span"]),
            "direction": sw.key(span=d["direction_span"], min_coherence=d["min_coherence"],
                                sector_margin_deg=d["sector_margin_deg"])}


def gates(room: Room, d: dict[str, Any]) -> dict[str, tuple[VoiceGate, np.ndarray, bool]]:
    """Each gate at the defaults ``d`` with the audio it gets in this room and whether its calibration worked."""
    shares = (d["max_staff_share"], d["min_customer_share"])
    out: dict[str, tuple[VoiceGate, np.ndarray, bool]] = {
        "none": (UngatedVoice(*shares), room.mics["kiosk_mic"], True),
        "channel": (ChannelGate(0, d["margin_db"], *shares, span=d["channel_span"]),
                    np.stack([room.mics["staff_mic"], room.mics["kiosk_mic"]], axis=1), True)}
    for name, array, pos in (("direction-2mic", "two", TWO_MIC), ("direction-4mic", "four", FOUR_MIC)):
        est = DirectionEstimator(pos, RATE)
        s, c, ok = sw.calibrated_sectors(room, array, est, d["sector_margin_deg"], d["direction_span"],
                                         d["min_coherence"])
        out[name] = (DirectionGate(pos.tolist(), s, c, d["min_coherence"], *shares, rate=RATE,
                                   span=d["direction_span"]), room.mics[array], ok)
    return out


def window_kind(staff: float, customer: float) -> str | None:
    """Ground truth of a window from its talkers' speech shares: staff / customer (alone), overlap, or None."""
    if staff >= MIN_SPEECH and customer == 0:
        return "staff"
    if customer >= MIN_SPEECH and staff == 0:
        return "customer"
    if staff >= 0.1 and customer >= 0.1:
        return "overlap"
    return None


def evaluate(room: Room, d: dict[str, Any],
             sweep: bool = True) -> tuple[dict[str, dict[str, Any]], dict[str, sw.GateWindows]]:
    """One room: per gate at the defaults, windows of each kind, passed by the gate, reaching the model, verdicts
    per kind, CPU per window; and (``sweep``) every gate's windows under every variant of the sweep."""
    out: dict[str, dict[str, Any]] = {}
    labelled: dict[str, list[tuple[int, str, bool]]] = {}
    audios: dict[str, np.ndarray] = {}
    n = room.mics["kiosk_mic"].shape[0]
    for name, (gate, audio, calibrated) in gates(room, d).items():
        audios[name] = audio
        c: dict[str, Any] = {"calibrated": calibrated, "cpu_s": 0.0, "windows": 0, "verdicts": {}}
        rows: list[tuple[int, str, bool]] = []
        for end in range(WIN, n + 1, HOP):
            f0, f1 = (end - WIN) // VAD_FRAME, end // VAD_FRAME
            kind = window_kind(float(room.talking["staff"][f0:f1].mean()),
                               float(room.talking["customer"][f0:f1].mean()))
            t0 = time.process_time()
            dec = gate.decide(audio[end - WIN:end], end)
            c["cpu_s"] += time.process_time() - t0
            c["windows"] += 1
            if kind is None:
                continue
            # the model's VAD, afresh on each window's audio (webrtcvad adapts: judged alike whatever passed before)
            ok = Vad(2).speech_ratio(gate.mono(audio[end - WIN:end])) >= MIN_SPEECH
            rows.append((end, kind, ok))
            v = c["verdicts"].setdefault(kind, {})
            v[dec.verdict] = v.get(dec.verdict, 0) + 1
            for key, val in ((kind, 1), (f"{kind}_passed", dec.audio is not None),
                             (f"{kind}_reached", dec.audio is not None and ok)):
                c[key] = c.get(key, 0) + int(val)
        out[name] = c
        labelled[name] = rows
    if not sweep:
        return out, {}
    sweeps = {"channel": sw.sweep_channel(audios["channel"], labelled["channel"], WIN),
              "direction-2mic": sw.sweep_direction(room, "two", labelled["direction-2mic"], WIN),
              "direction-4mic": sw.sweep_direction(room, "four", labelled["direction-4mic"], WIN)}
    variants = default_variants(d)
    for name, gw in sweeps.items():  # the sweep's default variant must judge every window as the gate did
        v = variants["channel" if name == "channel" else "direction"]
        got = sw.verdicts(np.array(gw.shares[v], np.float64).reshape(-1, 3), d["max_staff_share"],
                          d["min_customer_share"])
        tally: dict[str, dict[str, int]] = {}
        for kind, verdict in zip(gw.kind, got, strict=True):
            tally.setdefault(kind, {})[str(verdict)] = tally.setdefault(kind, {}).get(str(verdict), 0) + 1
        out[name]["sweep_agrees"] = tally == out[name]["verdicts"]
    return out, sweeps
