"""Privacy section of the kiosk config: profile, staff zones and channel, pause limit, notice text; profile rules."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]

Point = tuple[Fraction, Fraction]
Polygon = Annotated[list[Point], Field(min_length=3, max_length=64)]
NoticeText = Annotated[str, Field(min_length=20, max_length=4000)]

# What each privacy profile enforces at validation; the privacy report prints these same lines.
PROFILE_RULES: dict[str, tuple[str, ...]] = {
    "eu": (
        "privacy.staff_zones: at least one staff zone (emotion recognition of workers is prohibited, "
        "EU AI Act Art. 5(1)(f))",
        "privacy.notice_text: a notice text for the counter signage (EU AI Act Art. 50(3), GDPR Art. 13)",
        "fusion.emit_interval_s >= 1.0: no per-frame events, states aggregated over at least 1 s",
        "fusion.half_life_s >= 1.0: readings smoothed over at least 1 s",
    ),
    "cn": (
        "privacy.notice_text.zh-CN: a Chinese notice text for the prominent sign PIPL Art. 26 requires",
        "fusion.emit_interval_s >= 1.0: no per-frame events, states aggregated over at least 1 s",
        "fusion.half_life_s >= 1.0: readings smoothed over at least 1 s",
    ),
    "custom": ("nothing beyond the field bounds: the deployer documents their own rules",),
}
MIN_AGGREGATION_S = 1.0


class PrivacyConfig(BaseModel):
    """Privacy profile, staff exclusion (image polygons, staff microphone channel), pause and signage text."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)  # as every config section

    profile: Literal["eu", "cn", "custom"] = Field(
        default="custom", description="Enforced minimums: eu (staff zone + notice + aggregation), cn (zh-CN "
        "notice + aggregation), custom (none); see PROFILE_RULES. Reported in `status`.")
    staff_zones: list[Polygon] = Field(
        default_factory=list, max_length=16, description="Polygons of [x, y] points (normalised 0..1) covering "
        "the staff side; their pixels are blacked out in a copy of each frame before face detection.")
    staff_audio_channel: int | None = Field(
        default=None, ge=0, le=7, description="Index of the staff microphone channel when the counter has one "
        "microphone per side; voice windows where it dominates are not analysed.")
    staff_voice_margin_db: float = Field(
        default=3.0, ge=0.0, le=40.0, description="Staff channel this many dB louder than the customer channel "
        "marks a window as staff speech.")
    pause_max_s: float = Field(
        default=300.0, ge=10.0, le=7200.0, description="A staff pause (opt-out) ends on `resume` or after this "
        "long: nothing is analysed while paused, so the end of the visit cannot be observed.")
    notice_text: dict[Literal["en", "zh-CN"], NoticeText] = Field(
        default_factory=dict, description="Counter signage text per language (templates in edge/notices/); "
        "required by the eu and cn profiles.")


def profile_problems(p: PrivacyConfig, emit_interval_s: float, half_life_s: float) -> list[str]:
    """The ``key.path: message`` lines for every minimum of ``p.profile`` that the config breaks."""
    out: list[str] = []
    if p.profile == "eu":
        if not p.staff_zones:
            out.append("privacy.staff_zones: the eu profile requires at least one staff zone")
        if not p.notice_text:
            out.append("privacy.notice_text: the eu profile requires a notice text")
    if p.profile == "cn" and "zh-CN" not in p.notice_text:
        out.append("privacy.notice_text: the cn profile requires a zh-CN notice text")
    if p.profile in ("eu", "cn"):
        if emit_interval_s < MIN_AGGREGATION_S:
            out.append(f"fusion.emit_interval_s: the {p.profile} profile requires >= {MIN_AGGREGATION_S} "
                       f"(no per-frame events; got {emit_interval_s})")
        if half_life_s < MIN_AGGREGATION_S:
            out.append(f"fusion.half_life_s: the {p.profile} profile requires >= {MIN_AGGREGATION_S} "
                       f"(got {half_life_s})")
    return out

