"""Resumable ``parse``: per-batch parts under ``RUN_DIR/.reports_parts/``, keyed per report.

Each parsed report has a key: a hash of its id, its cleaned text, the pipeline description and the
site key's fingerprint. Every finished batch is written as a *part*: three Arrow/Feather files
(entities, labels, and the per-report outcome), each written to a temp file and
renamed, the outcome file last, so a part counts only once all three exist. Texts are not kept (a
key is a hash of its text: the caller has the text of every key it asks for); parts written with a
``text`` column by earlier versions are read as they are. Feather, not parquet:
parts are scratch read back by this module, and writing them costs a few times less CPU.
A re-run over the same ``RUN_DIR`` reads the keys already done, parses only the other reports,
and merges the parts that belong to the current input into the run tables; parts of reports no
longer in the input are deleted.

>>> key = report_key("r1", "No effusion.", "lexicon:radiology-v1 (...)", "")
>>> len(key), key == report_key("r1", "No effusion!", "lexicon:radiology-v1 (...)", "")
(24, False)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["PARTS_DIR", "Parts", "key_fingerprint", "report_key"]

#: A part's table: an Arrow table (what tasks send) or a pandas frame.
Table = Any
#: Folder of the parts inside the run directory.
PARTS_DIR = ".reports_parts"
_TABLES = ("entities", "labels", "reports")  # "reports" last: its presence marks a complete part


def report_key(report_id: str, text: str, pipeline: str, site: str) -> str:
    """Key of one parsed report: same id, text, pipeline and site key -> same key.

    >>> report_key("1", "a", "p", "") != report_key("1", "a", "p", "site-b")
    True
    """
    h = hashlib.blake2b(digest_size=12)
    for part in (report_id, text, pipeline, site):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()


def key_fingerprint(key: bytes | None) -> str:
    """A short one-way fingerprint of the site key ("" without a key), so parts of another site's run
    are not reused; the key itself is never written.

    >>> key_fingerprint(None), len(key_fingerprint(b"k" * 32))
    ('', 16)
    """
    if not key:
        return ""
    return hashlib.blake2b(b"medmm-reports-resume", key=key[:64], digest_size=8).hexdigest()


@dataclass
class Parts:
    """The parts folder of one run directory.

    >>> import tempfile
    >>> Parts(Path(tempfile.mkdtemp())).done_keys()
    set()
    """

    run_dir: Path

    @property
    def folder(self) -> Path:
        return Path(self.run_dir) / PARTS_DIR

    def _names(self) -> list[str]:
        if not self.folder.exists():
            return []
        return sorted(p.name[: -len("-reports.arrow")] for p in self.folder.glob("part-*-reports.arrow"))

    def done_keys(self) -> set[str]:
        """Keys of every report in a complete part."""
        keys: set[str] = set()
        for name in self._names():
            keys.update(_read(self.folder / f"{name}-reports.arrow", columns=["_key"])["_key"])
        return keys

    def mark(self) -> str:
        """Create the parts folder with a fresh marker file and return its token: a Dask worker that
        sees the marker (:meth:`marked`) shares this file system and may write parts itself."""
        self.folder.mkdir(parents=True, exist_ok=True)
        token = os.urandom(8).hex()
        (self.folder / f".writer-{token}").write_text(token)
        return token

    def marked(self, token: str) -> bool:
        """Whether the marker of :meth:`mark` is visible here (same file system as the driver)."""
        return (self.folder / f".writer-{token}").is_file()

    def unmark(self, token: str) -> None:
        """Remove the marker of :meth:`mark`."""
        (self.folder / f".writer-{token}").unlink(missing_ok=True)

    def write(self, keys: Sequence[str], entities: Table, labels: Table, reports: Table) -> str:
        """Write one batch's tables (each with a ``_key`` column) as a part; returns its name."""
        name = "part-" + hashlib.blake2b("".join(sorted(keys)).encode(), digest_size=10).hexdigest()
        self.folder.mkdir(parents=True, exist_ok=True)
        for table, frame in zip(_TABLES, (entities, labels, reports), strict=True):
            _write(frame, self.folder / f"{name}-{table}.arrow")
        return name

    def merge(self, keys: Iterable[str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """(entities, labels, reports) of the given keys from every complete part; each key once.

        Parts holding none of ``keys`` are deleted (left over from an earlier input).
        """
        wanted = set(keys)
        out: dict[str, list[pd.DataFrame]] = {t: [] for t in _TABLES}
        seen: set[str] = set()
        for name in self._names():
            reports = _read(self.folder / f"{name}-reports.arrow")
            part_keys = reports["_key"].tolist()
            if not any(k in wanted for k in part_keys):
                for table in _TABLES[::-1]:
                    (self.folder / f"{name}-{table}.arrow").unlink(missing_ok=True)
                continue
            take = _member(part_keys, wanted, seen)
            if not take.any():
                continue
            chosen = {k for k, t in zip(part_keys, take.tolist(), strict=True) if t}
            seen |= chosen
            out["reports"].append(reports[take])
            for table in ("entities", "labels"):
                frame = _read(self.folder / f"{name}-{table}.arrow")
                out[table].append(frame[_member(frame["_key"].tolist(), chosen)])
        merged = [pd.concat(out[t], ignore_index=True) if out[t] else pd.DataFrame() for t in _TABLES]
        return merged[0], merged[1], merged[2]


def _member(values: list[str], within: set[str], excluded: set[str] | frozenset[str] = frozenset()) -> Any:
    """Boolean mask: each value is in ``within`` and not in ``excluded`` (set lookups per row; pandas'
    ``isin`` on Arrow strings converts the whole set on every call, which grows with the run)."""
    import numpy as np

    return np.fromiter((v in within and v not in excluded for v in values), dtype=bool, count=len(values))


def _write(table: Table, path: Path) -> None:
    """Write ``table`` (Arrow or pandas) as uncompressed Feather atomically (temp file, rename).

    The temp file gets a fresh random name and is created by this write (``"xb"``): a file that
    already exists and is truncated on open (as after ``tempfile.mkstemp``) makes ext4 allocate its
    blocks when it is closed and renamed (``auto_da_alloc``), which cost ~1 ms of kernel CPU per
    5,000 reports' part (~25% of writing it).
    """
    from pyarrow import feather

    tmp = path.parent / f".{path.name}.{os.urandom(8).hex()}.tmp"
    out = open(tmp, "xb")  # noqa: SIM115 (closed below, before the rename)
    try:
        with out:
            if isinstance(table, pd.DataFrame):
                table = table.reset_index(drop=True)
            feather.write_feather(table, out, compression="uncompressed")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    return pd.read_feather(path, columns=columns)
