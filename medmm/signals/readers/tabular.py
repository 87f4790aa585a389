"""CSV / Parquet tables of irregular vitals: one timestamp column plus one numeric column per series.

The timestamp column is the first of ``time``, ``timestamp``, ``datetime``, ``charttime``, ``t``,
``time_s``, ``seconds`` (case-insensitive; then :data:`LOCAL_TIME_COLUMNS`: ``Zeit``, ``heure`` ...;
a unit may follow, ``Time (ms)``, ``Zeit [min]``, and scales numeric times) present; it is read by
:func:`~medmm.signals.readers.timestamps.parse_times` (date-times give an absolute start; numbers are
seconds from the start or Unix epoch times; time-of-day only gives no start; dotted dates are day first;
UTC offsets). Timestamps must not go backwards. A ``patient_id`` / ``subject_id`` column (one value per
file) is the patient key. Units may be given in the column name: ``HR [bpm]`` or ``SpO2 (%)``. A CSV
whose header line has ``;`` and no ``,`` is read as a European-locale export (``;`` between fields, ``,``
as the decimal mark); ``.tsv`` files (or a tab-separated header) are split at tabs; a file that is not
UTF-8 is read as Latin-1 (Windows exports of ``Temp [°C]``). Placeholders for missing values in a numeric
column (``--``, ``n/a``) are missing values, and quoted decimal-comma numbers (``"36,6"``) are numbers
(:func:`numeric_values`). Columns that identify the patient or the stay (``mrn``, ``hadm_id``,
``stay_id``, ``*_id``, names, birth dates, ``age``, ``sex`` ...: :func:`is_identifier_column`) are never
read as series, so their values never reach an output.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "v.csv").write_text("time,HR [bpm]\\n2020-01-01 10:00:00,80\\n2020-01-01 10:00:05,82\\n")
>>> rec = read_tabular(d, "v.csv")
>>> rec.series[0].name, rec.series[0].units, rec.series[0].t_s.tolist()
('HR', 'bpm', [0.0, 5.0])
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medmm.signals.errors import EmptyRecordError, HeaderError, NonMonotonicTimeError, NotASignalError
from medmm.signals.readers._base import IrregularSeries, LoadedRecord
from medmm.signals.readers.timestamps import parse_times

__all__ = ["LOCAL_TIME_COLUMNS", "TIME_COLUMNS", "is_identifier_column", "numeric_values", "read_tabular"]

TIME_COLUMNS = ("time", "timestamp", "datetime", "charttime", "t", "time_s", "seconds")
#: Names of the time column in other languages, tried after :data:`TIME_COLUMNS`.
LOCAL_TIME_COLUMNS = (
    "zeit",
    "zeitstempel",
    "uhrzeit",
    "heure",
    "horodatage",
    "temps",
    "tiempo",
    "hora",
    "tempo",
    "tijd",
)
_TIME_UNITS = {
    "": 1.0,
    "s": 1.0,
    "sec": 1.0,
    "seconds": 1.0,
    "ms": 1e-3,
    "min": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
}
_PATIENT_COLUMNS = ("patient_id", "subject_id", "patient", "mrn")
_ID_LAST = {"id", "ids", "uid", "pid", "mrn", "ssn", "nr", "no", "number", "nummer", "num"}
_ID_ANY = {
    "mrn", "ssn", "name", "names", "firstname", "lastname", "surname", "forename", "dob", "birthdate",
    "birthday", "address", "phone", "email", "zip", "zipcode", "postcode", "accession", "insurance",
}  # fmt: skip
_ID_WHOLE = {
    "age", "sex", "gender", "patient", "patientid", "subjectid", "hadmid", "stayid", "icustayid",
    "encounterid", "visitid", "caseid", "itemid", "fallnummer", "patnr", "patientnr", "pid", "uid",
}  # fmt: skip
_UNITS = re.compile(r"^(.*?)\s*[\[(]([^\])]*)[\])]\s*$")
_CELL_UNIT = re.compile(r"^([+-]?\d+(?:[.,]\d+)?)\s*([^\d\s/][^\d]*)$")


def _read(path: Path, rel: str) -> pd.DataFrame:
    if path.stat().st_size == 0:
        raise EmptyRecordError(rel, "the file is empty (0 bytes)", "re-export it")
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        with path.open("rb") as fh:
            header = fh.readline()
        sep, decimal = ",", "."
        if path.suffix.lower() == ".tsv" or (b"\t" in header and not header.count(b",")):
            sep = "\t"
        elif b";" in header and b"," not in header:  # European-locale export: ';' fields, ',' decimals
            sep, decimal = ";", ","
        try:
            return pd.read_csv(path, sep=sep, decimal=decimal, encoding="utf-8-sig")
        except UnicodeDecodeError:  # a Windows-locale export (°C, µV, names of units in cp1252)
            return pd.read_csv(path, sep=sep, decimal=decimal, encoding="latin-1")
    except Exception as exc:
        raise HeaderError(
            rel, f"unreadable table ({type(exc).__name__}: {exc})", "re-export it as CSV"
        ) from exc


def numeric_values(column: pd.Series) -> np.ndarray | None:
    """A value column as floats, or ``None`` for a text column.

    A column of numbers with placeholders for missing values (``--``, ``n/a``, ``?`` as monitors
    export them) is numeric: the placeholders become NaN (not kept) instead of the whole column being
    dropped. A column is text when fewer than half of its non-empty cells are numbers.

    >>> numeric_values(pd.Series(["70", "--", "72"])).tolist()
    [70.0, nan, 72.0]
    >>> numeric_values(pd.Series(["36,6", "37", "--"])).tolist()
    [36.6, 37.0, nan]
    >>> numeric_values(pd.Series(["80 bpm", "n/a", "82 bpm"])).tolist()  # one unit in every cell
    [80.0, nan, 82.0]
    >>> numeric_values(pd.Series(["awake", "asleep", "1"])) is None
    True
    """
    if pd.api.types.is_numeric_dtype(column):
        return column.to_numpy(dtype=np.float64)
    text = column.astype("string").str.strip()
    filled = text.notna() & (text != "")
    if not filled.any():
        return None
    numbers = pd.to_numeric(text.where(filled), errors="coerce")
    comma = text.str.fullmatch(r"[+-]?\d+,\d+").fillna(False).astype(bool)
    if comma.any():  # quoted "36,6" in a ','-separated file: a decimal comma
        dotted = pd.to_numeric(text.str.replace(",", ".", regex=False), errors="coerce")
        numbers = numbers.astype("Float64").where(~comma, dotted.astype("Float64"))
    if numbers[filled].notna().sum() * 2 < int(filled.sum()):
        unit = cell_unit(column)
        if not unit:
            return None
        value = text.str.extract(_CELL_UNIT)[0].str.replace(",", ".", regex=False)
        numbers = pd.to_numeric(value, errors="coerce")
    return numbers.to_numpy(dtype=np.float64, na_value=np.nan)


def cell_unit(column: pd.Series) -> str:
    """The unit written after the number in every cell (``"80 bpm"``, ``"37,2 °C"``), else ``""``.

    >>> cell_unit(pd.Series(["80 bpm", "82 bpm", "--"])), cell_unit(pd.Series(["120/80", "115/75"]))
    ('bpm', '')
    """
    if pd.api.types.is_numeric_dtype(column):
        return ""
    text = column.astype("string").str.strip()
    filled = text.notna() & (text != "")
    parts = text[filled].str.extract(_CELL_UNIT)
    units = parts[1].dropna().str.strip()
    if units.empty or units.nunique() != 1 or len(units) * 2 < int(filled.sum()):
        return ""
    return str(units.iloc[0])


def is_identifier_column(name: str) -> bool:
    """True for a column naming or numbering the patient, the stay or the person (never a vital series).

    Identifiers (``mrn``, ``hadm_id``, ``stay_id``, ``Fallnummer``, any ``*_id`` / ``* number``),
    names, birth dates and the quasi-identifiers ``age`` / ``sex`` / ``gender`` are numbers in many
    exports; read as series they would be written to ``vitals.parquet`` as raw values.

    >>> [is_identifier_column(c) for c in ("hadm_id", "MRN", "stayId", "Age (y)", "HR [bpm]", "Lactic acid")]
    [True, True, True, True, False, False]
    """
    base = _UNITS.match(str(name))
    text = base.group(1) if base else str(name)
    tokens = [t.lower() for t in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", text)]
    if not tokens:
        return False
    return (
        "".join(tokens) in _ID_WHOLE
        or tokens[-1] in _ID_LAST
        or any(t in _ID_ANY or t.startswith("birth") for t in tokens)
    )


def _time_column(columns: pd.Index) -> tuple[Any, str]:
    """The time column and its unit: ``time``, ``Time (s)``, ``Zeit [min]`` ... (see module doc).

    >>> _time_column(pd.Index(["HR", "Time (ms)"]))
    ('Time (ms)', 'ms')
    >>> _time_column(pd.Index(["Uhrzeit", "HF"]))
    ('Uhrzeit', '')
    >>> _time_column(pd.Index(["Time (weeks)", "HR"]))
    (None, '')
    """
    found: dict[str, tuple[Any, str]] = {}
    for c in columns:
        m = _UNITS.match(str(c))
        name, unit = (m.group(1), m.group(2).strip().lower()) if m else (str(c), "")
        if unit in _TIME_UNITS:
            found.setdefault(name.strip().lower(), (c, unit))
    for key in (*TIME_COLUMNS, *LOCAL_TIME_COLUMNS):
        if key in found:
            return found[key]
    return None, ""


def read_tabular(root: Path, rel: str) -> LoadedRecord:
    """Read the vitals table ``root/rel`` (see module doc)."""
    path = Path(root) / rel
    frame = _read(path, rel)
    lower = {str(c).strip().lower(): c for c in frame.columns}
    tcol, t_unit = _time_column(frame.columns)
    if tcol is None:
        raise NotASignalError(
            rel,
            f"no timestamp column (looked for {', '.join(TIME_COLUMNS)}, or {', '.join(LOCAL_TIME_COLUMNS)}; "
            "a unit may follow: 'Time (ms)')",
            "add a 'time' column",
        )
    if frame.empty:
        raise EmptyRecordError(rel, "the table has a header but no rows", "re-export it with its data")
    t, start = parse_times(frame[tcol], rel, str(tcol))
    if start is None and pd.api.types.is_numeric_dtype(frame[tcol]):  # "Time (ms)", "Zeit [min]"
        t = t * _TIME_UNITS[t_unit]
    back = np.flatnonzero(np.diff(t) < 0)
    if back.size:
        row = int(back[0]) + 3  # header line + 1-based + the later row
        raise NonMonotonicTimeError(
            rel, f"timestamps go backwards at line {row} (column {tcol!r})", "sort the rows by time"
        )
    patient_key = ""
    pcol = next((lower[c] for c in _PATIENT_COLUMNS if c in lower), None)
    if pcol is not None:
        values = frame[pcol].dropna().astype(str).unique()
        if len(values) > 1:
            raise HeaderError(rel, f"{len(values)} patients in one file", "write one file per patient")
        patient_key = values[0] if len(values) else ""
    series, empty, not_read, doubled = [], [], [], []
    for col in frame.columns:
        if col in (tcol, pcol):
            continue
        if is_identifier_column(str(col)):
            not_read.append(f"{col} (identifier)")
            continue
        v = numeric_values(frame[col])
        if v is None:
            not_read.append(f"{col} (text)")
            continue
        m = _UNITS.match(str(col))
        name, units = (m.group(1), m.group(2)) if m else (str(col), cell_unit(frame[col]))
        keep = np.isfinite(v)
        if keep.any():  # an all-empty column is no series
            tk, vk = t[keep], v[keep]
            first = np.r_[True, np.diff(tk) != 0]  # times are sorted: a repeat follows its first
            if not first.all():  # one value per time: the first; conflicting repeats are counted
                head = np.maximum.accumulate(np.where(first, np.arange(tk.size), 0))  # first of its time
                conflicts = int(np.count_nonzero(vk != vk[head]))
                doubled.append(
                    f"{col} ({tk.size - int(first.sum())} repeated, {conflicts} with another value)"
                )
                tk, vk = tk[first], vk[first]
            series.append(IrregularSeries(name.strip(), units.strip(), tk, vk))
        else:
            empty.append(str(col))
    if not series and empty:
        raise EmptyRecordError(
            rel, f"every value column is empty ({', '.join(empty)})", "re-export it with its values"
        )
    if not series:
        raise NotASignalError(rel, "no numeric value columns beside the time column", "add value columns")
    notes = [f"columns not read: {', '.join(not_read)}"] if not_read else []
    if doubled:  # a monitor and a manual entry at one time: say so rather than average silently
        notes.append(f"repeated timestamps, first value kept: {', '.join(doubled)}")
    rec = LoadedRecord(
        record=rel.rsplit(".", 1)[0],
        format=path.suffix.lower().lstrip("."),
        patient_key=patient_key,
        start=start,
        series=series,
        segments=[(0.0, float(t[-1] - t[0]) if t.size else 0.0, False)],
        start_has_date=start is not None,
        notes=notes,
    )
    rec.check_not_empty(rel)
    return rec
