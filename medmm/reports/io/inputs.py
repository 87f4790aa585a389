"""Read reports from CSV / JSONL / Parquet tables or a folder of ``.txt`` files, repairing text on the way.

Every input report becomes either a :class:`ReportInput` (to parse) or a quarantined / duplicate
:class:`~medmm.reports.records.ReportManifestRow` with its reason; nothing is dropped silently.
Repairs (charset detection, HTML/RTF stripping, control characters, size cap) are listed in the
report's ``notes``.

>>> text, notes = clean_text("<p>No effusion.</p>")
>>> text, notes
('No effusion.', ['html-stripped'])
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medmm.errors import ConfigError, InputError
from medmm.ingest.table_header import describe_columns
from medmm.pseudonym import Pseudonymizer
from medmm.reports.io.columns import (
    ACCESSION_ID_COLUMNS,
    DEFAULT_ID_COLUMNS,
    DEFAULT_TEXT_COLUMNS,
    MissingColumnError,
    accession_is_the_id,
    assemble_text,
    check_txt_table,
    columns_from_string,
    pick_columns,
    split_columns,
)
from medmm.reports.io.files import (
    FileNameError,
    NotTextError,
    UnreadableTableError,
    binary_kind,
    check_run_dir,
    printable_name,
    quarantined_file_row,
)
from medmm.reports.io.tables import decode_bytes, read_table, row_ref
from medmm.reports.records import ReportManifestRow, Status

__all__ = [
    "ACCESSION_KIND",
    "MAX_CHARS",
    "REPORT_KIND",
    "EmptyReportError",
    "FileNameError",
    "InputBatch",
    "MissingColumnError",
    "MissingIdError",
    "NotTextError",
    "ReportInput",
    "UnreadableTableError",
    "binary_kind",
    "check_run_dir",
    "clean_text",
    "decode_bytes",
    "read_reports",
    "report_pseudonymizer",
    "row_ref",
    "split_columns",
]

#: Reports longer than this (characters, after cleaning) are cut at the last sentence end before it.
MAX_CHARS = 100_000
#: The :meth:`~medmm.pseudonym.Pseudonymizer.id` kind of report ids (pseudonyms ``rep-...``).
REPORT_KIND = "report"
#: The kind of accession numbers: that of report ids, because a RIS export's report id is the accession
#: number. It is ``medmm.imaging.records.ACCESSION_KIND`` (the imaging stage's ``accession_id`` of the
#: DICOM AccessionNumber; tested equal), so one accession number has one pseudonym in every table.
ACCESSION_KIND = REPORT_KIND
_TAG = re.compile(r"<\s*/?\s*[a-zA-Z][^<>]{0,200}>")
_RTF_CTRL = re.compile(r"\\[a-zA-Z]+-?\d* ?|\\[{}\\]|[{}]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class EmptyReportError(InputError):
    """A report has no text (empty or whitespace only in every text column)."""


class MissingIdError(InputError):
    """A row has no report id."""


@dataclass
class ReportInput:
    """One report to parse: id, where it came from, cleaned text and (optionally) known sections.

    ``sections`` holds ``(name, start, body_start, end)`` when the input came as one column per
    section; otherwise headers are detected in ``text``.
    """

    report_id: str
    path: str
    format: str
    text: str
    size: int
    sections: list[tuple[str, int, int, int]] | None = None
    patient_id: str | None = None
    study_id: str | None = None
    notes: list[str] = field(default_factory=list)
    #: accession pseudonym (``Pseudonymizer.id(accession, "report")``: :data:`ACCESSION_KIND`)
    accession_id: str | None = None
    #: the report / exam date moved by the patient's keyed shift (ISO; a date alone for precision "date")
    report_time: str | None = None
    report_time_precision: str | None = None
    #: why the date column gave no date (a manifest ``reason`` of the ingested report), ``""`` if none
    date_reason: str = ""


@dataclass
class InputBatch:
    """What :func:`read_reports` found: reports to parse and rows already decided (bad inputs)."""

    reports: list[ReportInput]
    rejected: list[ReportManifestRow]
    id_column: str | None
    text_columns: list[str]
    #: the column accession numbers were read from (given, or the id column named ``accession``)
    accession_column: str | None = None


def clean_text(text: str, max_chars: int = MAX_CHARS) -> tuple[str, list[str]]:
    """Strip RTF and HTML remnants and control characters, normalise line ends, cap the length.

    Returns the cleaned text and notes naming each repair.

    >>> clean_text("{\\\\rtf1\\\\ansi No effusion.\\\\par}")
    ('No effusion.', ['rtf-stripped'])
    >>> clean_text("a" * 20, max_chars=10)[1]
    ['truncated-from-20-chars']
    """
    notes: list[str] = []
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.lstrip().startswith("{\\rtf"):
        text = _RTF_CTRL.sub("", text.replace("\\par", "\n"))
        notes.append("rtf-stripped")
    if _TAG.search(text):
        text = _TAG.sub(" ", re.sub(r"(?i)<\s*br\s*/?\s*>|</\s*p\s*>", "\n", text))
        text = html.unescape(text)
        notes.append("html-stripped")
    elif re.search(r"&(?:[a-z]+|#\d+);", text):
        text = html.unescape(text)
        notes.append("html-entities-unescaped")
    if _CONTROL.search(text):
        text = _CONTROL.sub(" ", text)
        notes.append("control-characters-removed")
    if "\ufffd" in text:
        notes.append("replacement-characters")
    text = "\n".join(re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    if len(text) > max_chars:
        cut = max(text.rfind(". ", 0, max_chars), text.rfind("\n", 0, max_chars))
        cut = cut + 1 if cut > max_chars // 2 else max_chars
        notes.append(f"truncated-from-{len(text)}-chars")
        text = text[:cut].rstrip()
    return text, notes


def _reason(err: InputError) -> str:
    from medmm.errors import reason_of

    return reason_of(err)


def read_reports(
    path: Path,
    *,
    id_column: str | None = None,
    text_columns: list[str] | None = None,
    patient_column: str | None = None,
    study_column: str | None = None,
    pseudonymizer: Pseudonymizer | None = None,
    max_chars: int = MAX_CHARS,
    keep_report_ids: bool = False,
    accession_column: str | None = None,
    date_column: str | None = None,
) -> InputBatch:
    """Read every report of ``path`` (a table or a folder of ``.txt``); bad ones become manifest rows.

    Raises :class:`MissingColumnError` (listing the columns found) when the id or text columns are
    absent; every other problem is per report: quarantined (empty text, missing id) or ``duplicate``
    (same id as an earlier report, named in ``reason``).

    ``text_columns`` is a list of column names (the command line splits its option with
    :func:`split_columns`); a single string is taken as one column name when the table has that
    column, otherwise it is split on commas with a ``FutureWarning`` (deprecated). Each table row's
    manifest ``path`` is :func:`row_ref` (``file#n``).

    Report ids (a table's id column, a ``.txt`` file's stem) are accession numbers or RIS ids in most
    hospitals: with a ``pseudonymizer`` every ``report_id`` (reports and rejected rows) is its
    pseudonym ``Pseudonymizer.id(raw, "report")`` (:func:`report_pseudonymizer`), unless
    ``keep_report_ids`` (data already de-identified). Duplicates are found on the raw ids; a
    duplicate's reason names the first row's location, never an id.

    ``accession_column`` (a table's accession numbers; by default the id column when it is named
    ``accession``, :data:`ACCESSION_ID_COLUMNS`; it is also the id column when none is given and the
    table has none of :data:`DEFAULT_ID_COLUMNS`, as in RIS exports) gives each report ``accession_id =
    Pseudonymizer.id(accession, "report")``, the pseudonym the imaging stage gives the DICOM
    AccessionNumber, so ``medmm align`` links the report to its images without a StudyInstanceUID.
    ``date_column`` (the report / exam date) is read by :func:`~medmm.reports.io.dates.read_dates` and
    moved by the patient's keyed date shift (as imaging and signals dates are); it needs
    ``patient_column``. An unreadable date, or a date on a row without a patient id, leaves that
    report without a date and with a ``reason`` naming the row and column (never the value).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "r.csv"
    >>> _ = p.write_text("uid,findings\\n1,No effusion.\\n1,Again.\\n2, \\n")
    >>> b = read_reports(p)
    >>> [r.report_id for r in b.reports], [(r.status.value, r.report_id) for r in b.rejected]
    (['1'], [('duplicate', '1'), ('quarantined', '2')])
    """
    path = Path(path)
    if not path.exists():
        raise InputError(str(path), "does not exist", "check the path")
    hide = report_pseudonymizer(pseudonymizer) if pseudonymizer is not None and not keep_report_ids else None
    reports: list[ReportInput] = []
    rejected: list[ReportManifestRow] = []
    rows: list[tuple[str, str, str | list[tuple[str, str]], int, list[str], Any, Any]] = []
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file() or p.is_symlink()):
            rel = f.relative_to(path).as_posix()
            if any(part.startswith(".") for part in rel.split("/")):  # .DS_Store, .git/ ...: as signals
                continue
            shown = printable_name(rel)
            if shown != rel:  # surrogate-escaped bytes: not storable in the tables
                named = FileNameError(
                    shown,
                    "file name (or a folder name in its path) is not valid UTF-8",
                    "rename it to UTF-8 (e.g. `convmv -f latin1 -t utf8 -r --notest FOLDER`)",
                )
                rejected.append(quarantined_file_row(f, rel, named))
                continue
            if f.suffix.lower() != ".txt":  # listed, never dropped silently
                other = NotTextError(
                    rel,
                    "not a .txt file (a reports folder is read for plain-text .txt reports)",
                    "export the report as .txt, or move the file out of the reports folder",
                )
                rejected.append(quarantined_file_row(f, rel, other))
                continue
            try:
                data = f.read_bytes()
            except OSError as exc:  # unreadable file: quarantined, the batch goes on
                dangling = f.is_symlink() and not f.exists()
                unreadable = InputError(
                    rel,
                    "symbolic link whose target does not exist"
                    if dangling
                    else f"cannot be read ({exc.strerror})",
                    "remove the link or restore its target" if dangling else "check the file's permissions",
                )
                rejected.append(
                    ReportManifestRow(
                        path=rel,
                        format="txt",
                        status=Status.quarantined,
                        reason=_reason(unreadable),
                        report_id=f.stem,
                    )
                )
                continue
            kind = binary_kind(data)
            if kind:  # e.g. a DICOM named .txt: its header (patient name ...) must not become "text"
                binary = NotTextError(
                    rel, f"not a text file ({kind})", "export the report as plain text (.txt)"
                )
                rejected.append(quarantined_file_row(f, rel, binary))
                continue
            text, notes = decode_bytes(data)
            rows.append((rel, f.stem, text, len(data), notes, None, None))
        fmt, id_col, text_cols = "txt", None, ["text"]
        if accession_column or date_column:
            raise ConfigError(
                f"{path}: --accession-column / --date-column name columns of a table; a folder of .txt "
                "reports has none. Fix: give the reports as a table (CSV, JSONL, Parquet) with those columns"
            )
    else:
        frame, file_notes, rejected, numbers = read_table(path)
        columns = [str(c) for c in frame.columns]
        check_txt_table(path, columns, id_column, accession_column)
        if accession_is_the_id(columns, id_column, accession_column, keep_report_ids):
            id_col = str(accession_column)  # a RIS export: the accession number identifies the report
        else:
            id_col = pick_columns(
                columns, [id_column] if id_column else None, DEFAULT_ID_COLUMNS, "id", path, False
            )[0]
        if isinstance(text_columns, str):
            text_columns = columns_from_string(text_columns, columns)
        text_cols = pick_columns(columns, text_columns, DEFAULT_TEXT_COLUMNS, "text", path, True)
        for extra in (patient_column, study_column, accession_column, date_column):
            if extra and extra not in columns:
                raise MissingColumnError(
                    str(path),
                    f"no column {extra!r} ({describe_columns(columns)})",
                    "pass an existing column to --patient-column/--study-column/--accession-column/"
                    "--date-column",
                )
        _check_link_options(path, patient_column, date_column, accession_column, pseudonymizer)
        if accession_column is None and pseudonymizer is not None and id_col.lower() in ACCESSION_ID_COLUMNS:
            accession_column = id_col
        fmt = path.suffix.lower().lstrip(".")
        records = frame.to_dict(orient="records")
        for n, rec in zip(numbers, records, strict=True):
            values = [(c, "" if rec.get(c) is None else str(rec.get(c))) for c in text_cols]
            rid = "" if rec.get(id_col) is None else str(rec.get(id_col)).strip()
            pat = rec.get(patient_column) if patient_column else None
            stu = rec.get(study_column) if study_column else None
            size = sum(len(v) for _, v in values)
            rows.append((row_ref(path.name, n), rid, values, size, list(file_notes), pat, stu))
        if accession_column:
            accessions = [rec.get(accession_column) for rec in records]
        if date_column:
            from medmm.reports.io.dates import read_dates, shift_report_date

            wheres = [r[0] for r in rows]
            dates = read_dates([rec.get(date_column) for rec in records], str(path), date_column, wheres)
    seen: dict[str, str] = {}
    for k, (where, rid, raw, size, notes, pat, stu) in enumerate(rows):
        if isinstance(raw, str):
            text, more = clean_text(raw, max_chars)
            sections = None
        else:
            cleaned = []
            more = []
            for column, value in raw:
                value, repairs = clean_text(value, max_chars)
                more += [f"{column}:{e}" for e in repairs]
                cleaned.append((column, value))
            text, sections = assemble_text(cleaned)
        notes = notes + more
        base = dict(path=where, format=fmt, size=size, report_id=rid, notes=";".join(notes))
        if not rid:
            err: InputError = MissingIdError(where, f"empty id column {id_col!r}", "give every report an id")
            rejected.append(ReportManifestRow(**base, status=Status.quarantined, reason=_reason(err)))
            continue
        if rid in seen:
            rejected.append(
                ReportManifestRow(
                    **base, status=Status.duplicate, reason=f"same report_id as {seen[rid]} (kept the first)"
                )
            )
            continue
        seen[rid] = where
        if not text.strip():
            err = EmptyReportError(
                where, f"no text in {text_cols}", "fill the text column(s) or drop the row"
            )
            rejected.append(ReportManifestRow(**base, status=Status.quarantined, reason=_reason(err)))
            continue
        pid = pseudonymizer.id(str(pat), "patient") if (pat not in (None, "") and pseudonymizer) else None
        sid = pseudonymizer.id(str(stu), "study") if (stu not in (None, "") and pseudonymizer) else None
        rep = hide(rid) if hide is not None else rid
        one = ReportInput(rep, where, fmt, text, size, sections, pid, sid, notes)
        if accession_column and pseudonymizer is not None:
            acc = accessions[k]
            acc_text = "" if acc is None else str(acc).strip()
            one.accession_id = pseudonymizer.id(acc_text, ACCESSION_KIND) if acc_text else None
        if date_column and pseudonymizer is not None:
            patient = None if pat in (None, "") else str(pat)
            shifted = shift_report_date(dates[k], patient, where, date_column, pseudonymizer)
            one.report_time, one.report_time_precision, problem = shifted
            if problem is not None:
                one.date_reason = _reason(problem)
                one.notes = [*one.notes, type(problem).note]
        reports.append(one)
    if hide is not None:  # rejected rows' ids too (a quarantined row's id is an identifier as well)
        rejected = [
            r.model_copy(update={"report_id": hide(r.report_id)}) if r.report_id else r for r in rejected
        ]
    return InputBatch(reports, rejected, id_col, text_cols, accession_column)


def report_pseudonymizer(pseudonymizer: Pseudonymizer) -> Callable[[str], str]:
    """The function giving the ``report_id`` a parse writes for an input id (ids not kept as given):
    ``pseudonymizer.id(raw_id, "report")``, with the keyed HMAC state built once
    (``Pseudonymizer.id_function``; 10k ids in ~10 ms of CPU). The one name for "report id ->
    pseudonym", for one id (``report_pseudonymizer(p)(raw)``) or a table of them.

    >>> p = Pseudonymizer(b"k" * 32)
    >>> report_pseudonymizer(p)(" ACC-1 ") == p.id("ACC-1", "report")
    True
    """
    return pseudonymizer.id_function(REPORT_KIND)


def _check_link_options(
    path: Path,
    patient_column: str | None,
    date_column: str | None,
    accession_column: str | None,
    pseudonymizer: Pseudonymizer | None,
) -> None:
    """Dates are shifted per patient (they need the patient column); both need the site key."""
    if date_column and not patient_column:
        raise ConfigError(
            f"{path}: --date-column {date_column!r} needs --patient-column: report dates are moved by the "
            "patient's keyed date shift (as image and signal dates are), and without a patient id a date "
            "would be written as it is (identifying) or not link. Fix: add --patient-column"
        )
    if (date_column or accession_column) and pseudonymizer is None:
        raise ConfigError(
            f"{path}: --accession-column / --date-column need the site key (accession numbers are "
            "pseudonymized, dates shifted). Fix: pass a Pseudonymizer (the command line loads the key)"
        )
