"""Report / exam dates of a reports table (``medmm reports parse --date-column``), read without guessing.

RIS and report exports write dates in many ways; each value is read on its own, and the day/month
order of ``nn/nn/yyyy`` dates is decided for the whole column by the rule the signals stage also uses
for a vitals table (:mod:`medmm.daymonth`):

* ISO 8601 (``2020-03-04``, ``2020-03-04 10:30``, ``2020-03-04T10:30:00+01:00``) and the DICOM-style
  ``20200304`` / ``202003041030[00]``;
* **dots** (``04.03.2020 10:30``): day first, as everywhere dots are used;
* **slashes** (``04/03/2020``): day first when a row's first field exceeds 12, month first when a row's
  second field does; when no row of the column tells, or rows tell both orders, the table is refused
  (:class:`AmbiguousDateError`) rather than guessed;
* a Parquet date / timestamp column as stored;
* anything else (``March 4``, two-digit years, ``2020-02-30``) is **unreadable**: that report gets no
  date and a reason naming its row and the column, never the value (dates are identifying), and never
  a silent missing date.

A value with a date and no time of day has precision ``"date"``: ``medmm align`` compares it as a whole
day, never as midnight.

>>> got = read_dates(["2020-03-04", "05.03.2020 10:30", "garbage", None], "r.csv", "exam_date")
>>> [(g.when.isoformat() if g.when else None, g.precision) for g in got]
[('2020-03-04T00:00:00', 'date'), ('2020-03-05T10:30:00', 'datetime'), (None, None), (None, None)]
>>> [g.problem is not None for g in got]
[False, False, True, False]
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from medmm.daymonth import day_first_or_refuse
from medmm.errors import InputError
from medmm.pseudonym import Pseudonymizer

__all__ = [
    "AmbiguousDateError",
    "DateWithoutPatientError",
    "ReportDate",
    "UnreadableDateError",
    "read_dates",
    "shift_report_date",
]

_TIME = r"(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?"
_DOTTED = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})" + _TIME + "$")
_SLASHED = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})" + _TIME + "$")
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(\d{2})?)?$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
_FIX = "write dates as yyyy-mm-dd (or yyyy-mm-dd hh:mm) with a four-digit year"


class AmbiguousDateError(InputError):
    """The ``nn/nn/yyyy`` dates of a column can be day/month or month/day and no row tells which (or
    rows tell both)."""


class UnreadableDateError(InputError):
    """One report's date cannot be read (the reason names the row and column, never the value)."""

    note = "date-unreadable"  #: the manifest ``notes`` entry


class DateWithoutPatientError(InputError):
    """A report has a date but no patient id: the date cannot be shifted, so it is left out."""

    note = "date-without-patient"


@dataclass(frozen=True)
class ReportDate:
    """One value of the date column: the raw (unshifted) date-time, its precision, or the problem."""

    when: datetime | None = None
    precision: str | None = None  # "date" or "datetime"
    problem: UnreadableDateError | None = None


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if type(value).__name__ in {"NaTType", "NAType"}:
        return True
    return isinstance(value, str) and not value.strip()


def _slashed_dayfirst(texts: list[str], path: str, column: str) -> bool:
    """The column's order of ``nn/nn/yyyy`` fields (:func:`medmm.daymonth.day_first_or_refuse`)."""
    pairs = [(int(m.group(1)), int(m.group(2))) for t in texts if (m := _SLASHED.match(t))]
    return day_first_or_refuse(
        pairs, path, column, AmbiguousDateError, "write ISO dates (yyyy-mm-dd) in that column"
    )


def _with_time(day: tuple[int, int, int], groups: tuple[str | None, ...]) -> tuple[datetime, str]:
    hh, mm, ss = groups
    if hh is None:
        return datetime(*day), "date"
    return datetime(*day, int(hh), int(mm or 0), int(ss or 0)), "datetime"


def _one(text: str, dayfirst: bool) -> tuple[datetime, str]:
    """``(datetime, precision)`` of one non-empty text; ``ValueError`` when it is not a date read here."""
    if _ISO_DATE.match(text):
        return datetime.fromisoformat(text), "date"
    if _ISO.match(text):
        return datetime.fromisoformat(text.replace("Z", "+00:00")), "datetime"
    if m := _COMPACT.match(text):
        y, mo, d, hh, mi, ss = m.groups()
        if hh is None:
            return datetime(int(y), int(mo), int(d)), "date"
        return datetime(int(y), int(mo), int(d), int(hh), int(mi), int(ss or 0)), "datetime"
    if m := _DOTTED.match(text):
        d, mo, y = (int(g) for g in m.groups()[:3])
        return _with_time((y, mo, d), m.groups()[3:])
    if m := _SLASHED.match(text):
        a, b, y = (int(g) for g in m.groups()[:3])
        return _with_time((y, b, a) if dayfirst else (y, a, b), m.groups()[3:])
    raise ValueError("not a date format read here")


def read_dates(values: list[Any], path: str, column: str, rows: list[str] | None = None) -> list[ReportDate]:
    """Read every value of a date column (see the module docstring); one :class:`ReportDate` per value.

    ``rows`` names each value's row (``file#n``, :func:`~medmm.reports.io.inputs.row_ref`) for the
    per-report problem; ``path`` and ``column`` name the table and column.

    Raises
    ------
    AmbiguousDateError
        The column's ``nn/nn/yyyy`` dates do not tell the day/month order, or tell both.

    Examples
    --------
    >>> [d.when.day for d in read_dates(["03/04/2020", "25/04/2020"], "r.csv", "date")]
    [3, 25]
    >>> [d.when.month for d in read_dates(["03/04/2020", "04/25/2020"], "r.csv", "date")]
    [3, 4]
    """
    texts = [None if _missing(v) else v if isinstance(v, date) else str(v).strip() for v in values]
    slashed = [t for t in texts if isinstance(t, str) and _SLASHED.match(t)]
    dayfirst = _slashed_dayfirst(slashed, path, column) if slashed else False
    out: list[ReportDate] = []
    for k, value in enumerate(texts):
        if value is None:
            out.append(ReportDate())
            continue
        if isinstance(value, datetime):  # a Parquet timestamp (pandas Timestamp is a datetime)
            stamp = value.to_pydatetime() if hasattr(value, "to_pydatetime") else value
            out.append(ReportDate(stamp, "datetime"))
            continue
        if isinstance(value, date):  # a Parquet date
            out.append(ReportDate(datetime(value.year, value.month, value.day), "date"))
            continue
        try:
            when, precision = _one(str(value), dayfirst)
        except (ValueError, OverflowError):
            where = rows[k] if rows else f"{path} row {k + 1}"
            problem = UnreadableDateError(
                where,
                f"column {column!r} does not hold a date this stage reads (the report has no date)",
                _FIX,
            )
            out.append(ReportDate(problem=problem))
            continue
        out.append(ReportDate(when, precision))
    return out


def shift_report_date(
    found: ReportDate, patient: str | None, where: str, column: str, pseudonymizer: Pseudonymizer
) -> tuple[str | None, str | None, UnreadableDateError | DateWithoutPatientError | None]:
    """``(report_time, precision, problem)`` of one report: the date moved by the patient's keyed shift
    (``Pseudonymizer.shift_datetime`` of the raw patient id, as imaging and signals dates; ISO, a date
    alone for precision ``"date"``), or the problem that leaves the report without one.

    >>> from medmm.pseudonym import Pseudonymizer
    >>> pz = Pseudonymizer(b"k" * 32)
    >>> t, p, problem = shift_report_date(ReportDate(datetime(2020, 3, 4), "date"), "P1", "r.csv#1", "d", pz)
    >>> len(t), t < "2020-03-04", p, problem
    (10, True, 'date', None)
    >>> shift_report_date(ReportDate(datetime(2020, 3, 4), "date"), None, "r.csv#1", "d", pz)[2].note
    'date-without-patient'
    """
    if found.problem is not None:
        return None, None, found.problem
    if found.when is None:
        return None, None, None
    if patient is None:
        return (
            None,
            None,
            DateWithoutPatientError(
                where,
                f"column {column!r} has a date but the row has no patient id, so the date cannot be shifted "
                "(the report has no date)",
                "fill the patient column of that row",
            ),
        )
    shifted = pseudonymizer.shift_datetime(patient, found.when)
    text = shifted.date().isoformat() if found.precision == "date" else shifted.isoformat()
    return text, found.precision, None
