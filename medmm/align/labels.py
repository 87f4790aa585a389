"""Labels from a table (CSV / TSV / Parquet) keyed by source patient and study ids (``align --labels``).

Hospitals keep outcomes (a diagnosis, a follow-up result) in their own systems, keyed by the patient
id and, for per-study labels, the study (DICOM StudyInstanceUID). Columns of the table:

- ``patient`` (required): the raw patient id, as the stages saw it (DICOM PatientID, the reports'
  ``--patient-column``, the signal header's patient);
- ``study`` (optional): the raw StudyInstanceUID; empty for a patient-level label;
- every other column is a label: ``1``/``0`` (also ``true``/``false``, ``yes``/``no``,
  ``positive``/``negative``), empty for unknown.

The ids are pseudonymized with the site key (the run's own key: ``run.json`` is checked) in memory
and never written or logged. A row with a study labels that study's record; a row without one labels
every record of the patient; for the same label a study row wins over the patient row. Rows that
label no record (ids not in the run) and records without any row are counted, not errors: a nightly
table may run ahead of, or behind, the archive.

>>> import tempfile, pathlib
>>> from medmm.pseudonym import Pseudonymizer
>>> p = pathlib.Path(tempfile.mkdtemp()) / "labels.csv"
>>> _ = p.write_text("patient,study,sepsis\\nMRN-1,,1\\n")
>>> table = read_label_table(p, Pseudonymizer(b"k" * 32))
>>> table.names, len(table.rows)
(['sepsis'], 1)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from medmm.errors import InputError
from medmm.ingest.table_header import describe_columns
from medmm.pseudonym import Pseudonymizer

__all__ = ["LabelTable", "apply_label_table", "read_label_table"]

_VALUES: dict[str, int | None] = {
    "1": 1,
    "1.0": 1,
    "true": 1,
    "yes": 1,
    "positive": 1,
    "0": 0,
    "0.0": 0,
    "false": 0,
    "no": 0,
    "negative": 0,
    "": None,
    "nan": None,
    "none": None,
    "null": None,
}
_FIX = "give each label column 1, 0 or an empty cell"


@dataclass
class LabelTable:
    """Pseudonymized label rows: ``(patient_id, study_id or None, {label: 0/1/None})`` and names."""

    rows: list[tuple[str, str | None, dict[str, int | None]]]
    names: list[str]


class LabelTableError(InputError):
    """The labels table cannot be used as given."""


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def read_label_table(path: Path, pseudonymizer: Pseudonymizer) -> LabelTable:
    """Read and pseudonymize a labels table (see the module docstring); rows are numbered ``#n`` as
    data rows (1-based, header not counted) in errors.

    Raises :class:`LabelTableError` naming the file (and row) for a missing ``patient`` column, no label
    column, a value that is not 0/1/empty, an empty patient id, or two rows for the same patient and
    study.
    """
    path = Path(path)
    if not path.is_file():
        raise LabelTableError(str(path), "no such file", "give the labels table's path to --labels")
    suffix = path.suffix.lower()
    try:
        if suffix in {".parquet", ".pq"}:
            frame = pd.read_parquet(path).astype(object)
        else:
            sep = "\t" if suffix == ".tsv" else ","
            frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas / pyarrow raise many types for a damaged table
        raise LabelTableError(
            str(path), f"not a readable table ({type(exc).__name__})", "export it again as CSV"
        ) from exc
    columns = {str(c).strip().lower(): c for c in frame.columns}
    if "patient" not in columns:
        raise LabelTableError(
            str(path),
            f"no 'patient' column ({describe_columns(list(frame.columns))})",
            "name the patient id column 'patient' (and the StudyInstanceUID column 'study')",
        )
    pcol, scol = columns["patient"], columns.get("study")
    names = [str(c).strip() for c in frame.columns if c not in (pcol, scol)]
    if not names:
        raise LabelTableError(str(path), "no label column besides patient/study", "add a label column")
    raw_names = [c for c in frame.columns if c not in (pcol, scol)]
    rows: list[tuple[str, str | None, dict[str, int | None]]] = []
    seen: dict[tuple[str, str | None], int] = {}
    for n, rec in enumerate(frame.to_dict(orient="records"), start=1):
        where = f"{path}#{n}"
        patient = _cell(rec[pcol])
        if not patient:
            raise LabelTableError(where, "empty patient id", "fill the patient column or drop the row")
        study_raw = _cell(rec[scol]) if scol is not None else ""
        pid = pseudonymizer.id(patient, "patient")
        sid = pseudonymizer.id(study_raw, "study") if study_raw else None
        if (pid, sid) in seen:
            first = seen[(pid, sid)]
            raise LabelTableError(where, f"same patient and study as row #{first}", "keep one row for them")
        seen[(pid, sid)] = n
        values: dict[str, int | None] = {}
        for name, col in zip(names, raw_names, strict=True):
            text = _cell(rec[col]).lower()
            if text not in _VALUES:
                # the value is not quoted: a column taken for a label may hold names or ids
                raise LabelTableError(where, f"column {name!r} holds a value that is not 1, 0 or empty", _FIX)
            values[name] = _VALUES[text]
        rows.append((pid, sid, values))
    return LabelTable(rows, names)


def apply_label_table(records: pd.DataFrame, table: LabelTable) -> tuple[pd.DataFrame, dict[str, int]]:
    """Merge ``table`` into the records' ``labels`` JSON; returns the records and counts.

    Counts: ``label_rows``, ``label_rows_unmatched`` (rows whose patient, or patient + study, has no
    record) and ``records_without_table_labels``.

    >>> import json
    >>> rec = pd.DataFrame({"patient_id": ["p", "p"], "study_id": ["s1", "s2"], "labels": ["{}", "{}"]})
    >>> t = LabelTable([("p", None, {"y": 0}), ("p", "s2", {"y": 1}), ("q", None, {"y": 1})], ["y"])
    >>> out, counts = apply_label_table(rec, t)
    >>> out["labels"].tolist(), counts["label_rows_unmatched"]
    (['{"y": 0}', '{"y": 1}'], 1)
    """
    import json

    by_patient: dict[str, dict[str, int | None]] = {}
    by_study: dict[tuple[str, str], dict[str, int | None]] = {}
    for pid, sid, values in table.rows:
        if sid is None:
            by_patient[pid] = values
        else:
            by_study[(pid, sid)] = values
    used: set[tuple[str, str | None]] = set()
    labels_out: list[str] = []
    without = 0
    for pid, sid, lab in zip(records["patient_id"], records["study_id"], records["labels"], strict=True):
        merged = json.loads(lab)
        found = False
        if pid in by_patient:
            merged.update(by_patient[pid])
            used.add((pid, None))
            found = True
        if (pid, sid) in by_study:
            merged.update(by_study[(pid, sid)])
            used.add((pid, sid))
            found = True
        without += not found
        labels_out.append(json.dumps(merged, sort_keys=True) if merged else "{}")
    out = records.assign(labels=labels_out)
    counts = {
        "label_rows": len(table.rows),
        "label_rows_unmatched": len(table.rows) - len(used),
        "records_without_table_labels": without,
    }
    return out, counts
