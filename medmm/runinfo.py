"""``run.json``: what a run did (versions, options, seeds, counts, timings), one section per stage.

Several stages share one run directory (``ingest``, ``reports``, ``signals``, ``align`` ...); each
updates its own section so a later stage never erases an earlier one's record.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = update_run_json(d, "ingest", options={"workers": 2}, counts={"ingested": 3}, timings={"total_s": 1.0})
>>> read_run_json(d)["stages"]["ingest"]["counts"]
{'ingested': 3}

Every stage that pseudonymizes claims the run directory for its site key first
(:func:`claim_site_key`): ``run.json``'s top-level ``key_check`` records the key's check value, and a
stage with another key is refused, since pseudonyms of two keys in one run never link.
"""

from __future__ import annotations

import functools
import json
import platform
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from medmm.errors import ConfigError
from medmm.tables import atomic_write_json

__all__ = [
    "KEY_CHECK_FIELD",
    "Timer",
    "claim_site_key",
    "package_versions",
    "read_run_json",
    "update_run_json",
]

#: ``run.json``'s top-level field with the check value of the site key the run was made with.
KEY_CHECK_FIELD = "key_check"

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


def claim_site_key(run_dir: Path, check: str, *, record: bool = True) -> None:
    """Refuse ``run_dir`` if it was made with another site key; else record ``check`` in its run.json.

    ``check`` is the key's :func:`~medmm.pseudonym.key_check_value` (never the key). A run directory
    without the field (new, or made before it existed) gets it, unless ``record`` is false (a check
    ahead of the stages that will claim it).

    Raises
    ------
    ConfigError
        The run directory's ``key_check`` differs from ``check``: its pseudonyms would not link with
        this key's; the message says to use the same key file or a new run directory.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> claim_site_key(d, "0123456789abcdef")
    >>> read_run_json(d)["key_check"]
    '0123456789abcdef'
    >>> claim_site_key(d, "fedcba9876543210")
    Traceback (most recent call last):
    ...
    medmm.errors.ConfigError: ...: this run directory was made with a different site key ...
    """
    run_dir = Path(run_dir)
    data = read_run_json(run_dir)
    recorded = data.get(KEY_CHECK_FIELD)
    if recorded is not None:
        if recorded != check:
            raise ConfigError(
                f"{run_dir}: this run directory was made with a different site key (its run.json records "
                f"key check {recorded}, this key gives {check}), and pseudonyms of two keys never link. "
                "Fix: use the same --key-file (or $MEDMM_KEY_FILE) as the run's earlier stages, or write "
                "to a new --out folder"
            )
        return
    if record:
        run_dir.mkdir(parents=True, exist_ok=True)
        data[KEY_CHECK_FIELD] = check
        atomic_write_json(run_dir / "run.json", data)


class Timer:
    """Collects named timings: wall-clock seconds, or another ``clock`` (``time.process_time``: CPU).

    >>> t = Timer()
    >>> with t("step"):
    ...     pass
    >>> "step" in t.timings
    True
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.timings: dict[str, float] = {}
        self._clock = clock
        self._start = clock()

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = self._clock()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + self._clock() - start

    def total(self) -> dict[str, float]:
        """All timings plus ``total_s`` since the timer was made."""
        return {**self.timings, "total_s": self._clock() - self._start}
