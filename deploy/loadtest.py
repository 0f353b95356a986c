#!/usr/bin/env python3
"""Fleet load test: N simulated kiosks and M tablets on a private local mosquitto; latency, loss and CPU.

Every simulated kiosk is its own MQTT connection (paho clients driven by one selector loop per process, like a
real kiosk's: client id, last will, retained ``online`` status, subscriptions to its ack/pause/config topics)
and publishes schema-valid ``emotion`` events every ``--emotion-s`` and ``health`` every ``--health-s`` with
QoS 1, phases spread at random. Each site has ``--tablets-per-site`` tablets subscribed to ``PREFIX/SITE/+/#``
with QoS 1. Latency is receive time minus the payload's ``ts`` (the envelope's millisecond timestamp, truncated:
figures carry +0..1 ms). A light probe (its own publisher and subscriber, 10 QoS 1 messages/s with a
full-precision send time) measures what the broker adds under the load, apart from the busy Python tablets.
The run stops by itself after ``--duration`` seconds, plus connecting and a drain that waits until every
message has arrived or none came for 3 s (what is still missing then counts as lost). Results go to stdout
as JSON (and ``--json FILE``); docs/bench/fleet.md has measured runs.

    nice -n 10 .venv/bin/python deploy/loadtest.py --kiosks 1000 --duration 60
"""

from __future__ import annotations

import argparse
import heapq
import json
import multiprocessing as mp
import os
import platform
import random
import resource
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from edge.config import IdentityConfig  # noqa: E402
from edge.events import EventFactory, iso  # noqa: E402

PREFIX = "edge-emotion"
EID, TS = "00000000-0000-4000-8000-000000000000", "1970-01-01T00:00:00.000Z"
TICK = os.sysconf("SC_CLK_TCK")
_P = {"neutral": 0.52, "happy": 0.08, "surprise": 0.05, "sad": 0.1, "angry": 0.15, "disgust": 0.05, "fear": 0.05}
_LAT = {"p50": 12.4, "p95": 19.8, "n": 80}
BODIES: dict[str, dict[str, Any]] = {  # realistic sizes: what edge/pipeline/service.py sends
    "emotion": {"visit_id": "5f0c9a52-43c4-4b4e-9d55-0d3c0f0e6a11", "label": "neutral", "probs": _P,
                "valence": -0.0312, "arousal": 0.1123, "escalation": 0.1875, "confidence": 0.7123,
                "modalities": {"face": {"used": True, "confidence": 0.7, "age_s": 0.112},
                               "voice": {"used": True, "confidence": 0.52, "age_s": 0.734}},
                "window_start": "2026-12-01T10:00:00.000Z", "window_end": "2026-12-01T10:00:01.000Z"},
    "health": {"uptime_s": 86400.0, "fps_in": 30.0, "fps_analysed": 8.0, "voice_windows": 86000,
               "latency_ms": {k: dict(_LAT) for k in ("face", "voice", "capture_to_fusion", "fusion", "publish")},
               "drops": {"frames": 1200, "observations": 0, "acks": 0, "audio_overrun_samples": 0, "errors_face": 0,
                         "errors_voice": 0, "errors_core": 0, "errors_schema": 0, "errors_ack": 0,
                         "errors_pause": 0, "errors_config": 0},
               "queue_depth": {"frames": 1, "observations": 0}, "cpu_temp_c": 51.2,
               "models": {"face_expression": "0.1.0", "face_detector": "opencv-haar", "voice_emotion": "0.1.0"},
               "sources": {"camera": {"state": "ok", "error": None}, "microphone": {"state": "ok", "error": None}},
               "mqtt": {"connects": 1, "published": 95000, "dropped": 0, "refused": 0}},
    "status": {"state": "online", "version": "0.1.0", "counter_name": "Counter 1", "degraded": [],
               "models": {"face_expression": "0.1.0", "face_detector": "opencv-haar", "voice_emotion": "0.1.0"},
               "privacy_profile": "eu", "paused": False},
}


def templates(site: str, kiosk: str) -> dict[str, str]:
    """Schema-valid payloads of one kiosk with placeholder event_id and ts."""
    fac = EventFactory(IdentityConfig(site_id=site, kiosk_id=kiosk), clock=lambda: 0.0)
    out = {}
    for kind, body in BODIES.items():
        p = fac.make(kind, **body)
        p["event_id"] = EID
        out[kind] = json.dumps(p, separators=(",", ":"))
    return out


def cpu_s(pid: int | str = "self") -> float:
    """User + system CPU seconds of a process from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Loop:
    """Many paho clients on one selector (paho's external event loop API); no thread per client."""

    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self.clients: list[paho.Client] = []

    def client(self, client_id: str) -> paho.Client:
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311)
        c.max_inflight_messages_set(100)
        c.on_socket_open = lambda cl, _u, s: self.sel.register(s, selectors.EVENT_READ, cl)
        c.on_socket_close = lambda cl, _u, s: self.sel.unregister(s)
        rw = selectors.EVENT_READ | selectors.EVENT_WRITE
        c.on_socket_register_write = lambda cl, _u, s: self.sel.modify(s, rw, cl)
        c.on_socket_unregister_write = lambda cl, _u, s: self.sel.modify(s, selectors.EVENT_READ, cl)
        self.clients.append(c)
        return c

    def run_once(self, timeout: float) -> None:
        for key, mask in self.sel.select(timeout):
            c = key.data
            if mask & selectors.EVENT_READ:
                c.loop_read()
            if mask & selectors.EVENT_WRITE:
                c.loop_write()

    def misc(self) -> None:
        for c in self.clients:
            c.loop_misc()

    def pump(self, seconds: float, until: Any = None) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not (until and until()):
            self.run_once(0.05)
        self.misc()


def tablets_proc(port: int, sites: list[str], per_site: int, ready: Any, go: Any, stop: Any, out: Any,
                 progress: Any) -> None:
    """Tablets: subscribe to their site's wildcard, record latency and unique event ids per site."""
    loop, subscribed = Loop(), [0]
    lat: list[float] = []
    seen: dict[str, set[str]] = {s: set() for s in sites}
    received = [0]
    for site in sites:
        for i in range(per_site):
            c = loop.client(f"tablet-{site}-{i}")
            c.on_connect = lambda cl, _u, _f, _rc, _p, s=site: cl.subscribe(f"{PREFIX}/{s}/+/#", qos=1)
            c.on_subscribe = lambda *_: subscribed.__setitem__(0, subscribed[0] + 1)

            def on_message(_c: Any, _u: Any, msg: Any, s: str = site, key: str = f"{site}/{i}") -> None:
                now = time.time()
                if msg.retain or not msg.topic.endswith(("/emotion", "/health")):
                    return  # status messages of kiosks connecting
                p = json.loads(msg.payload)
                lat.append(now - datetime.fromisoformat(p["ts"]).timestamp())
                seen[s].add(key + p["event_id"])
                received[0] += 1

            c.on_message = on_message
            c.connect("127.0.0.1", port, keepalive=60)
    loop.pump(30, until=lambda: subscribed[0] == len(loop.clients))
    ready.set()
    while not go.is_set():
        loop.run_once(0.05)
    t0, c0 = time.monotonic(), cpu_s()
    last_misc = t0
    while not stop.is_set():
        loop.run_once(0.05)
        if time.monotonic() - last_misc > 0.5:
            last_misc = time.monotonic()
            progress.value = received[0]
            loop.misc()
    out.put({"tablets": len(loop.clients), "received": received[0], "cpu_s": cpu_s() - c0,
             "wall_s": time.monotonic() - t0, "unique_per_site": {s: len(v) for s, v in seen.items()},
             "latency_ms": (np.asarray(lat, np.float64) * 1000).astype(np.float32).tobytes()})


def probe_proc(port: int, hz: float, go: Any, stop: Any, out: Any) -> None:
    """A light probe beside the load: QoS 1 round trip publisher -> broker -> subscriber, full-precision clock."""
    lat: list[float] = []
    sub = paho.Client(CallbackAPIVersion.VERSION2, client_id="loadtest-probe-sub", protocol=paho.MQTTv311)
    subscribed = threading.Event()
    sub.on_connect = lambda c, *_: c.subscribe("loadtest/probe", qos=1)
    sub.on_subscribe = lambda *_: subscribed.set()
    sub.on_message = lambda _c, _u, m: lat.append(time.time() - float(m.payload))
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="loadtest-probe-pub", protocol=paho.MQTTv311)
    for c in (sub, pub):
        c.connect("127.0.0.1", port, keepalive=60)
        c.loop_start()
    subscribed.wait(30)
    go.wait()
    while not stop.wait(1.0 / hz):
        pub.publish("loadtest/probe", repr(time.time()), qos=1)
    time.sleep(1)
    for c in (sub, pub):
        c.disconnect()
        c.loop_stop()
    out.put((np.asarray(lat, np.float64) * 1000).astype(np.float32).tobytes())


def kiosks_proc(port: int, kiosks: list[tuple[str, str]], emotion_s: float, health_s: float, duration: float,
                ready: Any, go: Any, out: Any) -> None:
    """Kiosks: connect, announce, then publish emotion/health with QoS 1 until ``duration`` has passed."""
    loop, connected, acked = Loop(), [0], [0]
    tpl: list[dict[str, str]] = []
    for site, kiosk in kiosks:
        t = templates(site, kiosk)
        tpl.append(t)
        c = loop.client(f"edge-emotion-{site}-{kiosk}")
        base = f"{PREFIX}/{site}/{kiosk}/"
        c.will_set(base + "status", t["status"].replace(TS, iso(time.time())).replace('"online"', '"offline"'),
                   qos=1, retain=True)

        def on_connect(cl: Any, _u: Any, _f: Any, _rc: Any, _p: Any, base: str = base, st: str = t["status"]) -> None:
            cl.publish(base + "status", st.replace(EID, str(uuid.uuid4())).replace(TS, iso(time.time())), 1, True)
            cl.subscribe([(base + k, 1) for k in ("ack", "pause", "config")])
            connected[0] += 1

        c.on_connect = on_connect
        c.on_publish = lambda *_: acked.__setitem__(0, acked[0] + 1)
        c.connect("127.0.0.1", port, keepalive=60)
        loop.run_once(0)
    loop.pump(60, until=lambda: connected[0] == len(kiosks))
    ready.set()
    while not go.is_set():
        loop.run_once(0.05)
    rng = random.Random(7)
    start = time.monotonic()
    period = {"emotion": emotion_s, "health": health_s}
    due = [(start + rng.uniform(0, p), i, k) for i in range(len(kiosks)) for k, p in period.items()]
    heapq.heapify(due)
    sent = dict.fromkeys({s for s, _ in kiosks}, 0)
    acked[0], c0, last_misc = 0, cpu_s(), start
    while (now := time.monotonic()) < start + duration:
        while due[0][0] <= now:
            t, i, kind = heapq.heappop(due)
            heapq.heappush(due, (t + period[kind], i, kind))
            site, kiosk = kiosks[i]
            data = tpl[i][kind].replace(EID, str(uuid.uuid4())).replace(TS, iso(time.time()))
            loop.clients[i].publish(f"{PREFIX}/{site}/{kiosk}/{kind}", data, qos=1)
            sent[site] += 1
        loop.run_once(max(0.0, min(due[0][0] - time.monotonic(), 0.05)))
        if now - last_misc > 1:
            last_misc = now
            loop.misc()
    total, last = sum(sent.values()), -1
    while acked[0] < total and acked[0] > last:  # until every PUBACK is in, or none came for 5 s
        last = acked[0]
        loop.pump(5, until=lambda: acked[0] >= total)
    out.put({"kiosks": len(kiosks), "sent_per_site": sent, "sent": total, "acked": acked[0],
             "cpu_s": cpu_s() - c0, "wall_s": time.monotonic() - start,
             "bytes": {k: len(v) for k, v in tpl[0].items()}})
    for c in loop.clients:
        c.disconnect()
    loop.pump(1)


def start_broker(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A private mosquitto on a free 127.0.0.1 port, with the open-files limit raised for many connections."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n"
                    "max_connections -1\nmax_queued_messages 1000\n")

    def limits() -> None:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    proc = subprocess.Popen([exe, "-c", str(conf)], preexec_fn=limits)  # noqa: PLW1509 - before exec only
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("mosquitto did not start")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kiosks", type=int, default=1000)
    ap.add_argument("--sites", type=int, default=20, help="kiosks are spread evenly over this many sites")
    ap.add_argument("--tablets-per-site", type=int, default=2)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of publishing (then 3 s drain)")
    ap.add_argument("--emotion-s", type=float, default=1.0, help="seconds between emotion events per kiosk")
    ap.add_argument("--health-s", type=float, default=10.0, help="seconds between health events per kiosk")
    ap.add_argument("--procs", type=int, default=1, help="kiosk load-generator processes")
    ap.add_argument("--tablet-procs", type=int, default=1, help="tablet processes (sites are split between them)")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    a = ap.parse_args(argv)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 3 descriptors per paho client
    sites = [f"site-{i:03d}" for i in range(a.sites)]
    kiosks = [(sites[i % a.sites], f"kiosk-{i:05d}") for i in range(a.kiosks)]
    ctx = mp.get_context("fork")
    with tempfile.TemporaryDirectory() as tmp:
        broker, port = start_broker(Path(tmp))
        try:
            res = _run(ctx, a, port, broker.pid, sites, kiosks)
        finally:
            broker.terminate()
            broker.wait(10)
    res["command"] = " ".join(sys.argv)
    res["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}"
    print(json.dumps(res, indent=1))
    if a.json:
        a.json.write_text(json.dumps(res, indent=1) + "\n")
    return 0


def _run(ctx: Any, a: Any, port: int, broker_pid: int, sites: list[str], kiosks: list[tuple[str, str]]) -> dict:
    q, tq, stop, go = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Event()
    tabs, counters = [], []
    for k in range(a.tablet_procs):
        ready, progress = ctx.Event(), ctx.Value("q", 0, lock=False)  # deliveries so far, written by that process
        tab = ctx.Process(target=tablets_proc, args=(port, sites[k::a.tablet_procs], a.tablets_per_site, ready, go,
                                                     stop, tq, progress))
        tab.start()
        if not ready.wait(60):
            raise SystemExit("tablets did not subscribe")
        tabs.append(tab)
        counters.append(progress)
    pq, probe_stop = ctx.Queue(), ctx.Event()
    probe = ctx.Process(target=probe_proc, args=(port, 10.0, go, probe_stop, pq))
    probe.start()
    gens, readies = [], []
    for k in range(a.procs):
        ready = ctx.Event()
        p = ctx.Process(target=kiosks_proc, args=(port, kiosks[k::a.procs], a.emotion_s, a.health_s, a.duration,
                                                  ready, go, q))
        p.start()
        gens.append(p)
        readies.append(ready)
    t_conn = time.monotonic()
    for r in readies:
        if not r.wait(120):
            raise SystemExit("kiosks did not connect")
    connect_s = time.monotonic() - t_conn
    rss = _rss_kb(broker_pid)
    b0, t0 = cpu_s(broker_pid), time.monotonic()
    go.set()
    pubs = [q.get(timeout=a.duration + 300) for _ in gens]
    b1, t1 = cpu_s(broker_pid), time.monotonic()
    probe_stop.set()
    plat = np.frombuffer(pq.get(timeout=30), np.float32).astype(np.float64)
    probe.join(10)
    sent_per_site: dict[str, int] = {}
    for p in pubs:
        for s, n in p["sent_per_site"].items():
            sent_per_site[s] = sent_per_site.get(s, 0) + n
    expected = sum(n * a.tablets_per_site for n in sent_per_site.values())
    last, drain0 = -1, time.monotonic()
    moved = drain0
    while (got := sum(c.value for c in counters)) < expected and time.monotonic() - moved < 3:  # drain: until
        if got != last:  # every message arrived, or none came for 3 s
            last, moved = got, time.monotonic()
        time.sleep(0.25)
    drain_s = time.monotonic() - drain0
    stop.set()
    parts = [tq.get(timeout=60) for _ in tabs]
    for p in [*tabs, *gens]:
        p.join(10)
    arr = np.concatenate([np.frombuffer(t["latency_ms"], np.float32) for t in parts]).astype(np.float64)
    subs = {"tablets": sum(t["tablets"] for t in parts), "received": sum(t["received"] for t in parts),
            "cpu_s": sum(t["cpu_s"] for t in parts), "wall_s": max(t["wall_s"] for t in parts),
            "unique_per_site": {s: n for t in parts for s, n in t["unique_per_site"].items()},
            "latency_ms": {q: round(float(np.percentile(arr, int(q[1:]))), 2) for q in ("p50", "p95", "p99")}
            | {"max": round(float(arr.max()), 2), "mean": round(float(arr.mean()), 2), "n": int(arr.size)}}
    unique = sum(subs["unique_per_site"].values())
    wall = t1 - t0
    sent = sum(p["sent"] for p in pubs)
    return {
        "kiosks": a.kiosks, "sites": a.sites, "tablets": subs["tablets"], "duration_s": round(wall, 1),
        "connect_s": round(connect_s, 1), "published": sent, "publish_rate_per_s": round(sent / wall, 1),
        "acked": sum(p["acked"] for p in pubs), "expected_deliveries": expected, "delivered_unique": unique,
        "duplicates": subs["received"] - unique, "lost": expected - unique, "drain_s": round(drain_s, 1),
        "delivery_rate_per_s": round(subs["received"] / wall, 1), "latency_ms": subs["latency_ms"],
        "probe_latency_ms": {q: round(float(np.percentile(plat, int(q[1:]))), 2) for q in ("p50", "p95", "p99")}
        | {"max": round(float(plat.max()), 2), "n": int(plat.size)},
        "cpu_percent_of_one_core": {"broker": round(100 * (b1 - b0) / wall, 1),
                                    "kiosk_generators": round(100 * sum(p["cpu_s"] for p in pubs) / wall, 1),
                                    "tablets": round(100 * subs["cpu_s"] / subs["wall_s"], 1)},
        "broker_rss_mb": {"after_connect": round(rss / 1024, 1), "end": round(_rss_kb(broker_pid) / 1024, 1)},
        "payload_bytes": pubs[0]["bytes"],
    }


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
