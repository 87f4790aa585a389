"""The time column of a vitals table: seconds from the first row, and the absolute start when known.

Exports from monitors, charting systems and spreadsheets write times in many ways; each is read so
that intervals are right and no date is invented:

* **numbers**: seconds from the start; values from 1e9 on are Unix epoch times (no recording lasts
  31 years) in seconds, milliseconds (>= 1e11), microseconds (>= 1e14) or nanoseconds (>= 1e17) - the
  start is then that UTC time;
* **time of day only** (``10:00:00``): seconds since the first row, a step back of more than 12 h is
  a midnight crossing; no date, so no absolute start (as a WFDB header with a time but no date);
* **dates with dots** (``04.03.2020 10:00``): day first, as everywhere dots are used (a row whose
  second field exceeds 12 is not a date: the file is refused naming its line, never read month first);
* **dates with slashes** (``04/03/2020``): day first when a first field exceeds 12, month first when a
  second field does; when no row tells, or rows tell both orders, the file is refused
  (:class:`AmbiguousTimeError`) rather than guessed. One rule with the reports stage:
  :mod:`medmm.daymonth`;
* **UTC offsets** (``2020-03-29T03:00:00+02:00``, ``...Z``): intervals from the offsets (a daylight
  saving change is not an hour lost), the start is the first row's wall-clock time as written; rows
  with and without an offset in one file are refused;
* anything else: ``pandas.to_datetime`` (ISO 8601 and the like).

>>> t, start = parse_times(pd.Series(["04.03.2020 10:00:00", "05.03.2020 10:00:00"]), "v.csv", "time")
>>> t.tolist(), start.isoformat()
([0.0, 86400.0], '2020-03-04T10:00:00')
>>> t, start = parse_times(pd.Series(["23:59:30", "00:00:30"]), "v.csv", "time")
>>> t.tolist(), start
([0.0, 60.0], None)
"""

from __future__ import annotations

import re
from datetime import datetime

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from medmm.daymonth import DOTTED_DAY_FIRST, day_first_or_refuse
from medmm.signals.errors import AmbiguousTimeError, NonMonotonicTimeError

__all__ = ["parse_times"]

_TIME_OF_DAY = re.compile(r"^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$")
_DOTTED = re.compile(r"^(\d{1,2})\.(\d{1,2})\.\d{2,4}\b")
_SLASHED = re.compile(r"^(\d{1,2})/(\d{1,2})/\d{2,4}\b")
_OFFSET = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$")
_EPOCH_SCALE = ((1e17, 1e-9), (1e14, 1e-6), (1e11, 1e-3), (1e9, 1.0))


def _bad_row(rel: str, bad: NDArray[np.bool_], tcol: str) -> NonMonotonicTimeError:
    row = int(np.flatnonzero(bad)[0]) + 2
    return NonMonotonicTimeError(
        rel, f"unparseable or empty time at line {row} (column {tcol!r})", "fix or drop that row"
    )


def _numeric(values: NDArray[np.float64], rel: str, tcol: str) -> tuple[NDArray[np.float64], datetime | None]:
    bad = ~np.isfinite(values)
    if bad.any():
        raise _bad_row(rel, bad, tcol)
    first = float(values[0]) if values.size else 0.0
    for floor, scale in _EPOCH_SCALE:
        if abs(first) >= floor:
            start = datetime(1970, 1, 1) + pd.Timedelta(seconds=first * scale).to_pytimedelta()
            return (values - first) * scale, start
    return values, None


def _time_of_day(text: pd.Series) -> NDArray[np.float64]:
    parts = text.str.split(":", expand=True).astype(float)
    s = (parts[0] * 3600 + parts[1] * 60).to_numpy(dtype=np.float64)
    if parts.shape[1] > 2:
        s = s + parts[2].fillna(0.0).to_numpy(dtype=np.float64)
    wraps = np.concatenate(([0.0], np.cumsum(np.diff(s) < -12 * 3600))) * 86400.0
    s = s + wraps
    return s - s[0]


def _dayfirst(text: pd.Series, pattern: re.Pattern[str], rel: str, tcol: str) -> bool:
    """The day/month order of a column of dotted or slashed dates (:mod:`medmm.daymonth`).

    Every row's month field must then be a month: ``pandas.to_datetime``'s ``dayfirst`` is only a
    hint, and would read a row (or, from the first row, the whole column) in the other order.
    """
    parts = text.str.extract(pattern).astype(int)
    if pattern is _DOTTED:
        dayfirst = DOTTED_DAY_FIRST
    else:
        pairs = list(zip(parts[0].tolist(), parts[1].tolist(), strict=True))
        dayfirst = day_first_or_refuse(
            pairs, rel, tcol, AmbiguousTimeError, "write ISO dates (yyyy-mm-dd hh:mm:ss)"
        )
    month = parts[1] if dayfirst else parts[0]
    if (month > 12).any():
        raise _bad_row(rel, (month > 12).to_numpy(), tcol)
    return dayfirst


def parse_times(raw: pd.Series, rel: str, tcol: str) -> tuple[NDArray[np.float64], datetime | None]:
    """``(seconds from the first row, absolute start or None)`` of a time column (see module doc).

    Raises :class:`~medmm.signals.errors.NonMonotonicTimeError` naming the first unparseable row and
    :class:`~medmm.signals.errors.AmbiguousTimeError` for undecidable day/month order or mixed offsets.
    """
    if pd.api.types.is_numeric_dtype(raw):
        return _numeric(raw.to_numpy(dtype=np.float64), rel, tcol)
    if pd.api.types.is_datetime64_any_dtype(raw):  # Parquet timestamps
        parsed = pd.to_datetime(raw)
        text = None
    else:
        text = raw.astype("string").str.strip()
        filled = text.fillna("")
        if (filled == "").any():
            raise _bad_row(rel, (filled == "").to_numpy(), tcol)
        if filled.str.fullmatch(_TIME_OF_DAY).all():
            return _time_of_day(filled), None
        offset = filled.str.contains(_OFFSET)
        if offset.any() and not offset.all():
            raise AmbiguousTimeError(
                rel,
                f"some times in column {tcol!r} carry a UTC offset and some do not",
                "export every time with its offset, or none",
            )
        kwargs: dict[str, object] = {"errors": "coerce"}
        for pattern in (_DOTTED, _SLASHED):
            if filled.str.match(pattern).all():
                kwargs["dayfirst"] = _dayfirst(filled, pattern, rel, tcol)
                break
        if offset.all():
            kwargs["utc"] = True
        parsed = pd.to_datetime(filled, **kwargs)  # type: ignore[call-overload]
    bad = parsed.isna().to_numpy()
    if bad.all():
        raise NonMonotonicTimeError(rel, f"column {tcol!r} holds no parseable times", "write ISO date-times")
    if bad.any():
        raise _bad_row(rel, bad, tcol)
    first = parsed.iloc[0]
    if text is not None and first.tzinfo is not None:  # wall-clock time as written in the first row
        dayfirst = bool(kwargs.get("dayfirst", False))  # the column's order, not pandas' guess
        first_wall = pd.to_datetime(str(text.iloc[0]), dayfirst=dayfirst).tz_localize(None)
    else:
        first_wall = first.tz_localize(None) if first.tzinfo is not None else first
    t = (parsed - first).dt.total_seconds().to_numpy(dtype=np.float64)
    return t, first_wall.to_pydatetime()
