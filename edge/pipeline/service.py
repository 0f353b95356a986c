"""The live kiosk service: capture threads → analysis workers → fusion → MQTT, stopped through an event."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from edge import __version__
from edge.capture.audio import AudioSource
from edge.capture.video import VideoSource
from edge.config import KioskConfig
from edge.events import EventFactory, SchemaError, topic
from edge.lograte import RateLimitedLog
from edge.ops.health import LatencyStats, RateMeter
from edge.ops.schedule import is_open
from edge.ops.watchdog import PipelineWatchdog, analysis_stale_s
from edge.pipeline import status as service_status
from edge.pipeline.analyzers import Analyzers
from edge.pipeline.remote_apply import apply_live, process_config
from edge.pipeline.workers import face_loop, voice_loop
from edge.policy.alerts import Ack, AckError, parse_ack
from edge.policy.core import Core, Observation, wait_s
from edge.privacy.pause import PAUSE_FILE, PauseGate
from edge.queues import AudioRing, DropQueue
from edge.transport.current import CurrentState
from edge.transport.homeassistant import announcements
from edge.transport.mqtt import LogPublisher, MqttPublisher, Publisher
from edge.transport.remote_config import RemoteConfig
from edge.types import Frame
from edge.voicegate.gate import make_gate

log = logging.getLogger(__name__)
_warn = RateLimitedLog(log)  # a flood of bad inbound messages: a few lines a minute, every one counted in health

_FINISHED = ("ended", "failed", "disabled")


class Service:
    """Owns the threads of one kiosk; ``run(stop)`` blocks until ``stop`` is set or all file sources end."""

    def __init__(self, cfg: KioskConfig, analyzers: Analyzers, publisher: Publisher | None = None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        """Wire queues, sources and workers; nothing starts until ``run``. ``wall``: Unix time, for opening hours."""
        self.cfg = cfg
        self.an = analyzers
        self.clock = clock
        self.wall = wall
        self.stop = threading.Event()
        self.inputs_done = False  # run() ended because every file source ended (not on a stop request)
        self.factory = EventFactory(cfg.identity)
        self.frames: DropQueue[Frame] = DropQueue(cfg.camera.buffer_frames)
        self.ring = AudioRing(cfg.microphone.buffer_s, cfg.microphone.sample_rate, cfg.microphone.channels)
        self.gate = make_gate(cfg)  # staff-voice gate: decides on each window before the voice model sees it
        self.obs: DropQueue[Observation] = DropQueue(cfg.analysis.queue_size)
        self.latency = LatencyStats()
        self.analysed = RateMeter(clock=clock)
        self.errors = {"face": 0, "voice": 0, "core": 0, "schema": 0, "ack": 0, "pause": 0, "config": 0}
        self.acks: DropQueue[Ack] = DropQueue(16)  # from paho's thread to the main loop; oldest dropped
        self.ack_topic = topic(cfg.mqtt.topic_prefix, cfg.identity.site_id, cfg.identity.kiosk_id, "ack")
        self.pause_topic = topic(cfg.mqtt.topic_prefix, cfg.identity.site_id, cfg.identity.kiosk_id, "pause")
        self.config_topic = topic(cfg.mqtt.topic_prefix, cfg.identity.site_id, cfg.identity.kiosk_id, "config")
        state = cfg.state_dir()  # set: workers discard frames/audio unread, core gets nothing; kept across restarts
        self.paused = PauseGate(cfg.privacy.pause_max_s, state / PAUSE_FILE if state is not None else None, wall)
        self.closed = threading.Event()  # set outside the opening hours (`schedule`): the same as a pause
        self._next_schedule = float("-inf")
        self._status_key: tuple[Any, ...] = (None, None, ())  # last seen (outbox, subscriptions, source states): a
        # change republishes the retained status
        self._next_status_check = float("-inf")
        self.started = clock()
        # Unix time of a pipeline moment, read from the wall clock when each event is made: a clock stepped by NTP
        # after start (a Pi without a real-time clock boots with an old time) is followed, not kept for ever
        self.core = Core(cfg, self.factory, to_wall=lambda t: self.wall() - (self.clock() - t))
        self._core_failed = False  # the last fusion step raised: wait the usual 0.1 s, not for its past due time
        self.current = CurrentState()  # the retained `current` message: on every change and after a reconnect
        # Sources stamp what they capture with the service's clock: the workers compare those times with it.
        self.video = (VideoSource(cfg.camera, self.frames, self.stop, cfg.resolve, clock=clock)
                      if self._want_video() else None)
        self.audio = (AudioSource(cfg.microphone, self.ring, self.stop, cfg.resolve, clock=clock)
                      if self._want_audio() else None)
        self.publisher = publisher or self._make_publisher()
        self._threads: list[threading.Thread] = []
        self.watchdog = PipelineWatchdog(self.status_line, clock=clock, min_stale_s=analysis_stale_s(
            cfg.analysis.face_fps, cfg.analysis.voice_hop_s))  # READY/WATCHDOG/STATUS to systemd
        self.remote = RemoteConfig(cfg, cfg.state_dir())  # re-applies the stored remote-config overlay, if any
        if self.remote.cfg is not cfg:
            apply_live(self, self.remote.cfg)

    def _want_video(self) -> bool:
        return self.cfg.camera.enabled and self.an.face is not None

    def _want_audio(self) -> bool:
        return self.cfg.microphone.enabled and self.an.voice is not None

    def _make_publisher(self) -> Publisher:
        if not self.cfg.mqtt.enabled:
            return LogPublisher(self.cfg.mqtt.topic_prefix, self.cfg.identity)
        ha = self.cfg.homeassistant
        return MqttPublisher(self.cfg.mqtt, self.cfg.identity, self.factory, self.status_body, resolve=self.cfg.resolve,
                             on_message=self.handle_message,
                             subscriptions=[self.ack_topic, self.pause_topic, self.config_topic],
                             state_dir=self.cfg.state_dir(),  # the outbox lives there (memory when None)
                             announce=self._announcements if ha.enabled else None,
                             birth_topic=ha.birth_topic if ha.enabled else None)

    def _announcements(self) -> list[tuple[str, str]]:
        """Home Assistant discovery (``[homeassistant]``): retained after every online status."""
        return announcements(self.cfg, __version__)

    def handle_message(self, msg_topic: str, payload: bytes) -> None:
        """Inbound MQTT message (paho's thread): queue a valid ack for the main loop; log anything else; never raise."""
        if msg_topic == self.pause_topic:
            self.errors["pause"] += not self.paused.receive(payload)  # valid ones are applied by the main loop
            return
        if msg_topic == self.config_topic:
            self.remote.receive(payload)  # checked and applied by the main loop (process_config)
            return
        try:
            if msg_topic != self.ack_topic:
                _warn.warning("topic", "ignored message on unexpected topic %s", msg_topic)
                return
            ack = parse_ack(payload)
        except AckError as exc:
            self.errors["ack"] += 1
            _warn.warning("ack", "ignored malformed ack on %s: %s", msg_topic, exc)
            return
        except Exception:  # noqa: BLE001 - nothing may escape into the network thread
            self.errors["ack"] += 1
            log.exception("ignored ack on %s: could not be handled", msg_topic)
            return
        self.acks.put(ack)

    def process_pauses(self, now: float) -> None:
        """Apply staff pause/resume (main loop): a pause drops pending readings and ends the visit; status on change."""
        paused, changed = self.paused.update(now)
        if paused:
            self._stop_analysis(now)
        if changed:
            self.emit("status", self.status_body())

    def process_schedule(self, now: float) -> None:
        """Opening hours (main loop, once a second): closing ends the visit like a pause; status on a change."""
        if now < self._next_schedule:
            return
        self._next_schedule = now + 1.0
        closed = not is_open(self.cfg.schedule, self.wall())
        if closed == self.closed.is_set():
            return
        log.info("%s opening hours: analysis %s", "outside" if closed else "inside", "stops" if closed else "resumes")
        if closed:
            self.closed.set()
            self._stop_analysis(now)
        else:
            self.closed.clear()
        self.emit("status", self.status_body())

    def _stop_analysis(self, now: float) -> None:
        """Drop readings analysed before a pause or closing time, and end the visit (its summary still goes out)."""
        while self.obs.get(timeout=0) is not None:
            pass
        for kind, body in self.core.end_visit(now):
            self.emit(kind, body)

    def _status_changes(self) -> None:
        """Republish the retained status when what its ``degraded`` list shows changed: the outbox database fails or
        works again, the broker refuses or grants the command subscriptions, a camera or microphone is lost,
        reopened or fails (its state, not its error text, so a retry loop does not churn the retained message)."""
        key = (self.publisher.outbox_problem(), self.publisher.subscription_problem(),
               tuple(v["state"] for v in service_status.source_stats(self).values()),
               tuple(self.watchdog.stuck_workers()))
        if key != self._status_key:
            self._status_key = key
            self.emit("status", self.status_body())

    def failed_sources(self) -> list[str]:
        """The capture sources that failed for good (a missing or unreadable file, no audio device support)."""
        return [name for name, s in (("camera", self.video), ("microphone", self.audio))
                if s is not None and s.stats()["state"] == "failed"]

    def analysis_off(self) -> bool:
        """Whether the workers must discard what they capture (staff pause or outside opening hours)."""
        return self.paused.is_set() or self.closed.is_set()

    # --- payload bodies -------------------------------------------------------------------------------------
    def status_line(self) -> str:
        """One line for systemd's STATUS=, e.g. "analysing 8.0 fps, mqtt connected, camera ok, microphone ok"."""
        return service_status.status_line(self)

    def status_body(self) -> dict[str, Any]:
        """Body of the retained ``status`` message."""
        return service_status.status_body(self)

    def health_body(self) -> dict[str, Any]:
        """Body of the periodic ``health`` message."""
        return service_status.health_body(self)

    def emit(self, kind: str, body: dict[str, Any]) -> None:
        """Build, validate and hand one event to the publisher; invalid payloads are refused and counted."""
        t0 = time.perf_counter()
        try:
            self.publisher.publish(kind, self.factory.make(kind, **body))
        except SchemaError as exc:
            self.errors["schema"] += 1
            log.error("refused to publish invalid %s event: %s", kind, exc)
        self.latency.add("publish", time.perf_counter() - t0)

    # --- workers --------------------------------------------------------------------------------------------
    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        th = threading.Thread(target=target, name=name, daemon=True)
        th.start()
        self._threads.append(th)

    def inputs_ended(self) -> bool:
        """Whether every capture source has finished (file runs; live devices never finish)."""
        srcs = [s for s in (self.video, self.audio) if s is not None]
        return bool(srcs) and all(s.stats()["state"] in _FINISHED for s in srcs)

    def run(self, stop: threading.Event | None = None) -> int:
        """Run until ``stop`` (or self.stop) is set, or every file source has ended; returns an exit code."""
        if stop is not None:
            def relay() -> None:
                stop.wait()
                self.stop.set()

            threading.Thread(target=relay, daemon=True, name="stop-relay").start()
        self.publisher.start()
        self.process_schedule(self.clock())  # before any source or worker: no frame is analysed out of hours
        for src in (self.video, self.audio):
            if src is not None:
                src.start()
        if self.video is not None:
            self._spawn("analyse-face", lambda: face_loop(self))
        if self.audio is not None:
            self._spawn("analyse-voice", lambda: voice_loop(self))
        log.info("service running: site=%s kiosk=%s models=%s", self.cfg.identity.site_id,
                 self.cfg.identity.kiosk_id, self.an.versions)
        self.watchdog.start({"camera": self.video, "microphone": self.audio},
                            {"camera": self.cfg.camera.reopen_max_s, "microphone": self.cfg.microphone.reopen_max_s},
                            self._threads)
        next_health = self.clock()
        try:
            while not self.stop.is_set():
                self._step()
                now = self.clock()
                self.watchdog.tick(now)  # from the main loop: a hung main loop stops the pings too
                if now >= self._next_status_check:
                    self._next_status_check = now + 1.0
                    self._status_changes()
                if now >= next_health:
                    next_health = now + self.cfg.mqtt.health_interval_s
                    self.emit("health", self.health_body())
                # Workers return once the files are done and their last input is analysed; then the
                # readings they queued are fused here before the service stops (nothing is left unread).
                if (self.inputs_ended() and not any(th.is_alive() for th in self._threads)
                        and self.obs.qsize() == 0):
                    log.info("all sources ended; stopping")
                    self.inputs_done = True
                    break
        finally:
            self.stop.set()
            self.watchdog.stopping()
            self._finish()
        return 0

    def publish_current(self) -> None:
        """Send the retained ``current`` state (open episode, visit, paused) when it changed or after a reconnect."""
        try:
            body = self.core.current_body(self.paused.is_set())
            if self.current.due(body, self.publisher.stats().get("connects", 0)):
                self.publisher.publish("current", self.factory.make("current", **body), retain=True)
        except SchemaError as exc:
            self.errors["schema"] += 1
            log.error("refused to publish invalid current event: %s", exc)

    def _step(self) -> None:
        self._analyse()
        self.publish_current()

    def _analyse(self) -> None:
        # wakes when the core is due (an emission late by a loop turn drifted the events by ~4 %); every 0.1 s while
        # analysis is off or the last step failed (the core was not ticked: its due time stays in the past)
        due = None if self.analysis_off() or self._core_failed else self.core.next_due()
        obs = self.obs.get(timeout=wait_s(due, self.clock()))
        now = self.clock()
        self.process_pauses(now)
        process_config(self)  # remote config: applied even while paused
        self.process_schedule(now)
        if self.analysis_off():
            return  # no fusion, no emotion or alert events while paused or closed
        try:
            self.process_acks(now)
            events = []
            if obs is not None:
                self.latency.add("capture_to_fusion", now - obs.t)
                events += self.core.observe(obs)
            t0 = time.perf_counter()
            events += self.core.tick(now)
            self.latency.add("fusion", time.perf_counter() - t0)
        except Exception:  # noqa: BLE001
            self.errors["core"] += 1
            self._core_failed = True
            _warn.exception("core", "fusion step failed; continuing")
            return
        self._core_failed = False
        for kind, body in events:
            self.emit(kind, body)

    def process_acks(self, now: float) -> None:
        """Hand queued staff acks to the core (main loop only: the core is not thread-safe)."""
        while (ack := self.acks.get(timeout=0)) is not None:
            if self.core.acknowledge(ack.alert_id, now, ack.level):
                log.debug("ack for alert %s recorded", ack.alert_id)  # its sender tag is never logged
            else:
                _warn.warning("ack-unknown", "ack for unknown or expired alert %r ignored", ack.alert_id)

    def _finish(self) -> None:
        for th in [*self._threads, *(s for s in (self.video, self.audio) if s is not None)]:
            if th.is_alive():
                th.join(timeout=2.0)
        # Close an open visit so its summary is not lost.
        end_t = self.clock() + self.cfg.fusion.visit_end_s
        for kind, body in self.core.tick(end_t):
            if kind == "visit":
                self.emit(kind, body)
        self.publish_current()  # the visit ended: no episode is open any more
        self.publisher.stop()
