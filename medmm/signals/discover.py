"""Find the records under an input folder and give every file exactly one role.

A record is a WFDB header (single- or multi-segment), an EDF/BDF file, a CSV/Parquet vitals table or
a DICOM file. Files a record needs (signal files, segment headers, annotation files) are its
*companions*; they get ``status=companion`` rows naming the record's main file. Files nobody claims are
quarantined with a reason: a ``.dat`` with no header, or a file that is not a signal format. Headers
that cannot be parsed are quarantined here, before any task runs.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "orphan.dat").write_bytes(b"\\0" * 4)
>>> jobs, rows = discover(d)
>>> jobs, rows[0].status.value, rows[0].reason.split(":")[0]
([], 'quarantined', 'MissingHeaderError')
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medmm.errors import InputError, reason_of
from medmm.ingest.discover import printable_name
from medmm.records import Status
from medmm.signals.errors import MissingHeaderError, NotASignalError, SignalFileError
from medmm.signals.readers.wfdb import ANNOTATION_EXTENSIONS, wfdb_header_files
from medmm.signals.records import SignalManifestRow

__all__ = ["RecordJob", "discover"]

_EDF = {".edf", ".bdf", ".rec"}
_TABLE = {".csv", ".parquet", ".tsv"}
_DATA = {".dat", ".mat"}


@dataclass
class RecordJob:
    """One record to process (a Dask task's input): small and picklable."""

    record: str  # relative path without extension
    kind: str  # wfdb, edf, table, dicom
    main: str  # relative path of the main file
    companions: list[str] = field(default_factory=list)
    annotation_extensions: list[str] = field(default_factory=list)
    size: int = 0  # bytes of main + companions (scheduling, benchmarks)


def _row(
    root: Path, rel: str, fmt: str, status: Status, reason: str = "", record: str = "", **extra: Any
) -> SignalManifestRow:
    """The manifest row of one input file (size and mtime read from disk); ``extra`` adds columns."""
    try:
        st: os.stat_result | None = (root / rel).stat()
    except OSError:  # a dangling link, or a file gone since the walk
        st = None
    return SignalManifestRow(
        path=printable_name(rel),  # the name itself unless it is not UTF-8
        size=None if st is None else st.st_size,
        mtime_ns=None if st is None else st.st_mtime_ns,
        format=fmt,
        status=status,
        reason=reason,
        record=record,
        **extra,
    )


def _is_dicom(path: Path) -> bool:
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with path.open("rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _walk(root: Path, rows: list[SignalManifestRow]) -> list[str]:
    """Regular files under ``root`` (hidden ones skipped); what cannot be used becomes a row in ``rows``:
    unlistable folders, dangling links, names that are not UTF-8."""
    out = []

    def unlistable(exc: OSError) -> None:
        rel = Path(exc.filename).relative_to(root).as_posix() if exc.filename else "."
        err = SignalFileError(
            printable_name(rel), f"folder cannot be listed ({exc.strerror})", "grant read access"
        )
        rows.append(_row(root, rel, "folder", Status.quarantined, reason_of(err), ""))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unlistable):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            rel = (Path(dirpath) / name).relative_to(root).as_posix()
            shown = printable_name(rel)
            if shown != rel:
                err = SignalFileError(
                    shown,
                    "file name (or a folder name in its path) is not valid UTF-8",
                    "rename it to UTF-8 (e.g. `convmv -f latin1 -t utf8 -r --notest FOLDER`)",
                )
            elif not (root / rel).exists():
                err = SignalFileError(
                    rel, "symbolic link whose target does not exist", "remove the link or restore its target"
                )
            else:
                out.append(rel)
                continue
            rows.append(_row(root, rel, "unknown", Status.quarantined, reason_of(err), ""))
    return sorted(out)


def discover(
    root: Path, only: Sequence[str] | None = None
) -> tuple[list[RecordJob], list[SignalManifestRow]]:
    """Records to process under ``root`` and the manifest rows of files settled without reading them.

    Parameters
    ----------
    root
        Input folder, walked recursively (hidden files and folders are skipped).
    only
        Keep only the records whose main file (``.hea``, ``.edf``, ``.dcm`` ...) is in this list of
        paths relative to ``root`` - e.g. the DICOM waveforms the imaging stage routed here; other
        files get no manifest row.

    Returns
    -------
    jobs
        One :class:`RecordJob` per record (its task writes the rows of the main file and companions).
    rows
        Quarantined rows for unparseable headers, orphan signal files and non-signal files.
    """
    root = Path(root)
    rows: list[SignalManifestRow] = []
    files = _walk(root, rows)
    present = set(files)
    owner: dict[str, str] = {}  # file -> main file that claims it
    headers = [f for f in files if f.lower().endswith(".hea")]
    parsed: dict[str, tuple[bool, list[str]]] = {}
    failed: dict[str, tuple[str, str]] = {}  # record -> (its unreadable header, reason)
    for hea in headers:
        try:
            parsed[hea] = wfdb_header_files(root / hea, hea)
        except InputError as exc:
            rows.append(_row(root, hea, "wfdb", Status.quarantined, reason_of(exc), hea[:-4]))
            failed[hea[:-4]] = (hea, reason_of(exc))
    folder_of = {h: h.rsplit("/", 1)[0] + "/" if "/" in h else "" for h in parsed}
    # masters first, so segment headers become companions rather than records of their own
    for hea, (multi, needs) in sorted(parsed.items(), key=lambda kv: not kv[1][0]):
        if not multi and hea in owner:
            continue
        for f in needs:
            rel = folder_of[hea] + f
            if rel in present and rel != hea:
                owner.setdefault(rel, hea)
    jobs: list[RecordJob] = []
    for hea in parsed:
        if hea in owner:
            continue
        record = hea[:-4]
        companions = sorted(f for f, o in owner.items() if o == hea)
        exts = [e for e in ANNOTATION_EXTENSIONS if f"{record}.{e}" in present]
        for e in exts:
            owner[f"{record}.{e}"] = hea
        companions += [f"{record}.{e}" for e in exts]
        jobs.append(RecordJob(record, "wfdb", hea, companions, exts))
    for rel in files:
        if rel in owner or rel in parsed or any(r.path == rel for r in rows):
            continue
        suffix = Path(rel).suffix.lower()
        record = rel.rsplit(".", 1)[0] if "." in Path(rel).name else rel
        if suffix in _EDF:
            jobs.append(RecordJob(record, "edf", rel))
        elif suffix in _TABLE:
            jobs.append(RecordJob(record, "table", rel))
        elif _is_dicom(root / rel):
            jobs.append(RecordJob(record, "dicom", rel))
        elif (suffix in _DATA or suffix.lstrip(".") in ANNOTATION_EXTENSIONS) and record in failed:
            hea, why = failed[record]  # its header is there but unreadable: not an orphan
            reason = f"part of {hea}, which is quarantined: {why}"
            rows.append(_row(root, rel, "wfdb", Status.quarantined, reason, record))
        elif suffix in _DATA or suffix.lstrip(".") in ANNOTATION_EXTENSIONS:
            orphan = MissingHeaderError(
                rel, "no WFDB header (.hea) names this file", f"copy {Path(rel).stem}.hea beside it"
            )
            rows.append(_row(root, rel, "wfdb", Status.quarantined, reason_of(orphan), record))
        else:
            other = NotASignalError(
                rel, "not a signal format this stage reads", "leave it out of the signal input"
            )
            rows.append(_row(root, rel, "unknown", Status.quarantined, reason_of(other), ""))
    for job in jobs:
        job.size = sum((root / f).stat().st_size for f in [job.main, *job.companions])
    jobs.sort(key=lambda j: j.record)
    if only is not None:
        keep = set(only)
        jobs = [j for j in jobs if j.main in keep]
        rows = [r for r in rows if r.path in keep]
    return jobs, rows
