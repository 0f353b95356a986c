"""``edge-emotion listen``: subscribe to a broker and print one readable line per event (for installers)."""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any

import paho.mqtt.client as mqtt


def summarize(topic: str, payload: bytes) -> str:
    """One human line for an event payload (raw text when it is not JSON)."""
    try:
        ev: dict[str, Any] = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return f"{topic} <non-JSON payload, {len(payload)} bytes>"
    kind = str(ev.get("schema", "?/?")).split("/")[1] if "/" in str(ev.get("schema", "")) else "?"
    head = f"{ev.get('ts', '')} {ev.get('site_id', '?')}/{ev.get('kiosk_id', '?')} {kind:<7}"
    if kind == "emotion":
        mods = "+".join(m for m, v in ev.get("modalities", {}).items() if v.get("used")) or "none"
        return (f"{head} {ev['label']:<8} escalation={ev['escalation']:.2f} confidence={ev['confidence']:.2f} "
                f"valence={ev['valence']:+.2f} arousal={ev['arousal']:+.2f} via {mods} visit={ev.get('visit_id')}")
    if kind == "status":
        return f"{head} {ev.get('state')} v{ev.get('version')} models={ev.get('models')} degraded={ev.get('degraded')}"
    if kind == "health":
        return (f"{head} fps in/analysed={ev.get('fps_in')}/{ev.get('fps_analysed')} "
                f"voice_windows={ev.get('voice_windows')} drops={ev.get('drops')}")
    if kind == "visit":
        return f"{head} {ev.get('phase')} visit={ev.get('visit_id')} summary={ev.get('summary')}"
    return f"{head} {json.dumps(ev, ensure_ascii=False)}"


def listen(host: str, port: int, topic: str, count: int = 0) -> int:
    """Print events until interrupted (or ``count`` messages); returns an exit code."""
    seen = 0
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)

    def on_connect(c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        if rc.is_failure:
            print(f"listen: broker refused connection: {rc}", file=sys.stderr)
            return
        c.subscribe(topic, qos=1)

    def on_message(c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        nonlocal seen
        print(summarize(msg.topic, bytes(msg.payload)), flush=True)
        seen += 1
        if count and seen >= count:
            c.disconnect()

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect(host, port)
    with contextlib.suppress(KeyboardInterrupt):
        client.loop_forever()
    return 0
