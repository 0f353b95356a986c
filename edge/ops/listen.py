"""``edge-emotion listen``: subscribe to a broker and print one readable line per event (for installers)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from typing import Any

import paho.mqtt.client as mqtt

from edge.ops.broker_client import Broker, connect, decode_json, make_client, printable

INBOUND = ("ack", "pause", "config")  # commands carry no envelope: site, kiosk and kind come from the topic


def _where(topic: str, ev: dict[str, Any]) -> tuple[str, str, str]:
    """(site, kiosk, kind) from the envelope, else from the topic's last three levels (PREFIX/SITE/KIOSK/KIND)."""
    parts = topic.split("/")
    site, kiosk, kind = (parts[-3:] if len(parts) >= 4 else ["?", "?", "?"])
    schema = str(ev.get("schema", ""))
    if schema.count("/") == 2:
        kind = schema.split("/")[1]
    return str(ev.get("site_id", site)), str(ev.get("kiosk_id", kiosk)), kind


def _fps(ev: dict[str, Any]) -> str:
    """Frames per second as ``in/analysed``, the order ``fleet status`` prints too."""
    return f"fps in/analysed={ev.get('fps_in')}/{ev.get('fps_analysed')}"


def _body(kind: str, ev: dict[str, Any]) -> str | None:
    if kind == "emotion":
        mods = "+".join(m for m, v in ev.get("modalities", {}).items() if v.get("used")) or "none"
        return (f"{ev['label']:<8} escalation={ev['escalation']:.2f} confidence={ev['confidence']:.2f} "
                f"valence={ev['valence']:+.2f} arousal={ev['arousal']:+.2f} via {mods} visit={ev.get('visit_id')}")
    if kind == "status":
        paused = " PAUSED" if ev.get("paused") else ""
        return f"{ev.get('state')}{paused} v{ev.get('version')} models={ev.get('models')} degraded={ev.get('degraded')}"
    if kind == "health":
        return f"{_fps(ev)} voice_windows={ev.get('voice_windows')} drops={ev.get('drops')}"
    if kind == "visit":
        return f"{ev.get('phase')} visit={ev.get('visit_id')} summary={ev.get('summary')}"
    if kind == "alert":
        e = ev.get("evidence") or {}
        hint = (ev.get("hint") or {}).get("text", "")
        return (f"{ev.get('level'):<9} reason={ev.get('reason')} escalation={e.get('escalation')} for "
                f"{e.get('duration_s')} s via {'+'.join(e.get('modalities') or []) or 'none'} "
                f"alert={ev.get('alert_id')} visit={ev.get('visit_id')} hint={json.dumps(hint, ensure_ascii=False)}")
    if kind == "configstate":
        verdict = "accepted" if ev.get("accepted") else "REFUSED"
        return (f"{verdict} ({ev.get('trigger')}) changed={ev.get('changed')} errors={ev.get('errors')} "
                f"overlay={sorted(ev.get('overlay') or {})} persisted={ev.get('persisted')}")
    if kind == "current":
        ep = ev.get("episode")
        now = ("no episode" if ep is None else f"episode {ep['level']} alert={ep['alert_id']} "
               f"{'acknowledged' if ep['acknowledged'] else 'NOT acknowledged'}")
        cue = f" cue={ev['cue']['kind']}" if ev.get("cue") else ""
        return f"{now}{cue} visit={ev.get('visit_id')}{' PAUSED' if ev.get('paused') else ''}"
    if kind == "cue":
        e = ev.get("evidence") or {}
        hint = (ev.get("hint") or {}).get("text", "")
        return (f"{ev.get('kind'):<9} valence={e.get('valence')} arousal={e.get('arousal')} "
                f"for {e.get('duration_s')} s cue={ev.get('cue_id')} visit={ev.get('visit_id')} "
                f"hint={json.dumps(hint, ensure_ascii=False)}")
    if kind == "ack":
        return f"alert={ev.get('alert_id')} by={ev.get('by', '-')}"
    if kind == "pause":
        return f"{ev.get('action')} by={ev.get('by', '-')}"
    if kind == "config":
        return f"change of {', '.join(sorted(ev)) or 'nothing'}"
    return None


def summarize(topic: str, payload: bytes) -> str:
    """One human line for an event or command payload (a note when it is not a JSON object)."""
    try:
        ev: Any = decode_json(payload)
    except ValueError:
        return f"{topic} <non-JSON payload (or too large or deep), {len(payload)} bytes>"
    if not isinstance(ev, dict):
        return f"{topic} <JSON {type(ev).__name__}, not an object>"
    site, kiosk, kind = _where(topic, ev)
    ts = ev.get("ts") or "(no timestamp: a command)"
    head = f"{ts} {site}/{kiosk} {kind:<7}"
    try:
        body = _body(kind, ev)
    except (KeyError, TypeError, ValueError, AttributeError):
        body = None  # not the shape its kind promises: shown as it came
    return printable(f"{head} {body if body is not None else json.dumps(ev, ensure_ascii=False)}")


def filter_problem(topic: str) -> str | None:
    """Why ``topic`` is not a valid MQTT subscription filter, or None (``#`` last and alone, ``+`` alone)."""
    levels = topic.split("/")
    try:
        size = len(topic.encode("utf-8"))
    except UnicodeEncodeError:  # bytes the shell passed that are not UTF-8
        return "not UTF-8 text"
    if not topic or "\0" in topic or size > 65535:
        return "empty, too long or holding a NUL"
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return "'#' must be a whole level and the last one"
        if "+" in level and level != "+":
            return "'+' must be a whole level"
    return None


def listen(broker: Broker, topic: str, count: int = 0) -> int:
    """Print events until interrupted (or ``count`` messages); 0, or 1 with one line when the broker is unusable."""
    seen, done = 0, threading.Event()
    problem = filter_problem(topic)
    if problem is not None:
        print(f"listen: --topic {topic!r} is not a valid MQTT filter: {problem}", file=sys.stderr)
        return 1
    with contextlib.suppress(AttributeError, ValueError):  # a terminal without UTF-8 shows escapes, not a traceback
        sys.stdout.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]

    def on_message(c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        nonlocal seen
        try:
            print(summarize(msg.topic, bytes(msg.payload)), flush=True)
        except BrokenPipeError:  # the reader went away (listen | head): done, quietly
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            done.set()
            return
        seen += 1
        if count and seen >= count:
            done.set()

    try:
        client = make_client(broker)
        client.on_message = on_message
        connect(client, broker, on_ready=lambda c: c.subscribe(topic, qos=1))
    except ConnectionError as exc:
        print(f"listen: {exc}", file=sys.stderr)
        return 1
    with contextlib.suppress(KeyboardInterrupt):
        done.wait()
    client.disconnect()
    client.loop_stop()
    return 0
