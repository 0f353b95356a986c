"""Event contract for everything the kiosk publishes: schemas, validation, topics and the envelope factory."""

from edge.events.contract import (
    ENVELOPE,
    KINDS,
    SCHEMA_VERSION,
    EventFactory,
    SchemaError,
    iso,
    load_schema,
    schema_name,
    topic,
    validate,
)

__all__ = [
    "ENVELOPE",
    "KINDS",
    "SCHEMA_VERSION",
    "EventFactory",
    "SchemaError",
    "iso",
    "load_schema",
    "schema_name",
    "topic",
    "validate",
]
