"""The one-line outcome of a workflow run, for a cron mail's subject or a monitoring check.

``medmm run`` prints it as its last line on stdout and records it, with the outcome, in the run's
``run.json`` (section ``workflow``: ``status`` is ``running`` while the stages write their tables, then
``ok``, ``quarantined``, ``failed`` or ``terminated``). The line is ``|``-separated: the workflow's name
and outcome with its exit code, one part per stage that ran (its inputs, how many were processed in
this run - new or changed since the last one, or retried - how many are quarantined), and the run
directory. It names no input file: no
patient identity can reach it.

>>> print(summary_line("nightly", {"ingest": {"ingested": 3, "quarantined": 1, "resumed": 2}},
...                    "/srv/run", exit_code=1))
medmm run nightly: QUARANTINED exit=1 | ingest: 4 files (2 processed now), 1 quarantined | results: /srv/run
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from medmm.records import Status

__all__ = ["MANIFESTS", "OUTCOMES", "outcome", "quarantined_inputs", "stage_summary", "summary_line"]

#: exit code -> the word the summary line and ``run.json`` use
OUTCOMES = {0: "ok", 1: "quarantined", 2: "failed"}

_STATUSES = tuple(s.value for s in Status)

log = logging.getLogger(__name__)


#: the stages whose manifest lists each input file with its size and mtime, and that manifest
MANIFESTS = {"ingest": "manifest.parquet", "signals": "manifest_signals.parquet"}


def quarantined_inputs(manifest: Path) -> set[tuple[str, float | None, float | None]]:
    """``(path, size, mtime_ns)`` of the quarantined inputs of a manifest (none when it does not exist).

    Compared before and after a stage, it gives the inputs quarantined *this* run (``quarantined_new``):
    new files, or files changed since they were last seen - not the broken files a run quarantines
    again night after night.

    >>> quarantined_inputs(Path("/nonexistent/manifest.parquet"))
    set()
    """
    if not manifest.exists():
        return set()
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(manifest, columns=["path", "size", "mtime_ns", "status"])
        table = table.filter(pc.equal(table["status"], "quarantined"))
        # as doubles: a manifest holding a row without size and mtime stores these columns as doubles
        columns = [
            table["path"].to_pylist(),
            *(table[c].cast(pa.float64(), safe=False).to_pylist() for c in ("size", "mtime_ns")),
        ]
    except Exception as exc:  # a count for the summary never stops a run that did its work
        log.warning("%s: quarantined inputs not counted (%s)", manifest, type(exc).__name__)
        return set()
    return set(zip(*columns, strict=True))


def outcome(exit_code: int) -> str:
    """The outcome's name for an exit code (128 + a signal's number: ``terminated``).

    >>> outcome(0), outcome(1), outcome(2), outcome(143)
    ('ok', 'quarantined', 'failed', 'terminated')
    """
    return OUTCOMES.get(exit_code, "terminated" if exit_code > 128 else "failed")


def _inputs(counts: Mapping[str, int], unit: str, new: int | None) -> str:
    n = sum(int(counts.get(s, 0)) for s in _STATUSES)
    changed = "" if new is None else f" ({new} processed now)"
    fresh = counts.get("quarantined_new")
    fresh_text = "" if fresh is None else f" ({fresh} new)"
    return f"{n} {unit}{changed}, {int(counts.get('quarantined', 0))} quarantined{fresh_text}"


def stage_summary(stage: str, counts: Mapping[str, int]) -> str:
    """One stage's part of the line, from its counts (as ``medmm run`` prints them).

    Examples
    --------
    >>> stage_summary("signals", {"ingested": 2, "companion": 4, "records": 2, "resumed": 1})
    'signals: 6 files, 0 quarantined, 1 records processed now'
    >>> stage_summary("anomaly", {"beats": 287, "flagged": 14, "windows": 24, "windows_flagged": 11})
    'anomaly: 14 of 287 beats flagged, 11 of 24 windows flagged, 0 records skipped'
    """
    resumed = counts.get("resumed")
    if stage == "ingest":
        n = sum(int(counts.get(s, 0)) for s in _STATUSES)
        return f"ingest: {_inputs(counts, 'files', None if resumed is None else n - int(resumed))}"
    if stage == "reports":
        new = counts.get("parsed_now")
        return f"reports: {_inputs(counts, 'reports', None if new is None else int(new))}"
    if stage == "signals":  # records kept from earlier runs are "resumed"
        now = int(counts.get("records", 0)) - int(resumed or 0)
        return f"signals: {_inputs(counts, 'files', None)}" + (
            "" if resumed is None else f", {now} records processed now"
        )
    if stage == "anomaly":
        return (
            f"anomaly: {counts.get('flagged', 0)} of {counts.get('beats', 0)} beats flagged, "
            f"{counts.get('windows_flagged', 0)} of {counts.get('windows', 0)} windows flagged, "
            f"{counts.get('skipped', 0)} records skipped"
        )
    if stage in ("align", "predict"):
        return f"{stage}: {counts.get('records', 0)} records"
    return f"{stage}: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))


def summary_line(
    name: str,
    counts: Mapping[str, Mapping[str, int]],
    run_dir: object,
    *,
    exit_code: int,
    stopped: str | None = None,
) -> str:
    """The whole line: outcome and exit code, each stage that ran, where the results are.

    ``stopped`` names the stage that stopped the run (an error or a signal), when one did.

    Examples
    --------
    >>> summary_line("x", {}, "/r", exit_code=2, stopped="ingest")
    'medmm run x: FAILED exit=2 | stopped in stage ingest | results: /r'
    """
    parts = [f"medmm run {name}: {outcome(exit_code).upper()} exit={exit_code}"]
    parts += [stage_summary(stage, c) for stage, c in counts.items()]
    if stopped:
        parts.append(f"stopped in stage {stopped}")
    parts.append(f"results: {run_dir}")
    return " | ".join(parts)
