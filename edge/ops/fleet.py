"""``edge-emotion fleet status``: one line per kiosk from the retained status, the latest health and alert."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho

from edge.events import SchemaError, validate
from edge.events.inbound import has_oversized_number
from edge.lograte import RateLimitedLog
from edge.ops.broker_client import (
    Broker,
    add_broker_options,
    broker_from_args,
    connect,
    decode_json,
    make_client,
    printable,
)

log = logging.getLogger(__name__)
_warn = RateLimitedLog(log)  # invalid messages: a few lines a minute
MAX_KIOSKS = 10_000  # kiosks remembered in one run (a flood of made-up ids cannot grow memory without end)

KINDS = ("status", "health", "alert", "configstate")  # configstate (retained): each kiosk's health interval
DEFAULT_HEALTH_S = 10.0  # mqtt.health_interval_s of a kiosk whose configstate was not seen
SETTLE_S = 1.0  # retained status/configstate arrive at once; the automatic wait is at least this long
__all__ = ["Broker", "Kiosk", "collect", "fleet_status", "format_line"]  # Broker: from edge.ops.broker_client


@dataclass
class Kiosk:
    """What the fleet view knows about one kiosk."""

    site_id: str
    kiosk_id: str
    status: dict[str, Any] | None = None
    health: dict[str, Any] | None = None
    alert: dict[str, Any] | None = None
    configstate: dict[str, Any] | None = None
    seen: set[str] = field(default_factory=set)

    def health_interval_s(self) -> float:
        """The kiosk's ``mqtt.health_interval_s`` from its retained configstate (default when unknown)."""
        try:
            value = float((self.configstate or {})["config"]["mqtt"]["health_interval_s"])
        except (KeyError, TypeError, ValueError):
            return DEFAULT_HEALTH_S
        return value if 1.0 <= value <= 3600.0 else DEFAULT_HEALTH_S  # the config's bounds; NaN fails both

    def stale(self, wait_s: float) -> bool | None:
        """A retained ``online`` with no health within a wait long enough for one: True; None when too short to tell.

        A kiosk that dies while the broker is down leaves its retained ``online`` (the broker never saw the
        connection drop, so it never sent the last will).
        """
        if (self.status or {}).get("state") != "online" or self.health is not None:
            return False
        return True if wait_s >= 1.5 * self.health_interval_s() + 1.0 else None

    def row(self, wait_s: float = 0.0) -> dict[str, Any]:
        """The kiosk's line as a JSON-able dict (None where nothing was received within the wait)."""
        st, he, al = self.status or {}, self.health or {}, self.alert or {}
        drops = he.get("drops")
        return {
            "site_id": self.site_id, "kiosk_id": self.kiosk_id, "counter_name": st.get("counter_name"),
            "state": st.get("state"), "status_ts": st.get("ts"), "version": st.get("version"),
            "models": st.get("models") or he.get("models"),
            "fps_in": he.get("fps_in"), "fps_analysed": he.get("fps_analysed"),
            "drops_total": sum(v for v in drops.values() if isinstance(v, int)) if isinstance(drops, dict) else None,
            "health_ts": he.get("ts"), "last_alert_ts": al.get("ts"), "last_alert_level": al.get("level"),
            "paused": st.get("paused"), "degraded": st.get("degraded"), "stale": self.stale(wait_s),
            "health_interval_s": self.health_interval_s(),
        }


def _kind_of(topic: str, prefix: str) -> tuple[str, str, str] | None:
    parts = topic[len(prefix) + 1:].split("/") if topic.startswith(prefix + "/") else []
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 and parts[2] in KINDS else None


def _enough(kiosks: dict[tuple[str, str], Kiosk], waited: float) -> bool:
    """The automatic wait is over: every online kiosk sent health, or waited long enough to call it STALE."""
    online = [k for k in kiosks.values() if (k.status or {}).get("state") == "online"]
    if waited < SETTLE_S:
        return False
    return all(k.health is not None or k.stale(waited) for k in online)


def collect(broker: Broker, prefix: str = "edge-emotion", site: str | None = None,
            wait_s: float | None = 2.0) -> dict[tuple[str, str], Kiosk]:
    """Subscribe for ``wait_s`` s (None: until every online kiosk's health, or its STALE verdict); ConnectionError."""
    kiosks: dict[tuple[str, str], Kiosk] = {}
    lock = threading.Lock()

    def on_message(_c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        where = _kind_of(msg.topic, prefix)
        if where is None:
            return
        s, k, kind = where
        try:
            payload = decode_json(msg.payload)
            validate(kind, payload)  # the line formats its fields: a wrongly typed one would end the command
            if has_oversized_number(payload):
                raise ValueError("a number beyond 1e15 (or not finite)")
        except (ValueError, SchemaError) as exc:
            _warn.warning("invalid", "ignored an invalid %s message on %s: %s", kind, msg.topic, str(exc)[:200])
            return
        with lock:
            if (s, k) not in kiosks and len(kiosks) >= MAX_KIOSKS:
                return  # a flood of made-up kiosk ids: the table stays bounded
            kiosk = kiosks.setdefault((s, k), Kiosk(s, k))
            # the last to arrive wins: the broker delivers one topic in order, while a last will ("offline") carries
            # the time it was made, before the online status it replaces
            setattr(kiosk, kind, payload)
            kiosk.seen.add(kind)

    client = make_client(broker)
    client.on_message = on_message
    connect(client, broker, on_ready=lambda c: c.subscribe([(f"{prefix}/{site or '+'}/+/{k}", 1) for k in KINDS]))
    t0 = time.monotonic()
    try:
        if wait_s is not None:
            time.sleep(wait_s)
        else:
            while True:
                time.sleep(0.1)
                with lock:
                    if _enough(kiosks, time.monotonic() - t0):
                        break
    finally:
        client.disconnect()
        client.loop_stop()
    with lock:
        return dict(sorted(kiosks.items()))


def _fmt(v: Any, spec: str = "") -> str:
    return "-" if v is None else format(v, spec)


def format_line(r: dict[str, Any]) -> str:
    """One human line for a kiosk row."""
    models = ",".join(f"{k}={v}" for k, v in sorted((r["models"] or {}).items())) or "-"
    alert = f"{r['last_alert_level']}@{r['last_alert_ts']}" if r["last_alert_ts"] else "-"
    paused = {True: "yes", False: "no", None: "-"}[r["paused"]]
    degraded = "; ".join(r["degraded"]) if r["degraded"] else "-"
    state = (r["state"] or "?") + (" STALE" if r.get("stale") else "")
    return printable(
        f"{r['site_id']}/{r['kiosk_id']:<14} {(r['counter_name'] or '-')[:20]:<20} {state:<7} "
        f"v{r['version'] or '?':<8} fps in/analysed {_fmt(r['fps_in'], '.1f')}/{_fmt(r['fps_analysed'], '.1f')} "
        f"drops {_fmt(r['drops_total'])} alert {alert} paused {paused} degraded {degraded} models {models}")


def fleet_status(broker: Broker, prefix: str = "edge-emotion", site: str | None = None,
                 wait_s: float | None = None, as_json: bool = False) -> int:
    """Print the fleet view; exit code 0 when kiosks were found, 1 when none (or no broker)."""
    t0 = time.monotonic()
    try:
        kiosks = collect(broker, prefix, site, wait_s)
    except ConnectionError as exc:
        print(f"fleet status: {exc}", file=sys.stderr)
        return 1
    waited = time.monotonic() - t0 if wait_s is None else wait_s
    rows = [k.row(waited) for k in kiosks.values()]
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
    else:
        for r in rows:
            print(format_line(r))
        online = sum(r["state"] == "online" for r in rows)
        no_health = sum(r["health_ts"] is None for r in rows)
        stale = sum(bool(r["stale"]) for r in rows)
        unsure = sum(r["stale"] is None for r in rows)
        print(f"{len(rows)} kiosk(s), {online} online, {stale} of them STALE (retained online but no health within "
              f"the wait: died while the broker was down?); {no_health} without a health message in {waited:.1f} s"
              + (f"; {unsure} online kiosk(s) not checked for staleness: a --wait shorter than 1.5 health intervals "
                 "+ 1 s (leave --wait out to wait as long as needed)" if unsure else ""),
              file=sys.stderr)
    if not rows:
        print(f"fleet status: no kiosk found under {prefix}/{site or '+'}/", file=sys.stderr)
    return 0 if rows else 1


def add_subcommand(sub: Any) -> None:
    """Register ``fleet status`` on the CLI's subparsers (dispatched through ``args.func``)."""
    fl = sub.add_parser("fleet", help="operator views of a site's kiosks")
    fsub = fl.add_subparsers(dest="fleet_cmd", required=True)
    st = fsub.add_parser("status", help="one line per kiosk: online, version, models, fps, drops, last alert")
    add_broker_options(st, password_env="EDGE_EMOTION_FLEET_PASSWORD")
    st.add_argument("--site", help="one site id (default: every site)")
    st.add_argument("--prefix", default="edge-emotion", help="topic prefix (mqtt.topic_prefix)")
    st.add_argument("--wait", type=float, default=None, help="seconds to listen for health and alerts (default: "
                    "until every online kiosk sent health, at most 1.5 of its health intervals + 1 s: then STALE)")
    st.add_argument("--json", action="store_true", help="print a JSON list instead of lines")
    st.set_defaults(func=_cmd_status)
    from edge.ops.fleet_exporter import add_subcommand as add_exporter  # fleet exporter (Prometheus)

    add_exporter(fsub)


def _cmd_status(args: Any) -> int:
    return fleet_status(broker_from_args(args), args.prefix, args.site, args.wait, args.json)
