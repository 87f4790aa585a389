"""Resumable ``parse``: per-batch parts under ``RUN_DIR/.reports_parts/``, keyed per report.

Each parsed report has a key: a hash of its id, its cleaned text, the pipeline description and the
site key's fingerprint. Every finished batch is written as a *part* (three parquet files: entities,
labels, and the per-report outcome with the text; the outcome file is renamed into place last, so a
part counts only once all three exist). A re-run over the same ``RUN_DIR`` reads the keys already
done, parses only the other reports, and merges the parts that belong to the current input into the
run tables; parts of reports no longer in the input are deleted.

>>> key = report_key("r1", "No effusion.", "lexicon:radiology-v1 (...)", "")
>>> len(key), key == report_key("r1", "No effusion!", "lexicon:radiology-v1 (...)", "")
(24, False)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from medmm.tables import write_table

__all__ = ["PARTS_DIR", "Parts", "key_fingerprint", "report_key"]

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
        return sorted(p.name[: -len("-reports.parquet")] for p in self.folder.glob("part-*-reports.parquet"))

    def done_keys(self) -> set[str]:
        """Keys of every report in a complete part."""
        keys: set[str] = set()
        for name in self._names():
            keys.update(pd.read_parquet(self.folder / f"{name}-reports.parquet", columns=["_key"])["_key"])
        return keys

    def write(
        self, keys: Sequence[str], entities: pd.DataFrame, labels: pd.DataFrame, reports: pd.DataFrame
    ) -> str:
        """Write one batch's tables (each with a ``_key`` column) as a part; returns its name."""
        name = "part-" + hashlib.blake2b("".join(sorted(keys)).encode(), digest_size=10).hexdigest()
        for table, frame in zip(_TABLES, (entities, labels, reports), strict=True):
            write_table(frame, self.folder / f"{name}-{table}.parquet")
        return name

    def merge(self, keys: Iterable[str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """(entities, labels, reports) of the given keys from every complete part; each key once.

        Parts holding none of ``keys`` are deleted (left over from an earlier input).
        """
        wanted = set(keys)
        out: dict[str, list[pd.DataFrame]] = {t: [] for t in _TABLES}
        seen: set[str] = set()
        for name in self._names():
            reports = pd.read_parquet(self.folder / f"{name}-reports.parquet")
            take = reports["_key"].isin(wanted) & ~reports["_key"].isin(seen)
            if not take.any():
                if not reports["_key"].isin(wanted).any():
                    for table in _TABLES[::-1]:
                        (self.folder / f"{name}-{table}.parquet").unlink(missing_ok=True)
                continue
            chosen = set(reports.loc[take, "_key"])
            seen |= chosen
            out["reports"].append(reports[take])
            for table in ("entities", "labels"):
                frame = pd.read_parquet(self.folder / f"{name}-{table}.parquet")
                out[table].append(frame[frame["_key"].isin(chosen)])
        merged = [pd.concat(out[t], ignore_index=True) if out[t] else pd.DataFrame() for t in _TABLES]
        return merged[0], merged[1], merged[2]
