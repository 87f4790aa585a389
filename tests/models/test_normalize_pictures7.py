"""`normalize: auto` windows only real Hounsfield units: a CT picture export (PNG, 0-255) is z-scored."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from PIL import Image

from medmm.ingest.image_ids import IdTable
from medmm.ingest.pipeline import ingest_archive
from medmm.models.config import ImageInputConfig
from medmm.models.volumes import VolumeSource


def _ingest(tmp_path: Path) -> pd.DataFrame:
    """A 0-255 PNG and a HU NIfTI, both labelled CT by an ids table, ingested into one run."""
    rng = np.random.default_rng(0)
    archive = tmp_path / "archive"
    archive.mkdir()
    ramp = np.linspace(20, 250, 48)[None, :] + np.linspace(0, 5, 40)[:, None]  # smooth: keeps its std
    grey = ramp.astype(np.uint8)
    Image.fromarray(grey).save(archive / "chest.png")
    hu = rng.normal(0, 400, (24, 24, 6)).astype(np.float32)
    nib.save(nib.Nifti1Image(hu, np.diag([1.0, 1.0, 2.0, 1.0])), archive / "ct.nii.gz")
    ids = tmp_path / "ids.csv"
    ids.write_text("path,patient_id,study_id,modality\nchest.png,p1,s1,CT\nct.nii.gz,p2,s2,CT\n")
    key = tmp_path / "site.key"
    ingest_archive(archive, tmp_path / "run", workers=1, processes=False, key_file=key, ids=IdTable.load(ids))
    vols = pd.read_parquet(tmp_path / "run" / "volumes.parquet")
    assert sorted(vols["modality"]) == ["CT", "CT"]
    return vols.set_index("source_format")


def test_auto_z_scores_a_ct_picture_and_windows_a_hu_volume(tmp_path: Path) -> None:
    vols = _ingest(tmp_path)
    cfg = ImageInputConfig(size=32, normalize="auto", cache="none")
    png_id, nii_id = str(vols.at["png", "volume_id"]), str(vols.at["nifti", "volume_id"])
    src = VolumeSource(tmp_path / "run", cfg, 2, item_ids=[png_id, nii_id])
    picture = src.get(png_id)[0]
    assert float(picture.std()) > 0.5  # z-score; the HU window squeezed 0-255 into [0.5, 0.63]
    assert float(picture.min()) < 0.0 and abs(float(picture.mean())) < 0.2
    volume = src.get(nii_id)[0]
    assert float(volume.min()) >= 0.0 and float(volume.max()) <= 1.0  # the CT window [-1000, 1000] -> [0, 1]
    assert float(volume.std()) > 0.05
