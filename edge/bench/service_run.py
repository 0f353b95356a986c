"""The real kiosk service on looping media at camera speed, instrumented for capture → publish latency.

Run as a subprocess by ``edge-emotion bench`` (``python -m edge.bench.service_run ...``); prints one JSON object
with the latency of the emotion event path, the service's own health snapshot, CPU % and RSS of the process.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from edge.bench.common import pct, proc_sample
from edge.pipeline.service import Service


class TimedService(Service):
    """Service that records, per emitted ``emotion`` event, the time since capture of the observation that led to it.

    ``path`` latencies: the event was emitted in the same main-loop step as an observation (capture → fused →
    published); ``age``: time since capture of the newest observation in any emotion event (includes waiting for
    the next emit slot).
    """

    def __init__(self, *a: Any, **kw: Any) -> None:
        """As Service."""
        super().__init__(*a, **kw)
        self.path_ms: list[float] = []
        self.step_ms: list[float] = []  # every face observation: capture → its main-loop step done (incl. emits)
        self._step_face = False
        self.age_ms: list[float] = []
        self._step_obs: float | None = None
        self._newest: float | None = None
        observe = self.core.observe

        def timed_observe(obs: Any) -> Any:
            self._step_obs = obs.t
            self._step_face = obs.modality == "face"
            self._newest = obs.t if self._newest is None else max(self._newest, obs.t)
            return observe(obs)

        self.core.observe = timed_observe  # type: ignore[method-assign]

    def _step(self) -> None:
        self._step_obs = None
        super()._step()
        if self._step_obs is not None and self._step_face:
            self.step_ms.append((self.clock() - self._step_obs) * 1000)

    def emit(self, kind: str, body: dict[str, Any]) -> None:
        """Emit and time emotion events against their observation's capture time."""
        super().emit(kind, body)
        if kind == "emotion":
            now = self.clock()
            if self._step_obs is not None:
                self.path_ms.append((now - self._step_obs) * 1000)
            if self._newest is not None:
                self.age_ms.append((now - self._newest) * 1000)


def run_service(video: Path, audio: Path, seconds: float, port: int, threads: int = 1,
                overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the service for ``seconds`` on looping realtime media to 127.0.0.1:``port``; latencies, CPU, RSS."""
    from edge.config import parse_config
    from edge.pipeline.analyzers import build_analyzers

    raw: dict[str, Any] = {
        "identity": {"site_id": "bench", "kiosk_id": "service"},
        "camera": {"source": str(video), "loop": True, "pace": "realtime"},
        "microphone": {"source": str(audio), "loop": True, "pace": "realtime"},
        "models": {"threads": threads},
        "mqtt": {"host": "127.0.0.1", "port": port, "health_interval_s": 2.0},
    }
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {}).update(values)
    cfg = parse_config(raw)
    svc = TimedService(cfg, build_analyzers(cfg))
    stop = threading.Event()
    th = threading.Thread(target=svc.run, args=(stop,), daemon=True)
    p0 = proc_sample(os.getpid())
    th.start()
    time.sleep(min(2.0, seconds / 4))  # warm-up: sources open, first frames
    p1, h0 = proc_sample(os.getpid()), dict(svc.latency.snapshot())
    time.sleep(seconds)
    p2, health = proc_sample(os.getpid()), svc.health_body()
    stop.set()
    th.join(timeout=15)
    wall = p2["t"] - p1["t"]
    return {"seconds": round(wall, 2), "threads": threads, "capture_to_publish_ms": pct(svc.path_ms),
            "emotion_data_age_ms": pct(svc.age_ms),
            "capture_to_step_done_ms": pct(svc.step_ms), "health": health, "warmup_latency": h0,
            "cpu_pct": round(100 * (p2["cpu_s"] - p1["cpu_s"]) / wall, 1), "rss_mb": round(p2["rss_mb"], 1),
            "hwm_mb": round(p2["hwm_mb"], 1), "threads_os": p2["threads"], "start_rss_mb": round(p0["rss_mb"], 1)}


def main() -> None:
    """Subprocess entry: print the results as one JSON line."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--video", type=Path, required=True)
    ap.add_argument("--audio", type=Path, required=True)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    print(json.dumps(run_service(a.video, a.audio, a.seconds, a.port, a.threads)))


if __name__ == "__main__":
    main()
