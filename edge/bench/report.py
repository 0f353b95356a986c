"""Markdown tables and PNG plots of benchmark results (matplotlib only when plotting)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

# Since the main loop wakes when the core is due (2026-12-05), emotion events go out in a step of their own, so
# few or none share a step with an observation: the age row below is then the event latency.
NO_SAME_STEP = "none: events go out in their own step when due (the age row below is their latency)"
STAGE_NAMES = {
    "decode": "capture decode (OpenCV, one 640×480 frame of the MPEG-4 file)",
    "detect": "face detection (BlazeFace short-range int8 / Haar)",
    "expression": "expression (crop 48×48 + int8 CNN)",
    "voice": "voice total: VAD + log-mel + int8 model (2 s window, mel frames shared with the last)",
    "vad": "  VAD (webrtcvad)",
    "features": "  log-mel features of a whole window (not shared)",
    "voice_model": "  voice model",
    "fusion": "fusion + visits + alert policy (Core.observe+tick)",
    "publish": "publish (schema validation + hand-off to MQTT)",
    "broker_delivery": "publish call → loopback subscriber receives",
    "e2e_publish": "**frame read → emotion event published** (sequential path)",
    "e2e_delivered": "frame read → emotion event at a loopback subscriber",
}
PI_GUIDE = (
    "**Raspberry Pi 4/5 (a guide, not a measurement).** Nothing here was run on a Pi. Published single-model "
    "timings put a Pi 4 (Cortex-A72, 1.5 GHz) at about 87 ms for MobileNet v1 1.0-224 on the CPU with TFLite "
    "(TildAlice, *MobileNet vs EfficientNet-Lite: Pi 4*, dev.to, 2026), and Raspberry Pi Ltd gives the Pi 5 "
    "(Cortex-A76, 2.4 GHz) 2-3× the CPU performance of a Pi 4. Our per-frame models are far smaller than "
    "MobileNet-224 (BlazeFace at 128×128 and a 48×48 expression CNN). Taking a Pi 4 core as roughly 3-6× slower "
    "than one core of this VM for int8 XNNPACK work (our assumption, not derived from those figures; replace it "
    "with a measurement on the target), the one-core face path of **{face:.1f} ms** of CPU per frame becomes "
    "~{pi4_lo:.0f}-{pi4_hi:.0f} ms per frame on a Pi 4, i.e. ~{fps4_lo:.0f}-{fps4_hi:.0f} analysed fps on one "
    "core, {verdict} the default 8 fps (the voice "
    "worker can take a second core); a Pi 5 should be 2-3× faster again. Capture decode on a Pi depends on the "
    "camera path (V4L2 MJPEG/YUYV, or the ISP via libcamera/GStreamer) more than on our code.")
FER_PLACEHOLDER = ("**Peer comparison (`fer`).** The same frames through the `fer` package's detector and model, "
                   "and the speed ratio, are measured by the face benchmark: see [face.md](face.md).")


def _ms(d: dict[str, Any] | None) -> str:
    if not d or not d.get("n"):
        return "–"
    return f"{d['p50']:.1f} / {d['p95']:.1f}"


def _ok(flag: bool) -> str:
    return "met" if flag else "**not met**"


def pipeline_markdown(res: dict[str, Any], png: Path | None = None) -> str:
    """The pipeline benchmark as Markdown (tables, targets, Pi guide, fer placeholder)."""
    m, one, allc, svc = res["machine"], res["one_core"], res["all_cores"], res["service"]
    h = svc["health"]
    lines = [
        "# Pipeline benchmark", "",
        f"Command: `{res['command']}` — {res['date']}. Machine: {m['cpu']} ({m['machine']}), {m['cores']} cores "
        f"({m['usable_cores']} usable), {m['mem_gib']} GiB, {m['os']}, Python {m['python']}. A shared VM: other "
        f"agents' jobs used the same CPUs (load average {res.get('loadavg', '?')}), so figures are pessimistic "
        "and noisy.", "",
        f"Media: {res['media']}.", "",
        "## Per-stage latency (ms, p50 / p95)", "",
        f"| stage | one core, 1 interpreter thread | all cores, {allc['threads']} threads |", "|---|---|---|",
    ]
    for k, name in STAGE_NAMES.items():
        lines.append(f"| {name} | {_ms(one['stages_ms'].get(k))} | {_ms(allc['stages_ms'].get(k))} |")
    e2e, step = svc["capture_to_publish_ms"], svc.get("capture_to_step_done_ms", {})
    lines += [
        "", f"Frames timed: {one['frames']} (one core), {allc['frames']} (all cores); voice windows "
        f"{one['voice_windows']} / {allc['voice_windows']}.", "",
        "## The running service (camera speed, default settings, local mosquitto)", "",
        "| measure | value |", "|---|---|",
        f"| capture → emotion event published in its observation's step (p50 / p95 ms, n={e2e['n']}) | "
        f"{_ms(e2e) if e2e['n'] else NO_SAME_STEP} |",
        f"| capture → face observation fused, and published if an event was due (p50 / p95 ms, "
        f"n={svc.get('capture_to_step_done_ms', {}).get('n', 0)}) | {_ms(svc.get('capture_to_step_done_ms'))} |",
        f"| newest observation's age when an emotion event goes out (p50 / p95 ms) | "
        f"{_ms(svc['emotion_data_age_ms'])} |",
        f"| capture → fusion, from `health` (p50 / p95 ms; includes waiting for the 8 fps face slot) | "
        f"{_ms(h['latency_ms'].get('capture_to_fusion'))} |",
        f"| fps in / analysed | {h['fps_in']:.1f} / {h['fps_analysed']:.1f} |",
        f"| drops (frames, observations) | {h['drops'].get('frames', 0)}, {h['drops'].get('observations', 0)} |",
        f"| CPU (% of one core) | {svc['cpu_pct']:.1f} |",
        f"| RSS / peak RSS (MiB) | {svc['rss_mb']:.0f} / {svc['hwm_mb']:.0f} |",
        f"| OS threads | {svc['threads_os']} |",
        "", "The emotion event goes out once per emit interval (1 s, timed from the previous event), so most events "
        "are sent in a main-loop step without a new observation: the first row has few samples. The second row is "
        "the same path for every analysed frame "
        "(capture → face worker → fusion → publish when due); it includes the wait for the face worker's 8 fps "
        "slot (up to 125 ms at a 15 fps camera), as does the third row (data age).",
        "", "## Maximum analysed frame rate", "",
        "| | one core (pinned, 1 thread) | all cores |", "|---|---|---|",
        f"| measured throughput: decode + detect + expression + fusion (+ voice per media second), fps | "
        f"{one['throughput_fps']:.1f} | {allc['throughput_fps']:.1f} |",
        f"| face path per frame (ms) | {one['face_path_ms']:.1f} | {allc['face_path_ms']:.1f} |",
        f"| sustainable fps with a voice window every `voice_hop_s` | {one['sustainable_fps']:.1f} | "
        f"{allc['sustainable_fps']:.1f} |",
        f"| face path per frame, CPU time (ms) | {one['face_path_cpu_ms']:.1f} | "
        f"{allc['face_path_cpu_ms']:.1f} (summed over threads) |",
        f"| **sustainable fps from CPU time** (one core: 1000 ms of CPU per second; voice first) | "
        f"**{one['sustainable_fps_cpu']:.1f}** | – |",
        f"| process CPU % / RSS MiB | {one['cpu_pct']:.0f} / {one['rss_mb']:.0f} | {allc['cpu_pct']:.0f} / "
        f"{allc['rss_mb']:.0f} |",
        "", "All cores = the same sequential loop with one interpreter thread per core. "
        + ("For these small models the extra interpreter thread costs more than it gains (lower throughput than "
           "the pinned one-thread run), so `models.threads = 1` (the default) is right and more cores are used by "
           "the service's separate capture, face and voice threads. " if allc["throughput_fps"] < one["throughput_fps"]
           else "The extra interpreter threads raised throughput here. ")
        + "Wall-time rows count the time the process waited for a CPU on this shared VM; the CPU-time row is "
        "what one core must supply per frame, so it is the fairer capacity figure here.",
        "", "## Targets (issue 8)", "",
        f"- capture → publish p95 ≤ 100 ms (emotion event path, service): every analysed frame "
        f"{step.get('p95', math.nan):.1f} ms (n={step.get('n', 0)}) — "
        f"{_ok(bool(step.get('n')) and step['p95'] <= 100)}; "
        + (f"events sent in the same step as their frame {e2e['p95']:.1f} ms (n={e2e['n']})" if e2e["n"]
         else "no event was sent in the same step as a frame (the main loop wakes when an event is due)"),
        f"- analysed fps ≥ 30 on one core at 640×480 with a face and speech: {one['sustainable_fps_cpu']:.1f} "
        f"from CPU time ({one['sustainable_fps']:.1f} from wall time) — {_ok(one['sustainable_fps_cpu'] >= 30)}",
        f"- RSS ≤ 250 MB steady (service): {svc['rss_mb']:.0f} MiB — {_ok(svc['rss_mb'] <= 250)}",
    ]
    face = float(one["face_path_cpu_ms"])
    pi = {"face": face, "pi4_lo": 3 * face, "pi4_hi": 6 * face, "fps4_lo": 1000 / (6 * face),
          "fps4_hi": 1000 / (3 * face),
          "verdict": "enough for" if 1000 / (6 * face) >= 8 else "at the slow end not enough for"} if face else None
    lines += ["", PI_GUIDE.format(**pi) if pi else "", "", FER_PLACEHOLDER]
    if png is not None and png.exists():
        lines += ["", f"![per-stage latency]({png.name})"]
    return "\n".join(lines) + "\n"


def plot_pipeline(res: dict[str, Any], path: Path) -> None:
    """Bar chart: per-stage p50/p95 on one core and on all cores."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in STAGE_NAMES if k not in ("vad", "features", "voice_model")]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.2
    for j, (label, key, q) in enumerate((("one core p50", "one_core", "p50"), ("one core p95", "one_core", "p95"),
                                         ("all cores p50", "all_cores", "p50"), ("all cores p95", "all_cores", "p95"))):
        vals = [res[key]["stages_ms"].get(k, {}).get(q, math.nan) for k in keys]
        ax.bar([i + (j - 1.5) * width for i in range(len(keys))], vals, width, label=label)
    ax.set_xticks(range(len(keys)), keys, rotation=20)
    ax.set_ylabel("ms")
    ax.set_title(f"edge-emotion per-stage latency ({res['machine']['cpu'][:40]}, {res['date']})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
