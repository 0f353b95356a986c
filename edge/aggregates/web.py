"""The aggregates' HTTP side: the page (``/``), the CSV export and ``/metrics`` (stdlib server, own threads)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from edge.aggregates.page import render_csv, render_page
from edge.aggregates.store import Store

log = logging.getLogger(__name__)
MAX_DAYS = 3660


class BadRequest(ValueError):
    """A query parameter is wrong; the message says which and why."""


def since_day(query: dict[str, list[str]], today: date) -> str | None:
    """``days=N``: the first day of the last N days (site-local), or None for every day; BadRequest otherwise."""
    raw = query.get("days", [""])[0]
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_DAYS:  # "²".isdigit() is True
        raise BadRequest(f"days: must be a whole number of days from 1 to {MAX_DAYS}, not {raw[:20]!r}")
    return (today - timedelta(days=int(raw) - 1)).isoformat()


def make_handler(store: Store, registry: CollectorRegistry, per_counter: bool, zone: ZoneInfo,
                 clock: Callable[[], float], min_visits: int = 1) -> type[BaseHTTPRequestHandler]:
    """A request handler bound to one store (GET only); rows of fewer than ``min_visits`` visits withheld."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "edge-emotion-aggregates"

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("http: " + fmt, *args)

        def _send(self, code: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            try:
                since = since_day(query, datetime.fromtimestamp(clock(), zone).date())
                if url.path in ("/", "/index.html"):
                    page = render_page(store.site, store.by_day(since), store.by_hour_of_day(since),
                                       store.totals(since), per_counter, since, min_visits)
                    self._send(200, page.encode(), "text/html; charset=utf-8")
                elif url.path == "/aggregates.csv":
                    self._csv(query, since)
                elif url.path == "/metrics":
                    self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                else:
                    self._send(404, b"not found: / (page), /aggregates.csv, /metrics\n", "text/plain")
            except BadRequest as exc:
                self._send(400, f"{exc}\n".encode(), "text/plain; charset=utf-8")

        def _csv(self, query: dict[str, list[str]], since: str | None) -> None:
            by = query.get("by", ["day"])[0]
            if by == "day":
                text = render_csv(store.by_day(since), ["day"], min_visits)
            elif by == "hour":
                rows = store.hourly(since)
                text = render_csv([r for r in rows if per_counter or r["counter"] == ""], ["day", "hour", "counter"],
                                  min_visits)
            else:
                raise BadRequest(f"by: must be day or hour, not {by[:20]!r}")
            name = f"aggregates-{store.site}-{by}.csv"
            self._send(200, text.encode(), "text/csv; charset=utf-8",
                       {"Content-Disposition": f'attachment; filename="{name}"'})

    return Handler


class WebServer:
    """The HTTP server in its own thread; ``port`` is the bound one (useful with port 0)."""

    def __init__(self, host: str, port: int, handler: type[BaseHTTPRequestHandler]) -> None:
        """Bind now (an address in use is an OSError at start-up, not later)."""
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="aggregates-http", daemon=True)

    def start(self) -> None:
        """Serve in the background."""
        self.thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.httpd.shutdown()
        self.httpd.server_close()
