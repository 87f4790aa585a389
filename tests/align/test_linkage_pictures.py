"""Images without a study id (pictures of a `medmm ingest --ids` table without a study column) are
studies too: reports link to them by accession and by date with the same rules as to studies with a
StudyInstanceUID (nearest within the report window, ties never linked, never across patients)."""

from __future__ import annotations

import math
import random

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from medmm.align.join import LINK_COUNTS, join_items, parse_duration
from medmm.align.records import MODALITIES

H, D = 3600.0, 86400.0
COLUMNS = ["modality", "item_id", "patient_id", "study_id", "time", "precision", "accession_id", "link_time"]


def _join(rows: list[tuple], report_window: str = "3d") -> tuple[pd.DataFrame, dict[str, int]]:
    """Rows ``(modality, id, patient, study, time, precision, accession, link_time)``."""
    counts: dict[str, int] = {}
    rec = join_items(
        pd.DataFrame(rows, columns=COLUMNS),
        parse_duration("24h"),
        report_window_s=parse_duration(report_window, "--report-window"),
        counts=counts,
    )
    return rec, counts


def _record_of(rec: pd.DataFrame, report: str) -> dict:
    return next(r for r in rec.to_dict(orient="records") if r["report_id"] == report)


#: two pictures of one patient on one day, no study id: only the accession number tells them apart
PICTURES = [
    ("image", "a", "p", None, 10 * D, "date", "acc-a"),
    ("image", "b", "p", None, 10 * D, "date", "acc-b"),
]


def test_a_report_links_to_a_picture_by_accession() -> None:
    rows = [*PICTURES, ("report", "r", "p", None, math.nan, "datetime", "acc-b")]
    rec, counts = _join([(*r, math.nan) for r in rows])
    linked = _record_of(rec, "r")
    assert linked["image_id"] == "b" and linked["report_link"] == "accession"
    assert counts["report_links_accession"] == 1 and counts["report_accession_unmatched"] == 0
    # two accession numbers are two exams: never chained into one study although within the 24h window
    assert len(rec) == 2 and set(rec["image_id"]) == {"a", "b"}


def test_pictures_of_one_accession_number_are_one_study_and_join_the_study_carrying_it() -> None:
    rows = [
        ("image", "ct", "p", "u-ct", 10 * D + 9 * H, "datetime", "acc-a", math.nan),  # a DICOM study
        ("image", "pic", "p", None, 12 * D, "date", "acc-a", math.nan),  # its key image, 2 days later
        ("image", "b1", "p", None, 10 * D, "date", "acc-b", math.nan),
        ("image", "b2", "p", None, 30 * D, "date", "acc-b", math.nan),  # one exam, one study
        ("report", "rb", "p", None, math.nan, "datetime", "acc-b", math.nan),
    ]
    rec, counts = _join(rows)
    assert len(rec) == 2 and counts["report_links_accession"] == 1
    by_study = {r["image_id"]: r for r in rec.to_dict(orient="records")}
    assert by_study["ct"]["study_id"] == "u-ct" and by_study["b1"]["report_id"] == "rb"


def test_a_study_named_by_a_report_alone_never_takes_another_report_as_uid() -> None:
    """r1 names study X (no image has it); r2 names X too but its accession number is on a picture."""
    rows = [
        ("image", "pic", "p", None, 10 * D, "date", "acc-2", math.nan),
        ("report", "r1", "p", "X", math.nan, "date", None, math.nan),
        ("report", "r2", "p", "X", math.nan, "date", "acc-2", math.nan),
    ]
    _, counts = _join(rows)
    assert counts["report_links_uid"] == 0 and counts["report_links_accession"] == 1
    rows[1] = ("report", "r3", "p", "X", math.nan, "date", None, math.nan)  # sorted after r2 now: the same
    assert _join(rows)[1] == counts


def test_a_report_links_to_a_picture_by_date_nearest_within_the_window() -> None:
    rows = [
        ("image", "x1", "p", None, 10 * D + 9 * H, "datetime", None, math.nan),
        ("image", "x2", "p", None, 20 * D + 9 * H, "datetime", None, math.nan),
        ("report", "r", "p", None, math.nan, "date", None, 11 * D),  # the day after x1
    ]
    rec, counts = _join(rows)
    linked = _record_of(rec, "r")
    assert linked["image_id"] == "x1" and linked["report_link"] == "date"
    assert counts["report_links_date"] == 1
    rec, counts = _join(rows, report_window="12h")  # a whole day away: outside a 12h window
    assert pd.isna(_record_of(rec, "r")["image_id"]) and counts["reports_unlinked"] == 1


def test_two_pictures_equally_near_are_a_tie_never_a_guess() -> None:
    rows = [
        ("image", "x1", "p", None, 9 * D + 9 * H, "datetime", None, math.nan),
        ("image", "x2", "p", None, 11 * D + 9 * H, "datetime", None, math.nan),
        ("report", "r", "p", None, math.nan, "date", None, 10 * D),  # one day after x1, one before x2
    ]
    rec, counts = _join(rows)
    assert pd.isna(_record_of(rec, "r")["image_id"])
    assert counts["report_date_ties"] == 1 and counts["report_links_date"] == 0


def test_a_picture_accession_never_links_another_patients_report() -> None:
    rows = [
        ("image", "a", "p", None, 10 * D, "date", "acc-a", math.nan),
        ("report", "r", "q", None, math.nan, "date", "acc-a", 10 * D),  # q's report, p's accession number
    ]
    rec, counts = _join(rows)
    assert counts["report_accession_other_patient"] == 1 and counts["reports_unlinked"] == 1
    assert (rec.groupby("record_id")["patient_id"].nunique() == 1).all()
    assert pd.isna(_record_of(rec, "r")["image_id"])


def test_a_picture_of_another_exam_is_not_linked_by_date() -> None:
    rows = [
        ("image", "a", "p", None, 10 * D, "date", "acc-a", math.nan),
        ("report", "r", "p", None, math.nan, "date", "acc-other", 10 * D),  # same day, another exam
    ]
    rec, counts = _join(rows)
    assert pd.isna(_record_of(rec, "r")["image_id"]) and counts["report_accession_unmatched"] == 1


def test_an_ecg_alone_is_no_study_for_a_report() -> None:
    """Reports link to studies holding an image; a signal without study id stays a record of its own."""
    rows = [
        ("signal", "w", "p", None, 10 * D + 9 * H, "datetime", None, math.nan),
        ("report", "r", "p", None, math.nan, "date", None, 10 * D),
    ]
    rec, counts = _join(rows)
    assert pd.isna(_record_of(rec, "r")["signal_id"]) and counts["reports_unlinked"] == 1


_patient = st.sampled_from(["p1", "p2"])
_accession = st.one_of(st.none(), st.sampled_from(["a1", "a2", "a3"]))
_time = st.one_of(st.just(math.nan), st.integers(0, 12).map(lambda d: d * D / 2))
_precision = st.sampled_from(["date", "datetime"])
_item = st.tuples(
    st.sampled_from(["image", "image", "signal", "report"]),
    _patient,
    st.one_of(st.none(), st.none(), st.sampled_from(["s1", "s2"])),
    _accession,
    _time,
    _precision,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_item, min_size=1, max_size=12), st.randoms())
def test_pictures_without_study_ids_never_mix_patients_and_do_not_depend_on_row_order(
    rows: list[tuple], rnd: random.Random
) -> None:
    items = pd.DataFrame(
        [
            (m, f"{m}{k}", p, s, math.nan, pr, a, t)
            if m == "report"
            else (m, f"{m}{k}", p, s, t, pr, a, math.nan)
            for k, (m, p, s, a, t, pr) in enumerate(rows)
        ],
        columns=COLUMNS,
    )
    owner = dict(zip(items["item_id"], items["patient_id"], strict=True))
    counts: dict[str, int] = {}
    base = join_items(items, D, report_window_s=2 * D, counts=counts)
    for r in base.to_dict(orient="records"):
        assert {owner[r[f"{m}_id"]] for m in MODALITIES if r[f"has_{m}"]} == {r["patient_id"]}
    n_reports = sum(1 for row in rows if row[0] == "report")
    assert sum(counts[k] for k in LINK_COUNTS[:5]) == n_reports  # every report counted once
    assert base["record_id"].is_unique
    perm = list(range(len(items)))
    rnd.shuffle(perm)
    assert join_items(items.iloc[perm], D, report_window_s=2 * D).equals(base)
