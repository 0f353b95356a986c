"""Small helpers shared by the benchmarks: percentiles, /proc sampling, machine description."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

CLK_TCK = os.sysconf("SC_CLK_TCK")


def pct(values: list[float]) -> dict[str, float]:
    """``{p50, p95, mean, n}`` of millisecond samples (NaN-free; empty -> n=0)."""
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "mean": float("nan"), "n": 0}
    v = np.asarray(values, dtype=np.float64)
    return {"p50": round(float(np.percentile(v, 50)), 3), "p95": round(float(np.percentile(v, 95)), 3),
            "mean": round(float(v.mean()), 3), "n": int(v.size)}


def proc_sample(pid: int) -> dict[str, float]:
    """CPU seconds (user+system), RSS and peak RSS (MiB) and thread count of process ``pid`` from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / CLK_TCK
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {"t": time.monotonic(), "cpu_s": cpu_s, "rss_mb": int(status["VmRSS"].split()[0]) / 1024,
            "hwm_mb": int(status["VmHWM"].split()[0]) / 1024, "threads": int(status["Threads"])}


def machine() -> dict[str, Any]:
    """CPU model, core counts, memory, OS and Python of this machine."""
    model = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "")
    except (OSError, subprocess.SubprocessError):
        pass
    mem = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    return {"cpu": model or platform.processor(), "machine": platform.machine(), "cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)), "mem_gib": round(mem, 1),
            "os": platform.platform(), "python": platform.python_version()}
