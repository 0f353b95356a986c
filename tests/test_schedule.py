"""Opening hours: pure window logic, config errors with key paths, and the service analysing nothing when closed."""

from __future__ import annotations

import datetime as dt
import json
import threading
import zoneinfo
from pathlib import Path
from typing import Any

import pytest
from test_pause import SpyFace, SpyVoice, _cfg, _until

from edge.config import ConfigError, parse_config
from edge.demo.media import make_demo
from edge.ops.schedule import ScheduleConfig, is_open
from edge.pipeline.analyzers import Analyzers
from edge.pipeline.service import Service
from edge.transport.mqtt import RecordingPublisher

ID = {"site_id": "s", "kiosk_id": "k"}


def _at(day: int, hhmm: str, tz: str = "Europe/Berlin") -> float:
    """Unix time of 2026-11-30 (a Monday) + ``day`` days at local ``hhmm`` in ``tz``."""
    h, m = map(int, hhmm.split(":"))
    d = dt.date(2026, 11, 30) + dt.timedelta(days=day)
    return dt.datetime(d.year, d.month, d.day, h, m, tzinfo=zoneinfo.ZoneInfo(tz)).timestamp()


WEEKDAYS = ScheduleConfig(enabled=True, timezone="Europe/Berlin", windows=[
    {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:30", "end": "17:00"},
    {"days": ["sat"], "start": "22:00", "end": "02:00"},  # overnight: Saturday 22:00 to Sunday 02:00
])


@pytest.mark.parametrize(("day", "hhmm", "want"), [
    (0, "08:29", False), (0, "08:30", True), (0, "16:59", True), (0, "17:00", False), (4, "12:00", True),
    (5, "12:00", False), (5, "21:59", False), (5, "22:00", True), (6, "01:59", True), (6, "02:00", False),
    (0, "01:00", False),  # Monday early hours: the overnight window starts on Saturday only
])
def test_windows_including_overnight(day: int, hhmm: str, want: bool) -> None:
    assert is_open(WEEKDAYS, _at(day, hhmm)) is want


def test_time_zone_is_respected_and_disabled_means_always() -> None:
    shanghai = ScheduleConfig(enabled=True, timezone="Asia/Shanghai",
                              windows=[{"days": ["mon"], "start": "09:00", "end": "10:00"}])
    assert is_open(shanghai, _at(0, "09:30", "Asia/Shanghai"))
    assert not is_open(shanghai, _at(0, "09:30", "Europe/Berlin"))  # 16:30 in Shanghai
    assert is_open(ScheduleConfig(), _at(5, "03:00"))
    assert is_open(ScheduleConfig(enabled=True, windows=[{"days": ["sun"], "start": "00:00", "end": "24:00"}]),
                   _at(6, "23:59", "UTC"))


def test_bad_schedules_are_config_errors_with_key_paths() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config({"identity": ID, "schedule": {"enabled": True, "timezone": "Mars/Olympus", "windows": [
            {"days": ["mon", "funday"], "start": "8:30", "end": "17:00"}, {"days": ["tue"], "start": "09:00",
                                                                          "end": "09:00"}]}})
    text = "\n".join(exc.value.errors)
    assert "schedule.timezone: Value error, unknown time zone 'Mars/Olympus'" in text
    assert "schedule.windows.0.days.1:" in text and "schedule.windows.0.start:" in text
    assert "schedule.windows.1: Value error, start and end must differ" in text
    with pytest.raises(ConfigError, match="schedule.timezone: Value error, unknown time zone 'Europe'"):
        parse_config({"identity": ID, "schedule": {"timezone": "Europe"}})  # a folder of the zone database
    with pytest.raises(ConfigError, match="schedule: Value error, an enabled schedule needs at least one window"):
        parse_config({"identity": ID, "schedule": {"enabled": True}})


class Wall:
    """A settable wall clock."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_closed_hours_stop_analysis_end_the_visit_and_show_in_status(tmp_path: Path) -> None:
    video, audio = make_demo(tmp_path / "media", seconds=6.0)
    cfg = _cfg(camera={"source": str(video), "loop": True}, microphone={"source": str(audio), "loop": True},
               mqtt={"enabled": False})
    cfg = parse_config({**json.loads(cfg.model_dump_json(exclude={"base_dir"})), "schedule": WEEKDAYS.model_dump()})
    wall = Wall(_at(0, "16:59"))
    face, voice = SpyFace(), SpyVoice()
    pub = RecordingPublisher(strict=True)
    svc = Service(cfg, Analyzers(face=face, voice=voice), publisher=pub, wall=wall)  # type: ignore[arg-type]
    runner = threading.Thread(target=svc.run, daemon=True)
    runner.start()
    try:
        _until(lambda: bool(pub.payloads("emotion")) and voice.calls > 0, timeout=10)
        assert not svc.closed.is_set()
        wall.t = _at(0, "17:01")
        _until(lambda: any("analysis: outside opening hours" in s["degraded"] for s in pub.payloads("status")))
        assert svc.closed.is_set()
        status = pub.payloads("status")[-1]
        assert "analysis: outside opening hours" in status["degraded"] and status["paused"] is False
        assert [v["phase"] for v in pub.payloads("visit")][-1] == "end"
        threading.Event().wait(0.5)  # a frame/window already inside analyze() may finish
        calls, n_emotion = (face.calls, voice.calls), len(pub.payloads("emotion"))
        threading.Event().wait(1.5)
        assert (face.calls, voice.calls) == calls, "analysis ran outside the opening hours"
        assert len(pub.payloads("emotion")) == n_emotion
        wall.t = _at(1, "08:30")
        _until(lambda: not svc.closed.is_set())
        assert "analysis: outside opening hours" not in pub.payloads("status")[-1]["degraded"]
        _until(lambda: face.calls > calls[0] and voice.calls > calls[1], timeout=10)
    finally:
        svc.stop.set()
        runner.join(timeout=10)


def test_a_start_outside_the_opening_hours_analyses_nothing(tmp_path: Path) -> None:
    """Closed is known before the sources and workers start (the first frame was analysed before the main loop's
    first look at the schedule)."""
    video, audio = make_demo(tmp_path / "media", seconds=3.0)
    cfg = _cfg(camera={"source": str(video), "loop": True}, microphone={"source": str(audio), "loop": True},
               mqtt={"enabled": False})
    cfg = parse_config({**json.loads(cfg.model_dump_json(exclude={"base_dir"})), "schedule": WEEKDAYS.model_dump()})
    face, voice = SpyFace(), SpyVoice()
    pub = RecordingPublisher(strict=True)
    svc = Service(cfg, Analyzers(face=face, voice=voice), publisher=pub, wall=Wall(_at(6, "03:00")))  # type: ignore[arg-type]
    runner = threading.Thread(target=svc.run, daemon=True)
    runner.start()
    try:
        _until(lambda: any("analysis: outside opening hours" in s["degraded"] for s in pub.payloads("status")))
        threading.Event().wait(1.5)
        assert (face.calls, voice.calls) == (0, 0), "analysis ran before the schedule was first looked at"
    finally:
        svc.stop.set()
        runner.join(timeout=10)


def test_remote_config_can_set_the_schedule_live() -> None:
    cfg = parse_config({"identity": ID, "mqtt": {"enabled": False}, "camera": {"enabled": False},
                        "microphone": {"enabled": False}})
    wall = Wall(_at(2, "20:00"))
    svc = Service(cfg, Analyzers(), publisher=RecordingPublisher(strict=True), wall=wall)
    svc.process_schedule(0.0)
    assert not svc.closed.is_set()
    patch: dict[str, Any] = {"schedule": WEEKDAYS.model_dump()}
    svc.handle_message(svc.config_topic, json.dumps(patch).encode())
    svc._step()
    assert svc.cfg.schedule.enabled and svc.closed.is_set()
    svc.handle_message(svc.config_topic, b'{"schedule": {"enabled": false}}')
    svc._step()  # the schedule is looked at once a second (of the pipeline clock)
    svc._next_schedule = float("-inf")
    svc._step()
    assert not svc.closed.is_set()


def test_event_times_follow_a_wall_clock_stepped_after_start() -> None:
    """A kiosk without a real-time clock starts with an old time and NTP steps it later: visit and emotion times made
    after the step carry the corrected time (managers' hourly figures file visits by them), not the start-up error."""
    cfg = parse_config({"identity": ID, "mqtt": {"enabled": False}, "camera": {"enabled": False},
                        "microphone": {"enabled": False}})
    wall, mono = Wall(_at(1, "06:00")), [100.0]
    svc = Service(cfg, Analyzers(), publisher=RecordingPublisher(strict=True), clock=lambda: mono[0], wall=wall)
    assert svc.core.to_wall(100.0) == pytest.approx(_at(1, "06:00"))
    wall.t = _at(1, "09:00") + 5.0  # NTP: three hours ahead, 5 s after start
    mono[0] = 105.0
    assert svc.core.to_wall(105.0) == pytest.approx(_at(1, "09:00") + 5.0)
    assert svc.core.to_wall(103.0) == pytest.approx(_at(1, "09:00") + 3.0)  # a moment 2 s earlier
