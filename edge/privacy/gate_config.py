"""Staff-voice gate settings (a staff microphone channel or a microphone array's direction) and their rules."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Coord = Annotated[float, Field(ge=-0.5, le=0.5)]
Degrees = Annotated[float, Field(ge=0.0, le=360.0)]
GateKind = Literal["auto", "none", "channel", "direction"]
MIN_SPACING_M = 0.02  # closer microphones cannot tell directions apart at 16 kHz


def collinear(points: list[tuple[float, float]], tol_m: float = 1e-3) -> bool:
    """Whether every microphone lies on one line (a 2-microphone array always does)."""
    if len(points) < 3:
        return True
    x0, y0 = points[0]
    x1, y1 = max(points[1:], key=lambda p: (p[0] - x0) ** 2 + (p[1] - y0) ** 2)
    length = ((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5
    if length < tol_m:  # all in one place (a placeholder before calibration): the spacing check names it
        return True
    return all(abs((x1 - x0) * (y - y0) - (y1 - y0) * (x - x0)) / length <= tol_m for x, y in points)


def in_sector(deg: float, sector: tuple[float, float]) -> bool:
    """Whether azimuth ``deg`` lies in ``sector`` = (start, end), counter-clockwise from start to end (wraps at 360)."""
    start, end = sector[0] % 360.0, sector[1] % 360.0
    d = deg % 360.0
    if sector[1] - sector[0] >= 360.0:
        return True
    return start <= d <= end if start <= end else d >= start or d <= end


def sector_width(sector: tuple[float, float]) -> float:
    """Angular width of a sector in degrees."""
    return (sector[1] - sector[0]) % 360.0 or (360.0 if sector[1] != sector[0] else 0.0)


class DirectionConfig(BaseModel):
    """Direction-of-arrival gate: microphone positions and the staff's and customer's angular sectors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    mic_positions_m: list[tuple[Coord, Coord]] = Field(
        min_length=2, max_length=8, description="[x, y] in metres of each capture channel's microphone in the "
        "array's plane, in channel order (e.g. a 2-mic HAT: [[-0.029, 0], [0.029, 0]]).")
    staff_sector_deg: tuple[Degrees, Degrees] = Field(
        description="Start and end azimuth (degrees, counter-clockwise from +x) of the staff side; speech from "
        "here is never analysed. A 2-mic (collinear) array measures 0..180 from its axis (mic 0 -> mic 1 is 0).")
    customer_sector_deg: tuple[Degrees, Degrees] = Field(
        description="Start and end azimuth of the customer side; windows are analysed only when enough of their "
        "speech comes from here (angles between the sectors count as ambiguous).")
    min_coherence: float = Field(
        default=0.15, ge=0.0, le=1.0, description="A speech frame whose steered-response peak (0..1) is below "
        "this has no clear direction and counts as ambiguous.")

    @model_validator(mode="after")
    def _geometry(self) -> DirectionConfig:
        pts = self.mic_positions_m
        near = min(((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2) ** 0.5 for i, a in enumerate(pts) for b in pts[i + 1:])
        problems = []
        if near < MIN_SPACING_M:
            problems.append(f"mic_positions_m: two microphones are {near * 1000:.0f} mm apart, at least "
                            f"{MIN_SPACING_M * 1000:.0f} mm are needed")
        if collinear(list(pts)):
            for name in ("staff_sector_deg", "customer_sector_deg"):
                lo, hi = getattr(self, name)
                if not lo < hi <= 180.0:
                    problems.append(f"{name}: a collinear (e.g. 2-mic) array measures 0..180 degrees from its axis; "
                                    f"give start < end <= 180 (got [{lo:g}, {hi:g}])")
        s, c = self.staff_sector_deg, self.customer_sector_deg
        if not problems and (in_sector(s[0], c) or in_sector(s[1], c) or in_sector(c[0], s) or in_sector(c[1], s)):
            problems.append("customer_sector_deg: overlaps staff_sector_deg; leave a gap between the sides")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def effective_gate(kind: str, staff_audio_channel: int | None, direction: DirectionConfig | None) -> str:
    """The gate in force: ``auto`` resolved to channel (a staff channel is set), direction ([privacy.direction] is
    set) or none."""
    if kind != "auto":
        return kind
    if staff_audio_channel is not None:
        return "channel"
    return "direction" if direction is not None else "none"


def gate_problems(kind: str, staff_channel: int | None, direction: DirectionConfig | None, channels: int,
                  profile: str, voice_on: bool) -> list[str]:
    """``key.path: message`` lines for a gate that cannot work with this capture, or a profile that needs one."""
    gate = effective_gate(kind, staff_channel, direction)
    out: list[str] = []
    if gate == "channel":
        if staff_channel is None:
            out.append("privacy.staff_audio_channel: the channel gate needs the staff microphone's channel index")
        elif staff_channel >= channels:
            out.append(f"privacy.staff_audio_channel: channel {staff_channel} is not captured (microphone.channels = "
                       f"{channels}; set it to the device's channel count, at least {staff_channel + 1})")
        elif channels < 2:
            out.append("microphone.channels: the channel gate needs at least 2 channels (staff and customer)")
    if gate == "direction":
        if direction is None:
            out.append("privacy.direction: the direction gate needs [privacy.direction] (mic_positions_m, sectors)")
        elif len(direction.mic_positions_m) != channels:
            out.append(f"privacy.direction.mic_positions_m: {len(direction.mic_positions_m)} microphone position(s) "
                       f"for microphone.channels = {channels}; give one per captured channel")
    if profile == "eu" and voice_on and gate == "none":
        out.append("privacy.staff_voice_gate: the eu profile requires a staff-voice gate (channel or direction) "
                   "while voice is analysed (emotion recognition of workers is prohibited, EU AI Act Art. 5(1)(f)); "
                   "or set analysis.voice = false")
    if gate != "channel" and staff_channel is not None and kind != "auto":
        out.append(f"privacy.staff_audio_channel: set, but privacy.staff_voice_gate = {kind!r}")
    if gate != "direction" and direction is not None:
        out.append(f"privacy.direction: set, but the gate in force is {gate!r} (privacy.staff_voice_gate = "
                   f"{kind!r}): set staff_voice_gate = \"direction\" or remove [privacy.direction]")
    return out


def gate_warnings(kind: str, staff_channel: int | None, direction: DirectionConfig | None, profile: str,
                  voice_on: bool) -> list[str]:
    """Warnings (not errors) about the staff-voice gate: the cn profile without one."""
    if profile == "cn" and voice_on and effective_gate(kind, staff_channel, direction) == "none":
        return ["privacy.staff_voice_gate: no staff-voice gate while voice is analysed; a single microphone hears "
                "staff too (set channel or direction, or analysis.voice = false)"]
    return []
