"""Fuzzing (hypothesis): config loader, inbound message handlers and media readers give one clear error, never crash.

CI runs a few examples per target; the benchmark run is ``EDGE_FUZZ_EXAMPLES=5000 scripts/test tests/test_fuzz.py``
(every target gets that many examples; results in docs/bench/faults.md). The ack handler is fuzzed in
tests/test_alerts.py.
"""

from __future__ import annotations

import json
import math
import os
import string
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.capture.media import MediaError, iter_video_file, read_audio_channels, read_audio_file
from edge.config import ConfigError, KioskConfig, load_config, parse_config
from edge.pipeline.analyzers import Analyzers
from edge.pipeline.service import Service
from edge.privacy.pause import PauseError, parse_pause
from edge.transport.mqtt import RecordingPublisher

BENCH = int(os.environ.get("EDGE_FUZZ_EXAMPLES", "0"))
settings.register_profile("fuzz", deadline=None, database=None, derandomize=not BENCH,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                 HealthCheck.function_scoped_fixture])


def fuzz(ci_examples: int) -> settings:
    """The fuzz profile with ``ci_examples`` examples, or EDGE_FUZZ_EXAMPLES of them in a benchmark run."""
    return settings(settings.get_profile("fuzz"), max_examples=BENCH or ci_examples)


# --- config loader -------------------------------------------------------------------------------------------
SECTIONS = {name: f.annotation for name, f in KioskConfig.model_fields.items() if name != "base_dir"}
FIELDS = {name: list(getattr(model, "model_fields", {})) for name, model in SECTIONS.items()}
KEYS = st.sampled_from(sorted(SECTIONS)) | st.text(string.ascii_lowercase + "_", min_size=1, max_size=8)
SCALARS = (st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=30) | st.sampled_from(["${HOME}", "${EDGE_FUZZ_UNSET}", "auto", "5", "eu", "/dev/video0",
                                                     "rtsp://u:p@h/x", "../x.onnx", "", "tcp", "3.1.1"]))
VALUES = st.recursive(SCALARS | st.none(), lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)


@st.composite
def config_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly-plausible configs: known sections and fields with random values, plus unknown keys."""
    out: dict[str, Any] = {"identity": {"site_id": "s", "kiosk_id": "k"}} if draw(st.booleans()) else {}
    for sec in draw(st.lists(KEYS, max_size=4, unique=True)):
        fields = FIELDS.get(sec) or ["x"]
        names = draw(st.lists(st.sampled_from(fields) | st.text(max_size=6), max_size=4, unique=True))
        out[sec] = {n: draw(VALUES) for n in names} if draw(st.integers(0, 9)) else draw(VALUES)
    return out


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v if x is not None and not isinstance(x, dict)) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(x)}" for k, x in v.items() if x is not None) + "}"
    return json.dumps(str(v))


def to_toml(cfg: dict[str, Any]) -> str:
    lines = []
    for sec, body in cfg.items():
        if isinstance(body, dict):
            lines.append(f"[{json.dumps(sec)}]")
            lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in body.items() if v is not None]
        elif body is not None:
            lines.insert(0, f"{json.dumps(sec)} = {toml_value(body)}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


@fuzz(80)
@given(config_dicts())
def test_parse_config_gives_config_error_only(data: dict[str, Any]) -> None:
    try:
        cfg = parse_config(data)
    except ConfigError as exc:
        assert str(exc).strip() and exc.__class__ is ConfigError
    else:
        assert isinstance(cfg, KioskConfig)


@fuzz(80)
@given(st.one_of(st.binary(max_size=2000), config_dicts().map(lambda d: to_toml(d).encode()),
                 st.tuples(config_dicts(), st.binary(min_size=1, max_size=8), st.floats(0, 1)).map(
                     lambda t: (lambda s: s[:int(len(s) * t[2])] + t[1] + s[int(len(s) * t[2]):])(
                         to_toml(t[0]).encode()))))
def test_load_config_file_gives_config_error_only(scratch: Path, raw: bytes) -> None:
    path = scratch / "kiosk.toml"
    path.write_bytes(raw)
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        assert str(path) in str(exc)
    else:
        assert isinstance(cfg, KioskConfig) and cfg.base_dir == scratch.resolve()


# --- inbound message handlers ----------------------------------------------------------------------------------
CFG = parse_config({"identity": {"site_id": "site-z", "kiosk_id": "kiosk-z"},
                    "fusion": {"emit_interval_s": 0.2, "visit_start_s": 0.2, "visit_end_s": 5.0}})
JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
                       lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                           st.sampled_from(["action", "by", "alert_id", "fusion", "alerts", "privacy", "identity",
                                            "emit_interval_s", "pause_max_s", "x"]) | st.text(max_size=6),
                           inner, max_size=4), max_leaves=12)
PAYLOADS = (st.binary(max_size=400) | JSONISH.map(lambda v: json.dumps(v).encode())
            | st.sampled_from([b'{"action":"pause"}', b'{"action":"resume","by":"t"}', b'{"action": NaN}',
                               b'{"fusion": {"emit_interval_s": 0.5}}', b'{"identity": {"kiosk_id": "x"}}',
                               b"\xef\xbb\xbf{}", b"[" * 5000, b" " * 40000]))


def service() -> tuple[Service, RecordingPublisher]:
    pub = RecordingPublisher(strict=True)
    return Service(CFG, Analyzers(), publisher=pub, clock=lambda: 0.0), pub


@fuzz(150)
@given(PAYLOADS)
def test_pause_handler_applies_only_valid_commands(payload: bytes) -> None:
    svc, pub = service()
    try:
        cmd = parse_pause(payload)
    except PauseError:
        cmd = None
    svc.handle_message(svc.pause_topic, payload)  # paho's thread: must never raise
    assert svc.errors["pause"] == (cmd is None)
    svc.process_pauses(1.0)
    assert svc.paused.is_set() == (cmd is not None and cmd.action == "pause")
    assert len(pub.payloads("status")) == svc.paused.is_set()  # status only on a change


@fuzz(150)
@given(st.sampled_from(["ack", "pause", "config", "other"]), st.text(max_size=30), PAYLOADS)
def test_any_inbound_message_never_raises_and_invalid_ones_change_nothing(which: str, text: str,
                                                                          payload: bytes) -> None:
    from edge.pipeline.remote_apply import process_config

    svc, pub = service()
    topics = {"ack": svc.ack_topic, "pause": svc.pause_topic, "config": getattr(svc, "config_topic", "config")}
    msg_topic = topics.get(which, text)
    before = svc.cfg.model_dump()
    svc.handle_message(msg_topic, payload)
    svc.process_acks(1.0)
    svc.process_pauses(1.0)
    process_config(svc)
    states = pub.payloads("configstate")
    accepted = bool(states) and states[-1]["accepted"] and states[-1]["trigger"] == "message"
    if msg_topic not in topics.values():
        assert sum(svc.errors.values()) == 0 and not svc.paused.is_set() and svc.acks.qsize() == 0
    if not accepted:
        assert svc.cfg.model_dump() == before, "a refused or non-config message changed the config"
    if msg_topic != svc.pause_topic:
        assert not svc.paused.is_set()


# --- remote config and the privacy baseline -------------------------------------------------------------------
NOTICE = {"en": "Emotion sensing at this counter; ask staff to pause it.",
          "zh-CN": "本柜台使用情绪感知设备，如不同意请告知工作人员。"}
BASE_STAFF = [[0.0, 0.0], [0.3, 0.0], [0.3, 1.0], [0.0, 1.0]]
COORD = st.sampled_from([0.0, 0.1, 0.3, 0.31, 0.5, 0.999, 1.0]) | st.floats(0, 1)
POLYGON = (st.lists(st.tuples(COORD, COORD).map(list), min_size=3, max_size=6)
           | st.just(BASE_STAFF) | st.just([[0, 0], [0.4, 0], [0.4, 1], [0, 1]])
           | st.just([[0.999, 0.999], [1, 0.999], [1, 1]]) | st.just([[0, 0], [0, 0], [0, 0]]))
BOX = st.tuples(COORD, COORD, COORD, COORD).map(list) | st.just([0, 0, 1, 1]) | st.just([0.3, 0, 1, 1])
PAUSE = st.sampled_from([10, 299, 300, 600, 900]) | st.none()
PRIVACY_PATCH = st.fixed_dictionaries({}, optional={
    "privacy": st.fixed_dictionaries({}, optional={"staff_zones": st.lists(POLYGON, max_size=3) | st.none(),
                                                   "pause_max_s": PAUSE}),
    "analysis": st.fixed_dictionaries({}, optional={"customer_zone": BOX | st.none(),
                                                    "min_face_frac": st.sampled_from([0, 0.04, 0.05, 0.1, 0.2])})})


def _unmasked_share(base: list[Any], zones: list[Any]) -> float:
    """Share of the baseline zones' pixels that the service's own masking leaves visible (640 x 480)."""
    from edge.privacy.masking import mask_staff

    white = np.full((480, 640), 255, np.uint8)
    inside = mask_staff(white, base) == 0
    return float((mask_staff(white, zones)[inside] != 0).mean()) if inside.any() else 0.0


@fuzz(120)
@given(st.sampled_from(["eu", "cn", "custom"]), st.lists(PRIVACY_PATCH, min_size=1, max_size=3))
def test_remote_config_never_weakens_privacy_below_the_file(profile: str, patches: list[dict[str, Any]]) -> None:
    from edge.privacy.config import MIN_ZONE_AREA, polygon_area, profile_problems
    from edge.transport.remote_config import RemoteConfig

    base = parse_config({"identity": {"site_id": "s", "kiosk_id": "k"}, "mqtt": {"enabled": False},
                         "analysis": {"customer_zone": [0.3, 0.0, 1.0, 1.0], "min_face_frac": 0.1},
                         "microphone": {"channels": 2},  # issue 23: eu requires a staff-voice gate
                         "privacy": {"profile": profile, "staff_zones": [BASE_STAFF], "pause_max_s": 600,
                                     "notice_text": NOTICE, "staff_audio_channel": 1}})
    remote = RemoteConfig(base, None)
    for patch in patches:
        remote.handle(json.dumps(patch).encode(), lambda cfg: None)
        cfg = remote.cfg
        assert not profile_problems(cfg.privacy, cfg.fusion.emit_interval_s, cfg.fusion.half_life_s,
                                    cfg.analysis.min_face_frac)
        assert all(polygon_area(z) >= MIN_ZONE_AREA for z in cfg.privacy.staff_zones)  # no degenerate zone anywhere
        if profile == "custom":
            continue
        a, b = cfg.analysis, base.analysis
        assert _unmasked_share([BASE_STAFF], cfg.privacy.staff_zones) <= 0.01, cfg.privacy.staff_zones
        assert all(n >= o for n, o in zip(a.customer_zone[:2], b.customer_zone[:2], strict=True))
        assert all(n <= o for n, o in zip(a.customer_zone[2:], b.customer_zone[2:], strict=True))
        assert a.min_face_frac >= b.min_face_frac and cfg.privacy.pause_max_s >= base.privacy.pause_max_s


# --- media readers ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def seeds(scratch: Path) -> dict[str, bytes]:
    """Small valid files to mutate: wav, flac (0.3 s noise) and mp4 (8 frames)."""
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal((4800, 2)) * 0.1).astype(np.float32)
    out = {}
    for ext in ("wav", "flac"):
        p = scratch / f"seed.{ext}"
        sf.write(p, audio, 16000)
        out[ext] = p.read_bytes()
    p = scratch / "seed.mp4"
    w = cv2.VideoWriter(str(p), cv2.VideoWriter.fourcc(*"mp4v"), 10, (64, 48))
    for i in range(8):
        w.write(np.full((48, 64, 3), i * 30, np.uint8))
    w.release()
    out["mp4"] = p.read_bytes()
    return out


MUTATIONS = st.lists(st.tuples(st.sampled_from(["cut", "flip", "insert", "zero"]), st.floats(0, 1),
                               st.binary(min_size=1, max_size=16)), min_size=1, max_size=4)


def mutate(data: bytes, ops: list[tuple[str, float, bytes]]) -> bytes:
    for op, where, junk in ops:
        i = int(where * len(data))
        if op == "cut":
            data = data[:i]
        elif op == "flip":
            data = data[:i] + bytes(b ^ 0xFF for b in junk) + data[i + len(junk):]
        elif op == "insert":
            data = data[:i] + junk + data[i:]
        else:
            data = data[:i] + b"\0" * len(junk) * 64 + data[i + len(junk) * 64:]
    return data


def bounded(fn: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Run ``fn`` in a thread; a hang fails the test instead of stopping it."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            box["error"] = exc

    th = threading.Thread(target=run, daemon=True)
    th.start()
    th.join(timeout)
    assert not th.is_alive(), f"reader still running after {timeout} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


def check_audio(x: np.ndarray, channels: bool) -> None:
    assert x.dtype == np.float32 and x.ndim == (2 if channels else 1) and x.size > 0
    assert np.isfinite(x).all() and np.abs(x).max() <= 1.0


@fuzz(30)
@given(st.sampled_from(["wav", "flac", "mp4"]), st.booleans(), MUTATIONS, st.binary(max_size=3000))
def test_media_readers_give_media_error_only(scratch: Path, seeds: dict[str, bytes], ext: str, from_seed: bool,
                                             ops: list[tuple[str, float, bytes]], noise: bytes) -> None:
    path = scratch / f"fuzz.{ext}"
    path.write_bytes(mutate(seeds[ext], ops) if from_seed else noise)
    readers: list[tuple[str, Callable[[], Any]]] = [("read_audio_file", lambda: read_audio_file(path))]
    if ext == "mp4":
        readers.append(("iter_video_file", lambda: [f.shape for _, f in iter_video_file(path, fps=10)]))
    else:
        readers.append(("read_audio_channels", lambda: read_audio_channels(path)))
    for name, fn in readers:
        try:
            out = bounded(fn)
        except MediaError as exc:
            assert str(path) in str(exc), (name, str(exc))
            continue
        if name == "iter_video_file":
            assert out and all(s[2] == 3 for s in out)
        else:
            check_audio(out, channels=name == "read_audio_channels")
