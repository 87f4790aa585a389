"""Reading a run's tables for the models and checking them against a config or a checkpoint.

``records.parquet`` restricted to a model's modalities (:func:`load_records`), any parquet table the
models need with its columns checked (:func:`read_run_table`), the labels a config asks for
(:func:`check_labels`), the inputs a checkpoint was trained on (:func:`check_inputs_match`,
:func:`report_vocabulary`) and the data version recorded in checkpoints and metrics
(:func:`data_version`). Used by :mod:`medmm.models.runner`, :mod:`medmm.models.evaluate`,
:mod:`medmm.models.compare` and :mod:`medmm.predict` (all re-exported by :mod:`medmm.models.runner`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medmm.align.records import MODALITIES
from medmm.errors import ConfigError, InputError
from medmm.models.data import label_matrix
from medmm.tables import read_table

__all__ = [
    "check_inputs_match",
    "check_labels",
    "data_version",
    "load_records",
    "open_checkpoint_inputs",
    "read_run_table",
    "report_vocabulary",
]


def _record_columns() -> tuple[str, ...]:
    """Columns of ``records.parquet`` the models read."""
    per_modality = [c for m in MODALITIES for c in (f"has_{m}", f"{m}_id")]
    return ("record_id", "patient_id", "labels", *per_modality)


def read_run_table(path: Path, columns: tuple[str, ...], fix: str) -> pd.DataFrame:
    """Read a parquet table the models need; an unreadable file or missing columns is an ``InputError``.

    >>> read_run_table(Path("/nonexistent.parquet"), ("record_id",), "run `medmm align`")
    Traceback (most recent call last):
    ...
    medmm.errors.InputError: /nonexistent.parquet: not found. Fix: run `medmm align`
    """
    path = Path(path)
    if not path.exists():
        raise InputError(str(path), "not found", fix)
    try:
        frame = read_table(path)
    except Exception as exc:
        raise InputError(str(path), f"not a readable parquet table ({type(exc).__name__})", fix) from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(str(path), f"lacks the column(s) {missing}", fix)
    return frame


def load_records(run_dir: Path, modalities: list[str] | None = None) -> pd.DataFrame:
    """``RUN_DIR/records.parquet`` restricted to records having at least one of ``modalities``."""
    path = Path(run_dir) / "records.parquet"
    if not path.exists():
        raise InputError(str(path), "no records table", "run `medmm align RUN_DIR` first")
    records = read_run_table(path, _record_columns(), "re-run `medmm align RUN_DIR` to write it again")
    mods = modalities or list(MODALITIES)
    keep = np.zeros(len(records), bool)
    for m in mods:
        keep |= records[f"has_{m}"].to_numpy(bool)
    return records[keep].reset_index(drop=True)


def check_labels(
    records: pd.DataFrame,
    label_names: list[str],
    where: str,
    source: str = "the training config's tasks",
    fix: str = "correct tasks[].labels",
) -> None:
    """Refuse to train on labels the records do not carry (instead of NaN metrics and a model of nothing).

    ``records`` are the rows the model would see (those with one of its modalities), ``where`` names
    their table in the message, ``source`` where the labels came from and ``fix`` the first fix offered.
    A label in no record's ``labels`` JSON, or with no known 0/1 value in any of them, is a
    :class:`~medmm.errors.ConfigError` listing the labels that are there.

    >>> rows = pd.DataFrame({"record_id": ["r1", "r2"], "labels": ['{"pvc": 1}', '{"pvc": 0}']})
    >>> check_labels(rows, ["pvc"], "records.parquet")
    >>> try:
    ...     check_labels(rows, ["pneumonia"], "records.parquet")
    ... except ConfigError as exc:
    ...     print(str(exc)[:60])
    label(s) ['pneumonia'] of the training config's tasks are in
    """
    import json

    present: set[str] = set()
    for rid, text in zip(records["record_id"].tolist(), records["labels"].tolist(), strict=True):
        values = json.loads(text or "{}")
        present.update(values)
        bad = {n: values[n] for n in label_names if values.get(n) not in (0, 1, None)}
        if bad:
            raise ConfigError(
                f"record {rid} of {where} has label values {bad}; labels must be 0, 1 or null. Fix: "
                "re-run `medmm align`, or correct the labels JSON of the records table"
            )
    there = sorted(present)
    missing = [n for n in label_names if n not in present]
    if missing:
        raise ConfigError(
            f"label(s) {missing} of {source} are in none of the {len(records)} records "
            f"of {where} (labels there: {there}). Fix: {fix}, or re-run `medmm align` "
            "with --label-finding / --pvc-label for them"
        )
    y = label_matrix(records, label_names)
    unknown = [n for j, n in enumerate(label_names) if np.isnan(y[:, j]).all()]
    if unknown:
        raise ConfigError(
            f"label(s) {unknown} of {source} have no known 0/1 value in the {len(records)} records of "
            f"{where} (all null). Fix: {fix}, or use a modality whose records carry them"
        )


def report_vocabulary(run_dir: Path) -> list[str] | None:
    """The finding vocabulary ``medmm align`` wrote for the report inputs (``None`` if there is none)."""
    import json

    path = Path(run_dir) / "inputs" / "report" / "vocabulary.json"
    return list(json.loads(path.read_text())) if path.exists() else None


def check_inputs_match(meta: dict[str, Any], stores: dict[str, Any], run_dir: Path, checkpoint: Path) -> None:
    """Refuse inputs the checkpoint's encoders cannot read as they were trained (instead of a torch
    shape error, or silently wrong scores when only the order of the report vocabulary differs).

    Compares each opened modality's item shape and feature count with ``meta["input_shapes"]`` and, when
    the checkpoint recorded it, the report finding vocabulary with ``RUN_DIR/inputs/report``'s.
    """
    for m, store in stores.items():
        if getattr(store, "kind", "") == "absent" or m not in meta["input_shapes"]:
            continue
        want = meta["input_shapes"][m]
        have = {"shape": list(store.item_shape), "n_features": store.n_features}
        if have != want:
            raise InputError(
                str(Path(run_dir) / "inputs" / m),
                f"{m} items have shape {have['shape']} with {have['n_features']} extra features, but the "
                f"model {checkpoint} was trained on shape {want['shape']} with {want['n_features']}",
                "align this run with the training run's settings (e.g. the same --image-size; the report "
                "vector is as long as the run's finding vocabulary), or train a model on this run",
            )
    trained = meta.get("report_vocabulary")
    here = report_vocabulary(run_dir) if "report" in stores else None
    report_open = "report" in stores and getattr(stores["report"], "kind", "") != "absent"
    if report_open and trained is not None and here is not None and trained != here:
        extra, lost = sorted(set(here) - set(trained)), sorted(set(trained) - set(here))
        raise InputError(
            str(Path(run_dir) / "inputs" / "report" / "vocabulary.json"),
            f"the report finding vocabulary differs from the one {checkpoint} was trained on (only here: "
            f"{extra}, only there: {lost}, or another order), so report vectors would be misread",
            "score with a model trained on this run (`medmm align` builds the vocabulary from the run's "
            "findings), or drop the report modality when training",
        )


def open_checkpoint_inputs(
    config: Any,
    meta: dict[str, Any],
    run_dir: Path,
    records: pd.DataFrame,
    checkpoint: Path,
    report_inputs: bool = True,
) -> dict[str, Any]:
    """The item sources a trained model scores ``records`` of ``run_dir`` with (evaluate, predict,
    site calibration): the image source the checkpoint was trained on (older checkpoints: arrays),
    modalities no record has opened absent, the report inputs the checkpoint learned (unless
    ``report_inputs`` is false), checked against the checkpoint (:func:`check_inputs_match`).
    """
    from medmm.models.report_inputs import with_report_inputs
    from medmm.models.volumes import open_sources

    mods: list[str] = meta["modalities"]
    kind = meta.get("input_sources", {}).get("image", "arrays")
    stores = open_sources(config, run_dir, mods, records, kind, absent_ok=True)
    if report_inputs:
        stores = with_report_inputs(config, run_dir, stores, records, meta)
    check_inputs_match(meta, stores, run_dir, checkpoint)
    return stores


def data_version(records: pd.DataFrame, stores: dict[str, Any]) -> dict[str, str]:
    """SHA-256 of the records table content and of each modality's input arrays."""
    rows = pd.util.hash_pandas_object(records, index=False).to_numpy().tobytes()
    out = {"records_sha256": hashlib.sha256(rows).hexdigest()}
    out.update({f"{m}_inputs_sha256": s.digest() for m, s in stores.items()})
    return out
