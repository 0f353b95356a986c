"""Issue 23: each speech frame judged with its speech neighbours (reverberation misleads single 32 ms frames)."""

from __future__ import annotations

import numpy as np
import pytest
from gate_signals import RATE, array_signal, babble

from edge.bench import staff_gate_sweep as sw
from edge.voicegate.doa import FRAME, DirectionEstimator, frame_power, neighbour_sum, smooth
from edge.voicegate.gate import ChannelGate, DirectionGate, channel_flags, judge

FOUR = np.array([[0.032, 0.0], [0.0, 0.032], [-0.032, 0.0], [0.0, -0.032]])


def test_neighbour_sum_counts_only_the_given_frames_within_the_span() -> None:
    ids = np.array([3, 4, 5, 9, 11])
    v = np.array([1.0, 10.0, 100.0, 1000.0, 10000.0])
    assert neighbour_sum(v, ids, 0).tolist() == v.tolist()
    # 9 and 11 are 2 apart: neighbours at span 2, not at span 1; frame 7 (a pause) bridges nothing
    assert neighbour_sum(v, ids, 1).tolist() == [11.0, 111.0, 110.0, 1000.0, 10000.0]
    assert neighbour_sum(v, ids, 2).tolist() == [111.0, 111.0, 111.0, 11000.0, 11000.0]
    two = np.stack([v, 2 * v], axis=1)
    assert neighbour_sum(two, ids, 1)[:, 1].tolist() == [22.0, 222.0, 220.0, 2000.0, 20000.0]


def test_smoothing_weighs_neighbours_by_power() -> None:
    resp = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], np.float32)  # the middle frame points elsewhere
    ids = np.arange(3)
    assert np.array_equal(smooth(resp, np.ones(3), ids, 0), resp)
    even = smooth(resp, np.ones(3), ids, 1)
    assert np.allclose(even[1], [2 / 3, 1 / 3])  # outvoted by its two neighbours
    loud = smooth(resp, np.array([1.0, 100.0, 1.0]), ids, 1)
    assert np.argmax(loud[1]) == 1 and np.argmax(loud[0]) == 1  # a loud frame carries its quiet neighbours


def test_frame_power_per_channel() -> None:
    x = np.zeros((2, FRAME, 2), np.float32)
    x[0, :, 0], x[1, :, 1] = 0.5, 2.0
    assert np.allclose(frame_power(x), [[0.25, 0.0], [0.0, 4.0]])


def test_channel_flags_one_loud_frame_among_the_customers_is_not_the_staffs() -> None:
    # speech frames 0..9: the customer's mic (channel 1) 6 dB louder, but frame 4 has the staff mic 4 dB louder
    power = np.tile([1.0, 4.0], (10, 1))
    power[4] = [2.5, 1.0]
    ids = np.arange(10)
    staff, customer = channel_flags(power, ids, 0, 3.0, 0)
    assert staff.tolist() == [i == 4 for i in range(10)] and customer.sum() == 9
    staff, customer = channel_flags(power, ids, 0, 3.0, 2)
    assert not staff.any() and customer.all()
    # the staff talking over several frames stays the staff's
    power[3:7] = [8.0, 1.0]
    staff, _ = channel_flags(power, ids, 0, 3.0, 2)
    assert staff[3:7].sum() >= 2


def _spliced(pos: np.ndarray, customer_az: float, staff_az: float, every: int) -> np.ndarray:
    """2 s of one talker from ``customer_az`` whose every ``every``-th 32 ms frame comes from ``staff_az`` instead,
    at a quarter of the level (a reflection off the wall behind the staff)."""
    src = babble(62 * FRAME / RATE, 180.0, 4)  # whole frames: the gate's frames are the splice's
    direct, mirror = array_signal(src, customer_az, pos), array_signal(src, staff_az, pos)
    x = direct.copy()
    for f in range(0, src.size // FRAME, every):
        x[f * FRAME:(f + 1) * FRAME] = 0.25 * mirror[f * FRAME:(f + 1) * FRAME]
    return x + np.random.default_rng(0).normal(0, 0.002, x.shape).astype(np.float32)


def test_direction_gate_keeps_a_customer_window_with_stray_frames_from_the_staff_side() -> None:
    x = _spliced(FOUR, 270.0, 90.0, 5)
    alone = DirectionGate(FOUR.tolist(), (30.0, 150.0), (210.0, 330.0), span=0).decide(x)
    assert alone.verdict == "staff" and alone.staff_share > 0.1  # each frame alone: the strays drop the window
    d = DirectionGate(FOUR.tolist(), (30.0, 150.0), (210.0, 330.0), span=2).decide(x)
    assert d.verdict == "customer" and d.staff_share == 0.0


def test_smoothing_still_drops_the_staff_and_overlapping_speech() -> None:
    gate = DirectionGate(FOUR.tolist(), (30.0, 150.0), (210.0, 330.0), span=2)
    staff = array_signal(babble(2.0, 120.0, 1), 90.0, FOUR)
    cust = array_signal(babble(2.0, 210.0, 2), 270.0, FOUR)
    assert gate.decide(staff).verdict == "staff"
    assert gate.decide(staff + cust).verdict == "staff"
    # the staff's turn starting in the window's last 0.4 s: about a fifth of its speech frames
    late = cust.copy()
    late[-int(0.4 * RATE):] = staff[-int(0.4 * RATE):]
    assert gate.decide(late).verdict == "staff"
    ch = ChannelGate(0, span=2)
    two = np.stack([babble(2.0, 120.0, 1), 0.3 * babble(2.0, 120.0, 1)], axis=1)
    assert ch.decide(two).verdict == "staff"


def test_calibration_and_gate_share_the_smoothed_directions() -> None:
    from edge.voicegate.calibrate import directions

    est = DirectionEstimator(FOUR)
    x = _spliced(FOUR, 270.0, 90.0, 5)
    raw, smoothed = directions(x, est, span=0), directions(x, est, span=2)
    err = lambda az: np.abs((az - 270.0 + 180.0) % 360.0 - 180.0)  # noqa: E731
    assert np.mean(err(raw) > 60) > 0.1 and np.mean(err(smoothed) > 60) < 0.02


@pytest.mark.parametrize(("s", "c", "n"), [(0.0, 0.0, 0), (0.1, 0.5, 10), (0.11, 0.9, 9), (0.0, 0.49, 40)])
def test_the_sweeps_rule_is_the_gates(s: float, c: float, n: int) -> None:
    staff = np.zeros(n, bool)
    staff[: round(s * n)] = True
    cust = np.zeros(n, bool)
    cust[: round(c * n)] = True
    want = judge(staff, cust, 0.1, 0.5, np.zeros(1)).verdict
    got = sw.verdicts(np.array([[staff.mean() if n else 0.0, cust.mean() if n else 0.0, n]]), 0.1, 0.5)
    assert got[0] == want


def test_choose_takes_the_feasible_point_that_drops_the_most_overlap() -> None:
    def fig(leak: float, kept: float, ovl: float, halves: tuple[float, float] | None = None) -> dict[str, object]:
        h = halves or (kept, kept)
        return {"staff_leak": leak, "customer_kept": kept, "overlap_dropped": ovl,
                "halves": [{"staff_leak": leak, "customer_kept": k} for k in h]}

    gates = ("channel", "direction-2mic", "direction-4mic")
    tab: dict[str, dict[str, dict[str, object]]] = {g: {} for g in gates}
    ch = {v: sw.key(margin_db=m, span=s) for v, (m, s) in {"a": (3, 2), "b": (3, 1), "c": (2, 2)}.items()}
    di = {v: sw.key(span=s, min_coherence=0.15, sector_margin_deg=15) for v, s in {"a": 2, "b": 1, "c": 3}.items()}
    for ms in sw.STAFF_SHARES:
        for mc in sw.CUSTOMER_SHARES:
            here = (ms, mc) == (0.1, 0.5)
            sfx = f"|{ms:g}|{mc:g}"
            tab["channel"][ch["a"] + sfx] = fig(0.0, 0.97, 0.70)
            tab["channel"][ch["b"] + sfx] = fig(0.0, 0.96, 0.75)  # more overlap dropped: chosen
            tab["channel"][ch["c"] + sfx] = fig(0.0, 0.96, 0.90 if here else 0.95)  # margin 2: a threshold
            for g in gates[1:]:
                tab[g][di["a"] + sfx] = fig(0.0, 0.97, 0.85)
                # "b" drops more but only just keeps enough customer windows: one half of the rooms falls short
                tab[g][di["b"] + sfx] = fig(0.0, 0.951, 0.9, (0.97, 0.93))
                # "c" drops more on 2 mics but leaks on 4
                tab[g][di["c"] + sfx] = fig(0.02 if g == "direction-4mic" else 0.0, 0.97, 0.95)
            if (ms, mc) == (0.05, 0.3):  # with thresholds free: this pair drops the most with both gates
                tab["channel"][ch["c"] + sfx] = fig(0.0, 0.96, 0.99)
                for g in gates[1:]:
                    tab[g][di["a"] + sfx] = fig(0.0, 0.97, 0.9)
    default = {"channel": ch["a"], "direction": di["a"]}
    got = sw.choose(tab, default, (0.1, 0.5))
    assert got == {"feasible": True, "max_staff_share": 0.1, "min_customer_share": 0.5,
                   "variants": {"channel": ch["b"], "direction": di["a"]}, "worst_overlap_dropped": 0.75}
    free = sw.choose(tab, default, (0.1, 0.5), tune_config=True)
    assert (free["max_staff_share"], free["min_customer_share"]) == (0.05, 0.3)
    assert free["variants"] == {"channel": ch["c"], "direction": di["a"]} and free["worst_overlap_dropped"] == 0.9
    for k in tab["channel"]:
        tab["channel"][k] = fig(0.05, 1.0, 1.0)
    assert sw.choose(tab, default, (0.1, 0.5)) == {"feasible": False}
