"""Staff tablet: a static web app (MQTT over WebSockets in the browser) and a small server for it."""

from edge.tablet.server import STATIC_DIR, make_server, serve

__all__ = ["STATIC_DIR", "make_server", "serve"]
