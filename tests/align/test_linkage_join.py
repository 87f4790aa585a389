"""The report-linking rules of ``medmm.align.join`` (uid, accession, date; ties; never across patients)
and date-only study times compared as whole days."""

from __future__ import annotations

import math
import random

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from medmm.align.join import LINK_COUNTS, join_items, parse_duration
from medmm.align.records import MODALITIES

H, D = 3600.0, 86400.0
COLUMNS = ["modality", "item_id", "patient_id", "study_id", "time", "precision", "accession_id", "link_time"]


def _items(rows: list[tuple]) -> pd.DataFrame:
    """Rows ``(modality, id, patient, study, time[, precision, accession, link_time])``."""
    full = [(*r, *(None, None, math.nan)[len(r) - 5 :]) for r in rows]
    return pd.DataFrame(full, columns=COLUMNS)


def _join(rows: list[tuple], window: str = "24h", report_window: str = "3d") -> tuple[pd.DataFrame, dict]:
    counts: dict[str, int] = {}
    rec = join_items(
        _items(rows),
        parse_duration(window),
        report_window_s=parse_duration(report_window, "--report-window"),
        counts=counts,
    )
    return rec, counts


def _where(rec: pd.DataFrame, report: str) -> dict:
    return next(r for r in rec.to_dict(orient="records") if r["report_id"] == report)


TWO_STUDIES = [
    ("image", "ct", "p", "u-ct", 10 * D + 9 * H, "datetime", "acc-ct"),
    ("image", "mr", "p", "u-mr", 14 * D, "date", "acc-mr"),
]


def test_a_report_links_by_uid_then_accession_then_date() -> None:
    rec, counts = _join(
        [
            *TWO_STUDIES,
            ("report", "r-uid", "p", "u-ct", math.nan, "datetime", "acc-mr", 14 * D),  # uid wins
            ("report", "r-acc", "p", None, math.nan, "date", "acc-mr", 10 * D),  # accession beats date
            ("report", "r-date", "p", None, math.nan, "date", None, 11 * D),  # nearest: ct, 1 day
        ]
    )
    assert _where(rec, "r-uid")["study_id"] == "u-ct" and _where(rec, "r-uid")["report_link"] == "uid"
    assert _where(rec, "r-acc")["study_id"] == "u-mr" and _where(rec, "r-acc")["report_link"] == "accession"
    assert counts["report_links_uid"] == counts["report_links_accession"] == counts["report_links_date"] == 1
    # r-date also went to the CT study, but the report linked by its uid is the one the record keeps
    assert "r-date" not in set(rec["report_id"]) and set(counts) == set(LINK_COUNTS)


def test_the_date_link_is_the_nearest_study_within_the_report_window_inclusive() -> None:
    rep = ("report", "r", "p", None, math.nan, "date", None, 17 * D)  # the MR is 3 days before
    rec, counts = _join([*TWO_STUDIES, rep], report_window="3d")
    assert _where(rec, "r")["study_id"] == "u-mr" and _where(rec, "r")["report_link"] == "date"
    rec, counts = _join([*TWO_STUDIES, rep], report_window="2d")
    assert not _where(rec, "r")["has_image"] and counts["reports_unlinked"] == 1


def test_two_studies_equally_near_are_a_tie_never_a_guess() -> None:
    rec, counts = _join([*TWO_STUDIES, ("report", "r", "p", None, math.nan, "date", None, 12 * D)])
    assert not _where(rec, "r")["has_image"] and counts["report_date_ties"] == 1
    # two studies at the same time (a CT and an X-ray of one visit): a tie as well
    same = [("image", "a", "p", "u-a", 5 * H), ("image", "b", "p", "u-b", 5 * H)]
    rec, counts = _join([*same, ("report", "r", "p", None, math.nan, "datetime", None, 6 * H)])
    assert counts["report_date_ties"] == 1 and len(rec) == 3


def test_an_accession_on_two_studies_of_the_patient_is_not_linked() -> None:
    rows = [
        ("image", "a", "p", "u-a", 0.0, "datetime", "acc-1"),
        ("image", "b", "p", "u-b", 2 * D, "datetime", "acc-1"),
        ("report", "r", "p", None, math.nan, "datetime", "acc-1", 0.0),
    ]
    rec, counts = _join(rows)
    assert not _where(rec, "r")["has_image"] and counts["report_accession_ambiguous"] == 1


def test_never_linked_across_patients() -> None:
    rows = [
        ("image", "v-q", "q", "u-q", 0.0, "datetime", "acc-q"),
        ("image", "v-p", "p", "u-p", 0.0, "datetime", None),
        # p's report carries q's accession number (a wrong patient id, or a wrong accession): refused,
        # and not placed in p's study by its date either
        ("report", "r", "p", None, math.nan, "datetime", "acc-q", 0.0),
        ("report", "r2", "p2", None, math.nan, "datetime", None, 0.0),  # p2 has no study: its own
    ]
    rec, counts = _join(rows)
    assert counts["report_accession_other_patient"] == 1
    assert not _where(rec, "r")["has_image"] and not _where(rec, "r2")["has_image"]
    assert _where(rec, "r")["patient_id"] == "p"


def test_a_study_with_another_accession_is_another_exam() -> None:
    rows = [
        ("image", "v", "p", "u", 0.0, "datetime", "acc-ct"),
        ("report", "r", "p", None, math.nan, "datetime", "acc-xr", 0.0),  # same day, another exam
    ]
    rec, counts = _join(rows)
    assert not _where(rec, "r")["has_image"] and counts["report_accession_unmatched"] == 1


def test_a_report_naming_another_study_is_not_placed_by_its_date() -> None:
    rows = [("image", "v", "p", "u", 0.0), ("report", "r", "p", "u-other", math.nan, "datetime", None, 0.0)]
    rec, _ = _join(rows)
    assert _where(rec, "r")["study_id"] == "u-other" and not _where(rec, "r")["has_image"]


def test_a_date_without_a_time_of_day_is_a_whole_day_not_midnight() -> None:
    """A DICOM StudyDate without StudyTime was read as midnight: an ECG at 15:00 that day was 15 h
    away and missed a 2 h window."""
    day = 100 * D
    study = ("image", "v", "p", "u", day)
    ecg = ("signal", "w", "p", None, day + 15 * H)
    rec, _ = _join([(*study, "date"), ecg], window="2h")
    assert len(rec) == 1 and rec["has_signal"].all() and rec["study_time_precision"].tolist() == ["date"]
    rec, _ = _join([(*study, "datetime"), ecg], window="2h")
    assert len(rec) == 2  # a real midnight: 15 h away
    rec, _ = _join([(*study, "date"), ("signal", "w", "p", None, day + D + H)], window="2h")
    assert len(rec) == 2  # the next day is a day away


def test_report_window_errors_name_the_option() -> None:
    from medmm.cli import app

    res = CliRunner().invoke(app, ["align", "/nonexistent-run", "--report-window", "3 days"])
    assert res.exit_code == 2 and "--report-window: bad time tolerance '3 days'" in res.output


report_item = st.tuples(
    st.sampled_from(["p1", "p2"]),
    st.one_of(st.none(), st.sampled_from(["s1", "s2", "s9"])),
    st.one_of(st.none(), st.sampled_from(["a1", "a2", "a3"])),
    st.one_of(st.just(math.nan), st.integers(0, 12).map(lambda d: d * D / 2)),
    st.sampled_from(["date", "datetime"]),
)
image_item = st.tuples(
    st.sampled_from(["p1", "p2"]),
    st.sampled_from(["s1", "s2", "s3"]),
    st.one_of(st.none(), st.sampled_from(["a1", "a2", "a3"])),
    st.one_of(st.just(math.nan), st.integers(0, 12).map(lambda d: d * D / 2)),
    st.sampled_from(["date", "datetime"]),
)


@settings(max_examples=80, deadline=None)
@given(st.lists(image_item, max_size=8), st.lists(report_item, min_size=1, max_size=8), st.randoms())
def test_links_never_cross_patients_and_do_not_depend_on_row_order(
    images: list[tuple], reports: list[tuple], rnd: random.Random
) -> None:
    rows: list[tuple] = [("image", f"v{k}", p, s, t, pr, a) for k, (p, s, a, t, pr) in enumerate(images)]
    rows += [("report", f"r{k}", p, s, math.nan, pr, a, t) for k, (p, s, a, t, pr) in enumerate(reports)]
    items = _items(rows)
    owner = dict(zip(items["item_id"], items["patient_id"], strict=True))
    counts: dict[str, int] = {}
    base = join_items(items, D, report_window_s=2 * D, counts=counts)
    for r in base.to_dict(orient="records"):
        ids = [r[f"{m}_id"] for m in MODALITIES if r[f"has_{m}"]]
        assert {owner[i] for i in ids} == {r["patient_id"]}
        if not r["has_report"]:
            assert pd.isna(r["report_link"])
    assert sum(counts[k] for k in LINK_COUNTS[:5]) == len(reports)  # every report counted once
    perm = list(range(len(items)))
    rnd.shuffle(perm)
    assert join_items(items.iloc[perm], D, report_window_s=2 * D).equals(base)
