"""``run.json``: what a run did (versions, options, seeds, counts, timings), one section per stage.

Several stages share one run directory (``ingest``, ``reports``, ``signals``, ``align`` ...); each
updates its own section so a later stage never erases an earlier one's record.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = update_run_json(d, "ingest", options={"workers": 2}, counts={"ingested": 3}, timings={"total_s": 1.0})
>>> read_run_json(d)["stages"]["ingest"]["counts"]
{'ingested': 3}
"""

from __future__ import annotations

import functools
import json
import platform
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from medmm.tables import atomic_write_json

__all__ = ["Timer", "package_versions", "read_run_json", "update_run_json"]

_PACKAGES = (
    "medmm",
    "numpy",
    "pandas",
    "pyarrow",
    "pydantic",
    "dask",
    "distributed",
    "monai",
    "pydicom",
    "nibabel",
    "torch",
    "spacy",
    "scispacy",
    "negspacy",
    "wfdb",
    "pyedflib",
    "scipy",
    "pylibjpeg",
    "pylibjpeg-libjpeg",
    "pylibjpeg-openjpeg",
    "pylibjpeg-rle",
    "scikit-learn",
)


def package_versions() -> dict[str, str]:
    """Installed versions of medmm's dependencies (``"absent"`` when not installed).

    Read once per process (each name is looked up on the whole ``sys.path``: ~10-30 ms in all), then
    kept: a stage can read them ahead, while it waits for its workers, and ``run.json`` gets them
    without the wait at the end of the run.

    >>> package_versions()["python"] == sys.version.split()[0]
    True
    """
    return dict(_versions())


@functools.cache
def _versions() -> tuple[tuple[str, str], ...]:
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return tuple(out.items())


def read_run_json(run_dir: Path) -> dict[str, Any]:
    """The run's ``run.json`` as a dict (empty skeleton when it does not exist yet)."""
    path = Path(run_dir) / "run.json"
    if path.exists():
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    return {"stages": {}}


def update_run_json(
    run_dir: Path,
    stage: str,
    *,
    options: Mapping[str, Any],
    counts: Mapping[str, int],
    timings: Mapping[str, float],
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write (atomically) the section of ``stage`` in ``RUN_DIR/run.json`` and refresh versions."""
    data = read_run_json(run_dir)
    data["versions"] = package_versions()
    section: dict[str, Any] = {
        "options": dict(options),
        "counts": dict(counts),
        "timings": {k: round(float(v), 3) for k, v in timings.items()},
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if extra:
        section.update(extra)
    data.setdefault("stages", {})[stage] = section
    return atomic_write_json(Path(run_dir) / "run.json", data)


class Timer:
    """Collects named wall-clock timings.

    >>> t = Timer()
    >>> with t("step"):
    ...     pass
    >>> "step" in t.timings
    True
    """

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._start = time.perf_counter()

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start

    def total(self) -> dict[str, float]:
        """All timings plus ``total_s`` since the timer was made."""
        return {**self.timings, "total_s": time.perf_counter() - self._start}
