"""Fault tests with real processes: kill -9 the broker and the kiosk; truncated and corrupt media files.

The kiosk runs as ``python -m edge -v run`` on looping demo media; with ``-v`` it logs the event id of every
event it hands to its outbox ("queued KIND event ID"), so the test knows exactly what it published and can
compare with what a QoS 1 persistent subscriber received. The broker runs with persistence so the subscriber's
session survives kill -9 (what happens to a subscriber on a broker without persistence is the broker's
business, not the kiosk's).

Long version: ``EDGE_FAULT_SECONDS=300 EDGE_FAULT_KILLS=30 scripts/test tests/test_faults.py -k broker -s``
(see docs/bench/faults.md); the CI version runs about 20 s with 5 kills.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from conftest import MOSQUITTO, Broker
from paho.mqtt.enums import CallbackAPIVersion

from edge.demo.media import make_demo

ROOT = Path(__file__).resolve().parents[1]
KILLS = int(os.environ.get("EDGE_FAULT_KILLS", "5"))
SECONDS = float(os.environ.get("EDGE_FAULT_SECONDS", "0"))  # 0: as short as the kills allow
QUEUED = re.compile(r"queued (\w+) event ([0-9a-f-]{36}) as outbox row")
RECONNECT = re.compile(r"connected to MQTT broker \S+; (\d+) queued event\(s\) to send")


def until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class PersistentBroker(Broker):
    """A mosquitto that saves its sessions on every change, so a persistent subscriber survives kill -9."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        conf = self.conf.read_text().replace(
            "persistence false", f"persistence true\npersistence_location {workdir}/\n"
            "autosave_interval 1\nautosave_on_changes true")
        self.conf.write_text(conf)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PersistentBroker]:
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed")
    d = tmp_path / "broker"
    d.mkdir()
    os.chmod(d, 0o777)
    b = PersistentBroker(d)
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_demo(tmp_path_factory.mktemp("faults-media"), seconds=6.0)


class SessionSubscriber:
    """A QoS 1 subscriber with a fixed client id and a persistent session (clean_session=False); reconnects."""

    def __init__(self, broker: Broker, topic: str, client_id: str = "fault-test-subscriber") -> None:
        self.received: Counter[str] = Counter()  # event_id -> times received
        self.kinds: dict[str, str] = {}
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311,
                                  clean_session=False)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, 1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.05, 0.2)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert self.subscribed.wait(5), "subscriber could not subscribe"
        time.sleep(1.2)  # the broker's autosave has the subscription on disk now

    def _on_message(self, _c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        if msg.topic.endswith("/status"):
            return
        p = json.loads(msg.payload)
        with self.lock:
            self.received[p["event_id"]] += 1
            self.kinds[p["event_id"]] = msg.topic.rsplit("/", 1)[1]

    def ids(self) -> set[str]:
        with self.lock:
            return set(self.received)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def write_config(path: Path, broker: Broker, media: tuple[Path, Path], state: Path) -> Path:
    video, audio = media
    path.write_text(f"""
[identity]
site_id = "site-f"
kiosk_id = "kiosk-f"
[camera]
source = "{video}"
loop = true
[microphone]
source = "{audio}"
loop = true
[analysis]
face_fps = 5.0
voice_hop_s = 0.5
[fusion]
emit_interval_s = 0.2
visit_start_s = 0.3
[mqtt]
host = "{broker.host}"
port = {broker.port}
health_interval_s = 1.0
reconnect_min_s = 0.2
reconnect_max_s = 0.5
[state]
dir = "{state}"
""")
    return path


class Kiosk:
    """``python -m edge -v run`` as a child process; its log goes to a file the test parses."""

    def __init__(self, cfg: Path, log: Path) -> None:
        self.log = log
        env = {k: v for k, v in os.environ.items() if k != "STATE_DIRECTORY"}
        with open(log, "ab") as fh:
            self.proc = subprocess.Popen([sys.executable, "-m", "edge", "-v", "run", "--config", str(cfg)],
                                         cwd=ROOT, stdout=fh, stderr=fh, env=env)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def queued(self) -> dict[str, str]:
        """event_id -> kind of every event the kiosk handed to its outbox (all runs logging to this file)."""
        return {m.group(2): m.group(1) for m in QUEUED.finditer(self.text())}

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def outbox_ids(db: Path) -> list[str]:
    with sqlite3.connect(db) as con:
        return [json.loads(p)["event_id"] for (p,) in con.execute("SELECT payload FROM outbox ORDER BY seq")]


def test_broker_killed_repeatedly_loses_no_event(broker: PersistentBroker, media: tuple[Path, Path],
                                                 tmp_path: Path) -> None:
    sub = SessionSubscriber(broker, "edge-emotion/site-f/kiosk-f/+")
    kiosk = Kiosk(write_config(tmp_path / "k.toml", broker, media, tmp_path / "state"), tmp_path / "kiosk.log")
    rng = random.Random(8)
    try:
        until(lambda: any(k == "emotion" for k in sub.kinds.values()), 60, "the first emotion event")
        t_end = time.monotonic() + SECONDS
        kills = 0
        while kills < KILLS or time.monotonic() < t_end:
            time.sleep(rng.uniform(0.3, 1.2))  # events flow (and some are in flight) ...
            broker.stop()  # kill -9
            kills += 1
            time.sleep(rng.uniform(0.5, 1.5))  # ... events queue in the kiosk's outbox
            broker.start()
            until(lambda: sub.client.is_connected(), 10, "the subscriber to reconnect")
            until(lambda n=kills + 1: len(RECONNECT.findall(kiosk.text())) >= n, 15, "the kiosk to reconnect")
            assert kiosk.proc.poll() is None, kiosk.text()[-3000:]
        time.sleep(1.0)
        assert kiosk.stop() == 0, kiosk.text()[-3000:]
        published = kiosk.queued()
        until(lambda: set(published) <= sub.ids(), 15, "every published event at the subscriber")
    finally:
        if kiosk.proc.poll() is None:
            kiosk.stop(signal.SIGKILL)
        sub.close()
    text = kiosk.text()
    lost = set(published) - sub.ids()
    dups = sum(n - 1 for n in sub.received.values())
    backlog = [int(n) for n in RECONNECT.findall(text)]
    kinds = Counter(published.values())
    print(f"\nbroker kills: {kills}, events published: {len(published)} {dict(kinds)}, received: "
          f"{len(sub.ids() & set(published))}, lost: {len(lost)}, duplicates: {dups}, "
          f"queued at reconnects: {backlog}")
    assert not lost
    assert kinds["emotion"] >= 10 and kinds["health"] >= 3, kinds
    assert len(backlog) == kills + 1 and sum(backlog[1:]) > 0, "no event was ever queued during an outage"
    assert outbox_ids(tmp_path / "state" / "outbox.db") == [], "clean exit left events in the outbox"
    assert "Traceback" not in text


def test_kiosk_killed_while_broker_down_delivers_queued_events_after_restart(
        broker: PersistentBroker, media: tuple[Path, Path], tmp_path: Path) -> None:
    sub = SessionSubscriber(broker, "edge-emotion/site-f/kiosk-f/+", client_id="fault-test-kiosk-kill")
    broker.stop()
    state = tmp_path / "state"
    cfg = write_config(tmp_path / "k.toml", broker, media, state)
    kiosk = Kiosk(cfg, tmp_path / "kiosk1.log")
    try:
        until(lambda: sum(k == "emotion" for k in kiosk.queued().values()) >= 5, 60, "queued emotion events")
        kiosk.stop(signal.SIGKILL)
        logged = kiosk.queued()
        queued = outbox_ids(state / "outbox.db")
        assert set(logged) <= set(queued), "an event the kiosk logged as queued is not in its outbox"
        assert len(set(queued)) == len(queued) >= 6
        broker.start()
        until(lambda: sub.client.is_connected(), 10, "the subscriber to reconnect")
        kiosk = Kiosk(cfg, tmp_path / "kiosk2.log")
        until(lambda: set(queued) <= sub.ids(), 60, "the events queued before the kill")
        assert "outbox holds" in kiosk.text()
        until(lambda: len(kiosk.queued()) >= 3, 20, "new events from the restarted kiosk")
        assert kiosk.stop() == 0, kiosk.text()[-3000:]
        until(lambda: set(kiosk.queued()) <= sub.ids(), 10, "the restarted kiosk's own events")
    finally:
        if kiosk.proc.poll() is None:
            kiosk.stop(signal.SIGKILL)
        sub.close()
    assert outbox_ids(state / "outbox.db") == []
    print(f"\nqueued before kill -9: {len(queued)}; all delivered after the restart "
          f"(duplicates: {sum(n - 1 for n in sub.received.values())})")


def run_once(cfg: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "STATE_DIRECTORY"}
    return subprocess.run([sys.executable, "-m", "edge", "run", "--config", str(cfg)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_truncated_and_corrupt_media_files_end_cleanly(media: tuple[Path, Path], tmp_path: Path) -> None:
    """A file cut mid-stream is decoded to where it ends; one that cannot be opened is named; no crash either way."""
    video, audio = media
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is needed to rewrite the demo video with its index first")
    fast = tmp_path / "fast.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(video), "-c", "copy", "-movflags", "+faststart",
                    str(fast)], check=True, timeout=60)
    files = {"nomoov.mp4": video.read_bytes(), "cut.mp4": fast.read_bytes(), "cut.wav": audio.read_bytes()}
    for name, data in files.items():  # the index of nomoov.mp4 is at its end: cut away
        (tmp_path / name).write_bytes(data[:len(data) // 2])
    (tmp_path / "junk.wav").write_bytes(files["cut.wav"][:44] + random.Random(3).randbytes(20000))
    # a source that never worked ends the run with the media exit code (4), so systemd's Restart=on-failure acts
    cases = {("nomoov.mp4", "cut.wav"): (4, ["nomoov.mp4': not a readable video", "cut.wav': end of file",
                                             "error: camera failed"]),
             ("cut.mp4", "junk.wav"): (0, ["cut.mp4': end of file", "junk.wav': end of file"])}
    for (v, a), (code, expected) in cases.items():
        cfg = tmp_path / "k.toml"
        cfg.write_text(f'[identity]\nsite_id = "s"\nkiosk_id = "k"\n[camera]\nsource = "{tmp_path / v}"\n'
                       f'pace = "fast"\n[microphone]\nsource = "{tmp_path / a}"\npace = "fast"\n'
                       '[mqtt]\nenabled = false\n')
        r = run_once(cfg)
        assert r.returncode == code and "Traceback" not in r.stderr, r.stderr[-3000:]
        for line in [*expected, "all sources ended; stopping"]:
            assert line in r.stderr, (line, r.stderr[-3000:])


def test_corrupt_outbox_at_start_is_moved_aside_and_the_kiosk_runs(media: tuple[Path, Path], tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "outbox.db").write_bytes(b"\x00garbage, not SQLite" * 500)
    video, audio = media
    cfg = tmp_path / "k.toml"
    cfg.write_text(f'[identity]\nsite_id = "s"\nkiosk_id = "k"\n[camera]\nsource = "{video}"\npace = "fast"\n'
                   f'[microphone]\nsource = "{audio}"\npace = "fast"\n'
                   f'[mqtt]\nhost = "127.0.0.1"\nport = 9\nreconnect_max_s = 1\n[state]\ndir = "{state}"\n')
    r = run_once(cfg)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "is unreadable" in r.stderr and "outbox.db.corrupt" in r.stderr
    assert (state / "outbox.db.corrupt").read_bytes().startswith(b"\x00garbage")
    assert outbox_ids(state / "outbox.db"), "events were queued in the fresh outbox (no broker)"
