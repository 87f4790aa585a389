"""``medmm models compare``: every unimodal model and every fusion strategy trained on the same split,
each fusion model also tested with one or two modalities removed; one table of metrics with 95%
bootstrap CIs (printed, and written as ``compare.csv`` / ``compare.md``).

The split is ``RUN_DIR/splits.parquet`` when present (e.g. the constructed cohort, whose split keeps
source items apart), else a seeded patient-level split written to ``OUT_DIR/splits.parquet``.

Inputs come from the same sources as ``medmm train`` (:func:`~medmm.models.volumes.open_sources`): images
from the ingested NIfTI through the MONAI chain when ``image_input`` resolves to ``volumes`` (``auto``: the
run has ``volumes.parquet``), else the ``inputs/image`` arrays. Metrics are per record (the slices of a
record with ``image_input.slice: all`` are combined first, ``slice_aggregation``).

The report branch reads what ``settings["report_input"]`` (the training config's ``report_input``
section; default: finding vectors) asks for, built by :func:`~medmm.models.report_inputs.with_report_inputs`
as in ``medmm train``: every model with a report branch (the unimodal report model and every fusion
strategy) reads the same inputs, on the same split. ``settings["report_features"]`` (several feature sets,
e.g. ``[["findings"], ["findings", "entities", "text"]]``) trains each report model once per set, side by
side: rows ``unimodal report (findings)``, ``unimodal report (findings+entities+text)``, ``fusion sum
(findings)``, ... The ``report_inputs`` column of ``compare.csv`` and ``compare.json`` name the inputs of
each row.

Each trained model also gets the label-free imaging anomaly score, fitted exactly as ``medmm train`` fits
it (:func:`~medmm.models.embedding_anomaly.fit_on_split` on the training split, threshold from the
validation split; a model without an image branch has none, with a note saying why): it is stored in the
model's checkpoint (so ``medmm predict`` / ``evaluate`` score it), and its test-split AUROC / AUPRC against
``target`` (95% bootstrap CIs), flag rate and the flag's sensitivity / specificity go to ``compare.json``
(``embedding_anomaly``, per model; not to the table, whose rows are the supervised head per test condition).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from medmm.align.records import MODALITIES
from medmm.devices import resolve_device
from medmm.errors import ConfigError
from medmm.models.build import build_model, input_shapes
from medmm.models.checkpoint import save_checkpoint
from medmm.models.config import ReportInputConfig, TrainConfig
from medmm.models.data import MultimodalDataset, label_matrix, split_by_patient
from medmm.models.embedding_anomaly import DEFAULT_FALSE_ALARM_RATE, anomaly_report, fit_on_split
from medmm.models.fusion import FUSIONS
from medmm.models.metrics import (
    METRICS,
    evaluate_predictions,
    format_ci,
    json_safe,
    undefined_metric_notes,
)
from medmm.models.report_inputs import report_input_meta, with_report_inputs
from medmm.models.runner import check_labels, data_version, load_records, report_vocabulary
from medmm.models.train import aggregate_by_record, fit, make_loader, predict_loader, seed_everything
from medmm.models.volumes import open_sources, resolve_image_source, source_kinds
from medmm.tables import atomic_write_json, atomic_write_text, read_table, write_table

__all__ = ["compare_models", "fusion_beats_unimodal", "to_markdown"]

log = logging.getLogger(__name__)


#: ``settings`` keys that are not ``TrainingConfig`` fields
_MODEL_KEYS = (
    "embed_dim",
    "image_arch",
    "image_input",
    "report_input",
    "report_features",
    "slice_aggregation",
    "anomaly_rate",
)


def _present(run_dir: Path, records: pd.DataFrame, cfg: TrainConfig) -> list[str]:
    """Modalities some record has and whose source exists (images: volumes or ``inputs/image``)."""

    def available(m: str) -> bool:
        if m == "image" and resolve_image_source(cfg.image_input, run_dir) == "volumes":
            return True  # the VolumeSource names a missing volumes.parquet / file itself
        return (Path(run_dir) / "inputs" / m).exists()

    return [m for m in MODALITIES if records[f"has_{m}"].any() and available(m)]


def _config(
    run_dir: Path,
    out: Path,
    mods: Sequence[str],
    fusion: str,
    target: str,
    settings: dict,
    report_input: dict[str, Any] | None = None,
) -> TrainConfig:
    enc = {m: {"out_dim": settings.get("embed_dim", 32)} for m in mods}
    if "image_arch" in settings:
        enc["image"]["arch"] = settings["image_arch"]
    # the device is resolved once by compare_models and passed to fit (it may be cuda:N)
    train = {k: v for k, v in settings.items() if k not in _MODEL_KEYS and k != "device"}
    if len(mods) == 1:
        train["modality_dropout"] = 0.0
    return TrainConfig.model_validate(
        {
            "run_dir": str(run_dir),
            "out_dir": str(out),
            "modalities": enc,
            "fusion": fusion,
            "embed_dim": settings.get("embed_dim", 32),
            "tasks": [{"name": "diagnosis", "labels": [target]}],
            "train": train,
            "image_input": settings.get("image_input") or {},
            # models without a report branch keep the default (a report_input needs a report modality)
            "report_input": (report_input or {}) if "report" in mods else {},
        }
    )


def _report_inputs(run_dir: Path, out_dir: Path, target: str, settings: dict) -> list[ReportInputConfig]:
    """The report input sets compared: ``report_input`` alone, or one per ``report_features`` entry.

    Each is validated as the ``report_input`` section of a training config (errors name
    ``report_input.<key>``); a set given twice is refused.
    """
    section = dict(settings.get("report_input") or {})
    wanted = settings.get("report_features") or [section.get("features", ["findings"])]
    out: list[ReportInputConfig] = []
    for features in wanted:
        cfg = _config(
            run_dir, out_dir, ["report"], "sum", target, settings, {**section, "features": features}
        )
        if any(c.features == cfg.report_input.features for c in out):
            raise ConfigError(
                f"--report-features: {'+'.join(cfg.report_input.features)} is given twice; list each report "
                "input set once"
            )
        out.append(cfg.report_input)
    return out


def _label(report_input: ReportInputConfig) -> str:
    """``findings+entities``: a report input set as it appears in model names and ``compare.csv``."""
    return "+".join(report_input.features)


def compare_models(
    run_dir: Path,
    out_dir: Path,
    target: str = "abnormal",
    strategies: Sequence[str] | None = None,
    settings: dict[str, Any] | None = None,
    *,
    device: str | torch.device | None = None,
) -> pd.DataFrame:
    """Train and evaluate all models; returns the long table (one row per model x test modalities).

    Parameters
    ----------
    run_dir
        Folder with ``records.parquet``, ``inputs/`` and, for images read through the MONAI chain,
        ``volumes.parquet``.
    out_dir
        Where checkpoints, ``compare.csv``, ``compare.md`` and ``compare.json`` go.
    target
        The label compared (a key of the records' ``labels``).
    strategies
        Fusion strategies (default: all of :data:`~medmm.models.fusion.FUSIONS`).
    settings
        Training settings (``TrainingConfig`` fields plus ``embed_dim``, ``image_arch``, ``image_input``
        (the ``image_input`` section of a training config, as a dict; default ``auto``),
        ``report_input`` (the ``report_input`` section, as a dict; default: finding vectors),
        ``report_features`` (feature sets compared side by side, each with the rest of ``report_input``;
        default: ``report_input.features`` alone) and ``slice_aggregation`` (``mean`` | ``max``, default
        ``mean``) and ``anomaly_rate`` (false-alarm rate of the embedding anomaly flag, default 0.05)). A
        set with ``text`` on a run without ``report_texts.parquet`` is the
        :class:`~medmm.errors.InputError` of ``medmm train``, raised before anything is trained or written.
    device
        Where every model trains and is tested (:func:`medmm.devices.resolve_device`); default
        ``settings["device"]``, else ``auto``. Checked before any data is read.

    Examples
    --------
    >>> table = compare_models(Path("runs/cohort"), Path("runs/cohort/compare"),
    ...                        strategies=["late"], settings={"epochs": 2})  # doctest: +SKIP
    >>> table[["model", "test_modalities", "n_test", "auroc_value"]]  # doctest: +SKIP
    """
    unknown = [s for s in strategies or () if s not in FUSIONS]
    if unknown:
        raise ConfigError(f"--strategy {unknown}: unknown fusion; choose from {sorted(FUSIONS)}")
    settings = {"modality_dropout": 0.25, "progress": False, **(settings or {})}
    if device is None:
        dev = resolve_device(settings.get("device"), source="settings device")
    else:
        dev = resolve_device(device, source="device")
    rate = settings.get("anomaly_rate", DEFAULT_FALSE_ALARM_RATE)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < 1:
        raise ConfigError(
            f"anomaly_rate {rate!r}: the false-alarm rate must be a number in (0, 1); use e.g. 0.05"
        )
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    how = settings.get("slice_aggregation", "mean")
    records = load_records(run_dir)
    check_labels(records, [target], str(run_dir / "records.parquet"), "--target", "pass another --target")
    report_sets = _report_inputs(run_dir, out_dir, target, settings)  # option errors before any data
    base = _config(run_dir, out_dir, list(MODALITIES), "sum", target, settings)
    mods = _present(run_dir, records, base)
    # the inputs of each report input set (entity vectors and text ids are built here, in memory; a set
    # asking for text on a run without report_texts.parquet is refused before anything is written)
    opened = open_sources(base, run_dir, mods, records)
    set_stores = [
        with_report_inputs(base.model_copy(update={"report_input": ri}), run_dir, opened, records)
        for ri in report_sets
    ]
    if "report" not in mods and any(not ri.is_default() for ri in report_sets):
        log.warning("report_input is set but the run has no report inputs: no model reads reports")
    split_path = run_dir / "splits.parquet"
    if split_path.exists():
        split = read_table(split_path).set_index("record_id")["split"]
    else:
        tf, vf = settings.get("test_fraction", 0.2), settings.get("val_fraction", 0.15)
        names = split_by_patient(
            records["patient_id"].tolist(), (1 - tf - vf, vf, tf), settings.get("seed", 0)
        )
        split = pd.Series(names, index=records["record_id"])
    out_dir.mkdir(parents=True, exist_ok=True)
    write_table(split.rename("split").reset_index(), out_dir / "splits.parquet")
    part = {s: records[records["record_id"].map(split) == s] for s in ("train", "val", "test")}
    notes = undefined_metric_notes(label_matrix(part["test"], [target]), [target], "the test split")
    if part["test"].empty:
        notes = [f"the test split is empty ({records['patient_id'].nunique()} patients): no metrics"]
    for note in notes:  # every row of the table would show NaN for these metrics
        log.warning(note)
    # the data version of each set: the other modalities' inputs are hashed once (a volume source reads
    # every file), only a report source built for a set is hashed again
    shared = data_version(records, opened)
    versions = [
        {**shared, "report_inputs_sha256": st["report"].digest()}
        if "report" in st and st["report"] is not opened["report"]
        else shared
        for st in set_stores
    ]
    side_by_side = len(report_sets) > 1 and "report" in mods
    # (name, modalities, fusion, index of the report input set); models without reports train once
    plans: list[tuple[str, list[str], str, int]] = []
    for use, fusion, name in [([m], "sum", f"unimodal {m}") for m in mods] + [
        (mods, s, f"fusion {s}") for s in (strategies or sorted(FUSIONS))
    ]:
        if "report" in use and side_by_side:
            plans += [(f"{name} ({_label(ri)})", use, fusion, k) for k, ri in enumerate(report_sets)]
        else:
            plans.append((name, use, fusion, 0))
    anomalies: dict[str, dict[str, Any]] = {}  # model -> embedding anomaly fit + test metrics, or a note
    rows = []
    for name, use, fusion, j in plans:
        ri = report_sets[j].model_dump(mode="json")
        folder = name.replace(" (", "_").replace(")", "").replace(" ", "_")
        cfg = _config(run_dir, out_dir / folder, use, fusion, target, settings, ri)
        stores = set_stores[j]
        shapes = input_shapes(stores)
        seed_everything(cfg.train.seed)
        model = build_model(cfg, {m: shapes[m] for m in use})
        used = {m: stores[m] for m in use}
        have = part["train"][[f"has_{m}" for m in use]].any(axis=1)
        vhave = part["val"][[f"has_{m}" for m in use]].any(axis=1)
        res = fit(
            model,
            cfg,
            MultimodalDataset(part["train"][have], used, [target], augment=True),
            MultimodalDataset(part["val"][vhave], used, [target]) if vhave.any() else None,
            device=dev,
        )
        # the label-free imaging anomaly score, fitted as `medmm train` fits it (no label read; models
        # without an image branch get the note of why there is none)
        anomaly, why = fit_on_split(
            res.model,
            part["train"],
            part["val"],
            used,
            batch_size=cfg.train.batch_size,
            device=dev,
            aggregation=how,
            rate=rate,
            seed=cfg.train.seed,
        )
        fit_summary = anomaly.summary() if anomaly is not None else {"note": why}
        anomalies[name] = fit_summary
        if anomaly is not None and part["test"]["has_image"].any():  # labels only to evaluate the score
            anomalies[name] = anomaly_report(
                anomaly,
                res.model,
                part["test"],
                used,
                [target],
                batch_size=cfg.train.batch_size,
                device=dev,
                n_boot=cfg.train.n_boot,
                seed=cfg.train.seed,
            )
            log.info(
                "%s: embedding anomaly AUROC for %s %.3f",
                name,
                target,
                anomalies[name]["metrics"][target]["auroc"]["value"],
            )
        save_checkpoint(
            cfg.output_dir() / "model.pt",
            res.model.state_dict(),
            {
                "config": cfg.model_dump(mode="json"),
                "data_version": versions[j],
                "input_shapes": shapes,
                "label_names": [target],
                "modalities": use,
                "input_sources": source_kinds(used),
                "best_epoch": res.best_epoch,
                "fold": 0,
                "slice_aggregation": how,
                "report_vocabulary": report_vocabulary(run_dir) if "report" in use else None,
                "report_inputs": report_input_meta(cfg, used),
                "embedding_anomaly": fit_summary,
            },
            {"embedding_anomaly": anomaly.to_state()} if anomaly is not None else None,
        )
        conditions = [tuple(c) for r in range(len(use), 0, -1) for c in itertools.combinations(use, r)]
        for kept in conditions if len(use) > 1 else [tuple(use)]:
            drop = [m for m in use if m not in kept]
            test = part["test"][part["test"][[f"has_{m}" for m in kept]].any(axis=1)]
            if test.empty:  # no test record has these modalities: a row without metrics, never a crash
                met = {k: {"value": math.nan, "lo": math.nan, "hi": math.nan} for k in METRICS}
                n_test = 0
                note = f"no test record has {'+'.join(kept)}: no metrics for those rows"
                if note not in notes and not part["test"].empty:
                    notes.append(note)
                    log.warning(note)
            else:
                ds = MultimodalDataset(test, used, [target], drop=drop)
                loader = make_loader(ds, cfg.train.batch_size, False, 0, dev)
                pred = aggregate_by_record(predict_loader(res.model, loader, dev), how)
                met = evaluate_predictions(
                    pred.labels, pred.probs, [target], cfg.train.n_boot, cfg.train.seed
                )[target]
                n_test = len(pred.record_ids)
            rows.append(
                {
                    "model": name,
                    "test_modalities": "+".join(kept),
                    "n_test": n_test,
                    "best_epoch": res.best_epoch,
                    **{f"{k}_{q}": met[k][q] for k in METRICS for q in ("value", "lo", "hi")},
                    # what the model's report branch read ("" without one; a dropped branch still counts)
                    "report_inputs": _label(cfg.report_input) if "report" in use else "",
                }
            )
            log.info("%s on %s: AUROC %.3f", name, "+".join(kept), met["auroc"]["value"])
    table = pd.DataFrame(rows)
    table.to_csv(out_dir / "compare.csv", index=False)
    atomic_write_text(out_dir / "compare.md", to_markdown(table))
    atomic_write_json(
        out_dir / "compare.json",
        json_safe(
            {
                "data_version": versions[0],
                "target": target,
                "settings": settings,
                "device": str(dev),
                "input_sources": source_kinds(set_stores[0]),
                # each report input set compared: its section and the SHA-256 of the inputs it built
                "report_inputs": [
                    {
                        **ri.model_dump(mode="json"),
                        "models": sorted({p[0] for p in plans if p[3] == k and "report" in p[1]}),
                        "inputs_sha256": versions[k]["report_inputs_sha256"],
                    }
                    for k, ri in enumerate(report_sets)
                ]
                if "report" in mods
                else None,
                "n": {s: len(v) for s, v in part.items()},
                "fusion_beats_unimodal": fusion_beats_unimodal(table),
                "embedding_anomaly": anomalies,
                "notes": notes,
            }
        ),
    )
    return table


def to_markdown(table: pd.DataFrame, metrics: Sequence[str] = METRICS) -> str:
    """The compare table as markdown, each metric ``value [lo, hi]``.

    >>> t = pd.DataFrame([{"model": "m", "test_modalities": "a", "n_test": 3,
    ...     **{f"auroc_{q}": v for q, v in (("value", 0.9), ("lo", 0.8), ("hi", 0.95))}}])
    >>> print(to_markdown(t, ["auroc"]).splitlines()[2])
    | m | a | 3 | 0.900 [0.800, 0.950] |
    """
    head = ["model", "test modalities", "n", *metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table.to_dict(orient="records"):
        cells = [format_ci({q: r[f"{m}_{q}"] for q in ("value", "lo", "hi")}) for m in metrics]
        lines.append(f"| {r['model']} | {r['test_modalities']} | {r['n_test']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def fusion_beats_unimodal(table: pd.DataFrame, metric: str = "auroc") -> dict[str, Any]:
    """Whether each fusion model (all modalities) beats the best unimodal model with disjoint CIs.

    >>> t = pd.DataFrame([{"model": "unimodal a", "test_modalities": "a", "auroc_value": .7, "auroc_lo": .6,
    ...     "auroc_hi": .8}, {"model": "fusion sum", "test_modalities": "a+b", "auroc_value": .9,
    ...     "auroc_lo": .85, "auroc_hi": .95}])
    >>> fusion_beats_unimodal(t)["fusion sum"]
    True
    """
    uni = table[table["model"].str.startswith("unimodal")]
    if uni.empty:
        return {}
    best = uni.sort_values(f"{metric}_value").iloc[-1]
    full = table[table["model"].str.startswith("fusion")]
    full = full[
        full["test_modalities"].str.count(r"\+")
        == full.groupby("model")["test_modalities"].transform(lambda s: s.str.count(r"\+").max())
    ]
    out: dict[str, Any] = {"best_unimodal": best["model"], "best_unimodal_hi": float(best[f"{metric}_hi"])}
    for r in full.itertuples():
        out[str(r.model)] = bool(getattr(r, f"{metric}_lo") > best[f"{metric}_hi"])
    return out
