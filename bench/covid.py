"""COVID-19 vs other pneumonia on ``covid_chestxray_subset`` (image + clinical notes), leave-one-patient-out.

``python -m bench.covid OUT_DIR`` writes a run directory (``records.parquet`` + ``inputs/``) with one
record per image (34 images, 19 patients) and trains image-only, notes-only and fused models with
``train.folds = number of patients`` (k-fold by patient with one patient per fold = leave-one-patient-out),
pooling the held-out predictions.

- image: the X-ray or CT picture (PNG/JPEG) as grayscale, intensity-normalised and resized with MONAI.
- notes: the ``clinical notes`` column with every word that names the label removed (covid, sars,
  coronavirus, ncov, wuhan, 2019 ...), encoded with :func:`bench.cohort.keyword_findings` over the chest
  findings vocabulary plus a few clinical cues (fever, cough, ICU, ventilation ...).
- target ``covid`` = ``finding`` is ``COVID-19``.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.cohort import VOCABULARY, keyword_findings
from medmm.align.records import RecordRow
from medmm.models.encoders.reports import finding_vector
from medmm.models.store import write_store
from medmm.tables import write_table

__all__ = ["LEAK", "build_covid_run", "mask_label_words", "run_lopo"]

#: Words that would give the label away; removed from the notes before encoding.
LEAK = re.compile(r"covid[- ]?19|covid|sars[- ]?cov[- ]?2|sars|coronavirus|n?cov|wuhan|hubei|2019", re.I)
CLINICAL = {
    "fever": r"fever|febrile|pyrexi",
    "cough": r"cough",
    "dyspnea": r"dyspn|breath|respiratory distress|shortness",
    "icu": r"\bicu\b|intensive care|intubat|ventilat|\bett\b",
    "travel": r"travel",
    "immunosuppressed": r"hiv|immuno|transplant|chemotherap",
    "ground_glass": r"ground[- ]glass",
    "bilateral": r"bilateral",
    "peripheral": r"peripheral|subpleural",
}


def mask_label_words(text: str) -> str:
    """Remove label-revealing words.

    >>> mask_label_words("Elderly male, covid-19 positive, back from Wuhan.")
    'Elderly male, [masked] positive, back from [masked].'
    """
    return LEAK.sub("[masked]", text)


def _note_vector(text: str) -> np.ndarray:
    findings = keyword_findings(text)
    extra = dict(VOCABULARY)
    extra.update(CLINICAL)
    vocab = list(extra)
    for name, pattern in CLINICAL.items():
        if re.search(pattern, text.lower()):
            findings.append((name, "present"))
    return finding_vector(findings, vocab)


def build_covid_run(data_root: Path, out: Path, size: int = 64) -> dict[str, Any]:
    """Write the run directory; returns counts (images, patients, COVID-19 share)."""
    from monai.transforms import Compose, NormalizeIntensity, Resize
    from PIL import Image

    base = data_root / "covid_chestxray_subset"
    meta = pd.read_csv(base / "metadata_subset_licensed.csv")
    tf = Compose([NormalizeIntensity(), Resize((size, size), mode="area")])
    clinical = meta["clinical notes"].fillna("").tolist()
    ids, images, notes, rows = [], [], [], []
    for i, r in enumerate(meta.itertuples(index=False)):
        item = f"img{i:02d}"
        pic = np.asarray(Image.open(base / "images" / r.filename).convert("L"), np.float32)[None]
        images.append(np.asarray(tf(pic), np.float32))
        text = mask_label_words(str(clinical[i]))
        notes.append(_note_vector(text))
        ids.append(item)
        rows.append(
            RecordRow(
                record_id=f"rec-{item}",
                patient_id=f"pat-{r.Patientid}",
                study_id=f"stu-{item}",
                image_id=item,
                report_id=item,
                has_image=True,
                has_report=True,
                labels=json.dumps({"covid": int(r.finding == "COVID-19")}),
            )
        )
    write_store(out / "inputs" / "image", ids, np.stack(images))
    write_store(out / "inputs" / "report", ids, np.stack(notes))
    write_table(rows, out / "records.parquet", RecordRow)
    return {
        "images": len(rows),
        "patients": int(meta["Patientid"].nunique()),
        "covid_share_images": float((meta["finding"] == "COVID-19").mean()),
    }


def run_lopo(run_dir: Path, epochs: int = 15, seed: int = 0) -> pd.DataFrame:
    """Leave-one-patient-out for image-only, notes-only, late and concat fusion; one row per model."""
    from medmm.models.config import TrainConfig
    from medmm.models.runner import train_from_config

    n_patients = pd.read_parquet(run_dir / "records.parquet")["patient_id"].nunique()
    plans = [
        ("image only", ["image"], "sum"),
        ("notes only", ["report"], "sum"),
        ("late fusion", ["image", "report"], "late"),
        ("concat fusion", ["image", "report"], "concat"),
    ]
    rows = []
    for name, mods, fusion in plans:
        cfg = TrainConfig.model_validate(
            {
                "run_dir": str(run_dir),
                "out_dir": str(run_dir / "models" / name.replace(" ", "_")),
                "fusion": fusion,
                "embed_dim": 16,
                "modalities": {m: {"out_dim": 16} for m in mods},
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
        )
        test = train_from_config(cfg)["test"]["covid"]
        rows.append(
            {"model": name, **{f"{k}_{q}": v[q] for k, v in test.items() for q in ("value", "lo", "hi")}}
        )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args(argv)
    from medmm.datasets import shared_data_dir
    from medmm.models.compare import to_markdown

    root = shared_data_dir()
    if root is None:
        raise SystemExit("shared data not found: set MEDMM_DATA")
    print(json.dumps(build_covid_run(root, args.out)))
    table = run_lopo(args.out, args.epochs)
    table["test_modalities"] = ["image", "notes", "image+notes", "image+notes"]
    table["n_test"] = 34
    md = to_markdown(table)
    (args.out / "lopo.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
