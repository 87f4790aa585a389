"""Patient and study ids for image files that carry none (PNG/JPEG/TIFF pictures, NIfTI, ANALYZE).

A picture export or a NIfTI file holds no patient id medmm may trust, so the user gives a table: one row
per file, a path column and the ids (a research set's metadata CSV, e.g. the COVID chest X-ray
collection's ``filename`` / ``patientid`` columns, or one made with pandas from the folder names of
MIMIC-CXR-JPG or CheXpert). The driver looks each image file up (:meth:`IdTable.lookup`); the converter
pseudonymizes the raw values with the site key, exactly as DICOM ids and the reports stage's
``--patient-column`` are, so the volumes link with reports and signals of the same patient.

>>> import tempfile
>>> p = Path(tempfile.mkdtemp()) / "ids.csv"
>>> _ = p.write_text("path,patient_id,study_id\\ncxr/a.png,P1,S1\\nb.jpg,P2,\\n")
>>> table = IdTable.load(p)
>>> table.lookup("cxr/a.png").patient, table.lookup("data/b.jpg").patient, table.lookup("c.png")
('P1', 'P2', None)
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from medmm.errors import ConfigError, InputError
from medmm.ingest.table_header import describe_columns, looks_like_data

__all__ = ["AmbiguousIdsError", "FileIds", "IdColumns", "IdTable"]


class AmbiguousIdsError(InputError):
    """Several rows of the ids table, with different ids, match one file."""


@dataclass(frozen=True)
class FileIds:
    """The raw (not yet pseudonymized) ids and details of one file; never written out as they are."""

    patient: str = ""
    study: str = ""
    modality: str = ""
    study_time: str = ""  # ISO date or date-time; shifted per patient when written
    table: str = ""  # the ids table looked in ("" for --modality alone): a file it misses gets a warning
    accession: str = ""  # raw accession number; written only as its pseudonym (``accession_id``)


@dataclass(frozen=True)
class IdColumns:
    """Column names of an ids table. ``path`` and ``patient`` must exist; the others are used when present
    (naming one that is absent, i.e. not its default, is an error)."""

    path: str = "path"
    patient: str = "patient_id"
    study: str = "study_id"
    modality: str = "modality"
    time: str = "study_time"
    accession: str = "accession"


def _norm(value: str) -> str:
    text = value.strip().replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    return text.strip("/")


#: a combined modality as RIS exports write it: PET/CT, SPECT/CT, PT/MR
_COMBINED_MODALITY = re.compile(r"[A-Za-z][A-Za-z-]{0,15}(?:/[A-Za-z][A-Za-z-]{0,15}){1,2}")


def _not_a_modality(value: str) -> bool:
    """Whether a modality cell looks like a name, id, date or file (:func:`looks_like_data`) rather
    than a modality; a combined one (``PET/CT``) is a modality, its ``/`` no path.

    >>> _not_a_modality("PET/CT"), _not_a_modality("X-ray"), _not_a_modality("Smith^John")
    (False, False, True)
    """
    return looks_like_data(value) and not _COMBINED_MODALITY.fullmatch(value)


class IdTable:
    """Rows of an ids table by path, with the matching rule of :meth:`lookup`.

    Parameters
    ----------
    rows
        Normalised path (POSIX, no leading ``./`` or ``/``) -> ids.
    source
        Where the rows come from (for messages).
    digest
        Identifies the content and options: a run directory ingested with other ids starts afresh.
    modality
        Modality for files whose row has none (``""``: unknown).
    """

    def __init__(
        self, rows: dict[str, FileIds], source: str = "ids", digest: str = "", modality: str = ""
    ) -> None:
        self.rows = rows
        self.source = source
        self.modality = modality
        self.digest = (
            digest or hashlib.sha256(repr((sorted(rows.items()), modality)).encode()).hexdigest()[:16]
        )
        self._by_name: dict[str, list[str]] = {}
        for key in rows:
            self._by_name.setdefault(PurePosixPath(key).name, []).append(key)

    @classmethod
    def load(cls, path: Path | str, columns: IdColumns = IdColumns(), modality: str = "") -> IdTable:
        """Read a CSV ids table (UTF-8, header row).

        Raises
        ------
        ConfigError
            The file cannot be read, a required or named column is missing, or two rows give the same
            path different ids (the message names the rows, never the ids).

        Examples
        --------
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "meta.csv"
        >>> _ = p.write_text("filename,Patientid,modality\\nx1.jpg,20,X-ray\\n")
        >>> t = IdTable.load(p, IdColumns(path="filename", patient="Patientid"))
        >>> t.lookup("images/x1.jpg")
        FileIds(patient='20', study='', modality='X-ray', study_time='', table='meta.csv', accession='')
        """
        path = Path(path)
        try:
            raw = path.read_bytes()
            text = raw.decode("utf-8-sig")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the ids table ({exc.strerror or exc})") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: the ids table is not UTF-8 text; save it as UTF-8 CSV") from exc
        reader = csv.reader(io.StringIO(text, newline=""))  # quoted cells may hold line breaks
        header = [h.strip() for h in next(reader, [])]
        defaults = IdColumns()
        index: dict[str, int | None] = {}
        for field in ("path", "patient", "study", "modality", "time", "accession"):
            name = getattr(columns, field)
            if name in header:
                index[field] = header.index(name)
            elif field in ("path", "patient") or name != getattr(defaults, field):
                raise ConfigError(
                    f"{path}: the ids table has no column {name!r} ({describe_columns(header)}); "
                    f"name the {field} column with --{field}-column"
                )
            else:
                index[field] = None
        rows: dict[str, FileIds] = {}
        first_row: dict[str, int] = {}
        for n, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue

            def cell(field: str, row: list[str] = row) -> str:
                i = index[field]
                return row[i].strip() if i is not None and i < len(row) else ""

            key = _norm(cell("path"))
            if not key:
                continue
            if _not_a_modality(cell("modality")):  # a wrong --modality-column: the value is not echoed
                raise ConfigError(
                    f"{path}: row {n}: column {columns.modality!r} holds a value that is no modality code "
                    "(not shown: it looks like a name, id, date or file); name the modality column with "
                    "--modality-column, or leave it out and give --modality"
                )
            ids = FileIds(
                cell("patient"), cell("study"), cell("modality"), cell("time"), accession=cell("accession")
            )
            if key in rows and rows[key] != ids:
                raise ConfigError(
                    f"{path}: rows {first_row[key]} and {n} give the same file different ids; "
                    "keep one row per file"
                )
            rows.setdefault(key, ids)
            first_row.setdefault(key, n)
        digest = hashlib.sha256(raw + repr((columns, modality)).encode()).hexdigest()[:16]
        return cls(rows, source=path.name, digest=digest, modality=modality)

    def lookup(self, rel: str) -> FileIds | None:
        """The ids of the file at ``rel`` (relative to the archive); ``None`` when no row matches (a
        ``FileIds`` with only the table's ``modality`` when it has one).

        A row matches when its path equals ``rel``, or when one of the two ends with the other after a
        ``/``: bare file names and paths relative to a parent folder of the archive (CheXpert's
        ``CheXpert-v1.0/train/...``) both work. The table's ``modality`` fills in a row without one.

        Raises
        ------
        AmbiguousIdsError
            Several rows with different ids match ``rel`` (e.g. bare names repeated in many folders).

        >>> t = IdTable({"p1/view1.jpg": FileIds("p1"), "p2/view1.jpg": FileIds("p2")}, "ids.csv")
        >>> t.lookup("train/p2/view1.jpg").patient
        'p2'
        >>> t.lookup("view1.jpg")
        Traceback (most recent call last):
        ...
        medmm.ingest.image_ids.AmbiguousIdsError: view1.jpg: 2 rows of ids.csv match this file ...
        """
        key = _norm(rel)
        found = self.rows.get(key)
        if found is None:
            matches = {
                k
                for k in self._by_name.get(PurePosixPath(key).name, ())
                if k.endswith("/" + key) or key.endswith("/" + k)
            }
            distinct = {self.rows[k] for k in matches}
            if len(distinct) > 1:
                raise AmbiguousIdsError(
                    rel,
                    f"{len(matches)} rows of {self.source} match this file and give different ids",
                    "give each file's path relative to the archive (or a longer part of it) "
                    "in the path column",
                )
            found = next(iter(distinct), None)
        table = self.source if self.rows else ""
        if found is None:
            return FileIds(modality=self.modality, table=table) if self.modality else None
        return replace(found, modality=found.modality or self.modality, table=table)
