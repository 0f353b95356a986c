"""Shared fixtures: a private mosquitto broker and an MQTT subscriber that collects messages."""

from __future__ import annotations

import copy
import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, timeout: float = 5.0) -> bool:
    """Wait until ``host:port`` accepts TCP connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.02)
    return False


class Broker:
    """A private mosquitto on free 127.0.0.1 ports (TCP + websockets); stop()/start() keep the ports."""

    def __init__(self, workdir: Path, users: dict[str, str] | None = None) -> None:
        """With ``users`` anonymous access is off and only these username/passwords are accepted."""
        assert MOSQUITTO is not None
        self.host = "127.0.0.1"
        self.port = free_port()
        self.ws_port = free_port()
        self.workdir = workdir
        self.log_file = workdir / "mosquitto.log"
        lines = [
            f"user {pwd.getpwuid(os.getuid()).pw_name}",  # as root: stay root (ignored when not root)
            "persistence false",
            f"log_dest file {self.log_file}",
            "log_type all",
            f"listener {self.port} {self.host}",
            "protocol mqtt",
            f"listener {self.ws_port} {self.host}",
            "protocol websockets",
        ]
        if users:
            pw = workdir / "passwd"
            for i, (user, password) in enumerate(users.items()):
                subprocess.run(["mosquitto_passwd", "-b"] + (["-c"] if i == 0 else []) + [str(pw), user, password],
                               check=True, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines += ["allow_anonymous true"]
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start (or restart) the broker on its ports and wait until it accepts connections."""
        assert self.proc is None, "already running"
        with open(self.workdir / "stderr.txt", "ab") as err:
            self.proc = subprocess.Popen([str(MOSQUITTO), "-c", str(self.conf)], stdout=err, stderr=err)
        if not (wait_port(self.host, self.port) and wait_port(self.host, self.ws_port)):
            self.stop()
            pytest.fail(f"mosquitto did not start: {self.log()}")

    def stop(self) -> None:
        """Kill the broker (clients see the connection drop)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=5)
            self.proc = None

    def log(self) -> str:
        """The broker's log so far (for assertion messages)."""
        files = (self.workdir / "stderr.txt", self.log_file)
        return "".join(f.read_text(errors="replace") for f in files if f.exists())


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    """Start private brokers (``broker_factory(users={...})``); all are killed at teardown."""
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto mosquitto-clients)")
    brokers: list[Broker] = []

    def make(users: dict[str, str] | None = None) -> Broker:
        d = tmp_path / f"broker{len(brokers)}"
        d.mkdir()
        os.chmod(d, 0o777)  # in case mosquitto drops privileges anyway
        b = Broker(d, users)
        brokers.append(b)
        b.start()
        return b

    yield make
    for b in brokers:
        b.stop()


@pytest.fixture
def mosquitto(broker_factory: Callable[..., Broker]) -> Broker:
    """A private anonymous mosquitto: ``.host``, ``.port``, ``.ws_port``, ``.stop()``, ``.start()``."""
    return broker_factory()


@dataclass
class Message:
    """One received MQTT message."""

    topic: str
    payload: bytes
    qos: int
    retain: bool


class Subscriber:
    """A paho client that collects every message on ``topic_filter``; ``wait_for`` blocks for a match."""

    def __init__(self, host: str, port: int, topic_filter: str = "#", qos: int = 1) -> None:
        """Connect and subscribe (blocking, up to 5 s)."""
        self.messages: list[Message] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_connect = lambda c, *_: c.subscribe(topic_filter, qos)
        self.client.connect(host, port)
        self.client.loop_start()
        if not self._subscribed.wait(5):
            self.close()
            raise AssertionError(f"could not subscribe to {topic_filter} on {host}:{port}")

    def _on_message(self, _c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(Message(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain)))
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[Message], bool], timeout: float = 5.0) -> Message:
        """The first collected message matching ``predicate``; AssertionError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for m in self.messages:
                    if predicate(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(m.topic, m.payload[:120]) for m in self.messages]
                    raise AssertionError(f"no matching message within {timeout} s; got {seen}")
                self._cond.wait(left)

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscribe() -> Iterator[Callable[..., Subscriber]]:
    """``subscribe(broker, "edge-emotion/#")`` -> a connected Subscriber, closed at teardown."""
    subs: list[Subscriber] = []

    def make(broker: Broker, topic_filter: str = "#", qos: int = 1) -> Subscriber:
        s = Subscriber(broker.host, broker.port, topic_filter, qos)
        subs.append(s)
        return s

    yield make
    for s in subs:
        s.close()


_EMO = {"neutral": 0.1, "happy": 0.05, "surprise": 0.05, "sad": 0.1, "angry": 0.6, "disgust": 0.05, "fear": 0.05}
_MOD = {"used": True, "confidence": 0.8, "age_s": 0.4}

# One valid body (payload minus envelope) per event kind, for tests of anything that publishes.
SAMPLE_BODIES: dict[str, dict[str, object]] = {
    "status": {"state": "online", "version": "0.1.0", "counter_name": "Counter 3",
               "models": {"face": "fer-mbv3-1.0"}, "degraded": []},
    "health": {"uptime_s": 12.5, "fps_in": 30.0, "fps_analysed": 8.0, "voice_windows": 11,
               "latency_ms": {"face": {"p50": 9.5, "p95": 14.0, "n": 96}}, "drops": {"frames": 3},
               "queue_depth": {"readings": 0}, "cpu_temp_c": None, "models": {"face": "fer-mbv3-1.0"},
               "sources": {"camera": {"state": "ok", "error": None},
                           "microphone": {"state": "reopening", "error": "device unplugged"}},
               "mqtt": {"connects": 1, "published": 40, "dropped": 0, "refused": 0}},
    "emotion": {"visit_id": "v-1", "label": "angry", "probs": dict(_EMO), "valence": -0.5, "arousal": 0.6,
                "escalation": 0.7, "confidence": 0.8, "modalities": {"face": dict(_MOD), "voice": dict(_MOD)},
                "window_start": "2026-11-22T10:00:00.000Z", "window_end": "2026-11-22T10:00:01.000Z"},
    "visit": {"visit_id": "v-1", "phase": "start", "started_at": "2026-11-22T10:00:00.000Z",
              "ended_at": None, "summary": None},
    "alert": {"alert_id": "a-1", "visit_id": "v-1", "level": "alert", "reason": "sustained",
              "evidence": {"escalation": 0.8, "duration_s": 6.0, "modalities": ["face", "voice"]},
              "hint": {"lang": "en", "text": "Acknowledge the wait and offer a concrete next step."},
              "counter_name": "Counter 3"},
    "configstate": {"accepted": True, "trigger": "message", "errors": [], "changed": ["alerts.alert_threshold"],
                    "persisted": True, "note": None, "overlay": {"alerts": {"alert_threshold": 0.7}},
                    "config": {s: {} for s in ("identity", "camera", "microphone", "models", "analysis", "fusion",
                                               "alerts", "mqtt", "logging", "state", "privacy", "schedule")}},
    "current": {"counter_name": "Counter 3", "paused": False, "visit_id": "v-1",
                "episode": {"alert_id": "a-1", "visit_id": "v-1", "level": "alert", "reason": "sustained",
                            "since": "2026-11-22T10:00:00.000Z",
                            "evidence": {"escalation": 0.8, "duration_s": 6.0, "modalities": ["face", "voice"]},
                            "hint": {"lang": "en", "text": "Acknowledge the wait.", "key": "sustained",
                                     "custom": True}, "acknowledged": False}, "cue": None},
    "cue": {"cue_id": "c-1", "visit_id": "v-1", "kind": "care",
            "evidence": {"valence": -0.45, "arousal": -0.3, "duration_s": 6.0, "modalities": ["face", "voice"]},
            "hint": {"lang": "en", "text": "Slow down and reassure.", "key": "care", "custom": False},
            "counter_name": "Counter 3"},
}


def sample_body(kind: str) -> dict[str, object]:
    """A deep copy of SAMPLE_BODIES[kind], safe to modify."""
    return copy.deepcopy(SAMPLE_BODIES[kind])


def angry_face(t: float) -> Any:
    """A confident angry face observation at pipeline time ``t``."""
    import numpy as np

    from edge.policy.core import Observation
    from edge.types import EMOTIONS, Reading

    p = np.full(len(EMOTIONS), 0.02)
    p[EMOTIONS.index("angry")] = 0.88
    return Observation("face", t, Reading("face", t, p, 0.8))


def run_fed(svc: Any) -> tuple[threading.Thread, threading.Event]:
    """Run ``svc`` in a thread and feed it an angry face every 0.1 s until the returned event is cleared."""
    runner = threading.Thread(target=svc.run, daemon=True)
    runner.start()
    feeding = threading.Event()
    feeding.set()

    def feed() -> None:
        while feeding.is_set() and not svc.stop.is_set():
            svc.obs.put(angry_face(svc.clock()))
            time.sleep(0.1)

    threading.Thread(target=feed, daemon=True).start()
    return runner, feeding
