"""``edge-emotion aggregates``: run one site's aggregates (subscriber, SQLite, page, CSV, /metrics) until stopped."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any

from pydantic import ValidationError

from edge.ops.broker_client import add_broker_options, broker_from_args

log = logging.getLogger(__name__)


def add_subcommand(sub: Any) -> None:
    """Register ``aggregates`` on the CLI's subparsers (dispatched through ``args.func``)."""
    p = sub.add_parser("aggregates", help="site aggregates for managers: hourly figures in SQLite, a page with "
                       "charts, CSV export and /metrics")
    p.add_argument("--site", required=True, help="site id (identity.site_id of its kiosks)")
    p.add_argument("--prefix", default="edge-emotion", help="topic prefix (mqtt.topic_prefix)")
    p.add_argument("--db", default="aggregates.db", help="SQLite file (default ./aggregates.db)")
    p.add_argument("--timezone", default="UTC", help="the site's IANA time zone: days and hours are local")
    p.add_argument("--profile", default="custom", choices=["eu", "cn", "custom"],
                   help="the site's privacy profile (eu: no per-counter figures)")
    p.add_argument("--per-counter", default=None, action=argparse.BooleanOptionalAction,
                   help="also keep figures per counter (default: on, except under eu)")
    p.add_argument("--care-share", type=float, default=0.3, help="sad + fear share that makes a visit a care cue")
    p.add_argument("--min-visits", type=int, default=5, help="withhold the figures of an hour, day or counter with "
                   "fewer visits (default 5; 1 shows everything)")
    p.add_argument("--http-host", default="127.0.0.1", help="address of the page (0.0.0.0: every interface)")
    p.add_argument("--http-port", type=int, default=8090, help="port of the page, CSV and /metrics")
    add_broker_options(p)
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    from edge.aggregates.config import AggregatesConfig
    from edge.aggregates.service import AggregatesService
    from edge.config import ConfigError, format_errors

    try:
        cfg = AggregatesConfig(site_id=args.site, topic_prefix=args.prefix, db=args.db, timezone=args.timezone,
                               profile=args.profile, per_counter=args.per_counter, care_share=args.care_share,
                               min_visits=args.min_visits,
                               http_host=args.http_host, http_port=args.http_port)
    except ValidationError as exc:
        raise ConfigError("aggregates", format_errors(exc)) from None
    try:
        service = AggregatesService(cfg, broker_from_args(args))
    except OSError as exc:
        print(f"aggregates: cannot serve on {cfg.http_host}:{cfg.http_port} or open {cfg.db}: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        service.start()
    except ConnectionError as exc:
        print(f"aggregates: {exc}", file=sys.stderr)
        service.stop()
        return 1
    print(f"aggregates of site {cfg.site_id}: http://{cfg.http_host}:{service.web.port}/", flush=True)
    stop.wait()
    service.stop()
    return 0
