"""The date forms ``medmm.reports.io.dates`` documents: ISO with a time and a UTC offset, DICOM-style
compact dates, Parquet date / timestamp values, and the forms it refuses (an impossible day, a
two-digit year, words), each refusal naming the row and column but never the value."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd

from medmm.pseudonym import Pseudonymizer
from medmm.reports.io.dates import read_dates, shift_report_date


def test_documented_readable_forms_give_their_date_time_and_precision() -> None:
    values = [
        "2020-03-04T10:30:00+01:00",
        "2020-03-04T09:30:00Z",
        "2020-03-04 10:30",
        "202003041030",
        "20200304",
        pd.Timestamp("2020-03-04 10:30"),
        date(2020, 3, 4),
    ]
    got = read_dates(values, "r.parquet", "exam_date")
    assert [g.problem for g in got] == [None] * len(values)
    assert [g.precision for g in got] == ["datetime"] * 4 + ["date", "datetime", "date"]
    assert got[0].when is not None and got[0].when.utcoffset() == timedelta(hours=1)
    assert got[1].when is not None and got[1].when.utcoffset() == timedelta(0)
    assert [g.when.replace(tzinfo=None) for g in got if g.when] == [
        datetime(2020, 3, 4, 10, 30),
        datetime(2020, 3, 4, 9, 30),
        datetime(2020, 3, 4, 10, 30),
        datetime(2020, 3, 4, 10, 30),
        datetime(2020, 3, 4),
        datetime(2020, 3, 4, 10, 30),
        datetime(2020, 3, 4),
    ]


def test_refused_forms_name_the_row_and_column_never_the_value() -> None:
    values = ["2020-02-30", "04/03/20", "March 4"]
    rows = [f"r.csv#{n}" for n in (1, 2, 3)]
    got = read_dates(values, "r.csv", "exam_date", rows)
    for value, row, found in zip(values, rows, got, strict=True):
        assert found.when is None and found.problem is not None
        message = str(found.problem)
        assert message.startswith(f"{row}: column 'exam_date'") and value not in message


def test_an_offset_survives_the_keyed_shift() -> None:
    pz = Pseudonymizer(b"k" * 32)
    found = read_dates(["2020-03-04T10:30:00+01:00"], "r.csv", "d")[0]
    text, precision, problem = shift_report_date(found, "P1", "r.csv#1", "d", pz)
    assert problem is None and precision == "datetime" and text is not None
    assert text.endswith("T10:30:00+01:00") and text < "2020-03-04"
