"""What the running service says about itself: systemd's status line, the ``status`` and ``health`` bodies."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cache
from typing import Any, Protocol

from edge import __version__
from edge.capture.audio import AudioSource
from edge.capture.media import clip
from edge.capture.video import VideoSource
from edge.config import KioskConfig
from edge.events import load_schema
from edge.ops.health import LatencyStats, RateMeter, cpu_temperature_c
from edge.ops.watchdog import PipelineWatchdog
from edge.pipeline.analyzers import Analyzers
from edge.policy.alerts import Ack
from edge.policy.core import Core, Observation
from edge.privacy.pause import PauseGate
from edge.queues import AudioRing, DropQueue
from edge.transport.publishers import Publisher
from edge.types import Frame
from edge.voicegate.gate import VoiceGate


class StatusHost(Protocol):
    """What the status line and the ``status``/``health`` bodies read of the service (never written)."""

    cfg: KioskConfig
    an: Analyzers
    clock: Callable[[], float]
    started: float
    video: VideoSource | None
    audio: AudioSource | None
    publisher: Publisher
    paused: PauseGate
    closed: threading.Event
    stop: threading.Event
    watchdog: PipelineWatchdog
    frames: DropQueue[Frame]
    obs: DropQueue[Observation]
    acks: DropQueue[Ack]
    ring: AudioRing
    gate: VoiceGate
    latency: LatencyStats
    analysed: RateMeter
    errors: dict[str, int]
    core: Core


def source_stats(svc: StatusHost) -> dict[str, dict[str, Any]]:
    """State and last error of the camera and the microphone (``disabled`` when not in use)."""
    out: dict[str, dict[str, Any]] = {}
    for name, src in (("camera", svc.video), ("microphone", svc.audio)):
        if src is None:
            out[name] = {"state": "disabled", "error": None}
        else:
            st = src.stats()
            if (src.ident is not None and not src.is_alive() and st["state"] not in ("ended", "failed")
                    and not getattr(src, "stopped_on_request", False)):
                # started and gone without saying why (an unexpected error): never shown as "ok"; a source that
                # left because the service stopped (SIGTERM) is not a fault (the retained offline status said it
                # was), one that died before the stop still is
                st = {"state": "failed", "error": st.get("error") or "capture thread stopped unexpectedly"}
            out[name] = {"state": st["state"] if st["state"] != "starting" else "ok", "error": st.get("error")}
    return out


def status_line(svc: StatusHost) -> str:
    """One line for systemd's STATUS=, e.g. "analysing 8.0 fps, mqtt connected, camera ok, microphone ok"."""
    mqtt = ("connected" if svc.publisher.connected else "disconnected") if svc.cfg.mqtt.enabled else "off"
    srcs = ", ".join(f"{k} {v['state']}" for k, v in source_stats(svc).items())
    return f"analysing {svc.analysed.rate():.1f} fps, mqtt {mqtt}, {srcs}"


@cache
def degraded_max() -> int:
    """The schema's bound on one ``status.degraded`` item."""
    return int(load_schema("status")["properties"]["degraded"]["items"]["maxLength"])


def status_body(svc: StatusHost) -> dict[str, Any]:
    """Body of the retained ``status`` message; every ``degraded`` item within the schema's bound."""
    degraded = [f"{k}: {v['state']}" + (f" ({v['error']})" if v["error"] else "")
                for k, v in source_stats(svc).items() if v["state"] not in ("ok", "disabled")]
    if not svc.stop.is_set():
        degraded += [f"analysis: the {name} worker is not progressing (a hung model call?); its readings are missing"
                     for name in svc.watchdog.stuck_workers()]
    if svc.paused.is_set():
        degraded.append("analysis: paused by staff")
    if svc.closed.is_set():
        degraded.append("analysis: outside opening hours")
    if (problem := svc.publisher.outbox_problem()) is not None:
        stranded = svc.publisher.outbox_stats().get("stranded", 0)
        degraded.append(f"outbox: {problem}; {stranded} event(s) wait in it, new ones in memory; retrying")
    if (refused := svc.publisher.subscription_problem()) is not None:
        degraded.append(f"mqtt: {refused}; staff acknowledgements, pauses and remote config do not arrive")
    return {"state": "online", "version": __version__, "counter_name": svc.cfg.identity.counter_name,
            "models": dict(svc.an.versions), "degraded": [clip(d, degraded_max()) for d in degraded],
            "privacy_profile": svc.cfg.privacy.profile, "paused": svc.paused.is_set(), "ack_levels": True}


def health_body(svc: StatusHost) -> dict[str, Any]:
    """Body of the periodic ``health`` message."""
    vstats = svc.video.stats() if svc.video else {}
    astats = svc.audio.stats() if svc.audio else {}
    drops = {"frames": svc.frames.dropped, "observations": svc.obs.dropped, "acks": svc.acks.dropped,
             "audio_overrun_samples": svc.ring.overrun_samples,
             **{f"errors_{k}": v for k, v in svc.errors.items()}}
    if svc.audio is not None and svc.gate.kind != "none":
        # Equipment faults only. The staff/ambiguous verdict counts stay in the process: their difference between
        # two health messages is a named counter's staff talk time per interval, a measure of the staff.
        drops.update({f"voice_gated_{k}": int(svc.gate.counts.get(k, 0)) for k in ("invalid", "fault")})
    if "overflows" in astats:
        drops["audio_overflows"] = int(astats["overflows"])
    drops["inbound_retained"] = int(svc.publisher.stats().get("inbound_retained", 0))  # refused: retain flag set
    drops["readings_ignored"] = int(svc.core.fusion.ignored)  # a non-finite value or a wrong shape: left out
    outbox = svc.publisher.outbox_stats()  # rows dropped per kind by the outbox's limits
    drops.update({f"outbox_{k}": v for k, v in outbox.items() if k not in ("rows", "bytes", "stranded")})
    return {
        "uptime_s": round(svc.clock() - svc.started, 1),
        "fps_in": float(vstats.get("fps_in", 0.0)),
        "fps_analysed": svc.analysed.rate(),
        "voice_windows": svc.latency.count("voice"),
        "latency_ms": svc.latency.snapshot(),
        "drops": drops,
        "queue_depth": {"frames": svc.frames.qsize(), "observations": svc.obs.qsize(),
                        **({"outbox": outbox["rows"]} if "rows" in outbox else {}),
                        **({"outbox_stranded": outbox["stranded"]} if outbox.get("stranded") else {})},
        "cpu_temp_c": cpu_temperature_c(),
        "models": dict(svc.an.versions),
        "sources": source_stats(svc),
        "mqtt": {k: int(v) for k, v in svc.publisher.stats().items()
                 if k in ("connects", "published", "dropped", "refused")},
    }
