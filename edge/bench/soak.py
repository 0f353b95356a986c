"""``edge-emotion soak``: the real service (``edge-emotion run``) on looping demo media at camera speed for N minutes.

A private mosquitto on loopback receives the events; every ``interval`` seconds the kiosk process's RSS, thread
count and CPU time are read from /proc and paired with the latest ``health`` event (fps, drops, queue depth).
The RSS drift is the least-squares slope × duration, over the whole run and after a warm-up.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.bench.broker import LocalBroker
from edge.bench.common import machine, proc_sample

log = logging.getLogger(__name__)

KIOSK_TOML = """[identity]
site_id = "soak"
kiosk_id = "soak-kiosk"
[camera]
source = "demo.mp4"
loop = true
pace = "realtime"
[microphone]
source = "demo.wav"
loop = true
pace = "realtime"
[state]
dir = "state"
[mqtt]
host = "127.0.0.1"
port = {port}
health_interval_s = {health}
"""


class HealthWatcher:
    """Subscribes to the kiosk's health topic and keeps the latest payload and the counts of every event kind."""

    def __init__(self, port: int) -> None:
        """Connect to 127.0.0.1:``port`` and subscribe to everything (blocking up to 5 s)."""
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.latest: dict[str, Any] | None = None
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()
        ready = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: ready.set()
        self.client.on_connect = lambda c, *_: c.subscribe("edge-emotion/#", 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        ready.wait(5)

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        kind = msg.topic.rsplit("/", 1)[-1]
        with self._lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            if kind == "health":
                with contextlib.suppress(ValueError):
                    self.latest = json.loads(msg.payload)

    def snapshot(self) -> tuple[dict[str, Any] | None, dict[str, int]]:
        """The latest health payload and the event counts so far."""
        with self._lock:
            return self.latest, dict(self.counts)

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


def drift(ts: list[float], rss: list[float]) -> float | None:
    """Least-squares RSS slope × time span (MiB) over the samples; None with fewer than 3."""
    if len(ts) < 3:
        return None
    slope = float(np.polyfit(np.asarray(ts), np.asarray(rss), 1)[0])
    return round(slope * (ts[-1] - ts[0]), 2)


def run_soak(minutes: float, interval: float, out: Path) -> dict[str, Any]:
    """Run the service for ``minutes``; sample every ``interval`` s; write ``out/soak.json`` and return it."""
    from edge.demo.media import make_demo

    out.mkdir(parents=True, exist_ok=True)
    samples: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="edge-soak-") as tmp, LocalBroker() as broker:
        d = Path(tmp)
        make_demo(d, seconds=min(60.0, max(10.0, minutes * 60)))  # loops; a short soak needs no full minute
        conf = d / "kiosk.toml"
        conf.write_text(KIOSK_TOML.format(port=broker.port, health=max(1.0, min(10.0, interval))))
        watcher = HealthWatcher(broker.port)
        err = open(d / "kiosk.log", "wb")  # noqa: SIM115 - closed below, after the process
        proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(conf)],
                                stdout=subprocess.DEVNULL, stderr=err, cwd=tmp)
        t0 = time.monotonic()
        try:
            deadline = t0 + minutes * 60
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
                if proc.poll() is not None:
                    break
                p = proc_sample(proc.pid)
                health, counts = watcher.snapshot()
                s = {"t_s": round(p["t"] - t0, 2), "rss_mb": round(p["rss_mb"], 2), "threads": p["threads"],
                     "cpu_s": round(p["cpu_s"], 2), "events": counts}
                if health is not None:
                    s |= {"fps_in": health["fps_in"], "fps_analysed": health["fps_analysed"],
                          "drops": health["drops"], "queue_depth": health["queue_depth"],
                          "uptime_s": health["uptime_s"]}
                samples.append(s)
        finally:
            exit_code = proc.poll()
            if exit_code is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    exit_code = proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    exit_code = proc.wait()
            watcher.close()
            err.close()
            tail = (d / "kiosk.log").read_text(errors="replace")[-1500:]
    return _result(samples, minutes, interval, exit_code, tail, out)


def _result(samples: list[dict[str, Any]], minutes: float, interval: float, exit_code: int | None, log_tail: str,
            out: Path) -> dict[str, Any]:
    ts = [s["t_s"] for s in samples]
    rss = [s["rss_mb"] for s in samples]
    warm = [i for i, t in enumerate(ts) if t >= min(120.0, 0.2 * (ts[-1] if ts else 0))]
    cpu = (samples[-1]["cpu_s"] - samples[0]["cpu_s"]) / (ts[-1] - ts[0]) * 100 if len(samples) > 1 else None
    res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
           "loadavg": ", ".join(f"{x:.1f}" for x in os.getloadavg()), "minutes": minutes, "interval_s": interval,
           "command": f"edge-emotion soak --minutes {minutes:g} --interval {interval:g}", "exit_code": exit_code,
           "n_samples": len(samples), "rss_first_mb": rss[0] if rss else None, "rss_last_mb": rss[-1] if rss else None,
           "rss_max_mb": max(rss) if rss else None, "rss_drift_mb": drift(ts, rss),
           "rss_drift_after_warmup_mb": drift([ts[i] for i in warm], [rss[i] for i in warm]),
           "warmup_s": ts[warm[0]] if warm else None,
           "threads_min_max": [min(s["threads"] for s in samples), max(s["threads"] for s in samples)] if samples
           else None, "cpu_pct": round(cpu, 1) if cpu is not None else None, "samples": samples,
           "kiosk_log_tail": log_tail}
    (out / "soak.json").write_text(json.dumps(res, indent=1))
    return res


def soak_markdown(res: dict[str, Any], png: Path | None = None) -> str:
    """The soak result as Markdown."""
    m, s = res["machine"], res["samples"]
    last = s[-1] if s else {}
    fps = [x["fps_analysed"] for x in s if "fps_analysed" in x]
    qd = [max(x["queue_depth"].values()) for x in s if x.get("queue_depth")]
    drops = last.get("drops", {})
    drift_ok = res["rss_drift_after_warmup_mb"] is not None and abs(res["rss_drift_after_warmup_mb"]) <= 5
    lines = [
        "# Soak", "",
        f"Command: `{res['command']}` — {res['date']}. Machine: {m['cpu']} ({m['machine']}), {m['cores']} cores, "
        f"{m['mem_gib']} GiB, {m['os']}, Python {m['python']}; a shared VM (load average at the end "
        f"{res['loadavg']}: other agents' jobs ran on the same CPUs).", "",
        "What ran: `edge-emotion run` (the real service, default analysis settings, SQLite outbox in a state folder) "
        "on the generated demo media (640×480 15 fps video + 16 kHz speech, 60 s or the run's length if shorter, "
        "looping) at camera speed, "
        "publishing to a private mosquitto on 127.0.0.1. Samples: /proc of the kiosk process every "
        f"{res['interval_s']:g} s and the latest `health` event.", "",
        "| measure | value |", "|---|---|",
        f"| duration / samples | {s[-1]['t_s'] / 60 if s else 0:.1f} min / {res['n_samples']} |",
        f"| kiosk exit code after SIGTERM | {res['exit_code']} |",
        f"| RSS first / last / max (MiB) | {res['rss_first_mb']} / {res['rss_last_mb']} / {res['rss_max_mb']} |",
        f"| RSS drift, slope × duration, whole run (MiB) | {res['rss_drift_mb']} |",
        f"| RSS drift after warm-up (from {res['warmup_s']} s) (MiB) | {res['rss_drift_after_warmup_mb']} |",
        f"| OS threads min / max | {res['threads_min_max']} |",
        f"| CPU (% of one core, mean) | {res['cpu_pct']} |",
        "| fps analysed min / median / max | " + (f"{min(fps):.1f} / {float(np.median(fps)):.1f} / {max(fps):.1f}"
                                                  if fps else "–") + " |",
        f"| deepest queue seen (frames/observations/outbox) | {max(qd) if qd else '–'} |",
        f"| drops at the end | frames {drops.get('frames', '–')}, observations {drops.get('observations', '–')}, "
        f"audio overrun samples {drops.get('audio_overrun_samples', '–')} |",
        f"| events received | {last.get('events', {})} |",
        "", f"Target (issue 8): RSS drift ≤ 5 MB over the soak: {'met' if drift_ok else '**not met**'} for this "
        f"{s[-1]['t_s'] / 60 if s else 0:.0f}-minute run; the issue's 60-minute run is "
        "`nice -n 10 edge-emotion soak --minutes 60 --markdown docs/bench/soak.md`.",
    ]
    if png is not None and png.exists():
        lines += ["", f"![RSS, threads and fps over the soak]({png.name})"]
    return "\n".join(lines) + "\n"


def plot_soak(res: dict[str, Any], path: Path) -> None:
    """RSS, threads and analysed fps over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = res["samples"]
    t = [x["t_s"] / 60 for x in s]
    fig, axes = plt.subplots(3, 1, figsize=(9, 6), sharex=True)
    axes[0].plot(t, [x["rss_mb"] for x in s])
    axes[0].set_ylabel("RSS MiB")
    axes[1].plot(t, [x["threads"] for x in s])
    axes[1].set_ylabel("threads")
    axes[2].plot(t, [x.get("fps_analysed", float("nan")) for x in s])
    axes[2].set_ylabel("fps analysed")
    axes[2].set_xlabel("minutes")
    axes[0].set_title(f"edge-emotion soak ({res['date']})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def cli_soak(args: Any) -> int:
    """Entry of ``edge-emotion soak``."""
    res = run_soak(args.minutes, args.interval, args.out)
    png = args.out / "soak.png"
    if res["samples"]:
        try:
            plot_soak(res, png)
        except ImportError as exc:
            log.warning("no plot: %s", exc)
    md = soak_markdown(res, png)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(md)
    print(md)
    return 0 if res["samples"] and res["exit_code"] == 0 else 1
