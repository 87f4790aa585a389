"""What ``medmm share`` copies: an allow-list of run artifacts, each table with a policy per column.

Only the tables below are copied, and of each only the columns named here, each by its policy. A table,
file or column not listed is left out and named in the share report, so a column a future stage adds
never reaches a share before someone decides its policy here.

>>> TABLES["manifest.parquet"]["mtime_ns"]
<Policy.drop: 'drop'>
>>> table_policy("models/fusion/splits.parquet")["record_id"]
<Policy.rekey: 'rekey'>
"""

from __future__ import annotations

from enum import StrEnum
from fnmatch import fnmatch
from typing import Any

__all__ = [
    "DROPPED_FILES",
    "JSON_FILES",
    "NUMBERS",
    "RUN_FOLDERS",
    "TABLES",
    "Policy",
    "dropped_reason",
    "id_table_names",
    "table_policy",
]


class Policy(StrEnum):
    """How one column is shared."""

    keep = "keep"  #: copied as is: numbers, flags, pseudonyms made with the site key, shifted times
    vocab = "vocab"  #: copied as is: a value from medmm's own small vocabulary (status, format, modality ...)
    path = "path"  #: a source path -> its keyed pseudonym ``fil-...``
    paths = "paths"  #: a list of source paths -> their pseudonyms
    record = "record"  #: a signal record name (a file stem) -> its keyed pseudonym ``sig-...``
    text = "text"  #: free text (reasons, warnings): names, known or path-like, replaced by pseudonyms
    label = "label"  #: a label of the source (annotation, channel, anchor): known names replaced
    texts = "texts"  #: a list of free texts, each as ``text``
    report_text = (
        "report_text"  #: words of a report (entity spans): dropped unless the reports are de-identified
    )
    rekey = "rekey"  #: an id made with an unkeyed hash of source names -> keyed pseudonym (``rec-``/``stu-``)
    signal_id = "signal_id"  #: ``record|channel|window`` -> the record part pseudonymized
    window_path = "window_path"  #: ``windows/<record>/<channel>.npy`` -> the record part pseudonymized
    report_id = "report_id"  #: kept when a pseudonym; raw ids (``--keep-report-ids``) -> ``rep-`` pseudonym
    drop = "drop"  #: never shared (file-system times ...)


P = Policy
_MANIFEST = {
    "path": P.path,
    "size": P.keep,
    "mtime_ns": P.drop,
    "format": P.vocab,
    "status": P.vocab,
    "reason": P.text,
}
_SIGNAL_COMMON = {"record": P.record, "patient_id": P.keep, "channel": P.keep}

#: In a table's policies: every column of a number or flag type not named is kept (metric tables whose
#: columns follow the metrics computed: ``per_record.csv``, ``compare.csv``); text columns still need a name.
NUMBERS = "<numbers>"
#: Tables of ``medmm anomaly evaluate`` (held-out metrics per record, pooled, nested choice, held-out beats).
_EVALUATE: dict[str, dict[str, Policy]] = {
    "per_record.csv": {"record": P.record, NUMBERS: P.keep},
    "pooled.csv": {"method": P.vocab, NUMBERS: P.keep},
    "nested.csv": {"record": P.record, "chosen": P.vocab, NUMBERS: P.keep},
    "beats.parquet": {"record": P.record, NUMBERS: P.keep},
}

_SPLITS: dict[str, Policy] = {"record_id": P.rekey, "patient_id": P.keep, "split": P.vocab, "fold": P.keep}

#: Table (path in the run, ``fnmatch`` pattern) -> column -> policy.
TABLES: dict[str, dict[str, Policy]] = {
    "manifest.parquet": {
        **_MANIFEST,
        "volume_id": P.keep,
        "kind": P.vocab,
        "modality": P.vocab,
        "patient_id": P.keep,
        "study_id": P.keep,
        "series_id": P.keep,
    },
    "manifest_reports.parquet": {
        **_MANIFEST,
        "report_id": P.report_id,
        "patient_id": P.keep,
        "study_id": P.keep,
        "n_chars": P.keep,
        "n_sections": P.keep,
        "n_entities": P.keep,
        "notes": P.text,
        "accession_id": P.keep,  # keyed pseudonym of the accession number
        "report_time": P.keep,  # shifted by the patient's keyed date shift
        "report_time_precision": P.vocab,
    },
    "manifest_signals.parquet": {**_MANIFEST, "record": P.record, "patient_id": P.keep, "n_channels": P.keep},
    "volumes.parquet": {
        "volume_id": P.keep,
        "path": P.keep,  # volumes/<volume_id>.nii.gz: medmm's own name, made of the keyed volume id
        "sidecar": P.keep,
        "shape": P.keep,
        "spacing": P.keep,
        "orientation": P.vocab,
        "affine": P.keep,
        "modality": P.vocab,
        "n_sources": P.keep,
        "source_format": P.vocab,
        "sources": P.paths,
        "patient_id": P.keep,
        "study_id": P.keep,
        "series_id": P.keep,
        "study_time": P.keep,  # shifted by the patient's keyed date shift at ingest
        "study_time_precision": P.vocab,
        "accession_id": P.keep,  # keyed pseudonym of the accession number
        "warnings": P.texts,
        "dtype": P.vocab,
    },
    "entities.parquet": {
        "report_id": P.report_id,
        "section": P.vocab,
        "sentence": P.keep,
        "start": P.keep,
        "end": P.keep,
        "text": P.report_text,
        "label": P.vocab,
        "negated": P.keep,
        "uncertain": P.keep,
        "historical": P.keep,
        "experiencer": P.vocab,
        "finding": P.vocab,
        "long_form": P.report_text,
        "location": P.report_text,
        "laterality": P.vocab,
        "measurement_mm": P.keep,
        "measurement_dims_mm": P.keep,
        "measurement_kind": P.vocab,
        "measurement_text": P.report_text,
        "source": P.vocab,
    },
    "report_labels.parquet": {
        "report_id": P.report_id,
        "finding": P.vocab,
        "status": P.vocab,
        "evidence": P.report_text,
        "section": P.vocab,
        "start": P.keep,
        "end": P.keep,
        "n_mentions": P.keep,
    },
    "signals.parquet": {
        **_SIGNAL_COMMON,
        "format": P.vocab,
        "source_channel": P.label,
        "kind": P.vocab,
        "role": P.vocab,
        "units": P.keep,
        **dict.fromkeys(
            [
                "fs",
                "fs_out",
                "n_samples",
                "duration_s",
                "start",
                "start_abs_s",
                "n_segments",
                "missing_fraction",
                "flat_fraction",
                "saturated_fraction",
                "n_windows",
                "mean_sqi",
                "good_window_fraction",
                "n_beats",
                "mean_hr_bpm",
                "sdnn_ms",
                "rmssd_ms",
                "ref_match_fraction",
                "ref_sensitivity",
                "ref_ppv",
            ],
            P.keep,
        ),
        "ref_annotation": P.vocab,
    },
    "beats.parquet": {
        **_SIGNAL_COMMON,
        **dict.fromkeys(["sample", "time_s", "abs_time_s", "rr_prev_s", "rr_next_s", "hr_bpm"], P.keep),
        "ref_symbol": P.vocab,
        # a `medmm anomaly evaluate` folder shared as a run of its own: its held-out beats' scores
        **dict.fromkeys(
            [
                *("y", "score", "flag", "morphology_z", "rhythm_z", "pause_z", "quality", "timing_weight"),
                *("timing", "score_a_priori", "flag_a_priori", "base_score", "base_flag", "two_populations"),
            ],
            P.keep,
        ),
    },
    "anomalies.parquet": {
        **_SIGNAL_COMMON,
        **dict.fromkeys(
            ["sample", "time_s", "score", "flag", "morphology_z", "rhythm_z", "pause_z", "quality"], P.keep
        ),
    },
    "features.parquet": {
        "record": P.record,
        "channel": P.keep,
        **dict.fromkeys(
            [
                "sample",
                "beat",
                "rr_ratio",
                "r_amplitude",
                "qrs_width_s",
                "qrs_energy",
                "max_slope",
                "template_corr",
                "qrs_corr",
                "template_rmse",
                "complete",
            ],
            P.keep,
        ),
    },
    "windows.parquet": {
        **_SIGNAL_COMMON,
        "path": P.window_path,
        "anchor": P.label,
        **dict.fromkeys(
            [
                "window",
                "row",
                "fs",
                "start_sample",
                "stop_sample",
                "pad_before",
                "pad_after",
                "start_s",
                "start_abs_s",
                "anchor_s",
                "missing",
                "flat",
                "saturated",
                "wander",
                "noise",
                "quality",
            ],
            P.keep,
        ),
    },
    "events.parquet": {
        "record": P.record,
        "patient_id": P.keep,
        "label": P.label,  # annotation labels (alarms, sleep stages): names of the source replaced
        "source": P.vocab,
        **dict.fromkeys(["onset_s", "duration_s", "abs_time_s"], P.keep),
    },
    "vitals.parquet": {
        **_SIGNAL_COMMON,
        "units": P.keep,
        **dict.fromkeys(["time_s", "abs_time_s", "value"], P.keep),
    },
    "window_vitals.parquet": {
        **_SIGNAL_COMMON,
        "path": P.window_path,
        **dict.fromkeys(["row", "value", "lag_s"], P.keep),
        "vital": P.keep,
    },
    "records.parquet": {
        "record_id": P.rekey,
        "patient_id": P.keep,
        "study_id": P.rekey,
        "study_time": P.keep,
        "image_id": P.keep,
        "report_id": P.report_id,
        "signal_id": P.signal_id,
        "report_link": P.vocab,
        "study_time_precision": P.vocab,
        **dict.fromkeys(["has_image", "has_report", "has_signal", "labels"], P.keep),
    },
    "predictions.parquet": {
        "record_id": P.rekey,
        **dict.fromkeys(
            [
                "task",
                "label",
                "score",
                "model_sha256",
                "modalities",
                "weight_image",
                "weight_report",
                "weight_signal",
                "n_slices",
                "slice_aggregation",
                "embedding_anomaly_score",
                "embedding_anomaly_flag",
                "embedding_anomaly_threshold",
                "embedding_anomaly_calibration",
            ],
            P.keep,
        ),
    },
    "window_anomalies.parquet": {
        **_SIGNAL_COMMON,
        "path": P.window_path,
        "anchor": P.label,
        **dict.fromkeys(
            [
                *("window", "row", "span_start_s", "span_stop_s", "n_beats", "n_scored", "n_readable"),
                *("n_flagged", "score", "mean_quality", "signal_present", "signal_quality", "longest_gap_s"),
                "flag",
            ],
            P.keep,
        ),
        "status": P.vocab,
    },
    "slice_predictions.parquet": {
        "record_id": P.rekey,
        **dict.fromkeys(["slice", "task", "label", "score", "model_sha256"], P.keep),
    },
    "models/*/splits.parquet": _SPLITS,
    "anomaly_records.parquet": {
        **_SIGNAL_COMMON,
        **dict.fromkeys(["n_beats", "n_readable", "n_flagged", "two_populations", "ectopic_share"], P.keep),
        "reference": P.vocab,
    },
    # `medmm models compare` (default --out RUN_DIR/compare; also under models/)
    **{
        key: {"model": P.label, "test_modalities": P.vocab, "report_inputs": P.vocab, NUMBERS: P.keep}
        for key in ("compare/compare.csv", "models/compare/compare.csv")
    },
    # `medmm train` / `models compare` splits wherever their --out is in the run, and a cohort's
    # RUN_DIR/splits.parquet (read by train's splits_file and by compare)
    **dict.fromkeys(["splits.parquet", "compare/splits.parquet", "*/splits.parquet"], _SPLITS),
    # `medmm anomaly evaluate --out DIR`: DIR shared as a run of its own, or a folder inside a run
    **{
        pattern: policy
        for name, policy in _EVALUATE.items()
        for pattern in ([name] if name != "beats.parquet" else []) + [f"*/{name}"]
    },
}

#: JSON files copied through the JSON sanitizer (:func:`medmm.share.jsonfiles.sanitize_json`).
JSON_FILES: tuple[str, ...] = (
    "run.json",
    "models/*/metrics.json",
    "models/*/model.json",
    "models/*/run.json",
    "compare/compare.json",
    "models/compare/compare.json",
    "*/metrics.json",  # `medmm train` / `medmm evaluate` with --out elsewhere in the run
    "*/run.json",  # an evaluate (or compare) folder inside the run: shared as run.json is
)

#: Known artifacts that are never shared, with the reason the share report gives.
DROPPED_FILES: tuple[tuple[str, str], ...] = (
    ("report_texts.parquet", "report text, not de-identified"),
    ("figures/*", "figures render record names and report text into pixels and HTML"),
    ("inputs/*", "model input cache (rebuilt by medmm align/train)"),
    (".*", "internal state, cache or lock"),
    ("*/.*", "internal state, cache or lock"),
    ("*.log", "log"),
    (
        "*.pt",
        "model weights and checkpoints (may memorize training data; with a report branch they hold keyed "
        "hashes of report text that was never de-identified)",
    ),
    ("*compare.md", "a rendering of compare.csv (shared as compare.csv)"),
    ("models/*/*.png", "figures"),
    ("top_windows/*", "figures: ECG strips of the top-scoring windows, titled with their record name"),
    ("sample_archive/*", "source files (the demo's sample input, copied into its run)"),
    ("sample_reports/*", "source files (the demo's sample input, copied into its run)"),
    ("sample_signals/*", "source files (the demo's sample input, copied into its run)"),
    ("volumes/*", "volumes are shared only with --with-volumes"),
    ("windows/*", "signal windows are shared only with --with-windows"),
)


#: Top-level folders of a run that medmm's stages write besides its tables' folders: a share report
#: names them as they are (``figures/``, ``top_windows/`` of ``medmm anomaly score --plot``), any other
#: folder by a keyed pseudonym (``unknown folder fol-...``: it may be named after a patient).
RUN_FOLDERS: frozenset[str] = frozenset(
    {".reports_parts", ".signals_parts", ".parts", "compare", "figures", "inputs", "models", "top_windows"}
    | {"volumes", "windows", "sample_archive", "sample_reports", "sample_signals"}
)


def table_policy(rel: str) -> dict[str, Policy] | None:
    """The column policies of the table at ``rel`` (path in the run), or ``None`` if it is not shared."""
    if rel in TABLES:
        return TABLES[rel]
    for pattern, policy in TABLES.items():
        if "*" in pattern and fnmatch(rel, pattern):
            return policy
    return None


def dropped_reason(rel: str) -> str | None:
    """Why the known artifact at ``rel`` is not shared, or ``None`` when it is not a known dropped one.

    >>> dropped_reason("report_texts.parquet")
    'report text, not de-identified'
    >>> dropped_reason("DOE.csv") is None
    True
    """
    for pattern, reason in DROPPED_FILES:
        if fnmatch(rel, pattern):
            return reason
    return None


def id_table_names(run: dict[str, Any]) -> set[str]:
    """File names of the ``medmm ingest --ids`` tables a ``run.json`` records (``stages.ingest.options.ids
    .table``): never shared, also when copied into the run (they hold the raw patient and study ids and
    the archive's paths; ``manifest.parquet`` holds their pseudonyms).

    >>> sorted(id_table_names({"stages": {"ingest": {"options": {"ids": {"table": "ids.csv"}}}}}))
    ['ids.csv']
    """
    out: set[str] = set()
    stages = run.get("stages")
    for stage in stages.values() if isinstance(stages, dict) else ():
        options = stage.get("options") if isinstance(stage, dict) else None
        ids = options.get("ids") if isinstance(options, dict) else None
        table = ids.get("table") if isinstance(ids, dict) else ids
        if isinstance(table, str) and table:
            out.add(table.replace("\\", "/").rsplit("/", 1)[-1])
    return out
