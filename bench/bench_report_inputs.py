"""Report-only models on real IU chest X-ray reports: finding vectors vs entity vectors vs a text embedding.

``flock /tmp/medmm-bench.lock python -m bench report_inputs [--quick]``

The IU reports (``text/iu_xray/indiana_reports_dev.csv``, 2,575 reports; ``--quick``: the first 600) go
through the standard chain: ``medmm reports parse --keep-text`` (findings + impression columns, patient
column ``uid``), ``medmm align --labels`` with the label ``abnormal`` = the human indexers' ``Problems``
column is not ``normal`` (the models never see that column), then one report-only model per
``report_input.features`` set, all on the same seeded patient split (70/15/15), trained with early
stopping on the validation loss, and scored with ``medmm predict``. Reported per split seed: test AUROC
with a percentile bootstrap 95% CI (1000 resamples of the test reports), and the paired bootstrap
difference to the finding-vector baseline on the same test reports (same resamples). CPU seconds
(``time.process_time``) of training and of prediction over every record are given too.

The parsed run (it holds the report text) and the models live in a temporary folder that is removed at
the end, with a throwaway site key; only the numbers are written.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd

FEATURE_SETS: list[list[str]] = [
    ["findings"],
    ["entities"],
    ["text"],
    ["findings", "entities"],
    ["findings", "entities", "text"],
]
BASELINE = "findings"


def build_iu_run(data_root: Path, work: Path, n: int | None = None) -> Path:
    """Parse (``--keep-text``) and align the IU reports into ``work/run`` with the ``abnormal`` label."""
    from medmm.align.pipeline import align_run
    from medmm.reports.pipeline import parse_reports

    df = pd.read_csv(data_root / "text" / "iu_xray" / "indiana_reports_dev.csv")
    if n:
        df = df.head(n)
    src = work / "iu.csv"
    df[["uid", "findings", "impression"]].to_csv(src, index=False)
    problems = [str(p).strip().lower() for p in df["Problems"].tolist()]
    labels = work / "labels.csv"
    pd.DataFrame(
        {"patient": df["uid"].astype(str), "abnormal": [int(p != "normal") for p in problems]}
    ).to_csv(labels, index=False)
    run = work / "run"
    parse_reports(
        src,
        run,
        id_column="uid",
        text_columns=["findings", "impression"],
        patient_column="uid",
        workers=0,
        keep_text=True,
    )
    align_run(run, labels=labels)
    return run


def hashing_stats(run: Path) -> dict[str, int]:
    """Label-free: distinct entity tokens and text n-grams of the run, and how many share a hash column /
    bucket with another at the default ``entity_dim`` / ``text.buckets`` (collisions of feature hashing).

    The text n-grams are only counted in memory; the bucket ids use a random key (the count does not
    depend on which key).
    """
    from collections import Counter

    from medmm.models.config import ReportInputConfig
    from medmm.models.encoders.report_features import TokenHasher, entity_tokens, entity_vectors, text_tokens

    cfg = ReportInputConfig()
    ent = pd.read_parquet(run / "entities.parquet")
    tokens = sorted({t for _, g in ent.groupby("report_id") for t in entity_tokens(g.to_dict("records"))})
    cols = entity_vectors([[t] for t in tokens], cfg.entity_dim, sparse=True).indices
    texts = pd.read_parquet(run / "report_texts.parquet")["text"].tolist()
    grams = sorted({g for text in texts for g in text_tokens(text, cfg.text.ngrams)})
    hasher = TokenHasher(os.urandom(32), cfg.text.buckets)
    buckets = [hasher.id(g) for g in grams]

    def shared(values: Any) -> int:
        counts = Counter(int(v) for v in values)
        return sum(c for c in counts.values() if c > 1)

    return {
        "entity_tokens": len(tokens),
        "entity_dim": cfg.entity_dim,
        "entity_tokens_sharing_a_column": shared(cols),
        "text_ngrams": len(grams),
        "text_buckets": cfg.text.buckets,
        "text_ngrams_sharing_a_bucket": shared(buckets),
    }


def _auroc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def bootstrap(
    y: np.ndarray, scores: dict[str, np.ndarray], n_boot: int, seed: int
) -> dict[str, dict[str, Any]]:
    """AUROC with a 95% percentile CI per model, and the paired difference to :data:`BASELINE`
    (the same resampled reports for every model).

    >>> y = np.array([0, 0, 1, 1] * 10)
    >>> out = bootstrap(y, {"findings": y * 0.5 + 0.1, "text": y * 0.1 + 0.2}, 50, 0)
    >>> out["findings"]["auroc"], out["text"]["delta"]
    (1.0, 0.0)
    """
    rng = np.random.default_rng(seed)
    idx = [rng.integers(0, len(y), len(y)) for _ in range(n_boot)]
    boots = {m: np.array([_auroc(y[i], s[i]) for i in idx]) for m, s in scores.items()}
    base = boots[BASELINE]
    out = {}
    for m, s in scores.items():
        d = boots[m] - base
        out[m] = {
            "auroc": _auroc(y, s),
            "lo": float(np.nanpercentile(boots[m], 2.5)),
            "hi": float(np.nanpercentile(boots[m], 97.5)),
            "delta": _auroc(y, s) - _auroc(y, scores[BASELINE]),
            "delta_lo": float(np.nanpercentile(d, 2.5)),
            "delta_hi": float(np.nanpercentile(d, 97.5)),
        }
    return out


def _one_seed(run: Path, work: Path, seed: int, epochs: int, n_boot: int) -> dict[str, Any]:
    from medmm.models.config import TrainConfig
    from medmm.models.runner import train_from_config
    from medmm.predict.predict import predict_run

    records = pd.read_parquet(run / "records.parquet")
    y_all = {
        r: json.loads(t)["abnormal"] for r, t in zip(records["record_id"], records["labels"], strict=True)
    }
    scores, cost, test_ids = {}, {}, None
    for feats in FEATURE_SETS:
        name = "+".join(feats)
        out = work / f"seed{seed}" / name
        cfg = TrainConfig.model_validate(
            {
                "run_dir": str(run),
                "out_dir": str(out),
                "fusion": "sum",
                "embed_dim": 32,
                "modalities": {"report": {}},
                "report_input": {"features": feats},
                "tasks": [{"name": "dx", "labels": ["abnormal"]}],
                "train": {
                    "epochs": epochs,
                    "seed": seed,
                    "val_fraction": 0.15,
                    "test_fraction": 0.15,
                    "progress": False,
                    "n_boot": 0,
                    "num_threads": 1,
                    "device": "cpu",
                },
            }
        )
        t0 = time.process_time()
        summary = train_from_config(cfg, device="cpu")
        t1 = time.process_time()
        predict_run(out / "model.pt", run, out / "predictions.parquet", device="cpu")
        t2 = time.process_time()
        splits = pd.read_parquet(out / "splits.parquet")
        ids = sorted(splits.loc[splits["split"] == "test", "record_id"])
        if test_ids is None:
            test_ids = ids
        assert ids == test_ids, "every model must be tested on the same reports"
        pred = pd.read_parquet(out / "predictions.parquet").set_index("record_id")["score"]
        scores[name] = pred.loc[ids].to_numpy()
        cost[name] = {
            "train_cpu_s": t1 - t0,
            "predict_cpu_s": t2 - t1,
            "best_epoch": summary["folds"][0]["best_epoch"],
        }
    assert test_ids is not None
    y = np.array([y_all[i] for i in test_ids], dtype=int)
    stats = bootstrap(y, scores, n_boot, seed)
    for name in stats:
        stats[name].update(cost[name])
    return {"seed": seed, "n_test": len(y), "n_test_abnormal": int(y.sum()), "models": stats}


def run(out_dir: Path, quick: bool) -> dict[str, Any]:
    """Build the IU run, train and score each report input set per seed; print and return the table."""
    from medmm.datasets import shared_data_dir
    from medmm.pseudonym import KEY_ENV

    root = shared_data_dir()
    if root is None:
        raise RuntimeError("real data not found: set MEDMM_DATA or place shared/data beside the checkout")
    n_reports, seeds, epochs = (600, [0], 10) if quick else (None, [0, 1, 2], 30)
    results = []
    with tempfile.TemporaryDirectory(prefix="medmm-bench-report-inputs-") as tmp:
        work = Path(tmp)
        key = work / "site.key"
        key.write_text(os.urandom(32).hex() + "\n")
        key.chmod(0o600)
        with mock.patch.dict(os.environ, {KEY_ENV: str(key)}):  # the user's key is never read
            t0 = time.process_time()
            run_dir = build_iu_run(root, work, n_reports)
            build_s = time.process_time() - t0
            n_records = len(pd.read_parquet(run_dir / "records.parquet"))
            hashing = hashing_stats(run_dir)
            for seed in seeds:
                results.append(_one_seed(run_dir, work, seed, epochs, 1000))
    load = os.getloadavg()
    print(
        f"IU reports: {n_records} records (parse --keep-text + align: {build_s:.1f} CPU-s); "
        f"load {load[0]:.1f}"
    )
    print(
        "hashing (defaults): {entity_tokens} entity tokens, {entity_tokens_sharing_a_column} share one of "
        "{entity_dim} columns; {text_ngrams} text n-grams, {text_ngrams_sharing_a_bucket} share one of "
        "{text_buckets} buckets".format(**hashing)
    )
    print(
        f"{'seed':>4} {'inputs':<26} {'test AUROC [95% CI]':<24} {'vs findings [95% CI]':<26} "
        "train/pred CPU-s"
    )
    for res in results:
        for name, s in res["models"].items():
            delta = (
                "baseline"
                if name == BASELINE
                else f"{s['delta']:+.3f} [{s['delta_lo']:+.3f}, {s['delta_hi']:+.3f}]"
            )
            print(
                f"{res['seed']:>4} {name:<26} {s['auroc']:.3f} [{s['lo']:.3f}, {s['hi']:.3f}]     "
                f"{delta:<26} "
                f"{s['train_cpu_s']:.1f} / {s['predict_cpu_s']:.1f}"
            )
    summary = {
        "records": n_records,
        "label": "abnormal = IU Problems is not 'normal'",
        "quick": quick,
        "epochs": epochs,
        "build_cpu_s": build_s,
        "hashing": hashing,
        "loadavg": load,
        "seeds": results,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    return summary
