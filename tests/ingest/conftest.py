"""Shared fixtures of the ingest tests: one real-data run reused by several tests."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from medmm.ingest.pipeline import IngestResult, ingest_archive


@dataclass
class RealRun:
    archive: Path
    run_dir: Path
    result: IngestResult
    log_text: str


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
def real_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealRun]:
    """``medmm ingest`` of every file in ``shared/data/imaging`` (2 thread workers), logs captured."""
    archive = shared_data / "imaging"
    base = tmp_path_factory.mktemp("real")
    key = base / "site.key"
    key.write_text("cd" * 32 + "\n")
    handler = _Collect()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = ingest_archive(archive, base / "run", workers=2, processes=False, key_file=key)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    text = "\n".join(handler.lines + [str(w.message) for w in caught])
    yield RealRun(archive, base / "run", result, text)
