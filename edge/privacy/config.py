"""Privacy section of the kiosk config: profile, staff zones and channel, pause limit, notice text; profile rules."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from edge.privacy.gate_config import DirectionConfig, GateKind

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Point = tuple[Fraction, Fraction]
MIN_ZONE_AREA = 1e-4  # share of the frame a staff polygon must enclose (1 % x 1 %); less is a line or a point


def polygon_area(points: list[Point]) -> float:
    """Area of a simple polygon of normalised points (shoelace formula), as a share of the frame."""
    n = len(points)
    return abs(sum(points[i][0] * points[(i + 1) % n][1] - points[(i + 1) % n][0] * points[i][1]
                   for i in range(n))) / 2.0


def _cross(o: Point, a: Point, b: Point) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _edges_cross(p1: Point, p2: Point, q1: Point, q2: Point) -> bool:
    """Whether segments p1p2 and q1q2 cross at a point inside both (touching at an end does not count)."""
    d1, d2 = _cross(q1, q2, p1), _cross(q1, q2, p2)
    d3, d4 = _cross(p1, p2, q1), _cross(p1, p2, q2)
    return d1 * d2 < 0 and d3 * d4 < 0


def crossing_edges(points: list[Point]) -> tuple[int, int] | None:
    """The first pair of non-neighbouring edges (by start index) that cross, or None for a simple polygon."""
    n = len(points)
    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue  # neighbours through the closing edge
            if _edges_cross(points[i], points[(i + 1) % n], points[j], points[(j + 1) % n]):
                return i, j
    return None


def _not_degenerate(points: list[Point]) -> list[Point]:
    area = polygon_area(points)
    if area < MIN_ZONE_AREA:
        raise ValueError(f"degenerate polygon: it encloses {area:.2g} of the frame, at least {MIN_ZONE_AREA:g} "
                         "(1 % x 1 %) is required")
    crossing = crossing_edges(points)
    if crossing is not None:  # filled by the even-odd rule, the parts it wraps twice (a star's centre) stay open
        i, j = crossing
        raise ValueError(f"self-intersecting polygon: edge {i}-{(i + 1) % len(points)} crosses edge "
                         f"{j}-{(j + 1) % len(points)}; draw the zone as one outline, or as several zones")
    return points


Polygon = Annotated[list[Point], Field(min_length=3, max_length=64), AfterValidator(_not_degenerate)]
NoticeText = Annotated[str, Field(min_length=20, max_length=4000)]

MIN_AGGREGATION_S = 1.0
MIN_PAUSE_S = 300.0  # eu/cn: a customer's opt-out lasts at least this long unless staff resume
MIN_FACE_FRAC = 0.05  # eu/cn: smaller (farther) faces, i.e. bystanders, are never analysed
# eu/cn: the staff-voice gate's thresholds stay inside the range docs/bench/staff_gate.md measured (staff-only
# windows reaching the model <= 1 % there); a share of 1.0 / 0.0 let every staff window through
MAX_STAFF_SHARE, MIN_CUSTOMER_SHARE, MAX_MARGIN_DB = 0.25, 0.3, 5.0
_FLOORS = (
    f"fusion.emit_interval_s >= {MIN_AGGREGATION_S}: no per-frame events, states aggregated over at least 1 s",
    f"fusion.half_life_s >= {MIN_AGGREGATION_S}: readings smoothed over at least 1 s",
    f"privacy.pause_max_s >= {MIN_PAUSE_S:g}: a customer's opt-out (staff pause) lasts at least 5 minutes "
    "unless staff resume",
    f"analysis.min_face_frac >= {MIN_FACE_FRAC}: faces smaller than 5 % of the frame height (bystanders farther "
    "away) are never analysed",
    f"privacy.staff_voice_max_share <= {MAX_STAFF_SHARE}, privacy.customer_voice_min_share >= "
    f"{MIN_CUSTOMER_SHARE}, privacy.staff_voice_margin_db <= {MAX_MARGIN_DB:g}: the staff-voice gate's thresholds "
    "stay in the range the staff-gate benchmark measured",
)
# What each privacy profile enforces at validation; the privacy report prints these same lines.
PROFILE_RULES: dict[str, tuple[str, ...]] = {
    "eu": (
        "privacy.staff_zones: at least one staff zone (emotion recognition of workers is prohibited, "
        "EU AI Act Art. 5(1)(f))",
        "privacy.notice_text: a notice text for the counter signage (EU AI Act Art. 50(3), GDPR Art. 13)",
        "privacy.staff_voice_gate: a staff-voice gate (a staff microphone channel or a microphone array's "
        "direction) whenever voice is analysed, or analysis.voice = false (EU AI Act Art. 5(1)(f))",
        *_FLOORS,
    ),
    "cn": (
        "privacy.notice_text.zh-CN: a Chinese notice text for the prominent sign PIPL Art. 26 requires",
        "privacy.staff_voice_gate: a warning (check-config, start-up log, this report) when voice is analysed "
        "without a staff-voice gate",
        *_FLOORS,
    ),
    "custom": ("nothing beyond the field bounds: the deployer documents their own rules",),
}
# Every profile: what makes a config invalid whatever the profile; the privacy report prints it too.
COMMON_RULES: tuple[str, ...] = (
    f"privacy.staff_zones: every polygon encloses at least {MIN_ZONE_AREA:g} of the frame (1 % x 1 %) and does not "
    "cross itself; a degenerate or self-intersecting polygon (a point, a line, a sliver, a bow-tie) is refused, in "
    "the config file and over MQTT alike",
    "remote config (MQTT) may only tighten the config file, the privacy baseline: the staff zones must still "
    "cover everything the file's cover, analysis.customer_zone must stay inside the file's, "
    "analysis.min_face_frac, privacy.pause_max_s, fusion.emit_interval_s and fusion.half_life_s may not go below "
    "the file's values, the staff-voice margins may not loosen, face or voice analysis the file leaves off stays "
    "off, and the opening hours (schedule) may only shrink: no minute the file's hours leave closed",
)


class PrivacyConfig(BaseModel):
    """Privacy profile, staff exclusion (image polygons, staff microphone channel), pause and signage text."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)  # as every config section

    profile: Literal["eu", "cn", "custom"] = Field(
        default="custom", description="Enforced minimums: eu (staff zone + notice + aggregation), cn (zh-CN "
        "notice + aggregation), custom (none); see PROFILE_RULES. Reported in `status`.")
    staff_zones: list[Polygon] = Field(
        default_factory=list, max_length=16, description="Polygons of [x, y] points (normalised 0..1) covering "
        "the staff side; their pixels are blacked out in a copy of each frame before face detection.")
    staff_voice_gate: GateKind = Field(
        default="auto", description="How staff speech is kept from the voice model: channel (a staff microphone, "
        "`staff_audio_channel`), direction (a microphone array, `[privacy.direction]`) or none; auto = channel "
        "when staff_audio_channel is set, direction when [privacy.direction] is, else none. The eu profile "
        "requires one while voice is analysed.")
    staff_audio_channel: int | None = Field(
        default=None, ge=0, le=7, description="Index of the staff microphone channel when the counter has one "
        "microphone per side (microphone.channels >= 2); speech frames where it dominates are staff speech.")
    staff_voice_margin_db: float = Field(
        default=3.0, ge=0.0, le=40.0, description="Staff channel this many dB louder than every other channel "
        "marks a speech frame as staff speech (one where another channel is louder is the customer's).")
    direction: DirectionConfig | None = Field(
        default=None, description="Direction gate: microphone array geometry and the staff and customer sectors "
        "(`edge-emotion calibrate-direction` measures them).")
    staff_voice_max_share: float = Field(
        default=0.1, ge=0.0, le=1.0, description="A voice window is not analysed when more than this share of its "
        "speech frames come from the staff side (so overlapping speech is dropped).")
    customer_voice_min_share: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Nor when less than this share of its speech frames clearly come "
        "from the customer side (ambiguous windows are dropped).")
    pause_max_s: float = Field(
        default=300.0, ge=10.0, le=7200.0, description="A staff pause (opt-out) ends on `resume` or after this "
        "long: nothing is analysed while paused, so the end of the visit cannot be observed.")
    notice_text: dict[Literal["en", "zh-CN"], NoticeText] = Field(
        default_factory=dict, description="Counter signage text per language (templates in edge/privacy/notices/); "
        "required by the eu and cn profiles.")


def profile_problems(p: PrivacyConfig, emit_interval_s: float, half_life_s: float,
                     min_face_frac: float) -> list[str]:
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
        if p.pause_max_s < MIN_PAUSE_S:
            out.append(f"privacy.pause_max_s: the {p.profile} profile requires >= {MIN_PAUSE_S:g} (a customer's "
                       f"opt-out must not expire sooner; got {p.pause_max_s:g})")
        if min_face_frac < MIN_FACE_FRAC:
            out.append(f"analysis.min_face_frac: the {p.profile} profile requires >= {MIN_FACE_FRAC} (bystanders' "
                       f"smaller faces are not analysed; got {min_face_frac:g})")
        for key, value, ok, rule in (
                ("staff_voice_max_share", p.staff_voice_max_share, p.staff_voice_max_share <= MAX_STAFF_SHARE,
                 f"<= {MAX_STAFF_SHARE}"),
                ("customer_voice_min_share", p.customer_voice_min_share,
                 p.customer_voice_min_share >= MIN_CUSTOMER_SHARE, f">= {MIN_CUSTOMER_SHARE}"),
                ("staff_voice_margin_db", p.staff_voice_margin_db, p.staff_voice_margin_db <= MAX_MARGIN_DB,
                 f"<= {MAX_MARGIN_DB:g}")):
            if not ok:
                out.append(f"privacy.{key}: the {p.profile} profile requires {rule} (looser lets staff speech "
                           f"reach the voice model; got {value:g})")
    return out

