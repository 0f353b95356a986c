"""Decoding of received MQTT payloads: UTF-8 JSON whose text could be published again (no lone surrogates)."""

from __future__ import annotations

import json
import math
from typing import Any


class InboundJsonError(ValueError):
    """A received payload that is not UTF-8 JSON the kiosk can carry; the message names what is wrong."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _has_lone_surrogate(obj: Any) -> bool:
    """True if a key or string anywhere in ``obj`` holds a UTF-16 surrogate (``"\\ud800"`` in JSON text)."""
    stack = [obj]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(node, dict):
            stack += list(node.keys()) + list(node.values())
        elif isinstance(node, list):
            stack += node
    return False


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are all different: ``{"action": "pause", "action": "resume"}`` means two things."""
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"key {k!r} appears twice in one object")
        out[k] = v
    return out


def decode_json(data: bytes) -> Any:
    """The JSON value of ``data``; raise InboundJsonError for non-UTF-8 bytes, invalid JSON, NaN/Infinity, a key
    given twice in one object (JSON leaves which one counts open) or a string escape no UTF-8 text can hold (such
    a string, echoed in a reply, could not be sent)."""
    try:
        obj = json.loads(data.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except UnicodeDecodeError:
        raise InboundJsonError("not UTF-8") from None
    except (ValueError, RecursionError) as exc:
        raise InboundJsonError(f"not JSON: {exc}"[:300]) from None
    if _has_lone_surrogate(obj):
        raise InboundJsonError("not JSON text of Unicode characters (a lone \\ud800-\\udfff escape)")
    return obj


NUMBER_LIMIT = 1e15  # larger than any count, duration or rate a kiosk reports; float() of a longer int overflows


def has_oversized_number(obj: Any, limit: float = NUMBER_LIMIT) -> bool:
    """True if a number anywhere in ``obj`` is not finite or beyond ``limit`` (a schema-valid 400-digit integer
    made float() raise at every metrics scrape)."""
    stack = [obj]
    while stack:
        node = stack.pop()
        if isinstance(node, bool):
            continue
        if isinstance(node, int | float):
            if isinstance(node, float) and not math.isfinite(node):
                return True
            if abs(node) > limit:
                return True
        elif isinstance(node, dict):
            stack += node.values()
        elif isinstance(node, list):
            stack += node
    return False
