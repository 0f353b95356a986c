"""edge-emotion: on-device customer emotion sensing for service counters."""

__version__ = "0.1.0"
