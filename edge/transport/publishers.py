"""Where events go besides the broker: the Publisher interface, its counters, and the log and test fakes."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Protocol

from edge.config import IdentityConfig
from edge.events import SchemaError, topic, validate

log = logging.getLogger(__name__)


class Publisher(Protocol):
    """Where events go: a broker, the log, or a list in tests."""

    def start(self) -> None:
        """Begin publishing (non-blocking)."""

    def stop(self) -> None:
        """Say goodbye (offline status where applicable) and release resources."""

    def publish(self, kind: str, payload: dict[str, Any], retain: bool = False) -> bool:
        """Validate and send one complete event; False if refused or dropped."""

    def stats(self) -> dict[str, int]:
        """Counters: connects, published, dropped, refused."""

    def outbox_stats(self) -> dict[str, int]:
        """Outbox rows, bytes, drops per kind and errors; empty where there is no outbox."""

    def outbox_problem(self) -> str | None:
        """Why the outbox database is not in use, or None."""

    def subscription_problem(self) -> str | None:
        """Which command topics the broker refused to subscribe us to, or None."""

    @property
    def connected(self) -> bool:
        """Whether events currently reach their destination."""


class _Counting:
    """Shared counters and the validate-then-encode step every publisher performs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = {"connects": 0, "published": 0, "dropped": 0, "refused": 0}

    def _bump(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def stats(self) -> dict[str, int]:
        """Counters: connects, published (acknowledged), dropped (queue full), refused (invalid payload)."""
        with self._lock:
            return dict(self._counts)

    def outbox_stats(self) -> dict[str, int]:
        """No outbox here."""
        return {}

    def outbox_problem(self) -> str | None:
        """No outbox here."""
        return None

    def subscription_problem(self) -> str | None:
        """No subscriptions here."""
        return None

    def _encode(self, kind: str, payload: dict[str, Any]) -> str | None:
        """Compact JSON of a valid payload; None (counted as refused, logged) if it breaks the contract."""
        try:
            validate(kind, payload)
            return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (SchemaError, TypeError, ValueError) as exc:
            self._bump("refused")
            log.error("refused to publish %s event: %s", kind, exc)
            return None


class _Local(_Counting):
    """A publisher with no network: connected from start() to stop()."""

    def __init__(self) -> None:
        super().__init__()
        self._connected = False

    @property
    def connected(self) -> bool:
        """True between start() and stop()."""
        return self._connected

    def start(self) -> None:
        """Mark as connected."""
        self._connected = True
        self._bump("connects")

    def stop(self) -> None:
        """Mark as disconnected."""
        self._connected = False


class RecordingPublisher(_Local):
    """Test fake: validates like the real publisher and keeps (kind, payload, retain) in ``events``."""

    def __init__(self, strict: bool = False) -> None:
        """With ``strict`` an invalid payload raises SchemaError instead of being refused quietly."""
        super().__init__()
        self.strict = strict
        self.events: list[tuple[str, dict[str, Any], bool]] = []

    def publish(self, kind: str, payload: dict[str, Any], retain: bool = False) -> bool:
        """Validate and record a payload."""
        if self.strict:
            validate(kind, payload)
        if self._encode(kind, payload) is None:
            return False
        with self._lock:
            self.events.append((kind, payload, retain))
            self._counts["published"] += 1
        return True

    def payloads(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Recorded payloads, optionally of one kind only."""
        with self._lock:
            return [p for k, p, _ in self.events if kind is None or k == kind]


class LogPublisher(_Local):
    """Used when MQTT is disabled: validates, then logs each event as one JSON line at INFO."""

    def __init__(self, prefix: str = "edge-emotion", identity: IdentityConfig | None = None) -> None:
        """Log lines are prefixed with the topic the event would have been published on."""
        super().__init__()
        self.prefix = prefix
        self.identity = identity

    def publish(self, kind: str, payload: dict[str, Any], retain: bool = False) -> bool:
        """Validate and log one event."""
        data = self._encode(kind, payload)
        if data is None:
            return False
        where = kind if self.identity is None else topic(self.prefix, self.identity.site_id,
                                                         self.identity.kiosk_id, kind)
        log.info("event %s %s", where, data)
        self._bump("published")
        return True
