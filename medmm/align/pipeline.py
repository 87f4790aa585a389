"""``align_run``: the run directory's stage tables -> ``records.parquet`` + ``inputs/`` + run.json.

>>> import tempfile, pathlib
>>> run = pathlib.Path(tempfile.mkdtemp())
>>> align_run(run / "runs-typo")
Traceback (most recent call last):
...
medmm.errors.ConfigError: .../runs-typo: no such run directory; give the --out folder of ...
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from medmm.align.inputs import image_items, report_items, signal_items, write_inputs
from medmm.align.join import REPORT_WINDOW_S, join_items, parse_duration
from medmm.align.labels import LabelTable, apply_label_table, read_label_table
from medmm.align.records import MODALITIES, RecordRow
from medmm.errors import ConfigError
from medmm.runinfo import Timer, update_run_json
from medmm.tables import write_table

__all__ = ["align_run"]

log = logging.getLogger(__name__)


#: The stage tables align reads; a run directory must hold at least one.
SOURCE_TABLES = ("volumes.parquet", "report_labels.parquet", "windows.parquet")


def _check_run_dir(run_dir: Path) -> None:
    """A missing run directory, or one with no stage table, is a mistake (typo, parent folder).

    >>> import tempfile, pathlib
    >>> _check_run_dir(pathlib.Path(tempfile.mkdtemp()))
    Traceback (most recent call last):
    ...
    medmm.errors.ConfigError: ...: no stage tables (volumes.parquet, report_labels.parquet, ...
    """
    if not run_dir.is_dir():
        raise ConfigError(
            f"{run_dir}: no such run directory; give the --out folder of medmm ingest / reports parse / "
            "signals ingest"
        )
    if not any((run_dir / name).exists() for name in SOURCE_TABLES):
        raise ConfigError(
            f"{run_dir}: no stage tables ({', '.join(SOURCE_TABLES)}) to align; run medmm ingest, "
            "medmm reports parse or medmm signals ingest with --out pointing at this folder first"
        )


def _check_options(
    tolerance_s: float,
    label_findings: Sequence[str],
    pvc_label: str | None,
    min_quality: float,
    image_size: int,
    image_dims: int,
) -> None:
    """Option values that cannot work are refused before anything is read or written.

    >>> _check_options(3600.0, ["effusion"], "effusion", 0.5, 64, 2)
    Traceback (most recent call last):
    ...
    medmm.errors.ConfigError: --pvc-label 'effusion' is also a --label-finding; ...
    """
    problems = []
    if not (math.isfinite(tolerance_s) and tolerance_s >= 0):
        problems.append(f"time tolerance {tolerance_s!r}: use a duration >= 0 such as 24h")
    if image_dims not in (2, 3):
        problems.append(f"--image-dims {image_dims}: use 2 (middle axial slice) or 3 (whole volume)")
    if image_size < 1:
        problems.append(f"--image-size {image_size}: use a size of at least 1 pixel (e.g. 64)")
    if not 0.0 <= min_quality <= 1.0:
        problems.append(f"--min-quality {min_quality}: window quality is in [0, 1]; use e.g. 0.5")
    if pvc_label is not None and pvc_label in set(label_findings):
        problems.append(
            f"--pvc-label {pvc_label!r} is also a --label-finding; one would overwrite the other in the "
            "record labels, use another name"
        )
    if problems:
        raise ConfigError("; ".join(problems))


def _label_table(
    run_dir: Path, path: Path | None, key_file: Path | None, other_labels: Sequence[str]
) -> LabelTable | None:
    """Read ``--labels`` with the run's site key; its label names must not repeat the other labels'."""
    if path is None:
        return None
    from medmm.pseudonym import Pseudonymizer, load_key
    from medmm.runinfo import claim_site_key

    pz = Pseudonymizer(load_key(key_file))
    claim_site_key(run_dir, pz.check_value(), record=False)  # another key's pseudonyms never match
    table = read_label_table(Path(path), pz)
    clash = sorted(set(table.names) & set(other_labels))
    if clash:
        raise ConfigError(
            f"{path}: label columns {clash} are also --label-finding / --pvc-label names; one would "
            "overwrite the other, rename the column"
        )
    return table


def _reports_without_patient(run_dir: Path) -> int:
    """Parsed reports that cannot be linked: ``reports parse`` ran without ``--patient-column``."""
    path = run_dir / "manifest_reports.parquet"
    if not path.exists():
        return 0
    man = pd.read_parquet(path, columns=["status", "patient_id"])
    n = int(((man["status"] == "ingested") & man["patient_id"].isna()).sum())
    if n:
        log.warning(
            "%d parsed reports have no patient id and are left out of the records: run medmm reports "
            "parse with --patient-column (and --study-column) to link reports to images and signals",
            n,
        )
    return n


def _reports_without_labels(run_dir: Path) -> int:
    """Parsed reports with no row in ``report_labels.parquet`` (every parsed report has at least its
    ``normal`` row, so the two tables come from different runs): their finding vector would be all zero
    and their labels unknown; counted and logged."""
    man_path, rl_path = run_dir / "manifest_reports.parquet", run_dir / "report_labels.parquet"
    if not (man_path.exists() and rl_path.exists()):
        return 0
    man = pd.read_parquet(man_path, columns=["status", "report_id"])
    ids = man.loc[man["status"] == "ingested", "report_id"].astype(str)
    labelled = set(pd.read_parquet(rl_path, columns=["report_id"])["report_id"].astype(str))
    n = int((~ids.isin(labelled)).sum())
    if n:
        log.warning(
            "%d parsed reports of manifest_reports.parquet have no row in report_labels.parquet (tables of "
            "different runs?); their findings read as none. Re-run medmm reports parse with --out %s",
            n,
            run_dir,
        )
    return n


def _unused(path: Path, column: str, chosen: set[str]) -> int:
    if not path.exists():
        return 0
    ids = pd.read_parquet(path, columns=[column])[column].dropna()
    return int((~ids.isin(chosen)).sum())


def _log_links(links: dict[str, int]) -> None:
    """Warn about reports that could have been linked but were not (ids never logged)."""
    what = {
        "report_date_ties": "were equally near two studies of their patient (by date): not linked",
        "report_accession_ambiguous": "have an accession number on two studies of their patient: not linked",
        "report_accession_other_patient": "have an accession number found only on another patient's images "
        "(wrong patient id or accession?): never linked across patients",
    }
    for key, text in what.items():
        if links.get(key):
            log.warning("%d reports %s", links[key], text)


def align_run(
    run_dir: Path,
    tolerance_s: float | str = 86400.0,
    label_findings: Sequence[str] = (),
    pvc_label: str | None = None,
    min_quality: float = 0.5,
    image_size: int = 64,
    image_dims: int = 2,
    labels: Path | None = None,
    key_file: Path | None = None,
    report_window_s: float | str = REPORT_WINDOW_S,
) -> dict[str, Any]:
    """Join the run's imaging, report and signal items per patient + study; write records and inputs.

    ``tolerance_s`` is seconds, or a duration string as ``--window`` takes it (``"36h"``, ``"2d"``).
    ``labels`` is a table of labels keyed by raw patient (and study) ids (:mod:`medmm.align.labels`),
    pseudonymized with the site key (``key_file``, else ``$MEDMM_KEY_FILE`` or the default key).
    ``report_window_s`` (seconds or a duration string, ``--report-window``) is how far a report's date
    may be from the study it is linked to by date (:func:`~medmm.align.join.join_items`).
    Returns counts: ``records`` and ``with_<modality>``, plus items written per modality, items left
    out, ``reports_without_patient`` and how reports were linked (:data:`~medmm.align.join.LINK_COUNTS`).
    """
    run_dir = Path(run_dir)
    _check_run_dir(run_dir)
    if isinstance(tolerance_s, str):  # "36h" from a workflow file, as --window takes it
        tolerance_s = parse_duration(tolerance_s)
    if isinstance(report_window_s, str):
        report_window_s = parse_duration(report_window_s, "--report-window")
    _check_options(tolerance_s, label_findings, pvc_label, min_quality, image_size, image_dims)
    if not (math.isfinite(report_window_s) and report_window_s >= 0):
        raise ConfigError(f"--report-window {report_window_s!r}: use a duration >= 0 such as 3d")
    table = _label_table(run_dir, labels, key_file, [*label_findings, *([pvc_label] if pvc_label else [])])
    timer = Timer()
    with timer("items"):
        img = image_items(run_dir)
        rep, rep_labels = report_items(run_dir, label_findings)
        sig, sig_labels = signal_items(run_dir, min_quality, pvc_label)
        no_patient = _reports_without_patient(run_dir)
        no_labels = _reports_without_labels(run_dir)
        frames = [f for f in (img, rep, sig) if len(f)]
        items = pd.concat(frames, ignore_index=True) if frames else img
    with timer("join"):
        links: dict[str, int] = {}
        records = join_items(
            items, tolerance_s, {**rep_labels, **sig_labels}, report_window_s=report_window_s, counts=links
        )
    _log_links(links)
    table_counts: dict[str, int] = {}
    if table is not None:
        records, table_counts = apply_label_table(records, table)
    with timer("inputs"):
        # also with no record: removes every modality's inputs of an earlier run (nothing points to them)
        written = write_inputs(run_dir, records, image_size, image_dims)
    write_table(records, run_dir / "records.parquet", RecordRow)
    chosen = {m: set(records[f"{m}_id"].dropna()) for m in MODALITIES}
    counts = {
        "records": len(records),
        # items not joined into any record: no pseudonymous patient (cannot be linked safely), or
        # another item of the same modality was nearer the study time
        "unused_image_items": _unused(run_dir / "volumes.parquet", "volume_id", chosen["image"]),
        "unused_report_items": _unused(run_dir / "manifest_reports.parquet", "report_id", chosen["report"]),
        "reports_without_patient": no_patient,
        "reports_without_labels": no_labels,
        "missing_image_files": int(img.attrs.get("missing_files", 0)),
        "missing_signal_files": int(sig.attrs.get("missing_files", 0)),
        **links,
        **table_counts,
        **{f"with_{m}": int(records[f"has_{m}"].sum()) for m in MODALITIES},
        **{f"inputs_{m}": n for m, n in written.items()},
    }
    update_run_json(
        run_dir,
        "align",
        counts=counts,
        timings=timer.total(),
        options={
            "tolerance_s": tolerance_s,
            "report_window_s": report_window_s,
            "label_findings": list(label_findings),
            "pvc_label": pvc_label,
            "min_quality": min_quality,
            "image_size": image_size,
            "image_dims": image_dims,
            "labels": str(labels) if labels else None,
        },
    )
    return counts
