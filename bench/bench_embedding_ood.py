"""Label-free embedding anomaly score on images from other sources (``python -m bench embedding_ood
[--quick]``, or ``python -m bench.bench_embedding_ood [--quick] [OUT_DIR]``).

A model (``workflows/train_cohort_attention.yaml``, and the same with late fusion) is trained with
``medmm train``'s code (:func:`medmm.models.runner.train_from_config`, which fits the score on the
training records' images without labels and sets its threshold on the validation records at the 5%
false-alarm rate) on the constructed cohort (``bench/cohort.py``: BraTS FLAIR slices, IU reports, MIT-BIH
windows; source-disjoint split). Then ``medmm predict``'s code (:func:`medmm.predict.predict.predict_run`)
scores

* the **baseline**: the cohort's test split, its tumour-free and its tumour slices (2 BraTS patients the
  model never saw: the right kind of image, from new patients, so flagged at the stated 5% or somewhat
  more);
* **images from other sources** (:mod:`bench._ood`): the 34 ``covid_chestxray_subset`` pictures (27 chest
  X-rays, 7 CT) and 5 other CT/MR images (pydicom CT_small / MR_small, nibabel anatomical, pyradiomics
  brain1 / brain2), prepared exactly like the cohort's slices.

Second table, **calibration**: does the flag rate keep the stated 5% where it should? Per seed (full: 0, 1,
2; ``--quick``: 0) and model, the cohort (**shifted**: its test images come from 2 BraTS patients whose
slices the validation split - the calibration set - never shows, as its train and validation images are
slices of the other 2) and the same cohort re-drawn by :func:`bench._ood.same_source_cohort`
(**same-source**: every split holds other slices of the same 4 patients, so test and validation images
are exchangeable). Printed: the calibration set's size (scores, and the validation records' distinct
images), what it promises (expected rate and 95% upper bound,
:func:`medmm.models.mahalanobis.false_alarm_bound`), and the flag rates of the validation records, the
test tumour-free slices and all test slices.

Printed per model and group: records, flagged, flag rate, the flag rate as a multiple of the baseline's
(the test tumour-free slices), and the AUROC of the score for "other source vs the test split's images"
with a 95% bootstrap CI (:func:`medmm.models.embedding_anomaly.evaluate_anomaly_scores`). Full: 600
studies, 64 x 64, attention and late fusion, 12 epochs (the workflow's), 1000 resamples, 12 models;
``--quick``: 400 studies, 32 x 32, attention only, 8 epochs, 300 resamples, 2 models. CPU and wall
seconds per phase are recorded with the load average.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["calibration_row", "model_config", "ood_table", "run"]

#: the shipped cohort training config; every model of the bench is it with another fusion / sizes
WORKFLOW = Path(__file__).resolve().parents[1] / "workflows" / "train_cohort_attention.yaml"


def model_config(
    cohort: Path, out: Path, fusion: str, epochs: int, n_boot: int, seed: int = 0
) -> dict[str, Any]:
    """:data:`WORKFLOW` (``medmm train workflows/train_cohort_attention.yaml``: tasks, encoders, loss,
    schedule) for ``cohort`` and its split, with ``fusion``, ``epochs``, ``n_boot``, ``seed``, one fold and
    the CPU.

    >>> cfg = model_config(Path("c"), Path("m"), "late", 2, 100)
    >>> cfg["splits_file"], cfg["fusion"], cfg["train"]["epochs"], cfg["train"]["folds"]
    ('c/splits.parquet', 'late', 2, 1)
    """
    import yaml

    cfg = yaml.safe_load(WORKFLOW.read_text())
    cfg.update(run_dir=str(cohort), out_dir=str(out), splits_file=str(Path(cohort) / "splits.parquet"))
    cfg["fusion"] = fusion
    cfg["train"].update(epochs=epochs, n_boot=n_boot, seed=seed, folds=1, device="cpu", progress=False)
    return dict(cfg)


def ood_table(scored: pd.DataFrame, baseline: str, n_boot: int, seed: int = 0) -> pd.DataFrame:
    """Per group of ``scored`` (``group``, ``score``, ``flag``, one row per record): records, flagged, flag
    rate, flag rate / the ``baseline`` group's, and for groups outside the cohort (``group`` not starting
    with ``test``) the AUROC of the score against the test groups' records, with a bootstrap CI.

    >>> s = pd.DataFrame({"group": ["test a"] * 40 + ["other"] * 10,
    ...                   "score": np.r_[np.linspace(0, 1, 40), np.linspace(2, 3, 10)],
    ...                   "flag": [False] * 38 + [True] * 12})
    >>> t = ood_table(s, "test a", n_boot=50)
    >>> t.set_index("group").loc["other", ["flag_rate", "auroc"]].tolist()
    [1.0, 1.0]
    """
    from medmm.models.embedding_anomaly import evaluate_anomaly_scores

    test = scored[scored["group"].str.startswith("test")]
    base_rate = float(scored.loc[scored["group"] == baseline, "flag"].mean())
    rows = []
    for group, g in scored.groupby("group", sort=False):
        rate = float(g["flag"].mean())
        row: dict[str, Any] = {
            "group": group,
            "n": len(g),
            "flagged": int(g["flag"].sum()),
            "flag_rate": rate,
            "vs_baseline": rate / base_rate if base_rate > 0 else float("inf") if rate > 0 else 1.0,
            "median_score": float(g["score"].median()),
        }
        if not str(group).startswith("test"):
            s = np.r_[test["score"].to_numpy(float), g["score"].to_numpy(float)]
            y = np.r_[np.zeros(len(test)), np.ones(len(g))][:, None]
            auroc = evaluate_anomaly_scores(s, y, ["other"], np.inf, n_boot, seed)["metrics"]["other"][
                "auroc"
            ]
            row.update(auroc=auroc["value"], auroc_lo=auroc["lo"], auroc_hi=auroc["hi"])
        rows.append(row)
    return pd.DataFrame(rows)


def calibration_row(scored: pd.DataFrame, fit: dict[str, Any]) -> dict[str, Any]:
    """Flag rates of one model on its cohort's splits next to what its calibration promised.

    ``scored``: one row per cohort record with ``split``, ``image_id``, ``tumour`` (bool), ``flag``;
    ``fit``: the checkpoint's :meth:`~medmm.models.embedding_anomaly.EmbeddingAnomaly.summary`. Returns
    the calibration set's size (records and distinct images), the rate, the promised ``expected`` and 95%
    ``upper`` bound (:func:`~medmm.models.mahalanobis.false_alarm_bound`) and the flag rate of the
    validation split and of the test split's tumour-free slices and of all its slices.

    >>> s = pd.DataFrame({"split": ["val", "test", "test"], "image_id": ["a", "b", "c"],
    ...                   "tumour": [False, False, True], "flag": [False, True, True]})
    >>> r = calibration_row(s, {"n_calibration": 40, "false_alarm_rate": 0.05})
    >>> r["val_distinct_images"], r["test_tumour_free_flag_rate"], round(r["upper_95"], 3)
    (1, 1.0, 0.113)
    """
    from medmm.models.mahalanobis import false_alarm_bound

    val, test = scored[scored["split"] == "val"], scored[scored["split"] == "test"]
    free = test[~test["tumour"].astype(bool)]
    expected, upper = false_alarm_bound(int(fit["n_calibration"]), float(fit["false_alarm_rate"]))
    return {
        "n_calibration": int(fit["n_calibration"]),
        "val_records": len(val),
        "val_distinct_images": int(val["image_id"].nunique()),
        "rate": float(fit["false_alarm_rate"]),
        "expected": expected,
        "upper_95": upper,
        "val_flag_rate": float(val["flag"].mean()),
        "test_tumour_free": len(free),
        "test_tumour_free_flagged": int(free["flag"].sum()),
        "test_tumour_free_flag_rate": float(free["flag"].mean()),
        "test_flag_rate": float(test["flag"].mean()),
    }


def _cohort_scores(cohort: Path, pred: Path) -> pd.DataFrame:
    """One row per cohort record with an image: split, image, tumour label, score, flag."""
    records = pd.read_parquet(cohort / "records.parquet")
    records = records[records["has_image"]]
    splits = pd.read_parquet(cohort / "splits.parquet")[["record_id", "split"]]
    out = records[["record_id", "image_id", "labels"]].merge(splits, on="record_id")
    out["tumour"] = out["labels"].map(lambda s: json.loads(s).get("image_abnormal") == 1)
    out = out.drop(columns="labels").merge(_scores(pred), on="record_id")
    return out.rename(columns={"embedding_anomaly_score": "score", "embedding_anomaly_flag": "flag"})


def _scores(pred: Path) -> pd.DataFrame:
    p = pd.read_parquet(pred).drop_duplicates("record_id")
    return p[
        ["record_id", "embedding_anomaly_score", "embedding_anomaly_flag", "embedding_anomaly_threshold"]
    ]


def _fmt(table: pd.DataFrame, model: str) -> list[str]:
    lines = []
    for r in table.to_dict(orient="records"):
        auroc = (
            f"{r['auroc']:.3f} [{r['auroc_lo']:.3f}, {r['auroc_hi']:.3f}]"
            if "auroc" in r and r["auroc"] == r["auroc"]
            else "-"
        )
        lines.append(
            f"| {model} | {r['group']} | {r['n']} | {r['flagged']} | {r['flag_rate']:.1%} | "
            f"{r['vs_baseline']:.1f}x | {r['median_score']:.2f} | {auroc} |"
        )
    return lines


def run(out_dir: Path, quick: bool, seed: int = 0) -> dict[str, Any]:
    """Build the cohort and the other-source run under ``out_dir``, train, score, print the table.

    Returns the summary (per model: the fit, the table rows, CPU / wall seconds per phase; load average).

    >>> summary = run(Path("bench/results/embedding_ood"), quick=True)  # doctest: +SKIP
    """
    import torch

    from bench._ood import write_ood_run
    from bench.cohort import build_cohort
    from medmm.datasets import shared_data_dir
    from medmm.models.config import TrainConfig
    from medmm.models.runner import train_from_config
    from medmm.predict.predict import predict_run

    root = shared_data_dir()
    if root is None:
        raise RuntimeError("shared data not found: set MEDMM_DATA or place shared/data beside the checkout")
    studies, size, epochs, n_boot = (400, 32, 8, 300) if quick else (600, 64, 12, 1000)
    fusions = ("attention",) if quick else ("attention", "late")
    out_dir = Path(out_dir)
    load_before = os.getloadavg()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    clock: dict[str, dict[str, float]] = {}

    def timed(name: str, fn: Any, *args: Any, **kw: Any) -> Any:
        c0, w0 = time.process_time(), time.perf_counter()
        out = fn(*args, **kw)
        clock[name] = {"cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - w0}
        return out

    cohort = out_dir / "cohort"
    timed("cohort", build_cohort, root, cohort, n_studies=studies, size=size, seed=seed)
    groups = timed("ood_run", write_ood_run, root, out_dir / "ood", size)
    records = pd.read_parquet(cohort / "records.parquet")
    splits = pd.read_parquet(cohort / "splits.parquet")
    test = records[records["record_id"].isin(splits.loc[splits["split"] == "test", "record_id"])]
    test = test[test["has_image"]]
    tumour = test["labels"].map(lambda s: json.loads(s).get("image_abnormal") == 1)
    test_groups = pd.DataFrame(
        {"record_id": test["record_id"], "group": np.where(tumour, "test tumour slice", "test tumour-free")}
    )
    baseline = "test tumour-free"
    summary: dict[str, Any] = {
        "quick": quick,
        "studies": studies,
        "size": size,
        "epochs": epochs,
        "models": {},
    }
    lines = [
        "| model | group | n | flagged | flag rate | vs baseline | median | AUROC vs test images [CI] |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for fusion in fusions:
        model_dir = out_dir / "models" / fusion
        cfg = TrainConfig.model_validate(model_config(cohort, model_dir, fusion, epochs, n_boot, seed))
        trained = timed(f"train_{fusion}", train_from_config, cfg, device="cpu")
        ckpt = model_dir / "model.pt"
        timed(
            f"predict_ood_{fusion}",
            predict_run,
            ckpt,
            out_dir / "ood",
            out_dir / f"ood_{fusion}.parquet",
            device="cpu",
        )
        timed(
            f"predict_cohort_{fusion}",
            predict_run,
            ckpt,
            cohort,
            out_dir / f"cohort_{fusion}.parquet",
            device="cpu",
        )
        scored = pd.concat(
            [
                test_groups.merge(_scores(out_dir / f"cohort_{fusion}.parquet"), on="record_id"),
                groups.merge(_scores(out_dir / f"ood_{fusion}.parquet"), on="record_id"),
            ]
        ).rename(columns={"embedding_anomaly_score": "score", "embedding_anomaly_flag": "flag"})
        scored["flag"] = scored["flag"].astype(bool)
        table = ood_table(scored, baseline, n_boot, seed)
        lines += _fmt(table, fusion)
        summary["models"][fusion] = {
            "fit": trained["folds"][0]["embedding_anomaly"].get(
                "fit", trained["folds"][0]["embedding_anomaly"]
            ),
            "threshold": float(scored["embedding_anomaly_threshold"].iloc[0]),
            # rows of the test groups have no AUROC (NaN in the frame): left out, so the JSON stays valid
            "table": [{k: v for k, v in r.items() if v == v} for r in table.to_dict(orient="records")],
        }
    summary["calibration"] = _calibration(
        root, out_dir, cohort, fusions, (0,) if quick else (0, 1, 2), seed, epochs, n_boot, timed
    )
    summary["baseline"] = f"{baseline} (the cohort's test split: BraTS patients never seen in training)"
    summary["timings"] = clock
    summary["loadavg"] = {"before": load_before, "after": os.getloadavg()}
    lines += ["", *_calibration_lines(summary["calibration"])]
    text = "\n".join(lines)
    print(text)
    print(
        f"CPU s per phase: { {k: round(v['cpu_s'], 1) for k, v in clock.items()} }; load {summary['loadavg']}"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "table.md").write_text(text + "\n")
    return summary


def _calibration(
    root: Path,
    out_dir: Path,
    cohort0: Path,
    fusions: tuple[str, ...],
    seeds: tuple[int, ...],
    seed0: int,
    epochs: int,
    n_boot: int,
    timed: Any,
) -> list[dict[str, Any]]:
    """Per seed, split kind and fusion: :func:`calibration_row` of a model trained and scored as ``medmm
    train`` / ``medmm predict`` do, on the cohort (``shifted``: its test images come from 2 BraTS patients
    the validation images never show) and on :func:`bench._ood.same_source_cohort` (``same-source``:
    test and validation images are other slices of the same 4 patients). The shifted seed-``seed0``
    models are the OOD table's."""
    from bench._ood import same_source_cohort
    from bench.cohort import build_cohort
    from medmm.models.checkpoint import load_checkpoint
    from medmm.models.config import TrainConfig
    from medmm.models.runner import train_from_config
    from medmm.predict.predict import predict_run

    cohort_json = json.loads((cohort0 / "cohort.json").read_text())
    rows = []
    for s in seeds:
        shifted = cohort0 if s == seed0 else out_dir / "calibration" / f"cohort_s{s}"
        if s != seed0:
            timed(
                f"cohort_s{s}",
                build_cohort,
                root,
                shifted,
                n_studies=cohort_json["n_studies"],
                size=cohort_json["image_size"],
                seed=s,
            )
        same = out_dir / "calibration" / f"same_source_s{s}"
        timed(f"same_source_s{s}", same_source_cohort, shifted, root, same, seed=s)
        for kind, run_dir in (("shifted", shifted), ("same-source", same)):
            for fusion in fusions:
                if kind == "shifted" and s == seed0:
                    model_dir, pred = out_dir / "models" / fusion, out_dir / f"cohort_{fusion}.parquet"
                else:
                    model_dir = out_dir / "calibration" / f"{kind}_s{s}_{fusion}"
                    pred = model_dir / "predictions.parquet"
                    cfg = model_config(run_dir, model_dir, fusion, epochs, n_boot, s)
                    timed(
                        f"train_{kind}_s{s}_{fusion}",
                        train_from_config,
                        TrainConfig.model_validate(cfg),
                        device="cpu",
                    )
                    predict_run(model_dir / "model.pt", run_dir, pred, device="cpu")
                fit = load_checkpoint(model_dir / "model.pt")["meta"]["embedding_anomaly"]
                row = calibration_row(_cohort_scores(run_dir, pred), fit)
                rows.append({"split": kind, "model": fusion, "seed": s, **row})
    return rows


def _calibration_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "Flag rate at the stated rate: exchangeable (same-source) vs shifted test images",
        "| split | model | seed | calibration scores / val records (distinct images) "
        "| promised: expected, 95% upper | val flagged | test tumour-free flagged | test all flagged |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['split']} | {r['model']} | {r['seed']} | {r['n_calibration']} / {r['val_records']} "
            f"({r['val_distinct_images']}) | {r['expected']:.1%}, <= {r['upper_95']:.1%} "
            f"| {r['val_flag_rate']:.1%} | {r['test_tumour_free_flagged']}/{r['test_tumour_free']} = "
            f"{r['test_tumour_free_flag_rate']:.1%} | {r['test_flag_rate']:.1%} |"
        )
    return lines


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--quick"]
    result = run(Path(args[0]) if args else Path("bench/results/embedding_ood"), "--quick" in sys.argv)
    print(json.dumps(result, indent=2, default=str)[:2000])
