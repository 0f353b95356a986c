"""Config sections of the pure policy: fusion (smoothing, visits) and staff alerts (thresholds, hints)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class FusionConfig(_Section):
    """How readings become the customer's smoothed state."""

    half_life_s: float = Field(default=1.0, gt=0, le=60, description="Exponential smoothing half-life (face).")
    voice_half_life_s: float = Field(default=0.5, gt=0, le=60, description="Smoothing half-life of voice readings: "
                                     "each already covers a 2 s window, so they need less smoothing than frames.")
    stale_after_s: float = Field(default=4.0, gt=0, le=60, description="A modality older than this stops counting.")
    face_weight: float = Field(default=1.0, ge=0, le=10, description="Relative weight of face readings.")
    voice_weight: float = Field(default=1.0, ge=0, le=10, description="Relative weight of voice readings.")
    emit_interval_s: float = Field(default=1.0, ge=0.1, le=60, description="Seconds between `emotion` events.")
    visit_start_s: float = Field(default=1.0, ge=0, le=30, description="Face present this long starts a visit.")
    visit_end_s: float = Field(default=8.0, ge=1, le=600, description="No face (nor speech) this long ends a visit.")
    voice_arousal: bool = Field(default=True, description="Escalation is at least the voice's own: voices carry "
                                "arousal, so a calm-looking face does not cancel an agitated voice.")
    happy_face_discount: Fraction = Field(default=1.0, description="How much a smiling face discounts the voice's "
                                          "escalation (faces carry valence: loud and happy is not upset).")


HintKey = Literal["watch", "rising", "sustained", "voice_agitation", "repeat", "recovered", "care", "positive"]
HintText = Annotated[str, Field(min_length=1, max_length=280)]


class CareCue(_Section):
    """A low, subdued customer (sad, resigned): a quiet care cue for staff, never an escalation alert."""

    enabled: bool = Field(default=True, description="Send `care` cues.")
    max_valence: float = Field(default=-0.3, ge=-1, le=0, description="Fused valence at or below this (unpleasant).")
    max_arousal: float = Field(default=0.0, ge=-1, le=1, description="Fused arousal at or below this (subdued, "
                               "not agitated).")
    max_escalation: Fraction = Field(default=0.35, description="Escalation below this: an escalating customer gets "
                                     "alerts instead.")
    sustain_s: float = Field(default=6.0, gt=0, le=300, description="How long all of that must hold.")
    min_confidence: Fraction = Field(default=0.3, description="Fused confidence needed; less counts as neither.")


class PositiveCue(_Section):
    """A visibly pleased customer: a good moment to confirm satisfaction (off by default)."""

    enabled: bool = Field(default=False, description="Send `positive` cues (off by default).")
    min_happy: Fraction = Field(default=0.6, description="Fused probability of `happy` at or above this.")
    sustain_s: float = Field(default=5.0, gt=0, le=300, description="How long it must hold.")
    min_confidence: Fraction = Field(default=0.3, description="Fused confidence needed; less counts as neither.")


class AlertsConfig(_Section):
    """Staff alert policy; every threshold may be changed at run time (read on each update)."""

    enabled: bool = Field(default=True, description="Raise staff alerts at all.")
    watch_threshold: Fraction = Field(default=0.45, description="Escalation held this high for `sustain_s` "
                                      "raises a `watch` (early sign).")
    alert_threshold: Fraction = Field(default=0.6, description="Escalation reaching this after it has held "
                                      "`watch_threshold` for `sustain_s` raises an `alert` (act now).")
    release_threshold: Fraction = Field(default=0.3, description="Hysteresis: an episode ends only after "
                                        "escalation stays below this for `recover_s`.")
    sustain_s: float = Field(default=1.0, gt=0, le=60, description="How long a trigger must hold before it fires.")
    alert_hold_s: float = Field(default=0.0, ge=0, le=60, description="How long the alert level itself must hold "
                                "(after the watch level held `sustain_s`); 0 = reaching it is enough.")
    rise_delta: float = Field(default=0.25, gt=0, le=1, description="Escalation rise within `rise_window_s` "
                              "that raises an early `watch` (reason `rising`) once above `watch_threshold`.")
    rise_window_s: float = Field(default=3.0, gt=0, le=60, description="Window over which the rise is measured.")
    rise_hold_s: float = Field(default=0.5, gt=0, le=30, description="The rise must hold this long (no spikes).")
    voice_agitation_threshold: Fraction | None = Field(default=None, description="Share of the voice's probability "
                                                       "in angry/disgust/fear that, held for `sustain_s`, raises an "
                                                       "`alert` by itself (reason `voice_agitation`); null = off, the "
                                                       "default: `fusion.voice_arousal` already carries the voice.")
    voice_min_confidence: Fraction = Field(default=0.4, description="Voice confidence needed for voice agitation.")
    min_confidence: Fraction = Field(default=0.15, description="Fused states less confident than this are "
                                     "ignored (neither escalation nor calm). One modality alone reaches ~0.5.")
    cooldown_s: float = Field(default=60.0, ge=1, le=3600, description="At most one `alert` message per visit "
                              "within this time (new alerts and reminders alike).")
    recover_s: float = Field(default=5.0, gt=0, le=600, description="Calm (below `release_threshold`) this long "
                             "after a watch/alert sends `recovered`.")
    remind: bool = Field(default=True, description="Repeat an unacknowledged alert every `cooldown_s` while "
                         "escalation stays above `alert_threshold` (with the call-a-supervisor hint).")
    language: Literal["en", "zh-CN"] = Field(default="en", description="Language of the staff hints.")
    care: CareCue = Field(default_factory=CareCue, description="Care cues (a low, subdued customer), at most one "
                          "per visit, never while an alert episode is open.")
    positive: PositiveCue = Field(default_factory=PositiveCue, description="Good-moment cues (a pleased customer), "
                                  "at most one per visit; off by default.")
    hints: dict[Literal["en", "zh-CN"], dict[HintKey, HintText]] = Field(
        default_factory=dict, description="Hint overrides per language and key (watch, rising, sustained, "
        "voice_agitation, repeat, recovered, care, positive); others keep the built-in text.")

    @model_validator(mode="after")
    def _ordered(self) -> AlertsConfig:
        if not self.release_threshold < self.watch_threshold <= self.alert_threshold:
            raise ValueError("thresholds must be release_threshold < watch_threshold <= alert_threshold")
        return self
