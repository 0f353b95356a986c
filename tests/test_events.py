"""The event contract: schemas accept good payloads, reject bad ones with a JSON path, topics and envelopes."""

from __future__ import annotations

import json
import math
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import SAMPLE_BODIES, sample_body
from jsonschema import Draft202012Validator

from edge.config import IdentityConfig
from edge.events import INBOUND, KINDS, EventFactory, SchemaError, iso, load_schema, topic, validate

IDENTITY = IdentityConfig(site_id="hall-1", kiosk_id="k7", counter_name="Counter 3")
DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture
def factory() -> EventFactory:
    return EventFactory(IDENTITY, clock=lambda: 1795341600.1234)


def errors_of(kind: str, payload: Any) -> list[tuple[str, str]]:
    with pytest.raises(SchemaError) as exc:
        validate(kind, payload)
    assert exc.value.kind == kind
    assert kind in str(exc.value)
    return exc.value.errors


def test_every_kind_has_a_sample():
    assert set(SAMPLE_BODIES) == set(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_schema_files_are_valid_and_closed(kind):
    schema = load_schema(kind)
    Draft202012Validator.check_schema(schema)
    assert schema["$id"] == f"https://edge-emotion.invalid/schemas/{kind}/1"
    assert schema["properties"]["schema"] == {"const": f"edge-emotion/{kind}/1",
                                              "description": schema["properties"]["schema"]["description"]}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if "properties" in node:
                assert node.get("additionalProperties") is False, f"{kind}: {path} is open"
            for k, v in node.items():
                if k not in ("if", "then"):  # conditional fragments refine an object declared elsewhere
                    walk(v, f"{path}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}/{i}")

    walk(schema, "#")


@pytest.mark.parametrize("kind", KINDS)
def test_factory_adds_a_valid_envelope(kind, factory):
    payload = factory.make(kind, **sample_body(kind))
    assert payload["schema"] == f"edge-emotion/{kind}/1"
    assert uuid.UUID(payload["event_id"]).version == 4
    assert payload["ts"] == "2026-11-22T10:00:00.123Z"
    assert (payload["site_id"], payload["kiosk_id"]) == ("hall-1", "k7")
    validate(kind, json.loads(json.dumps(payload)))
    assert factory.make(kind, **sample_body(kind))["event_id"] != payload["event_id"]


def test_iso_is_utc_with_milliseconds():
    assert iso(0) == "1970-01-01T00:00:00.000Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", EventFactory.iso(1795341600.5))


@pytest.mark.parametrize(("kind", "mutate", "path"), [
    ("status", lambda b: b.update(face_image="..."), "$"),
    ("emotion", lambda b: b["probs"].update(contempt=0.0), "$.probs"),
    ("emotion", lambda b: b["modalities"]["face"].update(bbox=[1, 2, 3, 4]), "$.modalities.face"),
    ("health", lambda b: b["sources"]["camera"].update(device="/dev/video0"), "$.sources.camera"),
    ("health", lambda b: b["mqtt"].update(password="x"), "$.mqtt"),
    ("alert", lambda b: b["hint"].update(customer_name="Bob"), "$.hint"),
])
def test_extra_fields_are_rejected(kind, mutate, path, factory):
    body = sample_body(kind)
    mutate(body)
    payload = {**factory.make(kind, **sample_body(kind)), **body}
    errs = errors_of(kind, payload)
    assert any(p == path and "Additional properties" in m for p, m in errs), errs


@pytest.mark.parametrize(("kind", "field", "value", "path"), [
    ("emotion", "label", "contempt", "$.label"),
    ("status", "state", "starting", "$.state"),
    ("alert", "level", "panic", "$.level"),
    ("alert", "reason", "loud", "$.reason"),
    ("emotion", "valence", 1.5, "$.valence"),
    ("emotion", "escalation", -0.1, "$.escalation"),
    ("emotion", "window_end", "2026-11-22 10:00:01", "$.window_end"),
    ("health", "voice_windows", 1.5, "$.voice_windows"),
])
def test_wrong_values_are_rejected_with_their_path(kind, field, value, path, factory):
    payload = factory.make(kind, **sample_body(kind))
    payload[field] = value
    assert path in [p for p, _ in errors_of(kind, payload)]


@pytest.mark.parametrize("kind", KINDS)
def test_missing_fields_are_rejected(kind, factory):
    payload = factory.make(kind, **sample_body(kind))
    for field in ["ts", *SAMPLE_BODIES[kind]][:3]:
        broken = {k: v for k, v in payload.items() if k != field}
        errs = errors_of(kind, broken)
        assert ("$", f"{field!r} is a required property") in errs, errs


def test_nested_missing_and_every_error_is_listed(factory):
    payload = factory.make("emotion", **sample_body("emotion"))
    del payload["probs"]["fear"]
    payload["label"] = "bored"
    errs = errors_of("emotion", payload)
    assert ("$.probs", "'fear' is a required property") in errs
    assert "$.label" in [p for p, _ in errs]
    with pytest.raises(SchemaError, match=r"\$\.probs: 'fear' is a required property"):
        validate("emotion", payload)


def test_non_finite_numbers_are_rejected(factory):
    payload = factory.make("emotion", **sample_body("emotion"))
    payload["probs"]["happy"] = math.nan
    payload["modalities"]["voice"]["age_s"] = math.inf
    paths = [p for p, _ in errors_of("emotion", payload)]
    assert "$.probs.happy" in paths and "$.modalities.voice.age_s" in paths


def test_visit_phase_rules(factory):
    factory.make("visit", **sample_body("visit"))
    end = sample_body("visit")
    end.update(phase="end", ended_at="2026-11-22T10:03:00.000Z",
               summary={"duration_s": 180.0, "state_share": {"neutral": 0.7, "angry": 0.3}, "peak_escalation": 0.8,
                        "alert_raised": True, "acknowledged": True, "calmed_down": True})
    factory.make("visit", **end)
    with pytest.raises(SchemaError, match=r"\$\.summary"):
        factory.make("visit", **{**end, "summary": None})
    with pytest.raises(SchemaError, match=r"\$\.ended_at"):
        factory.make("visit", **{**sample_body("visit"), "ended_at": "2026-11-22T10:03:00.000Z"})


def test_alert_recovered_level_and_reason_go_together(factory):
    factory.make("alert", **{**sample_body("alert"), "level": "recovered", "reason": "recovered"})
    with pytest.raises(SchemaError, match=r"\$\.reason"):
        factory.make("alert", **{**sample_body("alert"), "level": "recovered"})
    with pytest.raises(SchemaError, match=r"\$\.level"):
        factory.make("alert", **{**sample_body("alert"), "reason": "recovered"})


def test_factory_refuses_envelope_overrides_and_unknown_kinds(factory):
    with pytest.raises(SchemaError, match=r"\$\.ts"):
        factory.make("status", ts="2020-01-01T00:00:00.000Z", **sample_body("status"))
    with pytest.raises(SchemaError, match="unknown event kind"):
        validate("selfie", {})
    with pytest.raises(SchemaError, match="'selfie'"):
        factory.make("selfie")
    with pytest.raises(SchemaError, match=r"\$: .* is not of type 'object'"):
        validate("status", ["online"])


def test_topic_layout():
    assert topic("edge-emotion", "hall-1", "k7", "alert") == "edge-emotion/hall-1/k7/alert"
    assert topic("acme/edge", "s", "k", "status") == "acme/edge/s/k/status"
    for bad in ("a/b", "+", "#", ""):
        with pytest.raises(ValueError):
            topic("edge-emotion", bad, "k7", "alert")
    with pytest.raises(ValueError):
        topic("edge/#", "s", "k", "alert")


def test_docs_examples_are_valid():
    """Every JSON example in docs/mqtt.md validates against the schema it names."""
    text = (DOCS / "mqtt.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)```", text, flags=re.S)
    kinds = []
    for block in blocks:
        payload = json.loads(block)
        kind = payload["schema"].split("/")[1]
        validate(kind, payload)
        kinds.append(kind)
    assert set(kinds) == set(KINDS)


ENVELOPE_KEYS = frozenset({"schema", "event_id", "ts", "site_id", "kiosk_id"})


def _tree(node: object, free: frozenset[str] = frozenset({"hints", "notice_text", "overlay"})) -> object:
    """The key structure of a JSON value (free-form maps such as hint texts as a leaf)."""
    if isinstance(node, dict):
        return {k: (None if k in free else _tree(v)) for k, v in node.items()}
    return None


def test_docs_examples_have_the_fields_the_code_publishes():
    """The status, health and configstate examples carried fields the code had renamed or dropped (`models.face`,
    `queue_depth.readings`) and lacked ones it always sends: compare their keys with payloads the code builds."""
    from edge.config import parse_config
    from edge.pipeline.analyzers import Analyzers
    from edge.pipeline.service import Service
    from edge.transport.remote_config import redact

    text = (DOCS / "mqtt.md").read_text(encoding="utf-8")
    docs = {json.loads(b)["schema"].split("/")[1]: json.loads(b) for b in re.findall(r"```json\n(.*?)```", text,
                                                                                        flags=re.S)}
    cfg = parse_config({"identity": {"site_id": "hall-1", "kiosk_id": "k7"},
                        "mqtt": {"host": "127.0.0.1", "port": 9, "tls": {"ca_file": "ca.crt"}},
                        "camera": {"enabled": False}, "microphone": {"enabled": False}})
    assert _tree(docs["configstate"]["config"]) == _tree(redact(cfg))
    svc = Service(cfg, Analyzers())
    assert set(docs["status"]) - ENVELOPE_KEYS == set(svc.status_body()) | {"state"}
    health = svc.health_body()
    assert set(docs["health"]) - ENVELOPE_KEYS == set(health)
    shown = set(docs["health"]["drops"])
    always = set(health["drops"])
    optional = {"voice_gated_invalid", "voice_gated_fault"} | {k for k in shown if k.startswith("outbox_")}
    assert always <= shown and shown - always <= optional, shown ^ always  # outbox_*: once MQTT has started
    assert set(docs["health"]["latency_ms"]) <= {"face", "gate", "voice", "capture_to_fusion", "fusion", "publish"}


def test_asyncapi_references_every_schema_file():
    text = (DOCS / "asyncapi.yaml").read_text(encoding="utf-8")
    assert text.startswith("asyncapi: 3.0.0")
    refs = re.findall(r"\$ref: '(\.\./edge/events/schemas/[a-z]+\.schema\.json)'", text)
    assert sorted(Path(r).name for r in refs) == sorted(f"{k}.schema.json" for k in KINDS + INBOUND)
    assert all((DOCS / r).resolve().is_file() for r in refs)
    for kind in KINDS:
        assert f"address: 'edge-emotion/{{siteId}}/{{kioskId}}/{kind}'" in text


def test_asyncapi_and_mqtt_md_cover_every_schema_and_topic():
    """Issue 22: ack/pause were missing from the AsyncAPI document and schedule from its config message."""
    import yaml

    from edge.events import RETAINED
    from edge.transport.remote_config import REMOTE_FIELDS

    doc = yaml.safe_load((DOCS / "asyncapi.yaml").read_text(encoding="utf-8"))
    md = (DOCS / "mqtt.md").read_text(encoding="utf-8")
    schemas = sorted(p.name.split(".")[0] for p in (DOCS.parent / "edge" / "events" / "schemas").glob("*.schema.json"))
    assert schemas == sorted(KINDS + INBOUND)
    ops = {op["channel"]["$ref"].rsplit("/", 1)[1]: op for op in doc["operations"].values()}
    for kind in schemas:
        msg = doc["components"]["messages"][kind]
        assert msg["payload"] == {"$ref": f"../edge/events/schemas/{kind}.schema.json"}, kind
        assert doc["channels"][kind]["address"] == f"edge-emotion/{{siteId}}/{{kioskId}}/{kind}"
        assert ops[kind]["action"] == ("receive" if kind in INBOUND else "send"), kind
        binding = ops[kind]["bindings"]["$ref"].rsplit("/", 1)[1]
        assert binding == ("retained" if kind in RETAINED else "event"), kind
        assert f"edge-emotion/hall-1/k7/{kind}" in md, f"{kind} missing from the topic tree"
        assert re.search(rf"^## `{kind}`", md, flags=re.M), f"no section for {kind}"
        assert f"{kind}.schema.json" in md, f"{kind}'s schema not named in docs/mqtt.md"
        row = re.search(rf"^\| `{kind}`( \(inbound\))? \| 1 \| ([^|]+) \|", md, flags=re.M)
        assert row, f"no QoS row for {kind}"
        assert ("**yes**" in row.group(2)) == (kind in RETAINED), kind
    for section in REMOTE_FIELDS:  # the config message names every remotely changeable section
        assert section in doc["components"]["messages"]["config"].get("summary", "") + str(
            doc["components"]["messages"]["config"].get("description", "")), section


def test_configstate_example_shows_the_kiosk_defaults():
    """Issue 21: the example showed alert_threshold 0.7 (and other non-defaults) as if they were the kiosk's."""
    from edge.policy.config import AlertsConfig, FusionConfig

    text = (DOCS / "mqtt.md").read_text(encoding="utf-8")
    example = next(json.loads(b) for b in re.findall(r"```json\n(.*?)```", text, flags=re.S)
                   if '"edge-emotion/configstate/1"' in b)
    overlay = example["overlay"].get("alerts", {})
    assert example["config"]["alerts"] == AlertsConfig(**overlay).model_dump(mode="json")
    assert example["config"]["fusion"] == FusionConfig().model_dump(mode="json")
