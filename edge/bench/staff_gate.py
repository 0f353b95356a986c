"""``edge-emotion bench staff-gate``: how much staff speech reaches the voice model through each staff-voice gate.

Simulated counter rooms (``rooms.py``) with corpus speech: 2 s windows every 0.25 s, as the service takes them, go
through each gate at its defaults and then the VAD the voice model sits behind. Per gate: the share of staff-only
speech windows that reach the voice model (leak), of customer-only windows the gate keeps, and of overlapping windows
it drops, why windows were dropped, CPU per window. The direction gates' sectors come from the calibration procedure
run on each room. The same windows are judged under every threshold and variant of the sweep
(``staff_gate_sweep.py``), on these test rooms and on tuning rooms of another seed, where the operating point (the
defaults) is chosen. Here: the runs, the JSON and the command; one room through the gates in
``staff_gate_eval.py``, the figures and intervals in ``staff_gate_stats.py``, the page in ``staff_gate_page.py``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.bench import staff_gate_sweep as sw
from edge.bench.common import machine
from edge.bench.rooms import SPEECH_DIR, simulate, speakers
from edge.bench.staff_gate_eval import GATES, default_variants, defaults, evaluate
from edge.bench.staff_gate_page import markdown
from edge.bench.staff_gate_stats import FIGS, point, summarise

log = logging.getLogger(__name__)

TUNE_SEED, TUNE_ROOMS = 101, 48  # the tuning rooms the operating point is chosen on (never the test rooms)
CONFIRM_SEED, CONFIRM_ROOMS = 57, 24  # fresh rooms, run once the defaults were fixed (the test rooms had been seen)
# The gate as it was before smoothing (issue 23, item 4): each frame alone; the sweep's variant of it.
BEFORE = {"channel": sw.key(margin_db=3.0, span=0), "direction": sw.key(span=0, min_coherence=0.15,
                                                                          sector_margin_deg=15.0)}
BEFORE_SHARES = (0.1, 0.5)
MEASURED = Path(__file__).resolve().parents[1] / "voicegate" / "measured.json"  # read by the privacy report


def _run_set(rooms: int, seed: int, pool: dict[str, list[Path]], d: dict[str, Any], label: str,
             sweep: bool = True) -> tuple[list[dict[str, Any]], dict[str, list[sw.GateWindows]]]:
    per_room: list[dict[str, Any]] = []
    sweeps: dict[str, list[sw.GateWindows]] = {}
    for i in range(rooms):
        t0 = time.monotonic()
        room = simulate(seed * 1000 + i, pool)
        counts, sw_room = evaluate(room, d, sweep)
        per_room.append({"seed": room.seed, "rt60_s": round(room.rt60_s, 3), "gates": counts})
        for g, gw in sw_room.items():
            sweeps.setdefault(g, []).append(gw)
        log.info("%s room %d/%d: RT60 %.2f s, %.1f s", label, i + 1, rooms, room.rt60_s, time.monotonic() - t0)
    return per_room, sweeps


def run(rooms: int, seed: int, data: Path = SPEECH_DIR, tune_rooms: int = 0, tune_seed: int = TUNE_SEED,
        confirm_rooms: int = 0, confirm_seed: int = CONFIRM_SEED) -> dict[str, Any]:
    """Simulate ``rooms`` test counters (and ``tune_rooms`` tuning ones, ``confirm_rooms`` fresh ones for the
    defaults only) and evaluate every gate and variant."""
    pool = speakers(data)
    if len(pool) < 2:
        raise RuntimeError(f"no speech corpora under {data} (../shared/data/speech): the benchmark needs them")
    seeds = [seed] + [tune_seed] * bool(tune_rooms) + [confirm_seed] * bool(confirm_rooms)
    if len(set(seeds)) < len(seeds):
        raise RuntimeError("the tuning and confirmation rooms need seeds of their own")
    d = defaults()
    variants = default_variants(d)
    if variants["channel"] not in sw.channel_keys() or variants["direction"] not in sw.direction_keys():
        raise RuntimeError(f"the defaults {variants} are not in the sweep's grid (staff_gate_sweep.py)")
    per_room, sweeps = _run_set(rooms, seed, pool, d, "test")
    bands = {"RT60 < 0.6 s": [r for r in per_room if r["rt60_s"] < 0.6],
             "RT60 >= 0.6 s": [r for r in per_room if r["rt60_s"] >= 0.6]}
    res: dict[str, Any] = {
        "defaults": d, "rooms": per_room, "summary": summarise(per_room),
        "by_rt60": {k: summarise(v) for k, v in bands.items() if v},
        "before": point(sweeps, BEFORE, BEFORE_SHARES),
        "sweep": {"seed": seed, "rooms": rooms, "table": sw.table(sweeps)}}
    if tune_rooms:
        t_rooms, t_sweeps = _run_set(tune_rooms, tune_seed, pool, d, "tuning")
        t_table = sw.table(t_sweeps)
        shares = (d["max_staff_share"], d["min_customer_share"])
        res["tuning"] = {"seed": tune_seed, "rooms": tune_rooms, "rt60_s": [r["rt60_s"] for r in t_rooms],
                         "table": t_table, "defaults": point(t_sweeps, variants, shares),
                         "before": point(t_sweeps, BEFORE, BEFORE_SHARES),
                         "choice": sw.choose(t_table, variants, shares),
                         "choice_with_thresholds": sw.choose(t_table, variants, shares, tune_config=True)}
    if confirm_rooms:
        c_rooms, _ = _run_set(confirm_rooms, confirm_seed, pool, d, "confirmation", sweep=False)
        res["confirmation"] = {"seed": confirm_seed, "rooms": confirm_rooms, "rt60_s": [r["rt60_s"] for r in c_rooms],
                               "summary": summarise(c_rooms)}
    return res


def write_json(out: Path, res: dict[str, Any], head: dict[str, Any]) -> None:
    """staff_gate.json (everything but the sweep's full grids) and staff_gate_sweep.json (the grids, compact)."""
    grids = {"test": res["sweep"]["table"], **({"tuning": res["tuning"]["table"]} if "tuning" in res else {})}
    lean = {**res, "sweep": {k: v for k, v in res["sweep"].items() if k != "table"}}
    if "tuning" in res:
        lean["tuning"] = {k: v for k, v in res["tuning"].items() if k != "table"}
    (out / "staff_gate.json").write_text(json.dumps({**head, **lean}, indent=1))
    (out / "staff_gate_sweep.json").write_text(json.dumps({**head, "grids": grids}, separators=(",", ":")))


def cli(args: argparse.Namespace) -> int:
    """``edge-emotion bench staff-gate``: run, print the summary, write JSON (and Markdown, measured.json)."""
    try:
        import pyroomacoustics  # noqa: F401
    except ImportError:
        print("error: the staff-gate benchmark needs pyroomacoustics: pip install -e .[sim]", file=sys.stderr)
        return 2
    data = Path(args.data) if args.data else SPEECH_DIR
    try:
        res = run(args.rooms, args.seed, data, args.tune_rooms, args.tune_seed, args.confirm_rooms, args.confirm_seed)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    extra = (("tune-rooms", args.tune_rooms, TUNE_ROOMS), ("tune-seed", args.tune_seed, TUNE_SEED),
             ("confirm-rooms", args.confirm_rooms, CONFIRM_ROOMS), ("confirm-seed", args.confirm_seed, CONFIRM_SEED))
    command = "edge-emotion bench staff-gate" + f" --rooms {args.rooms} --seed {args.seed}" + "".join(
        f" --{flag} {value}" for flag, value, default in extra if value != default) + (
        f" --out {args.out}" if Path(args.out) != Path("bench-out") else "") + (
        f" --markdown {args.markdown}" if args.markdown else "")
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    host = _machine()
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out, res, {"command": command, "date": date, "machine": host})
    print(json.dumps({g: {k: res["summary"][g][k] for k in FIGS} for g in GATES}, indent=1))
    if args.markdown:
        args.markdown.write_text(markdown(res, command, host, date), encoding="utf-8")
        MEASURED.write_text(json.dumps({"command": command, "date": date, "rooms": args.rooms,
                                        "page": "docs/bench/staff_gate.md", "defaults": res["defaults"], "gates": {
                                            g: {k: res["summary"][g][k] for k in FIGS} for g in GATES}},
                                       indent=1) + "\n", encoding="utf-8")
    return 0


def _machine() -> str:
    """One line for the page header from the benches' shared machine description."""
    m = machine()
    return f"{m['cpu'] or m['machine']}, {m['usable_cores']} cores, Python {m['python']}"
