"""One day/month rule (medmm.daymonth) for report dates and vitals times: both stages read a column
of ``nn/nn/yyyy`` dates in the same order, or both refuse it; never a silent guess."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from medmm.daymonth import day_first_or_refuse, slashed_order
from medmm.errors import InputError
from medmm.reports.io.dates import AmbiguousDateError, read_dates
from medmm.signals.errors import AmbiguousTimeError, NonMonotonicTimeError
from medmm.signals.readers.timestamps import parse_times


@pytest.mark.parametrize(
    ("pairs", "order"),
    [
        ([(3, 4), (25, 4)], "day-first"),
        ([(3, 4), (4, 25)], "month-first"),
        ([(3, 3), (12, 12)], "month-first"),  # equal fields: both orders read the same day
        ([], "month-first"),
        ([(3, 4), (5, 6)], "unknown"),
        ([(25, 4), (4, 25)], "conflicting"),
        ([(25, 4), (4, 25), (3, 4)], "conflicting"),
        # a row that is a date in neither order (an export's 99/99/9999 placeholder) tells nothing:
        # was "conflicting" (first and second field over 12), refusing a plainly day-first column
        ([(25, 4), (99, 99), (3, 4)], "day-first"),
        ([(4, 25), (0, 0)], "month-first"),
        ([(3, 4), (45, 45)], "unknown"),
    ],
)
def test_slashed_order(pairs: list[tuple[int, int]], order: str) -> None:
    assert slashed_order(pairs) == order


def test_refusal_names_the_column_never_a_value() -> None:
    with pytest.raises(InputError, match=r"t\.csv: the dates in column 'when' .* disagree") as err:
        day_first_or_refuse([(25, 4), (4, 25)], "t.csv", "when", InputError, "write ISO dates")
    assert "25" not in str(err.value)


def _both(values: list[str]) -> tuple[list[tuple[int, int]] | type, list[tuple[int, int]] | type]:
    """``(month, day)`` of each value as the reports and the signals stage read them, or the error class."""
    try:
        reports: list[tuple[int, int]] | type = [
            (d.when.month, d.when.day) for d in read_dates(values, "r.csv", "d") if d.when
        ]
    except InputError as e:
        reports = type(e)
    try:
        t, start = parse_times(pd.Series(values), "v.csv", "time")
        assert start is not None
        stamps = [start + pd.Timedelta(seconds=s).to_pytimedelta() for s in t]
        signals: list[tuple[int, int]] | type = [(s.month, s.day) for s in stamps]
    except InputError as e:
        signals = type(e)
    return reports, signals


@pytest.mark.parametrize(
    ("values", "reports", "signals"),
    [
        (["03/04/2021 10:00", "13/04/2021 10:00"], [(4, 3), (4, 13)], [(4, 3), (4, 13)]),
        (["03/04/2021 10:00", "04/13/2021 10:00"], [(3, 4), (4, 13)], [(3, 4), (4, 13)]),
        (["03/03/2021 10:00", "07/07/2021 10:00"], [(3, 3), (7, 7)], [(3, 3), (7, 7)]),
        (["03/04/2021 10:00", "05/06/2021 10:00"], AmbiguousDateError, AmbiguousTimeError),
        # rows that tell both orders: was read day-first by reports (the month-first row unreadable,
        # the ambiguous 03/04 silently read as 3 April) and refused by signals as an "unparseable" row
        (
            ["13/04/2021 10:00", "04/13/2021 10:00", "03/04/2021 10:00"],
            AmbiguousDateError,
            AmbiguousTimeError,
        ),
        (["04.03.2021 10:00", "05.03.2021 10:00"], [(3, 4), (3, 5)], [(3, 4), (3, 5)]),
    ],
)
def test_both_stages_read_a_column_in_one_order_or_refuse_it(
    values: list[str], reports: object, signals: object
) -> None:
    assert _both(values) == (reports, signals)


def test_dotted_dates_are_never_read_month_first() -> None:
    # was: pandas' ``dayfirst`` is a hint; from a first row 04.13.2021 it read the column month first
    with pytest.raises(NonMonotonicTimeError, match="line 2"):
        parse_times(pd.Series(["04.13.2021 10:00", "04.14.2021 10:00"]), "v.csv", "time")
    got = read_dates(["04.13.2021 10:00"], "r.csv", "d")
    assert got[0].when is None and got[0].problem is not None


def test_start_of_dotted_dates_with_utc_offsets_is_day_first() -> None:
    t, start = parse_times(pd.Series(["04.03.2021 10:00+01:00", "05.03.2021 10:00+01:00"]), "v.csv", "time")
    assert start == datetime(2021, 3, 4, 10, 0)  # was: 2021-04-03, the first row re-read month first
    assert t.tolist() == [0.0, 86400.0]


def test_a_placeholder_date_does_not_refuse_a_day_first_report_column() -> None:
    # was: AmbiguousDateError for the whole table ("some rows can only be day/month, others only
    # month/day") because of the one 99/99/9999 row
    got = read_dates(["25/04/2021", "99/99/9999", "03/04/2021"], "r.csv", "d")
    assert [(d.when.month, d.when.day) if d.when else None for d in got] == [(4, 25), None, (4, 3)]
    assert got[1].problem is not None
