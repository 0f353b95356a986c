"""systemd integration: sd_notify against a fake NOTIFY_SOCKET, the watchdog health decision, the unit file."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from edge.config import parse_config
from edge.demo.media import make_demo
from edge.ops.sdnotify import Notifier, watchdog_interval
from edge.ops.watchdog import PipelineWatchdog, Progress, stalled
from edge.pipeline.analyzers import Analyzers
from edge.pipeline.service import Service

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "systemd" / "edge-emotion.service"
ANALYZE = shutil.which("systemd-analyze")
UNIT_DIRS = [Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")]
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed (apt-get install systemd)")


class FakeSystemd:
    """A bound AF_UNIX datagram socket standing in for systemd's notify socket; collects (time, message)."""

    def __init__(self, address: str | bytes) -> None:
        """Bind ``address`` (a path, or b"\\0name" for the abstract namespace) and start collecting."""
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._th = threading.Thread(target=self._collect, daemon=True)
        self._th.start()

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def texts(self) -> list[str]:
        """The messages received so far."""
        return [m for _, m in list(self.messages)]

    def wait_for(self, pred: Any, timeout: float) -> tuple[float, str]:
        """The first message (with its arrival time) matching ``pred``; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, m in list(self.messages):
                if pred(m):
                    return t, m
            time.sleep(0.02)
        raise AssertionError(f"no matching sd_notify message within {timeout} s; got {self.texts()}")

    def close(self) -> None:
        """Stop collecting and close the socket."""
        self._stop.set()
        self._th.join(timeout=2)
        self.sock.close()


@pytest.fixture
def notify_path() -> Iterator[str]:
    """A short socket path (AF_UNIX paths are limited to 107 bytes; pytest's tmp_path can be longer)."""
    d = tempfile.mkdtemp(prefix="sdn-")
    yield f"{d}/notify"
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_notifications_arrive_in_order(notify_path: str, abstract: bool) -> None:
    name = f"@edge-emotion-test-{uuid.uuid4().hex}" if abstract else notify_path
    fake = FakeSystemd(b"\0" + name[1:].encode() if abstract else name)
    try:
        sd = Notifier(env={"NOTIFY_SOCKET": name})
        assert sd.enabled
        assert sd.ready("analysing 0.0 fps")
        assert sd.status("analysing 8.0 fps, mqtt connected, camera ok")
        assert sd.watchdog()
        assert sd.stopping()
        sd.close()
        fake.wait_for(lambda m: m == "STOPPING=1\n", timeout=2)
    finally:
        fake.close()
    assert fake.texts() == ["READY=1\nSTATUS=analysing 0.0 fps\n",
                            "STATUS=analysing 8.0 fps, mqtt connected, camera ok\n", "WATCHDOG=1\n", "STOPPING=1\n"]


def test_notify_is_a_noop_without_socket_and_rejects_newlines(notify_path: str) -> None:
    sd = Notifier(env={})
    assert not sd.enabled and sd.ready() is False and sd.watchdog() is False
    with pytest.raises(ValueError):
        Notifier(socket_path=notify_path).notify(STATUS="two\nlines")
    assert Notifier(socket_path=notify_path).watchdog() is False  # nobody listening: logged, not raised


def test_watchdog_interval_from_environment() -> None:
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, pid=4242) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, pid=4243) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None


def test_stalled_reports_stale_and_dead_threads() -> None:
    assert stalled(100.0, {"analyse-face": Progress(99.0, 2.0), "camera": Progress(90.0, 15.0)}) == []
    assert stalled(100.0, {"analyse-face": Progress(97.5, 2.0)}) == ["analyse-face stalled 2.5 s"]
    assert stalled(100.0, {"camera": Progress(99.9, 2.0, alive=False)}) == ["camera thread died"]


class RecordingNotifier(Notifier):
    """A Notifier that records fields instead of sending them."""

    def __init__(self) -> None:
        """Enabled, with an empty record."""
        super().__init__(socket_path="@unused")
        self.sent: list[dict[str, str | int]] = []

    def notify(self, **fields: str | int) -> bool:
        """Record ``fields``."""
        self.sent.append(fields)
        return True


class FakeSource:
    """A capture source whose stats and liveness the test sets."""

    def __init__(self, **stats: Any) -> None:
        """Start with ``stats``."""
        self.st: dict[str, Any] = {"state": "starting", "frames_in": 0, "reopens": 0, **stats}
        self.alive = True

    def stats(self) -> dict[str, Any]:
        """The current stats."""
        return dict(self.st)

    def is_alive(self) -> bool:
        """Whether the fake thread runs."""
        return self.alive


def test_pipeline_watchdog_pings_only_while_every_thread_progresses() -> None:
    now = [1000.0]
    sd = RecordingNotifier()
    wd = PipelineWatchdog(lambda: "analysing", notifier=sd, clock=lambda: now[0], min_stale_s=2.0,
                          env={"WATCHDOG_USEC": "4000000"})  # ping every 2 s, stale after 2 s
    cam = FakeSource()
    worker = threading.Thread(name="analyse-face")
    worker.is_alive = lambda: True  # type: ignore[method-assign]
    wd.start({"camera": cam, "microphone": None}, {"camera": 30.0}, [worker])

    hung = [False]

    def step(dt: float, frames: int = 0) -> list[dict[str, str | int]]:
        """Advance the clock; the worker beats unless hung, the camera delivers ``frames``; one main-loop tick."""
        before = len(sd.sent)
        now[0] += dt
        cam.st["frames_in"] += frames
        if not hung[0]:
            wd.beat("analyse-face")
        wd.tick()
        return sd.sent[before:]

    assert step(0.1) == [{"WATCHDOG": 1}]  # healthy while starting; no READY before the camera state is known
    cam.st["state"] = "ok"
    assert step(0.5, frames=5) == [{"READY": 1, "STATUS": "analysing"}]  # no ping yet: next one due in 1.5 s
    assert step(1.5, frames=20) == [{"WATCHDOG": 1}]
    # the face worker stops beating (hung in analyze) while frames keep coming: pings stop, STATUS says why
    hung[0] = True
    out = step(2.1, frames=30)
    assert {"WATCHDOG": 1} not in out
    assert any("analyse-face stalled 2.1 s" in str(m.get("STATUS", "")) for m in out), out
    assert {"WATCHDOG": 1} not in step(2.0, frames=30)
    hung[0] = False
    assert {"WATCHDOG": 1} in step(2.0, frames=30)  # it recovered: pings resume
    # a camera that stops delivering while "ok" is a stall; "reopening" gets the back-off as extra allowance
    assert {"WATCHDOG": 1} not in step(2.1)
    assert wd.problems() == ["camera stalled 2.1 s"]
    cam.st.update(state="reopening", reopens=1)
    assert {"WATCHDOG": 1} in step(2.0)
    assert {"WATCHDOG": 1} in step(2.0)  # no new reopen yet, but within stale + reopen_max_s
    assert {"WATCHDOG": 1} not in step(30.0)  # no reopen attempt for longer than stale + reopen_max_s: hung in open
    cam.st["state"] = "ended"  # a finished file source expects no progress
    assert {"WATCHDOG": 1} in step(60.0)
    cam.st["state"], cam.alive = "ok", False  # a capture thread that died
    assert {"WATCHDOG": 1} not in step(2.0, frames=1)
    assert wd.problems() == ["camera thread died"]


class HangingFace:
    """A face analyzer whose analyze() blocks while ``hang`` is set, as a hung inference call would."""

    def __init__(self) -> None:
        """Not hanging until ``hang`` is set."""
        self.hang = threading.Event()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def analyze(self, frame: Any) -> None:
        """No customer face; blocks (until ``release``) while ``hang`` is set."""
        self.calls += 1
        if self.hang.is_set():
            self.entered.set()
            self.release.wait()
        return None


class QuietVoice:
    """A voice analyzer that never hears speech."""

    window_s = 1.0

    def analyze(self, samples: Any, t: float, end: int | None = None) -> None:
        """No speech."""
        return None


@pytest.fixture(scope="module")
def short_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_demo(tmp_path_factory.mktemp("sd-demo"), seconds=4.0)


def test_service_notifies_ready_and_withholds_watchdog_when_face_worker_hangs(
        notify_path: str, short_demo: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    video, audio = short_demo
    fake = FakeSystemd(notify_path)
    monkeypatch.setenv("NOTIFY_SOCKET", notify_path)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")  # ping every 0.5 s; threads stale after 2 s (floor)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    cfg = parse_config({
        "identity": {"site_id": "site-sd", "kiosk_id": "kiosk-sd"},
        "camera": {"source": str(video), "pace": "realtime", "loop": True},
        "microphone": {"source": str(audio), "pace": "realtime", "loop": True},
        "analysis": {"face_fps": 10.0, "voice_hop_s": 0.5},
        "mqtt": {"enabled": False, "health_interval_s": 60.0},
    })
    face = HangingFace()
    analyzers = Analyzers(face=cast(Any, face), voice=cast(Any, QuietVoice()), versions={"face_expression": "fake"})
    svc = Service(cfg, analyzers)
    assert svc.watchdog.ping_every == 0.5 and svc.watchdog.stale_s == 2.0
    stop = threading.Event()
    th = threading.Thread(target=svc.run, args=(stop,), daemon=True)
    th.start()
    try:
        t_ready, ready = fake.wait_for(lambda m: m.startswith("READY=1\n"), timeout=10)
        assert "STATUS=analysing" in ready and "camera ok" in ready and "microphone ok" in ready, ready
        fake.wait_for(lambda m: m == "WATCHDOG=1\n" and fake.texts().count("WATCHDOG=1\n") >= 3, timeout=5)
        assert face.calls > 0
        face.hang.set()
        assert face.entered.wait(5), "the face worker never reached analyze()"
        t_hang = time.monotonic()
        fake.wait_for(lambda m: "UNHEALTHY" in m and "analyse-face stalled" in m, timeout=5)
        # and in the retained status, for fleet monitoring (it only showed in systemd's STATUS=)
        assert any("analyse-face worker is not progressing" in d for d in svc.status_body()["degraded"])
        time.sleep(max(0.0, t_hang + 5.0 - time.monotonic()))
        pings = [t for t, m in list(fake.messages) if m == "WATCHDOG=1\n"]
        # pings may go on until the heartbeat is stale (2 s) plus one ping period (0.5 s), never after
        assert pings[-1] < t_hang + 2.5 + 0.3, [round(t - t_hang, 2) for t in pings]
        assert th.is_alive(), "a hung worker must not stop the service by itself: systemd kills it"
        assert "voice" not in " ".join(m for m in fake.texts() if "UNHEALTHY" in m)  # only the hung thread
        face.hang.clear()
        face.release.set()
        n = len(pings)
        fake.wait_for(lambda m: m == "WATCHDOG=1\n" and fake.texts().count("WATCHDOG=1\n") > n, timeout=3)
        assert not any("not progressing" in d for d in svc.status_body()["degraded"])
    finally:
        stop.set()
        face.release.set()
        th.join(timeout=10)
        fake.wait_for(lambda m: m.startswith("STOPPING=1"), timeout=2)
        fake.close()
    assert not th.is_alive()


# --- the unit file ---------------------------------------------------------------------------------------------
def unit_entries(text: str) -> dict[str, list[str]]:
    """Key -> values of a unit file (keys may repeat)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def verify(unit_text: str, root: Path) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify`` of ``unit_text`` in a scratch root with the host's units and stub executables."""
    assert ANALYZE is not None
    system = next((d for d in UNIT_DIRS if (d / "sysinit.target").exists()), None)
    if system is None:
        pytest.skip(f"no systemd unit directory with sysinit.target in {UNIT_DIRS}")
    shutil.copytree(system, root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "etc/systemd/system" / UNIT.name).write_text(unit_text)
    entries = unit_entries(unit_text)
    for cmd in entries.get("ExecStartPre", []) + entries.get("ExecStart", []):
        exe = root / cmd.lstrip("-+!@:").split()[0].lstrip("/")
        exe.parent.mkdir(parents=True, exist_ok=True)
        exe.write_text("#!/bin/sh\nexit 0\n")
        exe.chmod(0o755)
    return subprocess.run([ANALYZE, "verify", f"--root={root}", UNIT.name], capture_output=True, text=True,
                          timeout=30)


def test_unit_declares_notify_watchdog_and_sandbox() -> None:
    e = unit_entries(UNIT.read_text())
    for key, value in {"Type": "notify", "NotifyAccess": "main", "WatchdogSec": "30", "Restart": "on-failure",
                       "User": "edge-emotion", "DynamicUser": "no", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "NoNewPrivileges": "yes", "DevicePolicy": "closed",
                       "MemoryMax": "512M", "UMask": "0077", "CapabilityBoundingSet": ""}.items():
        assert e.get(key) == [value], (key, e.get(key))
    assert e["SupplementaryGroups"] == ["video audio"]
    assert e["SystemCallFilter"][0] == "@system-service"
    assert set(e["DeviceAllow"]) == {"char-video4linux rw", "char-alsa rw", "char-media rw", "char-dma_heap rw"}
    # no ExecStartPre: systemd applies RestartPreventExitStatus to the main process only, so a failing check-config
    # there restarted the unit every 5 s for ever; `run` checks config (exit 2) and models (exit 3) itself
    assert "ExecStartPre" not in e and e["RestartPreventExitStatus"] == ["2 3"]


@needs_analyze
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    r = verify(UNIT.read_text(), tmp_path / "root")
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r.stdout + r.stderr


@needs_analyze
def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    broken = UNIT.read_text().replace("ProtectSystem=strict", "ProtectSystem=maybe").replace(
        "Type=notify", "Type=notify\nWatchdogSecs=30")
    r = verify(broken, tmp_path / "root")
    out = r.stdout + r.stderr
    assert "ProtectSystem" in out or "protect system" in out, out
    assert "WatchdogSecs" in out, out


@needs_analyze
def test_unit_security_exposure_is_at_most_2_5() -> None:
    assert ANALYZE is not None
    r = subprocess.run([ANALYZE, "security", "--offline=true", "--threshold=25", str(UNIT)], capture_output=True,
                       text=True, timeout=30)
    m = re.search(r"Overall exposure level for edge-emotion\.service: (\d+\.\d+) (\w+)", r.stdout + r.stderr)
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) <= 2.5 and m.group(2) in ("OK", "SAFE"), m.group(0)
    assert r.returncode == 0, r.stdout + r.stderr  # --threshold=25: fails above 2.5


def test_the_example_config_passes_check_config_with_the_units_environment() -> None:
    """deploy/kiosk.example.toml with exactly what the shipped unit provides (Environment=, no credentials, no env
    file): check-config accepts it, as `run` will under the unit (models are checked elsewhere: --no-models)."""
    import os
    import sys

    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/")}
    for entry in unit_entries(UNIT.read_text())["Environment"]:
        key, value = entry.split("=", 1)
        env[key] = value
    assert "LoadCredential" not in unit_entries(UNIT.read_text())  # so no $CREDENTIALS_DIRECTORY either
    r = subprocess.run([sys.executable, "-m", "edge", "check-config", "--no-models",
                        str(ROOT / "deploy" / "kiosk.example.toml")], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
