"""Event contract for everything the kiosk publishes: schemas, validation, topics and the envelope factory."""

from edge.events.contract import (
    ENVELOPE,
    INBOUND,
    KINDS,
    RETAINED,
    SCHEMA_VERSION,
    EventFactory,
    SchemaError,
    iso,
    load_schema,
    schema_name,
    topic,
    validate,
    validate_inbound,
)

__all__ = [
    "ENVELOPE",
    "INBOUND",
    "KINDS",
    "RETAINED",
    "SCHEMA_VERSION",
    "EventFactory",
    "SchemaError",
    "iso",
    "load_schema",
    "schema_name",
    "topic",
    "validate",
    "validate_inbound",
]
