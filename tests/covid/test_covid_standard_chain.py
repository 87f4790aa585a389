"""The COVID evaluation through medmm's standard stages on the real pictures + notes (bench/_covid.py).

``build_run`` = ``medmm ingest --ids`` + ``medmm reports parse`` + ``medmm align`` + the labels; then one
leave-one-patient-out fold of ``medmm train`` (k-fold by patient, k = 19) scored by ``medmm predict``.
The gap tests (docs/covid.md, *Gaps*) now pass: each gap was fixed in its package.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bench._covid import METADATA, build_run, load_images, write_label_table
from bench.covid import lopo_config, lopo_scores
from medmm.cli import app

#: a CT figure panel, an X-ray JPEG and an X-ray PNG of three patients
FEW = ("kjr-21-e24-g001-l-b.jpg", "covid-19-pneumonia-2.jpg", "pneumocystis-pneumonia-2-PA.png")


def _key(folder: Path) -> Path:
    key = folder / "site.key"
    key.write_text("ef" * 32 + "\n")
    key.chmod(0o600)
    return key


def _raw_ids(shared_data: Path) -> set[str]:
    return set(pd.read_csv(shared_data / "covid_chestxray_subset" / METADATA, dtype=str)["Patientid"])


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [str(k), *_strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _raw_id_cells(run_dir: Path, raw: set[str]) -> list[str]:
    """Every place in the run's tables, JSON files and id arrays whose value is a raw patient id."""
    hits = []
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
            for col in df.columns:
                values = [v for v in df[col].dropna()]
                if "patient" in col:
                    assert all(str(v).startswith("pat-") for v in values), (path, col)
                cells = {s for v in values for s in _strings(v.tolist() if hasattr(v, "tolist") else v)}
                hits += [f"{path.name}:{col}" for _ in cells & raw]
        elif path.suffix == ".json":
            hits += [f"{path.name}:{s}" for s in _strings(json.loads(path.read_text())) if s in raw]
        elif path.name == "ids.npy":
            hits += [f"{path}:{v}" for v in np.load(path).astype(str) if v in raw]
        elif path.suffix in {".csv", ".txt", ".md"}:
            hits.append(f"{path.name}: a text table in the run directory")
    return hits


def test_standard_chain_end_to_end_with_one_lopo_fold(shared_data: Path, tmp_path: Path) -> None:
    data = shared_data / "covid_chestxray_subset"
    run_dir = tmp_path / "run"
    t0 = time.process_time()
    summary = build_run(data, run_dir, _key(tmp_path))
    # manifest: every picture exactly once, all ingested as one-slice volumes with a pseudonymous patient
    manifest = pd.read_parquet(run_dir / "manifest.parquet")
    pictures = sorted(p.name for p in (data / "images").iterdir())
    assert len(pictures) == 34 and sorted(manifest["path"]) == pictures
    assert (manifest["status"] == "ingested").all() and summary["ingest"] == {"ingested": 34}
    volumes = pd.read_parquet(run_dir / "volumes.parquet")
    assert volumes["patient_id"].nunique() == 19 and all(s[2] == 1 for s in volumes["shape"])
    assert sorted(volumes["modality"].value_counts().items()) == [("CT", 7), ("X-ray", 27)]
    reports = pd.read_parquet(run_dir / "manifest_reports.parquet")
    assert len(reports) == 34 and reports["report_id"].is_unique and (reports["status"] == "ingested").all()
    # records: one per picture with its own report (the notes of the same file), the label from the table
    records = pd.read_parquet(run_dir / "records.parquet")
    assert len(records) == 34 and records["patient_id"].nunique() == 19
    assert records["has_image"].all() and records["has_report"].all()
    # each picture is its own study (study id = file name, in ingest and in the notes table)
    study_of = dict(zip(volumes["volume_id"], volumes["study_id"], strict=True))
    assert [study_of[i] for i in records["image_id"]] == records["study_id"].tolist()
    assert records["study_id"].is_unique and records["report_id"].is_unique
    file_of = {v: Path(s[0]).name for v, s in zip(volumes["volume_id"], volumes["sources"], strict=True)}
    meta = pd.read_csv(data / METADATA).set_index("filename")
    y = [json.loads(t)["covid"] for t in records["labels"]]
    assert y == [int(str(meta.at[file_of[i], "finding"]) == "COVID-19") for i in records["image_id"]]
    assert sum(y) == 24
    assert records.assign(y=y).groupby("patient_id")["y"].nunique().max() == 1
    # the notes reached the report vector: some finding other than `normal` is present
    assert (pd.read_parquet(run_dir / "report_labels.parquet")["finding"] != "normal").any()

    # one leave-one-patient-out fold: medmm train (k = 19 patients) + medmm predict on the held-out patient
    cfg = lopo_config(run_dir, run_dir / "models" / "late", ("image", "report"), "late", epochs=1)
    assert cfg["train"]["folds"] == 19
    scores = lopo_scores(cfg, fold=0)
    splits = pd.read_parquet(run_dir / "models" / "late" / "splits.parquet")
    train_p = set(splits.loc[splits["split"] == "train", "patient_id"])
    test_p = set(splits.loc[splits["split"] == "test", "patient_id"])
    assert len(test_p) == 1 and not train_p & test_p and len(train_p) == 18
    held = records[records["patient_id"].isin(test_p)]
    assert sorted(scores["record_id"]) == sorted(held["record_id"])
    assert scores["score"].between(0, 1).all() and scores["fold"].eq(0).all()
    assert time.process_time() - t0 < 60  # CPU seconds: robust to the shared machine's load

    # no raw patient id anywhere in what the chain wrote (tables, sidecars, run.json, id arrays, models)
    assert _raw_id_cells(run_dir, _raw_ids(shared_data)) == []


def test_ingested_pictures_are_the_bench_pictures_in_volume_layout(shared_data: Path, tmp_path: Path) -> None:
    """The Dataset's item is the picture the old bench read with PIL (grey, z-score, area resize),
    transposed with its rows counted from the bottom (docs/ingest.md, *Picture exports*)."""
    from monai.transforms import Compose, NormalizeIntensity, Resize
    from PIL import Image

    from medmm.ingest.image_ids import IdColumns, IdTable
    from medmm.ingest.pipeline import ingest_archive

    data = shared_data / "covid_chestxray_subset"
    archive = tmp_path / "images"
    archive.mkdir()
    for name in FEW:
        shutil.copy(data / "images" / name, archive / name)
    ids = IdTable.load(data / METADATA, IdColumns(path="filename", patient="Patientid"))
    ingest_archive(archive, tmp_path / "run", workers=1, processes=False, key_file=_key(tmp_path), ids=ids)
    volumes = pd.read_parquet(tmp_path / "run" / "volumes.parquet")
    tf = Compose([NormalizeIntensity(), Resize((48, 48), mode="area")])
    for vol, src in zip(volumes["volume_id"], volumes["sources"], strict=True):
        new = load_images(tmp_path / "run", [vol], 48)[0, 0]
        with Image.open(archive / Path(src[0]).name) as im:
            pic = np.asarray(im.convert("L"), dtype=np.float32)
        old = np.asarray(tf(pic[::-1].T[None]))[0]
        np.testing.assert_allclose(new, old, atol=1e-4)


@pytest.fixture()
def few_run(shared_data: Path, tmp_path: Path) -> Path:
    """Three pictures ingested with their ids and their notes parsed (as build_run does)."""
    from bench._covid import write_notes_table
    from medmm.ingest.image_ids import IdColumns, IdTable
    from medmm.ingest.pipeline import ingest_archive
    from medmm.reports.pipeline import parse_reports

    data = shared_data / "covid_chestxray_subset"
    archive = tmp_path / "images"
    archive.mkdir()
    for name in FEW:
        shutil.copy(data / "images" / name, archive / name)
    key = _key(tmp_path)
    ids = IdTable.load(data / METADATA, IdColumns(path="filename", patient="Patientid", study="filename"))
    ingest_archive(archive, tmp_path / "run", workers=1, processes=False, key_file=key, ids=ids)
    notes = write_notes_table(data / METADATA, tmp_path / "notes.csv")
    parse_reports(
        notes, tmp_path / "run", patient_column="patient_id", study_column="study_id", workers=0, key_file=key
    )
    return tmp_path / "run"


def test_align_cli_takes_the_label_table(few_run: Path, shared_data: Path, tmp_path: Path) -> None:
    """Step 3 of docs/covid.md: `medmm align RUN --labels work/labels.csv` (patient + study = file name)."""
    labels = write_label_table(shared_data / "covid_chestxray_subset" / METADATA, tmp_path / "labels.csv")
    key = tmp_path / "site.key"
    res = CliRunner().invoke(app, ["align", str(few_run), "--labels", str(labels), "--key-file", str(key)])
    assert res.exit_code == 0, res.output
    records = pd.read_parquet(few_run / "records.parquet")
    records = records[records["has_image"]]  # the notes table has all 34 reports, the run 3 pictures
    assert sorted(json.loads(t)["covid"] for t in records["labels"]) == [0, 1, 1]


def test_reports_parse_scores_the_metadata_notes_column(shared_data: Path, tmp_path: Path) -> None:
    meta = shared_data / "covid_chestxray_subset" / METADATA
    res = CliRunner().invoke(
        app,
        [
            "reports",
            "parse",
            str(meta),
            "--out",
            str(tmp_path / "run"),
            "--id-column",
            "filename",
            "--text-columns",
            "clinical notes",
            "--workers",
            "0",
            "--key-file",
            str(_key(tmp_path)),
        ],
    )
    assert res.exit_code == 0, res.output
    labels = pd.read_parquet(tmp_path / "run" / "report_labels.parquet")
    assert (labels["finding"] != "normal").any()


def test_auto_normalisation_of_a_ct_picture_is_not_a_hu_window(few_run: Path) -> None:
    from medmm.models.config import ImageInputConfig
    from medmm.models.volumes import VolumeSource

    volumes = pd.read_parquet(few_run / "volumes.parquet")
    ct = volumes.loc[volumes["modality"] == "CT", "volume_id"].tolist()
    assert len(ct) == 1
    src = VolumeSource(few_run, ImageInputConfig(size=32, normalize="auto", cache="none"), 2, item_ids=ct)
    x = src.get(ct[0])[0]
    assert float(x.std()) > 0.5  # a z-score; the HU window squeezes 0-255 into [0.5, 0.63]
