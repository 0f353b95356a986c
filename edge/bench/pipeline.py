"""``edge-emotion bench``: per-stage latency, capture → publish, max analysed fps (one core / all), CPU %, RSS.

Media: CREMA-D clips letterboxed to 640×480 (one face, speech) when ../shared/data is present, else the
generated demo media (640×480; the portrait is present 3-38 s of each minute). Workers run as subprocesses so the
one-core figure can pin its CPU (``sched_setaffinity``) and every figure has its own process for CPU % and RSS.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edge.bench.broker import LocalBroker
from edge.bench.common import machine

log = logging.getLogger(__name__)

CREMA_SPEC = "NEU*3,HAP*2,ANG*3,SAD*2,DIS*2,FEA*2,NEU*2"  # ~34 s, the face and speech present throughout


def bench_media(out: Path) -> tuple[Path, Path, str]:
    """(video, audio, description) of the benchmark media, built in ``out``."""
    from edge.demo.scenario import DATA_DIR, ScenarioError, build_scenario

    try:
        sc = build_scenario(CREMA_SPEC, out, DATA_DIR, size=(640, 480))
        return sc.video, sc.audio, (f"CREMA-D actor 1001 clips `{CREMA_SPEC}` letterboxed to 640×480, 15 fps, "
                                    f"{sc.duration_s:.0f} s looped; one face and speech throughout")
    except ScenarioError as exc:
        from edge.demo.media import make_demo

        log.warning("%s; using the generated demo media", exc)
        video, audio = make_demo(out, seconds=60.0)
        return video, audio, "generated demo media (640×480, 15 fps; face present 3-38 s and 48-58 s per minute)"


def _worker(module: str, args: list[str], cpu: int | None = None, timeout: float = 600) -> dict[str, Any]:
    """Run ``python -m module args`` (pinned to ``cpu``) and parse the JSON object on its last stdout line."""
    def pin() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    env = {**os.environ, "OMP_NUM_THREADS": "1"} if cpu is not None else dict(os.environ)
    proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout,
                          preexec_fn=pin, env=env)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{module} failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return dict(json.loads(lines[-1]))


def run_bench(seconds: float, out: Path) -> dict[str, Any]:
    """Run every measurement for ``seconds`` each; write ``out/pipeline.json`` (+ PNG) and return the results."""
    out.mkdir(parents=True, exist_ok=True)
    cores = sorted(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="edge-bench-media-") as tmp, LocalBroker() as broker:
        video, audio, media = bench_media(Path(tmp))
        common = ["--video", str(video), "--audio", str(audio), "--seconds", str(seconds), "--port", str(broker.port)]
        log.info("bench: stages on one core (cpu %d, 1 interpreter thread)", cores[-1])
        one = _worker("edge.bench.stages", [*common, "--threads", "1"], cpu=cores[-1])
        log.info("bench: stages on all %d cores (%d interpreter threads)", len(cores), len(cores))
        allc = _worker("edge.bench.stages", [*common, "--threads", str(len(cores))])
        log.info("bench: the service at camera speed for %.0f s", seconds)
        svc = _worker("edge.bench.service_run", [*common, "--threads", "1"])
    res = {"loadavg": ", ".join(f"{x:.1f}" for x in os.getloadavg()),
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(), "media": media,
           "seconds": seconds, "one_core": one, "all_cores": allc, "service": svc,
           "command": f"edge-emotion bench --seconds {seconds:g} --out {out}"}
    (out / "pipeline.json").write_text(json.dumps(res, indent=1))
    try:
        from edge.bench.report import plot_pipeline

        plot_pipeline(res, out / "pipeline.png")
    except ImportError as exc:  # matplotlib is in the demo extra
        log.warning("no plot: %s", exc)
    return res


def cli_bench(args: Any) -> int:
    """Entry of ``edge-emotion bench [pipeline]``."""
    from edge.bench.report import pipeline_markdown

    res = run_bench(args.seconds, args.out)
    md = pipeline_markdown(res, png=args.out / "pipeline.png")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(md)
    print(md)
    return 0
