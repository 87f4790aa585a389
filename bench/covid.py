"""COVID-19 vs other pneumonia on ``covid_chestxray_subset`` (image + clinical notes), leave-one-patient-out.

``python -m bench.covid OUT_DIR`` runs medmm's standard commands as a clinical researcher would on their
own data (:func:`bench._covid.build_run`: ``medmm ingest`` with ``--ids``, ``medmm reports parse`` on the
masked notes, ``medmm align``, the labels), then trains image-only, notes-only and fused models with
``medmm train``'s k-fold by patient with k = number of patients (= leave-one-patient-out) and scores each
fold's held-out patient with ``medmm predict``'s :func:`medmm.predict.predict.predict_run`.

- image: the ingested picture (one-slice volume) through the models' MONAI chain (``image_input``:
  ``normalize: zscore``, area resize to 64 x 64);
- notes: the report findings vector ``medmm align`` writes (present / absent / uncertain per finding of
  the lexicon), from the notes with every word naming a finding deleted;
- target ``covid`` = ``finding`` is ``COVID-19``.

Metrics per image (bootstrap over patients) and per patient (mean score of the patient's images), as in
``bench/bench_covid_lopo.py``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["PLANS", "lopo_config", "lopo_scores", "run_lopo"]

#: (model name, modalities, fusion strategy)
PLANS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("image only", ("image",), "sum"),
    ("notes only", ("report",), "sum"),
    ("late fusion", ("image", "report"), "late"),
    ("concat fusion", ("image", "report"), "concat"),
)


def lopo_config(
    run_dir: Path, out_dir: Path, modalities: tuple[str, ...], fusion: str, epochs: int, seed: int = 0
) -> dict[str, Any]:
    """The ``medmm train`` config (as a dict; the same keys as a YAML file) for leave-one-patient-out.

    ``train.folds`` = the run's number of patients, no validation split, ``image_input`` with
    ``normalize: zscore`` (picture exports: ``auto`` would window a CT picture as Hounsfield units).

    >>> import tempfile
    >>> from medmm.align.records import RecordRow
    >>> from medmm.tables import write_table
    >>> run = Path(tempfile.mkdtemp())
    >>> rows = [RecordRow(record_id=f"r{i}", patient_id=f"p{i % 3}", study_id=f"s{i}") for i in range(6)]
    >>> _ = write_table(rows, run / "records.parquet", RecordRow)
    >>> lopo_config(run, run / "m", ("report",), "sum", epochs=2)["train"]["folds"]
    3
    """
    n_patients = int(pd.read_parquet(Path(run_dir) / "records.parquet")["patient_id"].nunique())
    return {
        "run_dir": str(run_dir),
        "out_dir": str(out_dir),
        "fusion": fusion,
        "embed_dim": 16,
        "modalities": {m: {"out_dim": 16} for m in modalities},
        "image_input": {"source": "volumes", "size": 64, "normalize": "zscore", "cache": "memory"},
        "tasks": [{"name": "diagnosis", "labels": ["covid"]}],
        "train": {
            "epochs": epochs,
            "batch_size": 8,
            "folds": n_patients,
            "val_fraction": 0.0,
            "seed": seed,
            "progress": False,
            "num_threads": 1,
            "modality_dropout": 0.0,
        },
    }


def lopo_scores(config: dict[str, Any], fold: int | None = None) -> pd.DataFrame:
    """Train the folds (``medmm train``) and score each one's held-out records (``medmm predict``).

    ``fold`` trains and scores only that fold of the same k-fold by patient (a quick check); default all.
    Returns one row per held-out record: ``record_id``, ``patient_id``, ``fold``, ``score`` (P(covid)).
    """
    from medmm.models.config import TrainConfig
    from medmm.models.data import kfold_by_patient
    from medmm.models.runner import train_from_config
    from medmm.predict.predict import predict_run

    cfg = TrainConfig.model_validate(config)
    splits = None
    if fold is not None:
        rec = pd.read_parquet(Path(cfg.run_dir) / "records.parquet", columns=["record_id", "patient_id"])
        pids = rec["patient_id"].tolist()
        test_idx = kfold_by_patient(pids, cfg.train.folds, cfg.train.seed)[fold][1]
        split = np.full(len(rec), "train", dtype=object)
        split[test_idx] = "test"
        splits = rec.assign(split=split, fold=fold)
    train_from_config(cfg, splits)
    out_dir = cfg.output_dir()
    test = pd.read_parquet(out_dir / "splits.parquet")
    test = test[test["split"] == "test"]
    rows = []
    for k in sorted(test["fold"].unique()):
        fold_dir = out_dir if fold is not None else out_dir / f"fold{k}"
        target = fold_dir / "predictions.parquet"
        predict_run(fold_dir / "model.pt", Path(cfg.run_dir), target)
        pred = pd.read_parquet(target, columns=["record_id", "score"])
        held = test[test["fold"] == k][["record_id", "patient_id", "fold"]]
        rows.append(held.merge(pred, on="record_id", how="left"))
    return pd.concat(rows, ignore_index=True)


def run_lopo(run_dir: Path, epochs: int = 15, seed: int = 0, n_boot: int = 2000) -> dict[str, Any]:
    """Leave-one-patient-out for every model of :data:`PLANS`; metrics per image and per patient."""
    from bench.bench_covid_lopo import summarise

    run_dir = Path(run_dir)
    rec = pd.read_parquet(run_dir / "records.parquet")
    y_of = {r: int(json.loads(t)["covid"]) for r, t in zip(rec["record_id"], rec["labels"], strict=True)}
    results: dict[str, Any] = {}
    scores: dict[str, pd.DataFrame] = {}
    for name, mods, fusion in PLANS:
        cfg = lopo_config(run_dir, run_dir / "models" / name.replace(" ", "_"), mods, fusion, epochs, seed)
        s = lopo_scores(cfg).sort_values("record_id").reset_index(drop=True)
        y = s["record_id"].map(y_of).to_numpy(int)
        results[name] = summarise(y, s["score"].to_numpy(float), s["patient_id"].to_numpy(), n_boot, seed)
        scores[name] = s
    return {"metrics": results, "scores": scores}


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.covid OUT_DIR [--epochs N]``: standard run in ``OUT_DIR/run`` + LOPO tables."""
    from bench._covid import build_run
    from bench.bench_covid_lopo import _table
    from medmm.datasets import shared_data_dir
    from medmm.tables import atomic_write_json, atomic_write_text

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    root = shared_data_dir()
    if root is None:
        raise SystemExit("shared data not found: set MEDMM_DATA")
    run_dir = args.out / "run"
    print(json.dumps(build_run(root / "covid_chestxray_subset", run_dir)))
    res = run_lopo(run_dir, args.epochs, args.seed)
    md = "\n\n".join(f"### per {lvl}\n\n{_table(res['metrics'], lvl)}" for lvl in ("patient", "image"))
    atomic_write_text(args.out / "lopo.md", md + "\n")
    atomic_write_json(args.out / "lopo.json", res["metrics"])
    for name, s in res["scores"].items():
        s.to_csv(args.out / f"scores_{name.replace(' ', '_')}.csv", index=False, float_format="%.4f")
    print(md)


if __name__ == "__main__":
    main()
