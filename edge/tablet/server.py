"""Serve the staff tablet's static files (no listings, fixed content types), over HTTPS with the site's certificate.

Standard library only, so the Ansible role can run this file alone (``python3 server.py``) next to the app's files
on the site broker, without the kiosk package.
"""

from __future__ import annotations

import argparse
import logging
import os
import ssl
import sys
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent
VENDOR_MQTT = STATIC_DIR / "vendor" / "mqtt.min.js"
CONNECTION_TIMEOUT_S = 30.0  # TLS handshake and each read of a request
# The page needs its own files and the broker's WebSocket only: an injection (a future bug) could neither load nor
# send anything elsewhere. Payloads are shown with textContent; no inline script or style exists (mqtt.js runs
# its timers in a worker made from a blob: URL).
CSP = ("default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; worker-src 'self' blob:; "
       "object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'self'")


class TlsHttpServer(ThreadingHTTPServer):
    """HTTPS whose TLS handshake runs in the connection's own thread, with a timeout: a client that connects and
    says nothing cannot stall ``accept`` for every other tablet."""

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Handshake (bounded), then serve the request as HTTP; a failed handshake only ends this connection."""
        try:
            request.settimeout(CONNECTION_TIMEOUT_S)
            request.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS handshake with %s failed: %s", client_address, exc)
            return  # the server closes the socket after this returns
        super().finish_request(request, client_address)

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
    timeout = CONNECTION_TIMEOUT_S  # a client that sends nothing does not hold its thread for ever

    def __init__(self, *args: Any, default_query: str = "", tls: bool = False, **kwargs: Any) -> None:
        """``default_query``: where a bare ``/`` is sent (the site's page); ``tls``: send HSTS."""
        self.default_query, self.tls = default_query, tls
        super().__init__(*args, **kwargs)

    def send_head(self) -> Any:
        """Bare ``/`` to the site's page; refuse directories without index.html, hidden files and unknown types."""
        if self.default_query and self.path in ("/", "/index.html"):
            self.send_response(302)
            self.send_header("Location", f"/?{self.default_query}")
            self.end_headers()
            return None
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
        """No caching (a reload picks up a new version), no framing, no referrer, only its own scripts and the
        broker's WebSocket (CSP); HSTS over HTTPS."""
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy", CSP)
        if self.tls:
            self.send_header("Strict-Transport-Security", "max-age=31536000")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        """Access log lines go to the module logger at debug level."""
        log.debug("%s %s", self.address_string(), format % args)


def tls_context(certfile: Path, keyfile: Path) -> ssl.SSLContext:
    """A server TLS context (TLS 1.2 or newer) with the site CA's certificate for this host."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(certfile), str(keyfile))
    return ctx


def make_server(host: str = "127.0.0.1", port: int = 8080, directory: Path = STATIC_DIR,
                tls: ssl.SSLContext | None = None, site: str = "", broker: str = "", lang: str = "",
                prefix: str = "") -> ThreadingHTTPServer:
    """A bound (not yet serving) server for the tablet folder; ``port=0`` picks a free port; HTTPS with ``tls``."""
    pairs = (("site", site), ("broker", broker), ("prefix", prefix), ("lang", lang))
    query = urlencode({k: v for k, v in pairs if v}) if site else ""
    handler = partial(TabletHandler, directory=str(directory), default_query=query, tls=tls is not None)
    server = (TlsHttpServer if tls is not None else ThreadingHTTPServer)((host, port), handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    return server


def serve(host: str = "127.0.0.1", port: int = 8080, certfile: Path | None = None, keyfile: Path | None = None,
          site: str = "", broker: str = "", lang: str = "", prefix: str = "") -> int:
    """Serve the tablet until interrupted; returns the process exit code (2: a TLS file is unusable)."""
    if not VENDOR_MQTT.is_file():
        log.warning("%s is missing: run scripts/vendor-tablet (the page cannot connect without it)", VENDOR_MQTT)
    tls = None
    if certfile or keyfile:
        if not (certfile and keyfile):
            print("error: give both --cert and --key", file=sys.stderr)
            return 2
        try:
            tls = tls_context(certfile, keyfile)
        except (OSError, ssl.SSLError) as exc:
            print(f"error: cannot use the TLS certificate {certfile} / key {keyfile}: {exc}", file=sys.stderr)
            return 2
    server = make_server(host, port, tls=tls, site=site, broker=broker, lang=lang, prefix=prefix)
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    scheme, ws = ("https", "wss") if tls else ("http", "ws")
    query = f"?site={site}" if site else f"?broker={ws}://{shown}:9001&site=SITE&lang=zh-CN"
    print(f"staff tablet: {scheme}://{shown}:{server.server_port}/{query}  (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The server's command-line options (``edge-emotion tablet`` and ``python3 server.py``)."""
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--cert", type=Path, help="HTTPS: this host's certificate from the site CA (deploy/ca.sh)")
    p.add_argument("--key", type=Path, help="HTTPS: its private key")
    p.add_argument("--site", default="", help="send a bare / to this site's page (with --broker, --lang)")
    p.add_argument("--broker", default="", help="the broker's WebSocket URL for that page, e.g. wss://HOST:9001")
    p.add_argument("--lang", default="", help="the page's language for that page (zh-CN or en; default: browser)")
    p.add_argument("--prefix", default="", help="the topic prefix for that page (default edge-emotion)")


def main(argv: list[str] | None = None) -> int:
    """``python3 server.py [--host H] [--port P] [--cert F --key F] [--site S --broker URL]``."""
    p = argparse.ArgumentParser(prog="server.py", description=__doc__)
    add_arguments(p)
    p.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = p.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return serve(args.host, args.port, args.cert, args.key, args.site, args.broker, args.lang, args.prefix)


if __name__ == "__main__":
    raise SystemExit(main())
