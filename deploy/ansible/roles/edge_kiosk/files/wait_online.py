"""Wait until a kiosk's retained ``status`` on the broker says ``online``; exit 0, else print why and exit 1.

Runs on the kiosk with the kiosk venv's Python (paho-mqtt) and the kiosk's own client certificate, under a client
id of its own so that the running service's session is not taken over. Also used by tests/test_deploy.py.
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import threading

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, subscribe to the status topic and wait for ``state == online``."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, default=8883)
    p.add_argument("--topic", required=True, help="PREFIX/SITE/KIOSK/status")
    p.add_argument("--client-id", required=True)
    p.add_argument("--cafile")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--username")
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--version", help="also require this edge-emotion version in the status")
    a = p.parse_args(argv)

    done = threading.Event()
    seen: dict[str, object] = {"connect": None, "status": None}

    def on_connect(c: paho.Client, _u: object, _f: object, rc: object, _p: object = None) -> None:
        seen["connect"] = str(rc)
        if not getattr(rc, "is_failure", False):
            c.subscribe(a.topic, qos=1)

    def on_message(_c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        try:
            body = json.loads(msg.payload)
        except ValueError:
            seen["status"] = f"unparsable payload {msg.payload[:80]!r}"
            return
        seen["status"] = {k: body.get(k) for k in ("state", "version", "degraded", "ts")}
        if body.get("state") == "online" and (a.version is None or body.get("version") == a.version):
            done.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=a.client_id, protocol=paho.MQTTv311)
    if a.cafile or a.cert:
        client.tls_set(ca_certs=a.cafile, certfile=a.cert, keyfile=a.key, cert_reqs=ssl.CERT_REQUIRED)
    if a.username:
        client.username_pw_set(a.username)
    client.on_connect = on_connect
    client.on_message = on_message
    try:
        client.connect(a.host, a.port, keepalive=30)
    except (OSError, ssl.SSLError) as exc:
        print(f"cannot connect to {a.host}:{a.port}: {exc}", file=sys.stderr)
        return 1
    client.loop_start()
    ok = done.wait(a.timeout)
    client.disconnect()
    client.loop_stop()
    if ok:
        print(f"online: {a.topic} {json.dumps(seen['status'])}")
        return 0
    print(f"no online status on {a.topic} within {a.timeout:.0f} s (connect: {seen['connect']}, "
          f"last status: {json.dumps(seen['status'])})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
