"""The demo's member of staff: acknowledges an alert a few seconds after it appears, as a tablet would.

Run by ``scripts/demo`` so the demo shows the whole loop (alert, acknowledgement, recovery) unattended. A person
watching the tablet page may acknowledge first; then the kiosk's retained ``current`` says so and nothing is sent.
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import threading
import time
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

log = logging.getLogger(__name__)


class DemoStaff:
    """Watches one site's alerts and current states; acks each unacknowledged alert ``after_s`` after it came."""

    def __init__(self, prefix: str, site: str, after_s: float) -> None:
        """Nothing connects until ``run``."""
        self.prefix, self.site, self.after_s = prefix, site, after_s
        self.due: queue.Queue[tuple[float, str, str]] = queue.Queue(maxsize=64)  # (when, kiosk, alert id); full: skip
        self.acked: dict[str, None] = {}  # alert ids acknowledged (by anyone), insertion order; oldest dropped
        self.lock = threading.Lock()

    def _mark(self, alert_id: str) -> bool:
        """Note ``alert_id`` as acknowledged; False if it already was (at most 256 kept, the oldest dropped)."""
        with self.lock:
            if alert_id in self.acked:
                return False
            self.acked[alert_id] = None
            while len(self.acked) > 256:
                del self.acked[next(iter(self.acked))]
            return True

    def on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        """An alert: schedule its ack; a current state: note what is already acknowledged."""
        try:
            ev = json.loads(msg.payload)
            kiosk, kind = msg.topic.split("/")[-2:]
            if kind == "alert" and ev.get("level") == "alert":
                self.due.put_nowait((time.monotonic() + self.after_s, kiosk, ev["alert_id"]))
            elif kind == "current" and (ev.get("episode") or {}).get("acknowledged"):
                self._mark(ev["episode"]["alert_id"])
        except (ValueError, KeyError, TypeError, AttributeError, queue.Full):
            log.debug("demo staff ignored a message on %s", msg.topic)

    def run(self, host: str, port: int, stop: threading.Event) -> None:
        """Connect, subscribe and acknowledge until ``stop`` is set."""
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id="demo-staff", protocol=paho.MQTTv5)
        client.on_message = self.on_message
        base = f"{self.prefix}/{self.site}/+"
        client.on_connect = lambda c, *_: c.subscribe([(f"{base}/alert", 1), (f"{base}/current", 1)])
        client.connect_async(host, port)
        client.loop_start()
        try:
            while not stop.is_set():
                try:
                    when, kiosk, alert_id = self.due.get(timeout=0.2)
                except queue.Empty:
                    continue
                stop.wait(max(0.0, when - time.monotonic()))
                if not self._mark(alert_id) or stop.is_set():
                    continue
                client.publish(f"{self.prefix}/{self.site}/{kiosk}/ack",
                               json.dumps({"alert_id": alert_id, "by": "demo-staff"}), qos=1)
                print(f"demo: staff acknowledged alert {alert_id} at {kiosk} (as a tablet would)", flush=True)
        finally:
            client.loop_stop()
            client.disconnect()


def main(argv: list[str] | None = None) -> int:
    """``python -m edge.demo.staff --port P --site S [--after 6]``."""
    p = argparse.ArgumentParser(prog="python -m edge.demo.staff", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--site", required=True)
    p.add_argument("--prefix", default="edge-emotion")
    p.add_argument("--after", type=float, default=6.0, help="seconds from an alert to its acknowledgement")
    args = p.parse_args(argv)
    stop = threading.Event()
    try:
        DemoStaff(args.prefix, args.site, args.after).run(args.host, args.port, stop)
    except KeyboardInterrupt:
        stop.set()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
