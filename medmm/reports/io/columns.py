"""Which columns of a reports table are the id and the text, and how a report's text is assembled.

:func:`~medmm.reports.io.inputs.read_reports` names its id and text columns by option or finds them
among the defaults (:func:`pick_columns`: :data:`DEFAULT_ID_COLUMNS`, :data:`DEFAULT_TEXT_COLUMNS`,
names in any case; a missing one is a :class:`MissingColumnError` listing the columns found), and
joins a row's text columns into one text (:func:`assemble_text`: a single free-text column as it is,
section columns as ``FINDINGS: ...`` blocks with their spans). :func:`split_columns` is the only place
a command-line column list is split.

>>> pick_columns(["ID", "Findings", "Impression"], None, DEFAULT_TEXT_COLUMNS, "text", Path("r.csv"), True)
['Findings', 'Impression']
>>> assemble_text([("findings", "Clear."), ("impression", "Normal.")])
('FINDINGS: Clear.\\n\\nIMPRESSION: Normal.', [('FINDINGS', 0, 10, 16), ('IMPRESSION', 18, 30, 37)])
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

from medmm.errors import InputError
from medmm.ingest.table_header import describe_columns, looks_like_data

__all__ = [
    "ACCESSION_ID_COLUMNS",
    "DEFAULT_ID_COLUMNS",
    "DEFAULT_TEXT_COLUMNS",
    "MissingColumnError",
    "accession_is_the_id",
    "assemble_text",
    "check_txt_table",
    "column_choices",
    "columns_from_string",
    "pick_columns",
    "split_columns",
]

#: Default text columns, tried in this order when ``text_columns`` is not given.
DEFAULT_TEXT_COLUMNS = (
    "text",
    "report",
    "report_text",
    "indication",
    "history",
    "comparison",
    "findings",
    "impression",
)
DEFAULT_ID_COLUMNS = ("report_id", "id", "uid", "accession")
#: An id column with one of these names (any case) holds accession numbers: its pseudonym is also the
#: report's ``accession_id`` when no ``accession_column`` is given.
ACCESSION_ID_COLUMNS = frozenset({"accession", "accession_number", "accessionnumber", "accession_no"})
_SECTION_OF = {
    "indication": "INDICATION",
    "history": "HISTORY",
    "comparison": "COMPARISON",
    "findings": "FINDINGS",
    "impression": "IMPRESSION",
    "technique": "TECHNIQUE",
}
_OPTION = {"id": "--id-column", "text": "--text-columns"}  # the command-line option of each
_FREE_TEXT = {"text", "report", "report_text", "body", "note"}


class MissingColumnError(InputError):
    """The table lacks the id or text column(s) asked for."""


def split_columns(text: str) -> list[str]:
    """Column names from one command-line string: comma-separated, CSV quoting for a name with a comma.

    This is the only place a column list is split (``medmm reports parse --text-columns``); the Python
    API takes a list.

    >>> split_columns("indication, findings,impression")
    ['indication', 'findings', 'impression']
    >>> split_columns('"Findings, final",impression')
    ['Findings, final', 'impression']
    """
    try:
        fields = next(csv.reader([text], skipinitialspace=True, strict=True), [])
    except csv.Error:  # e.g. an unclosed quote: split on commas as written
        fields = text.split(",")
    return [f.strip() for f in fields if f.strip()]


def columns_from_string(text: str, columns: list[str]) -> list[str]:
    """``text_columns`` given as one string (old API, workflow files): a column name, else a list.

    A string naming a column of the table (case-insensitive; a name may hold a comma) is that one
    column. Any other string is split by :func:`split_columns` with a ``FutureWarning``: pass a list.
    """
    lower = {c.lower(): c for c in columns}
    if text in columns or text.lower() in lower:
        return [text if text in columns else lower[text.lower()]]
    names = split_columns(text)
    warnings.warn(
        f"text_columns={text!r}: a comma-separated string is deprecated and will be read as one column "
        f"name; pass a list ({names!r}; in a workflow file: text_columns: [{', '.join(names)}])",
        FutureWarning,
        stacklevel=3,
    )
    return names


def check_txt_table(
    path: Path, columns: list[str], id_column: str | None, accession_column: str | None
) -> None:
    """A ``.txt`` file given as the input is read as a table; one whose header names none of the id
    columns is most likely one report: say so, without echoing its first line (the report's text)."""
    if path.suffix.lower() != ".txt" or id_column or accession_column:
        return
    lower = {c.lower() for c in columns}
    if not any(d in lower for d in DEFAULT_ID_COLUMNS):
        raise MissingColumnError(
            str(path),
            f"is a .txt file read as a table, but its first line names no id column ({len(columns)} "
            "field(s); not shown: it may be report text)",
            "for reports as text files, put them in a folder and pass the folder (each .txt file is one "
            "report, its name the report id); for a table, name its id column with --id-column",
        )


def column_choices(columns: list[str]) -> str:
    """``one of ['a', 'b']`` for a fix hint, or, when the "columns" are a data row read as the header
    (:func:`~medmm.ingest.table_header.looks_like_data`: a table exported without a header line), a
    hint that names none of them (they are a report's id, patient and text).

    >>> column_choices(["id", "findings"])
    "one of ['id', 'findings']"
    >>> column_choices(["ACC7730291", "John Smith has cardiomegaly"])
    'a column name of a header line (add one: the first line is a data row)'
    """
    if any(looks_like_data(c) for c in columns):
        return "a column name of a header line (add one: the first line is a data row)"
    return f"one of {columns}"


def pick_columns(
    columns: list[str],
    wanted: list[str] | None,
    defaults: tuple[str, ...],
    what: str,
    path: Path,
    multi: bool,
) -> list[str]:
    found = {c.lower(): c for c in columns}
    if wanted:
        missing = [w for w in wanted if w not in columns and w.lower() not in found]
        if missing:
            raise MissingColumnError(
                str(path),
                f"no {what} column {missing} ({describe_columns(columns)})",
                f"pass {_OPTION[what]} with {column_choices(columns)}",
            )
        return [w if w in columns else found[w.lower()] for w in wanted]
    chosen = [found[d] for d in defaults if d in found]
    if not chosen:
        raise MissingColumnError(
            str(path),
            f"no {what} column among the defaults {list(defaults)} ({describe_columns(columns)})",
            f"name it with {_OPTION[what]}",
        )
    if multi and any(c.lower() in _FREE_TEXT for c in chosen):
        chosen = [c for c in chosen if c.lower() in _FREE_TEXT][:1]
    return chosen if multi else chosen[:1]


def assemble_text(values: list[tuple[str, str]]) -> tuple[str, list[tuple[str, int, int, int]] | None]:
    """Join (column, text) pairs: one column as free text (its section headers detected) unless its name
    is a known section (``findings`` ...), else ``NAME: text`` blocks with sections.

    A single column with another name (``clinical notes``) used to become an unscored section of that
    name, so every report came out ``normal``.
    """
    if len(values) == 1 and values[0][0].lower() not in _SECTION_OF:
        return values[0][1], None
    parts: list[str] = []
    sections: list[tuple[str, int, int, int]] = []
    pos = 0
    for column, value in values:
        if not value:
            continue
        name = _SECTION_OF.get(column.lower(), column.upper())
        header = f"{name}: "
        start = pos
        block = header + value
        parts.append(block)
        sections.append((name, start, start + len(header), start + len(block)))
        pos += len(block) + 2
    return "\n\n".join(parts), sections


def accession_is_the_id(
    columns: list[str], id_column: str | None, accession_column: str | None, keep_report_ids: bool
) -> bool:
    """Whether ``accession_column`` serves as the report id: no ``id_column`` given, none of
    :data:`DEFAULT_ID_COLUMNS` in the table, and ids pseudonymized (never kept raw: ``keep_report_ids``
    would write the accession numbers as they are).

    >>> accession_is_the_id(["accession_no", "findings"], None, "accession_no", False)
    True
    >>> accession_is_the_id(["id", "accession_no", "findings"], None, "accession_no", False)
    False
    """
    lower = {c.lower() for c in columns}
    return (
        id_column is None
        and accession_column is not None
        and accession_column in columns
        and not keep_report_ids
        and not any(d in lower for d in DEFAULT_ID_COLUMNS)
    )
