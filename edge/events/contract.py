"""The event contract: JSON Schemas for every published payload, validation, topics and an envelope factory."""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

from edge.config import IdentityConfig
from edge.redact import redact

KINDS: tuple[str, ...] = ("status", "health", "emotion", "visit", "alert", "configstate", "current", "cue")
# Published with the retain flag (the broker keeps the last one per kiosk).
RETAINED: tuple[str, ...] = ("status", "configstate", "current")
INBOUND: tuple[str, ...] = ("ack", "pause", "config")  # received by the kiosk, never published: validate_inbound
SCHEMA_VERSION = 1
ENVELOPE: tuple[str, ...] = ("schema", "event_id", "ts", "site_id", "kiosk_id")


class SchemaError(ValueError):
    """A payload does not match its kind's schema; ``errors`` holds (JSON path, message) pairs."""

    def __init__(self, kind: str, errors: list[tuple[str, str]]) -> None:
        """Build from the event kind and its (path, message) errors."""
        self.kind = kind
        self.errors = errors
        lines = "; ".join(f"{path}: {msg}" for path, msg in errors)
        super().__init__(f"invalid {kind!r} event: {lines}")


def schema_name(kind: str) -> str:
    """The value of the ``schema`` envelope field for ``kind``, e.g. ``edge-emotion/emotion/1``."""
    return f"edge-emotion/{kind}/{SCHEMA_VERSION}"


def load_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema (as a dict) for one event kind (or INBOUND message kind), read from the package data."""
    if kind not in KINDS + INBOUND:
        raise SchemaError(kind, [("$", f"unknown event kind; expected one of {', '.join(KINDS)}")])
    text = resources.files("edge.events").joinpath("schemas", f"{kind}.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator(kind: str) -> Draft202012Validator:
    schema = load_schema(kind)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _json_path(parts: Any) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _non_finite(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """NaN/Infinity pass JSON Schema bounds checks but are not JSON; report where they are."""
    if isinstance(node, float) and not math.isfinite(node):
        yield path, f"{node!r} is not a finite number"
    elif isinstance(node, Mapping):
        for k, v in node.items():
            yield from _non_finite(v, f"{path}.{k}")
    elif isinstance(node, list | tuple):
        for i, v in enumerate(node):
            yield from _non_finite(v, f"{path}[{i}]")


def validate(kind: str, payload: Any) -> None:
    """Check a complete payload (envelope + body) against ``kind``'s schema; raise SchemaError listing every error."""
    validator = _validator(kind) if kind in KINDS else None
    if validator is None:
        raise SchemaError(kind, [("$", f"unknown event kind; expected one of {', '.join(KINDS)}")])
    found = sorted(validator.iter_errors(payload), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    errors = [(_json_path(e.absolute_path), e.message) for e in found]
    errors += list(_non_finite(payload, "$"))
    if errors:
        raise SchemaError(kind, errors)


def validate_inbound(kind: str, payload: Any) -> None:
    """Check a received message (an INBOUND kind, e.g. ``ack``) against its schema; raise SchemaError."""
    if kind not in INBOUND:
        raise SchemaError(kind, [("$", f"unknown inbound kind; expected one of {', '.join(INBOUND)}")])
    found = sorted(_validator(kind).iter_errors(payload), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    errors = [(_json_path(e.absolute_path), _inbound_message(e)) for e in found]
    if errors:
        raise SchemaError(kind, errors)


def _inbound_message(err: Any) -> str:
    """A schema error about a received message without what it carried: a nested value is shown only by its type
    and strings are redacted (a sender's message may hold a token; these lines reach logs)."""
    msg = str(err.message)
    if isinstance(err.instance, (dict, list)):
        msg = msg.replace(repr(err.instance), f"<{type(err.instance).__name__}>")
    return redact(msg)


def topic(prefix: str, site_id: str, kiosk_id: str, kind: str) -> str:
    """The topic ``PREFIX/SITE/KIOSK/KIND`` an event of ``kind`` from this kiosk is published on."""
    for name, level in (("site_id", site_id), ("kiosk_id", kiosk_id), ("kind", kind)):
        if not level or any(c in level for c in "/+#\0"):
            raise ValueError(f"{name} {level!r} cannot be a single MQTT topic level")
    if not prefix or any(c in prefix for c in "+#\0") or prefix.startswith("/") or prefix.endswith("/"):
        raise ValueError(f"topic prefix {prefix!r} is not a valid topic prefix")
    return f"{prefix}/{site_id}/{kiosk_id}/{kind}"


def iso(ts: float) -> str:
    """RFC 3339 UTC timestamp with milliseconds for a Unix time, e.g. ``2026-11-22T10:00:00.123Z``."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EventFactory:
    """Makes schema-valid payloads: adds the envelope (schema, event_id, ts, site_id, kiosk_id) and validates."""

    iso = staticmethod(iso)

    def __init__(self, identity: IdentityConfig, clock: Callable[[], float] = time.time) -> None:
        """Bind the kiosk identity and a wall clock (Unix seconds)."""
        self.identity = identity
        self.clock = clock

    def make(self, kind: str, /, **body: Any) -> dict[str, Any]:
        """A complete payload of ``kind`` with a fresh envelope; raise SchemaError if the result is invalid."""
        clash = sorted(set(body) & set(ENVELOPE))
        if clash:
            raise SchemaError(kind, [(f"$.{k}", "envelope field is set by the factory") for k in clash])
        payload: dict[str, Any] = {
            "schema": schema_name(kind),
            "event_id": str(uuid.uuid4()),
            "ts": iso(self.clock()),
            "site_id": self.identity.site_id,
            "kiosk_id": self.identity.kiosk_id,
            **body,
        }
        validate(kind, payload)
        return payload
