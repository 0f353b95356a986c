"""The ``[homeassistant]`` config section: Home Assistant MQTT discovery, off by default (homeassistant.py)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

_TOPIC = r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$"


class HomeAssistantConfig(BaseModel):
    """Announce the kiosk to Home Assistant through MQTT discovery."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    enabled: bool = Field(default=False, description="Publish the retained discovery config (off: nothing is sent "
                          "to Home Assistant's topics and its birth topic is not subscribed).")
    discovery_prefix: str = Field(default="homeassistant", pattern=_TOPIC, max_length=100,
                                  description="Home Assistant's MQTT discovery prefix.")
    birth_topic: str = Field(default="homeassistant/status", pattern=_TOPIC, max_length=100,
                             description="Home Assistant's birth message topic; `online` there re-sends the config.")
    pause_switch: bool = Field(default=True, description="Offer a switch that pauses and resumes analysis (it "
                               "publishes to the kiosk's pause topic, as a tablet does).")
