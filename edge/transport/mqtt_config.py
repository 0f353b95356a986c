"""The ``[mqtt]`` config section: broker connection, TLS, topic prefix, reconnect back-off and the outbox's limits."""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator


def backoff_max(value: float, info: ValidationInfo, min_key: str) -> float:
    """A back-off's longest wait, refused when under its first wait ``min_key`` (the wait grows from one to the
    other; a first wait beyond the longest would outlast what the watchdog allows a reconnecting source). The
    longest-wait fields validate their default too, so a first wait above the default longest one is refused."""
    low = info.data.get(min_key)
    if low is not None and value < low:
        raise ValueError(f"must be at least {min_key} ({low:g} s); {value:g} s is the longest wait")
    return value



def bounded_client_id(plain: str, key: str) -> str:
    """``plain`` when it fits MQTT's usual 64 characters, else its first 43 and a hash of ``key`` (cut at 64, two
    long ids differing only past the cut shared one client id and took over each other's session for ever)."""
    if len(plain) <= 64:
        return plain
    return f"{plain[:43]}-{hashlib.sha256(key.encode()).hexdigest()[:20]}"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TlsConfig(_Section):
    """TLS to the broker; paths may use ${ENV} references."""

    ca_file: str | None = Field(default=None, description="CA bundle; None = system CAs.")
    cert_file: str | None = Field(default=None, description="Client certificate (PEM).")
    key_file: str | None = Field(default=None, description="Client private key (PEM).")
    insecure: bool = Field(default=False, description="Skip hostname verification (test benches only).")

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        return self


class MqttConfig(_Section):
    """Broker connection and topic namespace."""

    enabled: bool = Field(default=True, description="Publish to a broker (off: log events only).")
    host: str = Field(default="localhost", min_length=1, description="Broker host.")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker port.")
    transport: Literal["tcp", "websockets"] = Field(default="tcp", description="MQTT transport.")
    protocol: Literal["auto", "5", "3.1.1"] = Field(default="auto", description="auto = MQTT 5, falling back to 3.1.1.")
    username: str | None = Field(default=None, description="Username; may be ${ENV}.")
    password: str | None = Field(default=None, description="Password; use ${ENV} rather than a literal secret.")
    tls: TlsConfig | None = Field(default=None, description="TLS settings; absent = plain TCP.")
    topic_prefix: str = Field(default="edge-emotion", pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$",
                              description="First topic levels: PREFIX/SITE/KIOSK/KIND.")
    client_id: str | None = Field(default=None, max_length=64, description="Default: edge-emotion-SITE-KIOSK "
                                  "(its start and a hash of both ids when that is longer than 64 characters).")
    keepalive_s: int = Field(default=30, ge=5, le=3600, description="MQTT keepalive.")
    reconnect_min_s: float = Field(default=1.0, gt=0, le=60, description="First reconnect back-off.")
    reconnect_max_s: float = Field(default=30.0, gt=0, le=600, validate_default=True,
                                   description="Longest reconnect back-off.")

    @field_validator("reconnect_max_s")
    @classmethod
    def _max_backoff(cls, v: float, info: ValidationInfo) -> float:
        return backoff_max(v, info, "reconnect_min_s")
    health_interval_s: float = Field(default=10.0, ge=1, le=3600, description="Seconds between `health` events.")
    max_queued: int = Field(default=1000, ge=10, le=100000, description="Messages held in memory while offline "
                            "when there is no state folder; drop rule as the outbox's.")
    outbox_max_rows: int = Field(default=50000, ge=100, le=1000000, description="Outbox (state folder): most "
                                 "events kept unacknowledged; when full emotion/health go first, alerts last.")
    outbox_max_mb: float = Field(default=32.0, ge=1, le=1024, description="Outbox: most payload megabytes kept.")
    outbox_max_age_s: float = Field(default=86400.0, ge=60, le=30 * 86400,
                                    description="Outbox: events older than this are dropped unsent.")
