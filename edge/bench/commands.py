"""Subcommands ``scenario``, ``bench`` and ``soak`` (argument parsing only; the work is imported lazily)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

MAX_ROOMS = 1000  # staff-gate: room i of seed s is simulated from s*1000+i, so sets of rooms never share a room


def positive(unit: str = "", least: float = 0.0, most: float = float("inf")) -> Callable[[str], float]:
    """An argparse ``type``: a finite number above 0, at least ``least`` and at most ``most`` when given (``unit``,
    e.g. " of seconds", named in the error)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"{text!r} must be a number{unit} above 0")
        if value < least:
            raise argparse.ArgumentTypeError(f"{text!r} must be at least {least:g}{unit.replace(' of', '')}")
        if value > most:
            raise argparse.ArgumentTypeError(f"{text!r} must be at most {most:g}{unit.replace(' of', '')}")
        return value

    return parse


def _gains(text: str) -> str:
    """An argparse ``type``: comma-separated audio gains above 0, e.g. ``1,0.5,2`` (kept as text)."""
    for part in text.split(","):
        positive()(part.strip())
    return text


def _int_in(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: a whole number in ``lo``..``hi`` (no upper bound when ``hi`` is None)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"{value} is out of range: expected " + (
                f"{lo}..{hi}" if hi is not None else f">= {lo}"))
        return value

    return parse


def _scenario(args: argparse.Namespace) -> int:
    from edge.demo.scenario import ScenarioError

    try:
        return cli_scenario(args)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def cli_scenario(args: argparse.Namespace) -> int:
    """``edge-emotion scenario SPEC --out DIR``: build the media, replay them (unless --no-replay), print a summary."""
    from edge.config import load_config
    from edge.demo.scenario import DATA_DIR, ScenarioError, build_scenario, replay_scenario

    size = None
    if args.size:
        m = re.fullmatch(r"(\d{2,4})x(\d{2,4})", args.size)
        if m is None:
            raise ScenarioError(f"--size {args.size!r}: expected WIDTHxHEIGHT, e.g. 640x480")
        size = (int(m.group(1)), int(m.group(2)))
    sc = build_scenario(args.spec, args.out, Path(args.data) if args.data else DATA_DIR, size, args.voice, args.face)
    print(f"scenario: {sc.video} + {sc.audio} ({sc.duration_s:.2f} s, {len(sc.segments)} segments)")
    if args.no_replay:
        return 0
    cfg = load_config(args.config) if args.config else None
    run = replay_scenario(sc, cfg)
    summary = run.summary()
    for a in run.alerts:
        print(f"  t={a['media_t']:7.2f} s  {a['level']:9s} {a['reason']:15s} visit={a['visit_id'][:8]}  "
              f"escalation={a['evidence']['escalation']:.2f}  hint: {a['hint']['text']}")
    print(json.dumps({k: v for k, v in summary.items() if k != "alerts"}))
    (args.out / "run.json").write_text(json.dumps({"summary": summary, "escalation": run.escalation}, indent=1))
    return 0


def _bench(args: argparse.Namespace) -> int:
    if args.suite == "pipeline":
        from edge.bench.pipeline import cli_bench
        return cli_bench(args)
    if args.suite == "alerts":
        from edge.bench.alerts import cli_alerts
        return cli_alerts(args)
    if args.suite == "cues":
        from edge.bench.cues import cli_cues
        return cli_cues(args)
    if args.suite == "staff-gate":
        from edge.bench.staff_gate import cli
        return cli(args)
    from edge.bench.tablet import cli_tablet
    return cli_tablet(args)


def _soak(args: argparse.Namespace) -> int:
    from edge.bench.soak import cli_soak

    return cli_soak(args)


def add_subcommands(sub: Any) -> None:
    """Register ``scenario``, ``bench`` and ``soak`` on the CLI's subparsers (each sets ``func``)."""
    s = sub.add_parser("scenario", help="build a customer scenario from CREMA-D clips and replay it")
    s.add_argument("spec", help='clips in order, e.g. "NEU*5,ANG*8,NEU*6" (ANG DIS FEA HAP NEU SAD)')
    s.add_argument("--out", type=Path, required=True, help="folder for the built media (use a temp dir)")
    s.add_argument("--config", "-c", type=Path, help="kiosk TOML (alerts, fusion, analysis); default: defaults")
    s.add_argument("--data", help="research data folder (default ../shared/data from the project root)")
    s.add_argument("--size", help="frame size WxH, e.g. 640x480 (letterboxed); default the clips' own")
    s.add_argument("--voice", metavar="ACTOR", help="speech of this CREMA-D actor (staged speech clips, e.g. 1002) "
                   "instead of the clips' own")
    s.add_argument("--face", metavar="CODE", help="one face throughout, e.g. NEU: a calm face over an angry voice")
    s.add_argument("--no-replay", action="store_true", help="only build the media")
    s.set_defaults(func=_scenario)
    b = sub.add_parser("bench", help="benchmarks: pipeline stages/fps/CPU/RSS, alert timing, tablet latency")
    b.add_argument("suite", nargs="?", default="pipeline", choices=["pipeline", "alerts", "cues", "tablet",
                                                                         "staff-gate"])
    b.add_argument("--seconds", type=positive(), default=20.0, help="pipeline: seconds per measurement")
    b.add_argument("--minutes", type=positive(), default=300.0,
                   help="alerts, cues: minutes of neutral/happy material (max)")
    b.add_argument("--silent-visits", type=_int_in(0), default=400,
                   help="alerts, cues: silent calm visits (20 s of a FER face)")
    b.add_argument("--gains", type=_gains, default="1",
                   help="alerts: audio gains to replay the calm material at, e.g. 1,0.5,2")
    b.add_argument("--count", type=_int_in(1), default=50, help="tablet: alerts to publish")
    rooms, seed = _int_in(0, MAX_ROOMS), _int_in(0)
    most = f"at most {MAX_ROOMS} (room i of seed s is simulated from s*1000+i)"
    b.add_argument("--rooms", metavar="N", type=_int_in(1, MAX_ROOMS), default=24,
                   help=f"staff-gate: simulated counter (test) rooms, {most}")
    b.add_argument("--seed", metavar="SEED", type=seed, default=23, help="staff-gate: seed of the test rooms (>= 0)")
    b.add_argument("--tune-rooms", metavar="N", type=rooms, default=48, help="staff-gate: tuning rooms the operating "
                   f"point is chosen on, {most}; 0: no tuning rooms, sweep choice or trade-off tables")
    b.add_argument("--tune-seed", metavar="SEED", type=seed, default=101,
                   help="staff-gate: seed of the tuning rooms (>= 0, not --seed)")
    b.add_argument("--confirm-rooms", metavar="N", type=rooms, default=24,
                   help=f"staff-gate: fresh rooms run with the defaults only, {most}; 0: none")
    b.add_argument("--confirm-seed", metavar="SEED", type=seed, default=57,
                   help="staff-gate: seed of the fresh rooms (>= 0, neither --seed nor --tune-seed)")
    b.add_argument("--data", help="staff-gate: speech corpora folder (default ../shared/data/speech)")
    b.add_argument("--out", type=Path, default=Path("bench-out"), help="folder for JSON (and PNG) results")
    b.add_argument("--markdown", type=Path, help="also write the Markdown report here (e.g. docs/bench/pipeline.md)")
    b.set_defaults(func=_bench)
    k = sub.add_parser("soak", help="run the real service on looping demo media and sample RSS/threads/fps")
    k.add_argument("--minutes", type=float, default=60.0)
    k.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    k.add_argument("--out", type=Path, default=Path("soak-out"), help="folder for samples.json (and PNG)")
    k.add_argument("--markdown", type=Path, help="also write the Markdown report here (e.g. docs/bench/soak.md)")
    k.set_defaults(func=_soak)
