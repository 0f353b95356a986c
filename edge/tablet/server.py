"""Serve the staff tablet's static files with http.server (no directory listings, fixed content types)."""

from __future__ import annotations

import logging
import os
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent
VENDOR_MQTT = STATIC_DIR / "vendor" / "mqtt.min.js"

# Only what the app is made of is served; Python sources next to it are not.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
}


class TabletHandler(SimpleHTTPRequestHandler):
    """Static files of the tablet folder only: no listings, no dotfiles, no other file types."""

    server_version = "edge-emotion-tablet"
    extensions_map = dict(CONTENT_TYPES)

    def send_head(self) -> Any:
        """Refuse directories without index.html, hidden files and unknown types; then serve as usual."""
        path = self.translate_path(self.path)
        if os.path.isdir(path):
            if not self.path.split("?", 1)[0].endswith("/"):
                return super().send_head()  # the standard redirect to "dir/"
            path = os.path.join(path, "index.html")
        rel = os.path.relpath(path, self.directory)
        if (rel.startswith("..") or any(p.startswith((".", "_")) for p in Path(rel).parts)
                or Path(path).suffix not in CONTENT_TYPES or not os.path.isfile(path)):
            self.send_error(404, "Not found")
            return None
        return super().send_head()

    def list_directory(self, path: str | os.PathLike[str]) -> None:
        """Directory listings are never served."""
        self.send_error(404, "Not found")
        return None

    def end_headers(self) -> None:
        """No caching, so a tablet picks up a new app version on reload; no framing by other sites."""
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        """Access log lines go to the module logger at debug level."""
        log.debug("%s %s", self.address_string(), format % args)


def make_server(host: str = "127.0.0.1", port: int = 8080, directory: Path = STATIC_DIR) -> ThreadingHTTPServer:
    """A bound (not yet serving) threading HTTP server for the tablet folder; ``port=0`` picks a free port."""
    handler = partial(TabletHandler, directory=str(directory))
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def serve(host: str = "127.0.0.1", port: int = 8080) -> int:
    """Serve the tablet until interrupted; returns the process exit code."""
    if not VENDOR_MQTT.is_file():
        log.warning("%s is missing: run scripts/vendor-tablet (the page cannot connect without it)", VENDOR_MQTT)
    server = make_server(host, port)
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    print(f"staff tablet: http://{shown}:{server.server_port}/?broker=ws://{shown}:9001&site=SITE&lang=zh-CN"
          "  (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
