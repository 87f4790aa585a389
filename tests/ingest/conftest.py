"""Shared fixtures of the ingest tests: expensive runs made once per test session, even under xdist.

pytest-xdist workers are separate processes, so a session fixture alone would run once per worker.
:func:`_once` builds into the folder all workers share, under a file lock; the first worker builds it,
the others reuse it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from medmm.ingest.pipeline import IngestResult, ingest_archive
from medmm.ingest.sample import build_sample_archive


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _once(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    shared = factory.getbasetemp().parent  # common to all xdist workers of this session
    folder = shared / name
    with _locked(shared / f"{name}.lock"):
        if not (folder / ".complete").exists():
            folder.mkdir(exist_ok=True)
            build(folder)
            (folder / ".complete").write_text("ok")
    return folder


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


def _ingest_with_logs(archive: Path, folder: Path) -> None:
    key = folder / "site.key"
    key.write_text("cd" * 32 + "\n")
    handler = _Collect()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = ingest_archive(archive, folder / "run", workers=2, processes=False, key_file=key)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    (folder / "log.txt").write_text("\n".join(handler.lines + [str(w.message) for w in caught]))
    fields = ("counts", "n_files", "n_volumes", "n_skipped", "timings")
    (folder / "result.json").write_text(json.dumps({f: getattr(result, f) for f in fields}))


@pytest.fixture(scope="session")
def real_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> RealRun:
    """``medmm ingest`` of every file in ``shared/data/imaging`` (2 thread workers), logs captured."""
    archive = shared_data / "imaging"
    folder = _once(tmp_path_factory, "ingest_real", lambda f: _ingest_with_logs(archive, f))
    result = IngestResult(folder / "run", **json.loads((folder / "result.json").read_text()))
    return RealRun(archive, folder / "run", result, (folder / "log.txt").read_text())


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(sample archive, key file, run dir of an undisturbed ingest of it)."""

    def build(folder: Path) -> None:
        archive = build_sample_archive(folder / "archive", seed=3)
        key = folder / "site.key"
        key.write_text("ef" * 32 + "\n")
        ingest_archive(archive, folder / "reference", workers=2, processes=False, key_file=key)

    folder = _once(tmp_path_factory, "ingest_sample", build)
    return folder / "archive", folder / "site.key", folder / "reference"
