"""What a reports input *is*, before any text is read from it: binary content where text is expected,
file names that cannot be stored, run directories that would be read as inputs, unreadable tables.

>>> binary_kind(b"%PDF-1.7")
'PDF'
"""

from __future__ import annotations

from pathlib import Path

from medmm.errors import InputError, reason_of
from medmm.ingest.discover import printable_name
from medmm.reports.records import ReportManifestRow, Status

__all__ = [
    "TABLE_FIX",
    "FileNameError",
    "NotTextError",
    "UnreadableTableError",
    "binary_kind",
    "check_run_dir",
    "printable_name",
    "quarantined_file_row",
]


class UnreadableTableError(InputError):
    """The reports table cannot be read at all (empty, binary, malformed CSV, damaged Parquet)."""


class FileNameError(InputError):
    """A file of a reports folder whose name is not valid UTF-8 (shown with ``\\xNN`` escapes)."""


class NotTextError(InputError):
    """A file in a reports folder is not a plain-text report (binary content, or not ``.txt``)."""


TABLE_FIX = "give a .csv, .tsv, .jsonl or .parquet table of reports (id + text columns)"

#: Leading bytes of binary formats that turn up where text reports are expected.
_MAGIC = (
    (b"%PDF", "PDF"),
    (b"PK\x03\x04", "zip / .docx / .xlsx"),
    (b"\xd0\xcf\x11\xe0", "legacy Word / Excel"),
    (b"PAR1", "Parquet"),
    (b"\x1f\x8b", "gzip"),
    (b"\x89PNG", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
)


def binary_kind(data: bytes) -> str:
    """What binary content ``data`` looks like (``""`` when it looks like text).

    A NUL byte in the first 8 KiB (and no UTF-16 byte-order mark) means binary; a DICOM file (which
    carries patient names in its header) is named as such.

    >>> binary_kind(b"No effusion."), binary_kind(b"%PDF-1.4 ..."), binary_kind(bytes(128) + b"DICM")
    ('', 'PDF', 'DICOM')
    """
    if data[128:132] == b"DICM":
        return "DICOM"
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return ""
    return "binary content" if b"\x00" in data[:8192] else ""


def quarantined_file_row(f: Path, rel: str, err: InputError) -> ReportManifestRow:
    """The quarantined manifest row of file ``f`` (``rel`` under the reports folder) for ``err``.

    >>> import pathlib
    >>> err = NotTextError("x.pdf", "not a .txt file", "export it as .txt")
    >>> quarantined_file_row(pathlib.Path("/nowhere/x.pdf"), "x.pdf", err).reason
    'NotTextError: x.pdf: not a .txt file. Fix: export it as .txt'
    """
    try:
        size: int | None = f.stat().st_size
    except OSError:  # a dangling link
        size = None
    fmt = printable_name(f.suffix.lower().lstrip(".")) or "unknown"
    return ReportManifestRow(
        path=printable_name(rel),
        format=fmt,
        size=size,
        status=Status.quarantined,
        reason=reason_of(err),
        report_id=printable_name(f.stem),
    )


def check_run_dir(input_path: Path, run_dir: Path) -> None:
    """Refuse a run directory inside a reports folder (its files would be read as reports next time).

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> check_run_dir(folder, folder.parent / "run")
    >>> check_run_dir(folder, folder / "run")
    Traceback (most recent call last):
    ...
    medmm.errors.ConfigError: ...: the run directory is inside the reports folder ...
    """
    from medmm.errors import ConfigError

    folder = Path(input_path)
    if folder.is_dir() and Path(run_dir).resolve().is_relative_to(folder.resolve()):
        raise ConfigError(
            f"{run_dir}: the run directory is inside the reports folder {folder}, so the run's own files "
            "would be listed as inputs next time; choose an --out outside it"
        )
