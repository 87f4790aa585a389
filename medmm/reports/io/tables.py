"""Reading a reports table (CSV / TSV / JSONL / Parquet) into a frame (CSV / TSV cells as strings,
JSONL / Parquet cells as Python objects, missing ones ``None``), and decoding report bytes; the rows
that cannot be read become quarantined manifest rows (:func:`read_table`).

Used by :func:`medmm.reports.io.inputs.read_reports`, which re-exports :func:`decode_bytes` and
:func:`row_ref`.

>>> row_ref("reports.csv", 2)
'reports.csv#2'
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pandas as pd

from medmm.errors import InputError, reason_of
from medmm.reports.io.files import TABLE_FIX, UnreadableTableError, binary_kind
from medmm.reports.records import ReportManifestRow, Status

__all__ = ["decode_bytes", "read_table", "row_ref"]


def decode_bytes(data: bytes) -> tuple[str, list[str]]:
    """Decode ``data`` as UTF-8, else as the detected charset, else UTF-8 with replacement.

    Charset detection (charset-normalizer) needs some text to be reliable; short inputs that are not
    UTF-8 are tried as Windows-1252, the usual legacy encoding of clinical systems.

    >>> decode_bytes("café".encode("latin-1"))
    ('café', ['decoded-as-cp1252'])
    >>> decode_bytes(b"ok")
    ('ok', [])
    """
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError:
        pass
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace"), ["decoded-as-utf_16"]
    if len(data) >= 200:
        from charset_normalizer import from_bytes

        matches = from_bytes(data)
        best = matches.best()
        if best is not None and best.encoding and best.chaos < 0.2:
            # charset-normalizer ranks equally clean single-byte code pages in no useful order (Latin-1
            # bytes of a French or German word come out as cp1250: "à" -> "ŕ"); on a tie the Western
            # code page, the usual one of Windows and Latin-1 exports, wins
            western = [m for m in matches if m.encoding == "cp1252" and m.chaos <= best.chaos]
            if western and best.encoding != "cp1252":
                return str(western[0]), ["decoded-as-cp1252"]
            return str(best), [f"decoded-as-{best.encoding}"]
    try:
        return data.decode("cp1252"), ["decoded-as-cp1252"]
    except UnicodeDecodeError:
        pass
    return data.decode("utf-8", errors="replace"), ["decoded-with-replacement"]


def row_ref(file_name: str, n: int) -> str:
    """The manifest ``path`` of row ``n`` of a table: ``<file>#<n>``, one scheme for every row.

    ``n`` is what a user looks for in the file: for JSONL the line number an editor shows (1-based;
    blank and unparsable lines are counted, so quarantined lines and reports share the numbering);
    for CSV/TSV the data row (1-based, the header not counted: file line ``n + 1`` unless a quoted
    field spans lines; row ``n + 1`` in a spreadsheet); for Parquet the row (1-based).

    >>> row_ref("reports.jsonl", 7)
    'reports.jsonl#7'
    """
    return f"{file_name}#{n}"


def read_table(path: Path) -> tuple[pd.DataFrame, list[str], list[ReportManifestRow], list[int]]:
    """Load a table with every column as string; JSONL lines that do not parse are quarantined.

    The last item numbers the frame's rows as :func:`row_ref` does: the line of the file for JSONL,
    the data row (1-based, header not counted) for CSV/TSV and Parquet.
    """
    suffix = path.suffix.lower()
    notes: list[str] = []
    bad: list[ReportManifestRow] = []
    data = path.read_bytes() if suffix not in {".parquet", ".pq"} else b""
    if suffix in {".parquet", ".pq"}:
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a damaged / non-Parquet file
            raise UnreadableTableError(
                str(path), f"not a readable Parquet file ({type(exc).__name__})", TABLE_FIX
            ) from exc
        return _as_objects(frame), notes, bad, list(range(1, len(frame) + 1))
    if not data.strip():
        raise UnreadableTableError(str(path), "file is empty", "export the reports table again")
    kind = binary_kind(data)
    if kind:
        raise UnreadableTableError(str(path), f"not a text table ({kind})", TABLE_FIX)
    text, notes = decode_bytes(data)
    if suffix in {".jsonl", ".ndjson", ".json"}:
        rows, lines = [], []
        for n, line in enumerate(text.split("\n"), start=1):  # n: the line number an editor shows
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                if not isinstance(obj, dict):
                    raise ValueError("a line must be a JSON object")
                rows.append(obj)
                lines.append(n)
            except ValueError as exc:
                where = row_ref(path.name, n)
                err = InputError(where, f"line {n} is not a JSON object ({exc})", "fix or remove the line")
                bad.append(
                    ReportManifestRow(
                        path=where,
                        format="jsonl",
                        size=len(line),
                        status=Status.quarantined,
                        reason=reason_of(err),
                        report_id="",
                    )
                )
        return _as_objects(pd.DataFrame(rows, dtype=object)), notes, bad, lines
    if suffix in {".csv", ".tsv", ".txt"}:
        sep = "\t" if suffix == ".tsv" else ","
        hint = re.match(r"[ \t]*sep=(.)[ \t]*\r?(?:\n|$)", text, re.IGNORECASE)
        if hint is not None:  # Excel's "sep=;" first line names the separator; the header comes next
            sep, text = hint.group(1), text[hint.end() :]
            notes = [*notes, "excel-sep-line"]
        header = text.split("\n", 1)[0]
        if sep == "," and ";" in header and "," not in header:  # a European-locale spreadsheet export
            sep = ";"
            notes = [*notes, "semicolon-separated"]
        try:
            frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            problem = str(exc).replace("Error tokenizing data. C error: ", "").strip()
            if problem.startswith("Expected ") and " fields in line " in problem:
                rows_read = _rows_with_extra_fields(text, sep, path.name, suffix[1:])
                if rows_read is not None:  # the rows with extra fields are quarantined, the rest read
                    frame, numbers, extra = rows_read
                    return frame, notes, extra, numbers
            raise UnreadableTableError(
                str(path),
                f"not a well-formed {suffix[1:].upper()} table ({problem})",
                'check the quoting (an unclosed " swallows the rest of the file) and the number of '
                "fields per line; re-export it",
            ) from exc
        return frame, notes, bad, list(range(1, len(frame) + 1))
    raise InputError(
        str(path),
        f"unsupported input format {suffix!r}",
        "give a .csv, .tsv, .jsonl or .parquet table, or a folder of .txt files",
    )


def _rows_with_extra_fields(
    text: str, sep: str, file_name: str, fmt: str
) -> tuple[pd.DataFrame, list[int], list[ReportManifestRow]] | None:
    """A CSV/TSV whose rows are well quoted but some hold more fields than the header (an unquoted
    separator in a report): the other rows as a frame with their data-row numbers, and one quarantined
    manifest row per row with extra fields (its contents never shown). ``None`` when the header has
    duplicate names or a quote is left open (the whole file is then refused, as before).

    >>> text = "id,text\\na,ok\\nb,x,y\\nc,fine\\n"
    >>> frame, numbers, bad = _rows_with_extra_fields(text, ",", "r.csv", "csv")
    >>> frame["id"].tolist(), numbers, [b.path for b in bad]
    (['a', 'c'], [1, 3], ['r.csv#2'])
    """
    try:
        records = [r for r in csv.reader(io.StringIO(text), delimiter=sep, strict=True) if r]
    except csv.Error:
        return None
    if not records or len(set(records[0])) != len(records[0]):
        return None
    header, width = records[0], len(records[0])
    good: list[list[str]] = []
    numbers: list[int] = []
    bad: list[ReportManifestRow] = []
    for n, rec in enumerate(records[1:], start=1):
        if len(rec) <= width:
            good.append(rec + [""] * (width - len(rec)))
            numbers.append(n)
            continue
        where = row_ref(file_name, n)
        err = InputError(
            where,
            f"row has {len(rec)} fields, the header {width} (a {sep!r} inside a field that is not quoted?)",
            'quote fields that hold the separator ("...") when exporting, or fix the row',
        )
        bad.append(
            ReportManifestRow(
                path=where,
                format=fmt,
                size=sum(map(len, rec)),
                status=Status.quarantined,
                reason=reason_of(err),
                report_id="",
            )
        )
    return pd.DataFrame(good, columns=header, dtype=str), numbers, bad


def _as_objects(frame: pd.DataFrame) -> pd.DataFrame:
    """Cells as Python objects, missing ones (JSON ``null``, Parquet nulls, absent keys) as ``None``.

    A missing text is then no text (not the report ``"nan"``), and a numeric id column with a missing
    value (read as floats: ``16.0``) keeps its ids as written (``16``).

    >>> _as_objects(pd.DataFrame({"uid": [16.0, None], "t": ["a", float("nan")]})).to_dict("list")
    {'uid': [16, None], 't': ['a', None]}
    """
    frame = frame.copy()
    for column in frame.columns:
        col = frame[column]
        if col.dtype.kind == "f" or col.dtype == object:
            values = [
                int(v) if isinstance(v, float) and v == v and v.is_integer() and abs(v) < 2**53 else v
                for v in col.tolist()
            ]
            frame[column] = pd.Series(values, index=frame.index, dtype=object)
    return frame.astype(object).where(frame.notna(), None)
