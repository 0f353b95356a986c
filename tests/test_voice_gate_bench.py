"""Issue 23, item 4: the staff-gate benchmark on a simulated counter with corpus speech, and what the report says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.bench.rooms import SPEECH_DIR
from edge.config import load_config
from edge.privacy.report import build_report, measured_gate, to_markdown

EXAMPLE = Path(__file__).resolve().parents[1] / "deploy" / "kiosk.example.toml"


def test_one_simulated_room_through_every_gate(tmp_path: Path) -> None:
    pytest.importorskip("pyroomacoustics", reason="the staff-gate benchmark needs the sim extra (pyroomacoustics)")
    if not (SPEECH_DIR / "ravdess" / "MANIFEST.csv").is_file():
        pytest.skip(f"research speech corpora not staged at {SPEECH_DIR} (see ../shared/data/README.md)")
    from edge.bench.staff_gate import run
    from edge.bench.staff_gate_page import markdown

    res = run(rooms=1, seed=7, tune_rooms=1, tune_seed=8)
    s = res["summary"]
    assert s["none"]["staff_windows"] >= 10 and s["none"]["customer_windows"] >= 10
    assert s["none"]["staff_leak"]["share"] >= 0.8, "without a gate the staff's speech reaches the model"
    assert s["none"]["overlap_dropped"]["k"] == 0
    for g in ("channel", "direction-2mic", "direction-4mic"):
        assert s[g]["staff_leak"]["share"] <= 0.1, (g, s[g]["staff_leak"])
        assert s[g]["customer_kept"]["share"] >= 0.5, (g, s[g]["customer_kept"])
        assert s[g]["overlap_dropped"]["share"] >= 0.5, (g, s[g]["overlap_dropped"])
        assert s[g]["sweep_agrees"], f"{g}: the sweep's default variant judged windows unlike the gate"
    choice = res["tuning"]["choice"]
    assert res["before"]["channel"]["verdicts"]
    if choice["feasible"]:  # a pick is one of the swept settings, for both gate families
        from edge.bench import staff_gate_sweep as sw

        assert choice["max_staff_share"] in sw.STAFF_SHARES and choice["min_customer_share"] in sw.CUSTOMER_SHARES
        assert set(choice["variants"]) == {"channel", "direction"}
    else:
        assert set(choice) == {"feasible"}
    page = markdown(res, "edge-emotion bench staff-gate --rooms 1", "test machine", "2026-01-01")
    assert "| `direction-4mic` |" in page and "Command: `edge-emotion bench staff-gate --rooms 1`" in page
    assert "## Why windows are dropped" in page and "`privacy.staff_voice_max_share`:" in page


def test_staff_gate_options_default_to_the_benchmark_and_refuse_bad_counts(capsys: pytest.CaptureFixture[str]) -> None:
    from edge.bench import staff_gate as sg
    from edge.cli import _parser

    args = _parser().parse_args(["bench", "staff-gate"])
    assert (args.rooms, args.seed) == (24, 23)
    assert (args.tune_rooms, args.tune_seed) == (sg.TUNE_ROOMS, sg.TUNE_SEED)
    assert (args.confirm_rooms, args.confirm_seed) == (sg.CONFIRM_ROOMS, sg.CONFIRM_SEED)
    args = _parser().parse_args(["bench", "staff-gate", "--tune-rooms", "0", "--confirm-rooms", "1",
                                 "--tune-seed", "9"])
    assert (args.tune_rooms, args.confirm_rooms, args.tune_seed) == (0, 1, 9)
    for bad, why in ((["--rooms", "0"], "expected 1..1000"), (["--tune-rooms", "-1"], "expected 0..1000"),
                     (["--confirm-rooms", "1001"], "expected 0..1000"), (["--confirm-seed", "-3"], "expected >= 0"),
                     (["--tune-rooms", "two"], "'two' is not a whole number")):
        with pytest.raises(SystemExit) as exc:
            _parser().parse_args(["bench", "staff-gate", *bad])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert f"argument {bad[0]}: " in err and why in err, (bad, err)


def test_privacy_report_states_the_gate_and_its_measured_leak_rate() -> None:
    measured = json.loads((Path(__file__).resolve().parents[1] / "edge" / "voicegate" / "measured.json").read_text())
    cfg = load_config(EXAMPLE)  # eu, a 4-mic direction gate
    md = to_markdown(build_report(cfg, None))
    leak = measured["gates"]["direction-4mic"]["staff_leak"]
    assert "Staff voice, gate `direction`: a 4-microphone array" in md
    assert f"{100 * leak['share']:.1f} % ({leak['k']}/{leak['n']}" in md and "staff-only speech windows reached" in md
    assert measured_gate("direction-3mic") == " Its leak rate has not been measured for this set-up."


def test_bench_options_refuse_values_that_cannot_run(capsys: pytest.CaptureFixture[str]) -> None:
    """Seconds, minutes, gains and counts are checked by the parser, before a benchmark runs for an hour."""
    from edge.cli import _parser

    for bad, why in ((["--seconds", "0"], "must be a number above 0"), (["--seconds", "-1"], "above 0"),
                     (["--minutes", "inf"], "above 0"), (["--gains", "1,x"], "'x' is not a number"),
                     (["--gains", "1,0"], "'0' must be a number above 0"), (["--count", "0"], "expected >= 1"),
                     (["--silent-visits", "-2"], "expected >= 0")):
        with pytest.raises(SystemExit) as exc:
            _parser().parse_args(["bench", *bad])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert f"argument {bad[0]}: " in err and why in err, (bad, err)
    assert _parser().parse_args(["bench", "alerts", "--gains", "1,0.5,2"]).gains == "1,0.5,2"
