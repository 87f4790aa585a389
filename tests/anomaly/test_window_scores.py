"""Window-level anomaly scores on synthetic beat tables: assignment rule and every status's edge case."""

from __future__ import annotations

import typing

import numpy as np
import pandas as pd
import pytest

from medmm.anomaly.records import WindowAnomalyRow
from medmm.anomaly.windows import (
    FLAG_STATUSES,
    WINDOW_STATUSES,
    assign_beats,
    score_windows,
    window_spans,
)
from medmm.schemas import validate_frame


def _windows(n: int = 3, fs: float = 250.0, record: str = "r", channel: str = "II", **cols) -> pd.DataFrame:
    """``n`` tiled 10 s windows at ``fs`` (windows.parquet columns), clean unless ``cols`` say otherwise."""
    length = int(10 * fs)
    w = pd.DataFrame(
        {
            "record": record,
            "patient_id": "pat-x",
            "channel": channel,
            "window": np.arange(n),
            "path": f"windows/{record}/{channel}.npy",
            "row": np.arange(n),
            "fs": fs,
            "start_sample": np.arange(n) * length,
            "stop_sample": (np.arange(n) + 1) * length,
            "pad_before": 0,
            "pad_after": 0,
            "start_s": np.arange(n) * 10.0,
            "start_abs_s": None,
            "anchor": "",
            "anchor_s": None,
            "missing": 0.0,
            "flat": 0.0,
            "saturated": 0.0,
            "wander": 0.0,
            "noise": 0.0,
            "quality": 0.9,
        }
    )
    for k, v in cols.items():
        w[k] = v
    return w


def _beats(
    times: list[float], fs: float = 360.0, record: str = "r", channel: str = "II", **cols
) -> pd.DataFrame:
    """Scored beats (anomalies.parquet columns) at ``times`` (s), native rate ``fs``; clean, unflagged."""
    t = np.asarray(times, dtype=float)
    b = pd.DataFrame(
        {
            "record": record,
            "patient_id": "pat-x",
            "channel": channel,
            "sample": np.round(t * fs).astype(np.int64),
            "time_s": t,
            "score": 1.0,
            "flag": False,
            "quality": 1.0,
        }
    )
    for k, v in cols.items():
        b[k] = v
    return b


def _regular(a: float, b: float, rr: float = 0.8) -> list[float]:
    return list(np.arange(a + 0.3, b, rr))


def test_spans_use_the_window_rate_and_exclude_padding() -> None:
    w = _windows(1, fs=125.0)
    w.loc[0, ["start_sample", "stop_sample", "pad_before"]] = [0, 1000, 250]  # anchored at the record start
    start, stop = window_spans(w)
    assert start.tolist() == [0.0] and stop.tolist() == [8.0]  # 1000 samples at 125 Hz, padding left out


def test_beat_at_a_window_edge_belongs_to_the_later_window_only() -> None:
    # 10.0 s exactly: sample 3600 at 360 Hz vs window 1's start_sample 2500 at 250 Hz
    pairs = assign_beats(_beats([9.99, 10.0]), _windows(2))
    assert pairs.values.tolist() == [[0, 0], [1, 1]]


def test_overlapping_windows_each_count_the_beat_and_beats_outside_count_nowhere() -> None:
    tiled = _windows(2)
    anchored = _windows(1, anchor="alarm", window=0, row=0, path="windows/r/II.anchored.npy")
    anchored.loc[0, ["start_sample", "stop_sample"]] = [1250, 3750]  # 5-15 s, over both tiled windows
    w = pd.concat([tiled, anchored], ignore_index=True)
    b = _beats([2.0, 7.0, 12.0, 25.0])  # 25 s: after the last whole tiled window
    pairs = assign_beats(b, w)
    per_window = pairs.groupby("window")["beat"].apply(list).to_dict()
    assert per_window == {0: [0, 1], 1: [2], 2: [1, 2]}
    assert 3 not in set(pairs["beat"])
    out = score_windows(w, b)
    assert out["n_beats"].tolist() == [2, 1, 2]
    # the tiled windows count every beat once, plus the beat in no window: the beats table
    assert out.loc[out["anchor"] == "", "n_beats"].sum() + 1 == len(b)


def test_beats_of_another_channel_or_record_never_mix() -> None:
    w = pd.concat([_windows(1), _windows(1, channel="V1"), _windows(1, record="s")], ignore_index=True)
    b = pd.concat([_beats([1.0, 2.0]), _beats([3.0], record="s")], ignore_index=True)
    assert score_windows(w, b)["n_beats"].tolist() == [2, 0, 1]


def test_window_score_is_the_largest_beat_score_and_a_flagged_beat_flags_it() -> None:
    t = _regular(0, 20)
    b = _beats(t)
    b.loc[3, ["score", "flag"]] = [15.0, True]
    b.loc[4, "score"] = 9.0
    b.loc[15, "score"] = 11.0  # window 1: high but not flagged
    out = score_windows(_windows(2), b)
    assert out["score"].tolist() == [15.0, 11.0]
    assert out["status"].tolist() == ["anomalous", "normal"]
    assert out["flag"].tolist() == [True, False]
    assert out["n_flagged"].tolist() == [1, 0]


def test_no_beats_in_a_readable_window_is_asystole_and_in_a_flat_one_unreadable() -> None:
    w = _windows(3, flat=[0.0, 0.0, 0.95])
    b = _beats(_regular(0, 10))  # beats in window 0 only; the rest of the lead has none
    out = score_windows(w, b)
    assert out["status"].tolist() == ["normal", "asystole", "unreadable"]
    assert out["flag"].tolist() == [False, True, False]
    assert np.isnan(out.loc[1, "score"]) and out.loc[1, "n_beats"] == 0
    assert out.loc[1, "longest_gap_s"] >= 10.0


def test_padding_is_not_missing_signal() -> None:
    """An anchored window half NaN padding at the record start, no beat in its 5 s of signal: asystole."""
    w = _windows(1)
    w.loc[0, ["start_sample", "stop_sample", "pad_before", "missing", "anchor"]] = [0, 1250, 1250, 0.5, "a"]
    out = score_windows(w, _beats([20.0]))
    assert out["signal_present"].tolist() == [1.0]
    assert out["status"].tolist() == ["asystole"]


def test_beats_all_of_quality_zero_are_unreadable_not_normal() -> None:
    b = _beats(_regular(0, 20))
    b.loc[b["time_s"] < 10, "quality"] = 0.0  # lead off / clipped: the model weighted them 0
    b.loc[b["time_s"] < 10, "score"] = 0.0
    out = score_windows(_windows(2), b)
    assert out["status"].tolist() == ["unreadable", "normal"]
    assert out["n_readable"].iloc[0] == 0 and out["mean_quality"].iloc[0] == 0.0
    assert not out["flag"].iloc[0]


def test_channels_without_beat_detection_and_unscored_records_are_not_scored() -> None:
    w = pd.concat([_windows(1), _windows(1, channel="ABP"), _windows(1, record="gone")], ignore_index=True)
    scored = _beats(_regular(0, 10))
    beats = pd.concat([scored, _beats(_regular(0, 10), record="gone")], ignore_index=True)
    out = score_windows(w, scored, beats, beat_channels={("r", "II"), ("gone", "II")})
    assert out["status"].tolist() == ["normal", "not_scored", "not_scored"]
    assert out["n_beats"].tolist() == [len(scored), 0, len(scored)]  # the unscored record's beats count
    assert out["n_scored"].tolist() == [len(scored), 0, 0]
    assert np.isnan(out["score"].iloc[1:]).all() and not out["flag"].any()


def test_beat_channel_without_any_beat_is_asystole_not_skipped() -> None:
    out = score_windows(_windows(2), _beats([]), beat_channels={("r", "II")})
    assert out["status"].tolist() == ["asystole", "asystole"]


def test_pause_between_beats_in_good_windows_and_not_in_noise() -> None:
    t = _regular(0, 9) + _regular(12.2, 30)  # 8.3 s -> 12.5 s: 4.2 s without a beat over windows 0 and 1
    out = score_windows(_windows(3), _beats(t))
    assert out["status"].tolist() == ["pause", "pause", "normal"]
    assert out["flag"].tolist() == [True, True, False]
    assert out["longest_gap_s"].tolist()[:2] == pytest.approx([4.2, 4.2])
    # the same stretch where the signals stage rated window 1 poor (wander, noise): a missed detection
    noisy = score_windows(_windows(3, quality=[0.9, 0.2, 0.9]), _beats(t))
    assert noisy["status"].tolist() == ["normal", "normal", "normal"]
    # 2.4 s is no pause
    short = score_windows(_windows(3), _beats(_regular(0, 9) + _regular(10.4, 30)))
    assert (short["status"] == "normal").all()


def test_a_pause_or_silence_on_one_lead_is_not_one_when_another_lead_has_beats() -> None:
    """Two leads: a stretch without beats on II holds a beat on V (a beat II missed), so no pause; the
    same stretch on both leads (beats 10 ms apart at its ends) is one."""
    w = pd.concat([_windows(3), _windows(3, channel="V", path="windows/r/V.npy")], ignore_index=True)
    both = _regular(0, 9) + _regular(12.2, 30)
    v = _beats([*both, 10.4], channel="V")  # V sees a beat at 10.4 s inside II's 8.3 -> 12.5 s stretch
    out = score_windows(w, pd.concat([_beats(both), v], ignore_index=True))
    assert out["status"].tolist() == ["normal"] * 6
    v_late = _beats([x + 0.01 for x in both], channel="V")
    out = score_windows(w, pd.concat([_beats(both), v_late], ignore_index=True))
    assert out["status"].tolist() == ["pause", "pause", "normal"] * 2
    # no beat at all on II in window 2 while V has beats there: II's lead, not the heart
    ii = _beats(_regular(0, 20))
    out = score_windows(w, pd.concat([ii, _beats(_regular(0, 30), channel="V")], ignore_index=True))
    assert out["status"].tolist()[:3] == ["normal", "normal", "unreadable"]
    assert not out["flag"].iloc[2]
    out = score_windows(w, pd.concat([ii, _beats(_regular(0, 20), channel="V")], ignore_index=True))
    assert out["status"].tolist() == ["normal", "normal", "asystole"] * 2


def test_every_window_once_in_order_and_schema_valid() -> None:
    w = pd.concat([_windows(4), _windows(2, channel="ABP")], ignore_index=True).iloc[::-1]
    out = score_windows(w, _beats(_regular(0, 40)))
    assert (
        out[["record", "channel", "window"]].values.tolist()
        == w[["record", "channel", "window"]].values.tolist()
    )
    assert validate_frame(out, "window_anomalies") == len(w)
    assert list(out.columns) == list(WindowAnomalyRow.model_fields)


def test_status_vocabulary_matches_the_record_type() -> None:
    literal = typing.get_args(WindowAnomalyRow.model_fields["status"].annotation)
    assert set(literal) == set(WINDOW_STATUSES) and set(FLAG_STATUSES) < set(WINDOW_STATUSES)
