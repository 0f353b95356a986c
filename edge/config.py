"""Kiosk configuration: one TOML file validated by pydantic models that fail loudly, all errors at once."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from edge.config_keys import close_key
from edge.ops.schedule import ScheduleConfig
from edge.policy.config import AlertsConfig, FusionConfig
from edge.privacy.config import MAX_MARGIN_DB, MAX_STAFF_SHARE, MIN_CUSTOMER_SHARE, PrivacyConfig, profile_problems
from edge.privacy.gate_config import effective_gate, gate_problems, gate_warnings
from edge.redact import URL_SCHEME, is_secret_key, redact, redact_value
from edge.transport.homeassistant_config import HomeAssistantConfig
from edge.transport.mqtt_config import MqttConfig, backoff_max

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class ConfigError(ValueError):
    """The configuration is invalid; ``errors`` holds one ``key.path: message`` line per problem."""

    def __init__(self, source: str, errors: list[str]) -> None:
        """Build from the config source name and its error lines."""
        self.source = source
        self.errors = errors
        super().__init__(f"{source}: {len(errors)} configuration error(s):\n" + "\n".join(f"  {e}" for e in errors))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class IdentityConfig(_Section):
    """Who this kiosk is; used in topics and events (no person is ever identified)."""

    site_id: str = Field(pattern=_ID, description="Site (branch/hall) id, used as a topic level.")
    kiosk_id: str = Field(pattern=_ID, description="Kiosk id, unique within the site; a topic level.")
    counter_name: str = Field(default="", max_length=80, description="Human name of the counter, shown on tablets.")


def _index_as_text(v: Any) -> Any:
    """A device index written as a TOML integer (``source = 0``) is the source ``"0"``; bools stay errors."""
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else v


class CameraConfig(_Section):
    """Camera source: device index/path, GStreamer pipeline, RTSP URL or video file."""

    enabled: bool = Field(default=True, description="Capture video at all.")
    source: str = Field(default="0", min_length=1, description="Device index ('0'), /dev/videoN, GStreamer pipeline "
                        "ending in appsink, rtsp:// URL, or a video file path.")
    kind: Literal["auto", "device", "gstreamer", "rtsp", "file"] = Field(
        default="auto", description="How to read `source`; auto guesses from its form.")
    pace: Literal["realtime", "fast"] = Field(default="realtime", description="Files only: real-time or fast.")
    loop: bool = Field(default=False, description="Files only: restart at the end (demo).")
    width: int | None = Field(default=None, ge=64, le=4096, description="Requested capture width (devices).")
    height: int | None = Field(default=None, ge=48, le=4096, description="Requested capture height (devices).")
    buffer_frames: int = Field(default=2, ge=1, le=30, description="Frame queue size; the oldest frame is dropped.")
    reopen_min_s: float = Field(default=0.5, gt=0, le=60, description="First back-off before reopening a lost source.")
    reopen_max_s: float = Field(default=30.0, gt=0, le=600, validate_default=True,
                                description="Longest back-off between reopen attempts.")

    @field_validator("source", mode="before")
    @classmethod
    def _device_index(cls, v: Any) -> Any:
        return _index_as_text(v)

    @field_validator("reopen_max_s")
    @classmethod
    def _max_backoff(cls, v: float, info: ValidationInfo) -> float:
        return backoff_max(v, info, "reopen_min_s")


class MicrophoneConfig(_Section):
    """Microphone source: sounddevice input by name/index, or an audio file (wav/flac)."""

    enabled: bool = Field(default=True, description="Capture audio at all.")
    source: str = Field(default="default", min_length=1, description="'default', a device name or index, or a file.")
    kind: Literal["auto", "device", "file"] = Field(default="auto", description="How to read `source`.")
    pace: Literal["realtime", "fast"] = Field(default="realtime", description="Files only: real-time or fast.")
    loop: bool = Field(default=False, description="Files only: restart at the end (demo).")
    sample_rate: Literal[16000] = Field(default=16000, description="Analysis rate (16 kHz only). Files at "
                                          "other rates are resampled; a device must capture at it (ALSA `default` "
                                          "and `plughw:` devices convert, a raw `hw:` device may not).")
    channels: int = Field(default=1, ge=1, le=8, description="Channels captured (a staff microphone or a "
                          "microphone array for the staff-voice gate); a device or file with fewer is an error.")
    block_ms: int = Field(default=100, ge=10, le=1000, description="Capture block length.")
    buffer_s: float = Field(default=10.0, ge=2.0, le=120.0, description="Ring buffer length; oldest audio overwritten.")
    reopen_min_s: float = Field(default=0.5, gt=0, le=60, description="First back-off before reopening a lost device.")
    reopen_max_s: float = Field(default=30.0, gt=0, le=600, validate_default=True,
                                description="Longest back-off between reopen attempts.")

    @field_validator("source", mode="before")
    @classmethod
    def _device_index(cls, v: Any) -> Any:
        return _index_as_text(v)

    @field_validator("source")
    @classmethod
    def _not_a_url(cls, v: str) -> str:
        if URL_SCHEME.match(v):  # would be read as a file name, credentials and all
            raise ValueError("a network stream is not supported as a microphone source: give a sounddevice input "
                             "(name or index) or an audio file")
        return v

    @field_validator("reopen_max_s")
    @classmethod
    def _max_backoff(cls, v: float, info: ValidationInfo) -> float:
        return backoff_max(v, info, "reopen_min_s")


class ModelsConfig(_Section):
    """Where the verified model files live and how they run."""

    dir: str | None = Field(default=None, description="Models folder with manifest.json; default: "
                            "$EDGE_EMOTION_MODELS or the project's models/. Relative to the config file.")
    threads: int = Field(default=1, ge=1, le=16, description="TFLite interpreter threads per model.")
    face_detector: Literal["auto", "blazeface", "haar"] = Field(
        default="auto", description="auto = BlazeFace when installed, else OpenCV Haar cascade.")
    voice_model: Literal["voice_emotion", "voice_emotion_cnn"] = Field(
        default="voice_emotion", description="voice_emotion = the Whisper-tiny encoder model (0.2.x, stronger across "
        "languages, ~4x the CPU); voice_emotion_cnn = the 64-band log-mel CNN (0.1.x) for kiosks short of CPU.")


class AnalysisConfig(_Section):
    """What is analysed and how often."""

    face: bool = Field(default=True, description="Analyse faces.")
    voice: bool = Field(default=True, description="Analyse voice.")
    face_fps: float = Field(default=8.0, ge=0.2, le=60,
                            description="Frames analysed per second (camera may be faster); at least one every 5 s.")
    voice_hop_s: float = Field(default=0.25, ge=0.1, le=10,
                               description="Seconds between voice analyses, each over the model's 2 s window "
                               "(consecutive windows share mel frames; in replays when this is a multiple of 0.01); "
                               "0.5 halves the voice CPU and alerts ~0.3 s later (docs/bench/alerts.md).")
    min_speech_ratio: Fraction = Field(default=0.3, description="Share of a window that must be speech to analyse it.")
    vad_aggressiveness: int = Field(default=2, ge=0, le=3, description="webrtcvad aggressiveness 0..3.")
    customer_zone: tuple[Fraction, Fraction, Fraction, Fraction] = Field(
        default=(0.0, 0.0, 1.0, 1.0), description="Normalised x0, y0, x1, y1 box where the customer's face is.")
    min_face_frac: Fraction = Field(default=0.08, description="Smallest customer face height as a share of frame.")
    queue_size: int = Field(default=32, ge=1, le=1024, description="Readings queue; oldest dropped when full.")

    @field_validator("customer_zone")
    @classmethod
    def _zone_ordered(cls, v: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        if not (v[0] < v[2] and v[1] < v[3]):
            raise ValueError("must be x0 < x1 and y0 < y1")
        return v


class StateConfig(_Section):
    """Where the kiosk keeps its own small state (event outbox, remote-config overlay); never media."""

    dir: str | None = Field(default=None, description="State folder; default $STATE_DIRECTORY (systemd's "
                            "StateDirectory=) or none (outbox in memory, remote config not persisted). Relative "
                            "to the config file; may be ${ENV}.")


class LoggingConfig(_Section):
    """Log verbosity (logs go to stderr)."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Log level.")


class KioskConfig(_Section):
    """The whole kiosk configuration."""

    identity: IdentityConfig = Field(description="Kiosk identity.")
    camera: CameraConfig = Field(default_factory=CameraConfig, description="Camera.")
    microphone: MicrophoneConfig = Field(default_factory=MicrophoneConfig, description="Microphone.")
    models: ModelsConfig = Field(default_factory=ModelsConfig, description="Models.")
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig, description="Analysis.")
    fusion: FusionConfig = Field(default_factory=FusionConfig, description="Fusion and visits.")
    alerts: AlertsConfig = Field(default_factory=AlertsConfig, description="Staff alert policy and hints.")
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="MQTT.")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Logging.")
    state: StateConfig = Field(default_factory=StateConfig, description="The kiosk's own state folder.")
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig, description="Privacy profile and staff exclusion.")
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig, description="Opening hours of the analysis.")
    homeassistant: HomeAssistantConfig = Field(default_factory=HomeAssistantConfig,
                                               description="Home Assistant MQTT discovery (off by default).")
    base_dir: Path = Field(default=Path("."), exclude=True, description="Folder of the config file (set by load).")

    @model_validator(mode="after")
    def _profile(self) -> KioskConfig:
        problems = profile_problems(self.privacy, self.fusion.emit_interval_s, self.fusion.half_life_s,
                                    self.analysis.min_face_frac)
        p = self.privacy
        problems += gate_problems(p.staff_voice_gate, p.staff_audio_channel, p.direction, self.microphone.channels,
                                  p.profile, self.voice_on())
        if problems:
            raise ValueError("\n".join(problems))  # format_errors prints one line per problem
        return self

    def voice_on(self) -> bool:
        """Whether voice is analysed at all (analysis.voice and a microphone)."""
        return self.analysis.voice and self.microphone.enabled

    def warnings(self) -> list[str]:
        """``key.path: message`` lines that are not errors (the cn profile without a staff-voice gate or zone)."""
        p = self.privacy
        out = gate_warnings(p.staff_voice_gate, p.staff_audio_channel, p.direction, p.profile, self.voice_on())
        if not (self.analysis.face and self.camera.enabled) and not self.voice_on():
            out.append("analysis: neither face (analysis.face, camera.enabled) nor voice (analysis.voice, "
                       "microphone.enabled) is analysed: the kiosk will publish status and health only")
        elif not (self.analysis.face and self.camera.enabled):
            out.append("analysis.face: off (or camera.enabled = false) with voice on: a visit starts only when a "
                       "customer's face is seen, so this kiosk raises no alert and its emotion events have no visit")
        loose = [f"{k} = {getattr(p, k):g}" for k, bad in (
            ("staff_voice_max_share", p.staff_voice_max_share > MAX_STAFF_SHARE),
            ("customer_voice_min_share", p.customer_voice_min_share < MIN_CUSTOMER_SHARE),
            ("staff_voice_margin_db", p.staff_voice_margin_db > MAX_MARGIN_DB)) if bad]
        gated = effective_gate(p.staff_voice_gate, p.staff_audio_channel, p.direction) != "none"
        if loose and self.voice_on() and gated:
            out.append(f"privacy: {', '.join(loose)}: outside the range the staff-gate benchmark measured; staff "
                       "speech can reach the voice model")
        if p.profile == "cn" and not p.staff_zones and self.analysis.face and self.camera.enabled:
            out.append("privacy.staff_zones: none under the cn profile: a staff face in the camera's view is analysed "
                       "(the zh-CN signage template says the staff side is masked)")
        if self.fusion.face_weight == 0 and self.fusion.voice_weight == 0:
            out.append("fusion: face_weight and voice_weight are both 0: no fused state, no emotion event, no alert")
        return out

    def state_dir(self) -> Path | None:
        """The state folder (``state.dir``, else $STATE_DIRECTORY's first entry), or None for no persistence."""
        raw = self.state.dir or os.environ.get("STATE_DIRECTORY", "").split(":")[0]
        return self.resolve(raw) if raw else None

    def resolve(self, path: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.base_dir / p


# Broker credentials: only the service connects with them; reports may leave their ${ENV} references unexpanded.
CREDENTIAL_KEYS = frozenset({"mqtt.username", "mqtt.password", "mqtt.tls.ca_file", "mqtt.tls.cert_file",
                             "mqtt.tls.key_file"})


def config_hash(cfg: KioskConfig) -> str:
    """SHA-256 of the effective settings as canonical JSON, broker credentials (CREDENTIAL_KEYS) left out."""
    data = cfg.model_dump(mode="json")
    for key in CREDENTIAL_KEYS:
        *parents, leaf = key.split(".")
        node: Any = data
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _expand_env(node: Any, path: str, errors: list[str], keep: frozenset[str] = frozenset()) -> Any:
    """Replace ${VAR} in strings with the environment's value, collecting missing ones as errors (``keep``: left)."""
    if isinstance(node, dict):
        return {k: _expand_env(v, f"{path}.{k}" if path else str(k), errors, keep) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_env(v, f"{path}[{i}]", errors, keep) for i, v in enumerate(node)]
    if isinstance(node, str):
        def sub(m: re.Match[str]) -> str:
            val = os.environ.get(m.group(1))
            if val is None and path in keep:
                return m.group(0)
            if val is None:
                errors.append(f"{path}: environment variable {m.group(1)} is not set")
                return ""
            return val
        return _ENV_REF.sub(sub, node)
    return node


def _got(loc: tuple[Any, ...], err: Any) -> str:
    """What a config error line shows of the value: nothing of a secret-looking key or an unknown one."""
    if err["type"] == "missing":
        return ""
    if err["type"] == "extra_forbidden":  # a misspelt key's value may be anything, a password included
        near = close_key(KioskConfig, loc)
        return f" (did you mean {near}?)" if near else ""
    if any(is_secret_key(str(p)) for p in loc):
        return " (value not shown: the key looks secret)"
    shown = redact(repr(redact_value(err.get("input"))))  # a section given as a list may hold a password
    return f" (got {shown if len(shown) <= 200 else shown[:199] + '…'})"


def format_error(err: Any) -> list[str]:
    """The ``key.path: message (got value)`` line(s) of one pydantic error; secret-looking values never shown."""
    if not err["loc"] and err["type"] == "value_error":  # whole-config rules (privacy profile) carry key paths
        return str(err["msg"]).removeprefix("Value error, ").splitlines()
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    return [f"{loc}: {redact(str(err['msg']))}{_got(tuple(err['loc']), err)}"]


def format_errors(exc: ValidationError) -> list[str]:
    """One ``key.path: message (got value)`` line per pydantic error; secret-looking values are never shown."""
    return [line for err in exc.errors() for line in format_error(err)]


def parse_config(data: dict[str, Any], source: str = "<config>", base_dir: Path | None = None,
                 credentials: bool = True) -> KioskConfig:
    """Validate a config; raise ConfigError with every problem (credentials=False: unset credential ${ENV} kept)."""
    errors: list[str] = []
    data = _expand_env(data, "", errors, frozenset() if credentials else CREDENTIAL_KEYS)
    try:
        cfg = KioskConfig.model_validate({**data, "base_dir": base_dir or Path(".")})
    except ValidationError as exc:
        errors.extend(e for e in format_errors(exc) if not e.startswith("base_dir"))
        raise ConfigError(source, errors) from None
    if errors:
        raise ConfigError(source, errors)
    return cfg


def load_config(path: str | Path, credentials: bool = True) -> KioskConfig:
    """Read and validate a kiosk TOML file (``credentials``: as in ``parse_config``)."""
    path = Path(path)
    return parse_config(read_toml(path), str(path), path.resolve().parent, credentials)


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML file as a mapping; ConfigError when it cannot be read or parsed or sets ``base_dir``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(path), ["file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), [f"cannot read: {exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"not valid TOML: {exc}"]) from None
    if "base_dir" in data:
        raise ConfigError(str(path), ["base_dir: Extra inputs are not permitted"])
    return data
