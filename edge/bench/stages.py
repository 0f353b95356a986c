"""Per-stage timing loop over real media (one thread, sequential): decode → detect → expression → fusion → publish.

Run as a subprocess by ``edge-emotion bench`` (``python -m edge.bench.stages ...``, under ``taskset`` for the
one-core figure); prints one JSON object. Voice (VAD + log-mel + model) runs once per ``voice_hop_s`` of media.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.bench.common import pct, proc_sample

STAGES = ("decode", "detect", "expression", "voice", "vad", "features", "voice_model", "fusion", "publish",
          "broker_delivery", "e2e_publish", "e2e_delivered")


def run_stages(video: Path, audio: Path, seconds: float, threads: int, port: int | None) -> dict[str, Any]:
    """Loop the media for ``seconds``; per-stage latencies (ms), throughput and this process's CPU/RSS."""
    import os

    from edge.capture.media import read_audio_file
    from edge.config import parse_config
    from edge.events import EventFactory
    from edge.face.expression import confidence_of, select_customer
    from edge.face.preprocess import crop_face
    from edge.pipeline.analyzers import build_analyzers
    from edge.policy.core import Core, Observation
    from edge.types import Reading
    from edge.voice.features import fit_length

    cfg = parse_config({"identity": {"site_id": "bench", "kiosk_id": "stages"}, "models": {"threads": threads},
                        "mqtt": {"enabled": port is not None, "host": "127.0.0.1", "port": port or 1883}})
    an = build_analyzers(cfg)
    assert an.face is not None and an.voice is not None
    face, voice = an.face, an.voice
    factory = EventFactory(cfg.identity)
    core = Core(cfg, factory, to_wall=lambda t: t + 1.8e9)
    samples: dict[str, list[float]] = {s: [] for s in STAGES}
    sent: dict[str, float] = {}
    received: dict[str, float] = {}
    lock = threading.Lock()
    pub, sub = _mqtt(cfg, factory, received, lock) if port is not None else (None, None)
    pcm = read_audio_file(audio, 16000)
    win, hop = voice.window_samples, int(cfg.analysis.voice_hop_s * 16000)
    cap = cv2.VideoCapture(str(video))
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 15.0)
    frames = windows = 0
    media_t, next_voice = 0.0, float(win) / 16000
    face_busy = voice_busy = face_cpu = voice_cpu = 0.0
    p0 = proc_sample(os.getpid())
    t_start = time.perf_counter()
    while time.perf_counter() - t_start < seconds:
        c0 = time.process_time()
        t0 = time.perf_counter()
        ok, img = cap.read()
        if not ok:
            cap.release()
            cap = cv2.VideoCapture(str(video))
            continue
        t1 = time.perf_counter()
        boxes = face.detector.detect(img)
        t2 = time.perf_counter()
        box = select_customer(boxes, img.shape, face.customer_zone, face.min_face_frac)
        reading = None
        if box is not None:
            probs = face.classify(crop_face(img, box, face._margin))
            reading = Reading("face", media_t, probs, confidence_of(probs, box.score))
        t3 = time.perf_counter()
        events = core.observe(Observation("face", media_t, reading)) + core.tick(media_t)
        t4 = time.perf_counter()
        for name, a, b in (("decode", t0, t1), ("detect", t1, t2), ("expression", t2, t3), ("fusion", t3, t4)):
            samples[name].append((b - a) * 1000)
        for kind, body in events:
            p_0 = time.perf_counter()
            payload = factory.make(kind, **body)
            if pub is not None:
                with lock:
                    sent[payload["event_id"]] = time.perf_counter()
                pub.publish(kind, payload)
            p_1 = time.perf_counter()
            samples["publish"].append((p_1 - p_0) * 1000)
            if kind == "emotion":
                samples["e2e_publish"].append((p_1 - t0) * 1000)
                with lock:
                    sent["e2e:" + payload["event_id"]] = t0
        face_busy += time.perf_counter() - t0
        face_cpu += time.process_time() - c0
        frames += 1
        media_t = frames / fps
        if media_t >= next_voice:  # one voice window per hop of media time, like the service's voice worker
            end = windows * hop % max(pcm.size - win, 1) + win  # consecutive windows share frames, as in the service
            x = fit_length(pcm[end - win:end], win)
            c1 = time.process_time()
            v0 = time.perf_counter()
            r = voice.analyze(x, media_t, end=end)
            v1 = time.perf_counter()
            voice_cpu += time.process_time() - c1
            voice.vad.speech_ratio(x)
            v2 = time.perf_counter()
            feats = voice.frontend.features(x)
            v3 = time.perf_counter()
            voice.model.infer(feats.reshape(voice.model.input_shape).astype(np.float32))
            v4 = time.perf_counter()
            for name, a, b in (("voice", v0, v1), ("vad", v1, v2), ("features", v2, v3), ("voice_model", v3, v4)):
                samples[name].append((b - a) * 1000)
            voice_busy += v1 - v0
            windows += 1
            next_voice += hop / 16000
            core.observe(Observation("voice", media_t, r))
    wall = time.perf_counter() - t_start
    p1 = proc_sample(os.getpid())
    if pub is not None and sub is not None:
        time.sleep(1.0)
        pub.stop()
        sub.disconnect()
        sub.loop_stop()
        with lock:
            for eid, t_rx in received.items():
                if eid in sent:
                    samples["broker_delivery"].append((t_rx - sent[eid]) * 1000)
                if "e2e:" + eid in sent:
                    samples["e2e_delivered"].append((t_rx - sent["e2e:" + eid]) * 1000)
    face_ms = face_busy / max(frames, 1) * 1000
    # CPU time is what a core must supply; under contention (a shared VM) wall time also counts time descheduled.
    face_cpu_ms = face_cpu / max(frames, 1) * 1000
    voice_cpu_per_s = voice_cpu / max(windows, 1) / cfg.analysis.voice_hop_s
    voice_per_s = voice_busy / max(windows, 1) / cfg.analysis.voice_hop_s  # CPU-seconds of voice per second
    return {"threads": threads, "affinity": sorted(os.sched_getaffinity(0)), "seconds": round(wall, 2),
            "frames": frames, "voice_windows": windows, "stages_ms": {k: pct(v) for k, v in samples.items()},
            "throughput_fps": round(frames / wall, 2), "face_path_ms": round(face_ms, 3),
            "sustainable_fps": round((1.0 - voice_per_s) / (face_ms / 1000), 2) if face_ms > 0 else None,
            "face_path_cpu_ms": round(face_cpu_ms, 3),
            "voice_cpu_ms": round(voice_cpu / max(windows, 1) * 1000, 3),
            "sustainable_fps_cpu": round((1.0 - voice_cpu_per_s) / (face_cpu_ms / 1000), 2) if face_cpu_ms > 0
            else None,
            "cpu_pct": round(100 * (p1["cpu_s"] - p0["cpu_s"]) / wall, 1), "rss_mb": round(p1["rss_mb"], 1),
            "hwm_mb": round(p1["hwm_mb"], 1)}


def _mqtt(cfg: Any, factory: Any, received: dict[str, float], lock: threading.Lock) -> tuple[Any, Any]:
    """A started MqttPublisher and a subscriber that stamps each event's arrival (perf_counter)."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from edge.transport.mqtt import MqttPublisher

    ready = threading.Event()
    sub = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        t = time.perf_counter()
        try:
            eid = json.loads(msg.payload)["event_id"]
        except (ValueError, KeyError, TypeError):
            return
        with lock:
            received.setdefault(eid, t)

    sub.on_message = on_message
    sub.on_subscribe = lambda *_: ready.set()
    sub.on_connect = lambda c, *_: c.subscribe(f"{cfg.mqtt.topic_prefix}/#", 1)
    sub.connect(cfg.mqtt.host, cfg.mqtt.port)
    sub.loop_start()
    ready.wait(5)
    pub = MqttPublisher(cfg.mqtt, cfg.identity, factory, lambda: {"version": "bench", "counter_name": "",
                                                                   "models": {}, "degraded": []})
    pub.start()
    deadline = time.monotonic() + 5
    while not pub.connected and time.monotonic() < deadline:
        time.sleep(0.02)
    return pub, sub


def main() -> None:
    """Subprocess entry: print the stage results as one JSON line."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--video", type=Path, required=True)
    ap.add_argument("--audio", type=Path, required=True)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--port", type=int)
    a = ap.parse_args()
    print(json.dumps(run_stages(a.video, a.audio, a.seconds, a.threads, a.port)))


if __name__ == "__main__":
    main()
