"""Session 7 audit of the join rules (``medmm.align.join``): messy metadata, ties, tolerance edges,
row-order and date-shift invariance, incremental re-runs, and cost on a patient with many items."""

from __future__ import annotations

import math
import random
import time
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medmm.align.join import join_items, parse_duration
from medmm.align.records import MODALITIES
from medmm.pseudonym import Pseudonymizer
from medmm.signals.align import epoch_seconds

H = 3600.0


def _items(rows: list[tuple[str, str, str, str | None, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["modality", "item_id", "patient_id", "study_id", "time"])


def _by_item(rec: pd.DataFrame) -> dict[str, str]:
    """item id -> study id of the record holding it."""
    out = {}
    for r in rec.to_dict(orient="records"):
        for m in MODALITIES:
            if r[f"has_{m}"]:
                out[r[f"{m}_id"]] = r["study_id"]
    return out


def test_equidistant_item_goes_to_the_smaller_study_id_in_any_row_order() -> None:
    rows = [
        ("image", "v-b", "p", "stu-b", 0.0),
        ("image", "v-a", "p", "stu-a", 2 * H),
        ("signal", "w", "p", None, 1 * H),  # exactly between the two studies
    ]
    for perm in ([0, 1, 2], [2, 1, 0], [1, 2, 0]):
        rec = join_items(_items([rows[k] for k in perm]), 24 * H)
        assert _by_item(rec)["w"] == "stu-a"


def test_several_studies_of_a_patient_on_the_same_day() -> None:
    rec = join_items(
        _items(
            [
                ("image", "ct", "p", "stu-ct", 8 * H),
                ("image", "xr", "p", "stu-xr", 8 * H),  # same time: the tie goes to the smaller id
                ("image", "mr", "p", "stu-mr", 15 * H),
                ("signal", "w1", "p", None, 8.5 * H),
                ("signal", "w2", "p", None, 14 * H),
                ("report", "r1", "p", "stu-mr", math.nan),
            ]
        ),
        24 * H,
    )
    where = _by_item(rec)
    assert where == {
        "ct": "stu-ct",
        "xr": "stu-xr",
        "mr": "stu-mr",
        "w1": "stu-ct",
        "w2": "stu-mr",
        "r1": "stu-mr",
    }
    assert len(rec) == 3 and rec["record_id"].is_unique


def test_undated_studies_and_loose_items() -> None:
    rec = join_items(
        _items(
            [
                ("image", "v1", "p", "s1", math.nan),  # StudyDate missing
                ("image", "v2", "p", "s2", math.nan),
                ("report", "r", "p", None, math.nan),  # no study id, no date: two candidates
                ("signal", "w", "p", None, 5 * H),  # timed, but no study has a time
                ("image", "v3", "q", "s3", math.nan),
                ("signal", "wq", "q", None, 5 * H),  # q has one study: joins it
            ]
        ),
        24 * H,
    )
    where = _by_item(rec)
    assert where["v1"] == "s1" and where["v2"] == "s2" and where["wq"] == "s3"
    assert where["r"] not in {"s1", "s2"} and where["w"] not in {"s1", "s2"}  # never guessed
    assert len(rec) == 5


@pytest.mark.parametrize(("window", "joined"), [("36h", True), ("1.5d", True), ("129599", False)])
def test_tolerance_is_inclusive(window: str, joined: bool) -> None:
    items = _items([("image", "v", "p", "s", 0.0), ("signal", "w", "p", None, 36 * H)])
    assert (len(join_items(items, parse_duration(window))) == 1) is joined


def test_window_error_says_how_to_fix_it() -> None:
    from medmm.errors import ConfigError

    with pytest.raises(ConfigError, match=r"--window: bad time tolerance '36 hours'.*Fix: use e\.g\. 90s"):
        parse_duration("36 hours")


def test_empty_study_id_means_no_study() -> None:
    rec = join_items(_items([("image", "v", "p", "s", 0.0), ("report", "r", "p", "", math.nan)]), 24 * H)
    assert len(rec) == 1 and rec["report_id"].tolist() == ["r"]


def test_dates_shifted_per_patient_keep_the_joins() -> None:
    """Every stage shifts a patient's dates by the keyed shift of the same raw patient id
    (``Pseudonymizer.shift_datetime``), so intervals, and hence the joins, are kept."""
    pz = Pseudonymizer(b"k" * 32)
    raw = {"MRN-1": datetime(2021, 3, 4, 9, 30), "MRN-2": datetime(2021, 3, 4, 9, 30)}
    rows = []
    for mrn, when in raw.items():
        pid = pz.id(mrn, "patient")
        ct = epoch_seconds(pz.shift_datetime(mrn, when))
        ecg = epoch_seconds(pz.shift_datetime(mrn, when.replace(hour=11)))  # 1.5 h after the CT
        rows += [("image", f"v-{mrn}", pid, f"s-{mrn}", ct), ("signal", f"w-{mrn}", pid, None, ecg)]
    assert pz.date_shift_days("MRN-1") != pz.date_shift_days("MRN-2")
    rec = join_items(_items(rows), parse_duration("2h"))
    assert len(rec) == 2 and rec["has_signal"].all()
    assert not join_items(_items(rows), parse_duration("1h"))["has_signal"].all()


def test_incremental_rerun_keeps_record_ids() -> None:
    night1 = [
        ("image", "v1", "p", "s1", 0.0),
        ("report", "r1", "p", "s1", math.nan),
        ("signal", "w1", "p", None, 0.5 * H),
        ("signal", "w9", "p", None, 30 * 24 * H),  # far from any study: a signal-only record
        ("image", "v2", "q", "s2", 0.0),
    ]
    night2 = [
        *night1,
        ("image", "v3", "p", "s3", 10 * 24 * H),  # a new study of p
        ("signal", "w10", "p", None, 30 * 24 * H + 60),  # later in the same recording
        ("image", "v4", "z", "s4", 0.0),  # a new patient
    ]
    a = join_items(_items(night1), 24 * H).set_index("record_id")
    b = join_items(_items(night2), 24 * H).set_index("record_id")
    assert set(a.index) <= set(b.index)
    assert b.loc[a.index, ["image_id", "report_id"]].equals(a[["image_id", "report_id"]])
    assert len(b) == len(a) + 2


def test_a_patient_with_many_studies_and_windows_joins_in_linear_time() -> None:
    """20,000 loose windows against 2,000 studies of one patient: each window finds its nearest study
    by bisection (was: a scan of every study per window, ~40 million steps, tens of seconds)."""
    rng = np.random.default_rng(0)
    n_st, n_w = 2000, 20000
    st_t = np.sort(rng.uniform(0, 5e7, n_st))
    rows: list[tuple[str, str, str, str | None, float]] = [
        ("image", f"v{i}", "p", f"s{i:05d}", float(t)) for i, t in enumerate(st_t)
    ]
    rows += [("signal", f"w{i}", "p", None, float(t)) for i, t in enumerate(rng.uniform(0, 5e7, n_w))]
    items = _items(rows)
    t0 = time.process_time()
    rec = join_items(items, 6 * H)
    assert time.process_time() - t0 < 3.0
    # the nearest study is still the one chosen
    where = _by_item(rec)
    w_t = items.loc[items["modality"] == "signal", ["item_id", "time"]].head(200)
    for wid, t in zip(w_t["item_id"], w_t["time"], strict=True):
        j = int(np.argmin(np.abs(st_t - t)))
        if abs(st_t[j] - t) <= 6 * H and where.get(wid, "").startswith("s"):
            assert where[wid] == f"s{j:05d}"


item = st.tuples(
    st.sampled_from(MODALITIES),
    st.sampled_from(["p1", "p2"]),
    st.one_of(st.none(), st.sampled_from(["s1", "s2", "s3"])),
    st.one_of(st.just(math.nan), st.integers(0, 48).map(lambda h: h * 1800.0)),  # many exact ties
)


def _frame(rows: list[tuple]) -> pd.DataFrame:
    return _items([(m, f"{m}-{i}", p, s, t) for i, (m, p, s, t) in enumerate(rows)])


@settings(max_examples=120, deadline=None)
@given(st.lists(item, min_size=1, max_size=25), st.integers(0, 30).map(lambda h: h * 1800.0), st.randoms())
def test_rows_order_and_per_patient_shifts_do_not_change_records(
    rows: list[tuple], tol: float, rnd: random.Random
) -> None:
    items = _frame(rows)
    base = join_items(items, tol)
    perm = list(range(len(items)))
    rnd.shuffle(perm)
    assert join_items(items.iloc[perm], tol).equals(base)
    shift = {"p1": -86400.0 * rnd.randint(1, 3650), "p2": -86400.0 * rnd.randint(1, 3650)}
    shifted = items.assign(time=items["time"] + items["patient_id"].map(shift))
    cols = [c for c in base.columns if c != "study_time"]
    assert join_items(shifted, tol)[cols].equals(base[cols])
    # rule 2: a timed item without study id that lies within tol of a timed study of its patient joins
    # the nearest one (ties: the smaller study id): it is that record's item of its modality, or
    # another item of that modality was preferred there
    where = _by_item(base)
    has = {(r["patient_id"], r["study_id"]): r for r in base.to_dict(orient="records")}
    st = items[items["study_id"].notna()].groupby(["patient_id", "study_id"], as_index=False)["time"].min()
    studies = list(zip(st["patient_id"], st["study_id"], st["time"], strict=True))
    for r in items[items["study_id"].isna() & items["time"].notna()].to_dict(orient="records"):
        cands = [(abs(t - r["time"]), s) for p, s, t in studies if p == r["patient_id"] and t == t]
        if cands and min(cands)[0] <= tol:
            nearest = min(cands)[1]
            assert has[(r["patient_id"], nearest)][f"has_{r['modality']}"]
            assert where.get(str(r["item_id"]), nearest) == nearest
