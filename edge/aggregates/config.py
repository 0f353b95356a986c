"""Settings of the site aggregates service (validated like the kiosk config: every problem with its key path)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class AggregatesConfig(BaseModel):
    """One site's aggregates: where events come from, where figures go, what is broken down."""

    model_config = ConfigDict(extra="forbid")

    site_id: str = Field(pattern=_ID, description="The site whose kiosks are aggregated (identity.site_id).")
    topic_prefix: str = Field(default="edge-emotion", pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$",
                              description="The kiosks' mqtt.topic_prefix.")
    db: Path = Field(default=Path("aggregates.db"), description="SQLite file of the hourly figures.")
    timezone: str = Field(default="UTC", min_length=1, max_length=64,
                          description="IANA time zone of the site: days and hours of the figures are local.")
    profile: Literal["eu", "cn", "custom"] = Field(default="custom", description="The site's privacy profile; "
                                                   "`eu` turns per-counter breakdowns off.")
    per_counter: bool | None = Field(default=None, description="Keep figures per counter as well (default: on, "
                                     "except under the eu profile, where it cannot be turned on).")
    min_visits: int = Field(default=5, ge=1, le=1000, description="Small-count rule: figures of a row (hour, day, "
                            "counter) with fewer visits are withheld, and acknowledgement/calming means of fewer "
                            "episodes (1: show everything).")
    care_share: float = Field(default=0.3, gt=0, le=1, description="A visit is a care cue when sad + fear held at "
                              "least this share of it.")
    http_host: str = Field(default="127.0.0.1", min_length=1, description="Address of the page, CSV and /metrics.")
    http_port: int = Field(default=8090, ge=0, le=65535, description="Port of the page (0: any free port).")
    queue_size: int = Field(default=10_000, ge=100, le=1_000_000, description="Messages waiting for the writer; "
                            "when full the oldest is dropped and counted.")
    session_expiry_s: int = Field(default=86_400, ge=0, le=7 * 86_400, description="How long the broker keeps "
                                  "this subscriber's QoS 1 messages while it is down (MQTT 5 session).")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder such as "Europe"
            raise ValueError(f"unknown IANA time zone {v!r}") from None
        return v

    @model_validator(mode="after")
    def _eu(self) -> AggregatesConfig:
        if self.profile == "eu" and self.per_counter:
            raise ValueError("per_counter: off under the eu profile (a counter is usually one member of staff; "
                             "figures per counter would rate individual employees)")
        if self.per_counter is None:
            self.per_counter = self.profile != "eu"
        return self

    def zone(self) -> ZoneInfo:
        """The site's time zone."""
        return ZoneInfo(self.timezone)
