"""Opening hours: the kiosk analyses only inside weekly time windows (pure logic; the wall clock is passed in)."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$"


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


class ScheduleWindow(BaseModel):
    """One weekly window, e.g. mon-fri 08:30-17:00; an end before the start runs past midnight."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    days: list[Day] = Field(min_length=1, max_length=7, description="Days the window starts on (mon..sun).")
    start: str = Field(pattern=_HHMM, description="Local start time HH:MM (24 h).")
    end: str = Field(pattern=_HHMM, description="Local end time HH:MM; 24:00 = midnight; before `start` = the next "
                     "day's time (overnight window).")

    @model_validator(mode="after")
    def _not_empty(self) -> ScheduleWindow:
        if _minutes(self.start) == _minutes(self.end) % (24 * 60) and self.end != "24:00":
            raise ValueError("start and end must differ")
        return self


class ScheduleConfig(BaseModel):
    """Opening hours: outside them nothing is analysed (like a staff pause) and `status` says so."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    enabled: bool = Field(default=False, description="Analyse only inside `windows` (off: always analyse).")
    timezone: str = Field(default="UTC", min_length=1, max_length=64,
                          description="IANA time zone of the windows, e.g. Europe/Berlin or Asia/Shanghai.")
    windows: list[ScheduleWindow] = Field(default_factory=list, max_length=32,
                                          description="Weekly windows in which analysis runs.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder such as "Europe"
            raise ValueError(f"unknown time zone {v!r} (use an IANA name such as Europe/Berlin)") from None
        return v

    @model_validator(mode="after")
    def _windows_when_enabled(self) -> ScheduleConfig:
        if self.enabled and not self.windows:
            raise ValueError("an enabled schedule needs at least one window")
        return self


def is_open(cfg: ScheduleConfig, wall: float) -> bool:
    """Whether analysis may run at Unix time ``wall`` (always True when the schedule is disabled)."""
    if not cfg.enabled:
        return True
    local = dt.datetime.fromtimestamp(wall, zoneinfo.ZoneInfo(cfg.timezone))
    return open_at(cfg, local.weekday(), local.hour * 60 + local.minute)


def open_at(cfg: ScheduleConfig, weekday: int, minute: int) -> bool:
    """Whether the windows cover local ``weekday`` (0 = Monday) at ``minute`` after local midnight."""
    if not cfg.enabled:
        return True
    today, yesterday = DAYS[weekday], DAYS[(weekday - 1) % 7]
    for w in cfg.windows:
        start, end = _minutes(w.start), _minutes(w.end)
        if end > start:
            if today in w.days and start <= minute < end:
                return True
        elif (today in w.days and minute >= start) or (yesterday in w.days and minute < end):
            return True  # overnight window: the evening of its day, the early hours of the next
    return False
