"""Remote config meets the running service: a validated config handed to its live objects, ``configstate`` sent."""

from __future__ import annotations

import logging
from typing import Protocol

from edge.config import KioskConfig
from edge.events import EventFactory, SchemaError
from edge.ops.watchdog import PipelineWatchdog, analysis_stale_s
from edge.pipeline.analyzers import Analyzers
from edge.policy.core import Core
from edge.privacy.pause import PauseGate
from edge.transport.publishers import Publisher
from edge.transport.remote_config import RemoteConfig
from edge.voicegate.gate import VoiceGate, make_gate

log = logging.getLogger(__name__)


class LiveHost(Protocol):
    """The running service's objects a remote config change reaches, and what answers it on ``configstate``."""

    cfg: KioskConfig  # replaced whole
    core: Core
    an: Analyzers
    gate: VoiceGate  # replaced whole: the voice worker reads it once per window
    paused: PauseGate
    watchdog: PipelineWatchdog
    remote: RemoteConfig
    publisher: Publisher
    factory: EventFactory
    errors: dict[str, int]


def apply_live(svc: LiveHost, cfg: KioskConfig) -> None:
    """Hand a validated config to the running service's objects (main loop; workers see whole swapped values)."""
    svc.cfg = cfg
    core = svc.core
    core.cfg = cfg
    core.alerts.cfg = cfg.alerts  # read on every update
    core.fusion.cfg = cfg.fusion
    core.fusion.voice_gap_s = cfg.analysis.voice_hop_s
    core.visits.start_s, core.visits.end_s = cfg.fusion.visit_start_s, cfg.fusion.visit_end_s
    a, p = cfg.analysis, cfg.privacy
    if svc.an.face is not None:
        svc.an.face.configure(a.customer_zone, a.min_face_frac, p.staff_zones)
    voice = svc.an.voice
    if voice is not None:
        voice.min_speech_ratio = float(a.min_speech_ratio)
        if voice.vad.aggressiveness != a.vad_aggressiveness:
            voice.vad = type(voice.vad)(a.vad_aggressiveness)
    gate = make_gate(cfg)  # a whole new gate: the voice worker reads ``svc.gate`` once per window
    gate.counts = svc.gate.counts
    svc.gate = gate
    svc.paused.max_s = float(p.pause_max_s)  # from the next pause on
    svc.watchdog.set_min_stale(analysis_stale_s(a.face_fps, a.voice_hop_s))  # down again after a revert


def process_config(svc: LiveHost) -> None:
    """Main-loop turn: apply queued config messages; retained ``configstate`` per message, at start and on reconnect."""
    remote = svc.remote
    try:
        bodies = remote.process(lambda cfg: apply_live(svc, cfg))
    except Exception:  # noqa: BLE001 - even a failed rollback must not stop the main loop
        log.exception("remote config processing failed")
        bodies = []
    # refused, dropped with 8 already queued, or a reply that could not be queued
    svc.errors["config"] = remote.rejected + remote.pending.dropped + remote.reply_failures
    connects = svc.publisher.stats().get("connects", 0)
    if connects > remote.connects_seen and not bodies:  # first turn, or a reconnect (retained copy may be lost)
        bodies = [remote.body]
    remote.connects_seen = max(connects, 1)
    for body in bodies:
        try:
            svc.publisher.publish("configstate", svc.factory.make("configstate", **body), retain=True)
        except SchemaError as exc:
            svc.errors["schema"] += 1
            log.error("refused to publish invalid configstate event: %s", exc)
        except Exception as exc:  # noqa: BLE001 - a reply that cannot be queued must not stop the main loop
            remote.reply_failures += 1
            svc.errors["config"] += 1
            log.error("could not queue the configstate reply (%s)", type(exc).__name__)
