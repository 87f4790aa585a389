"""The imaging branch on real BraTS 2013 volumes (FLAIR + manual tumour labels, LPS NIfTI on disk)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from medmm.align.records import RecordRow
from medmm.models.config import ImageInputConfig
from medmm.models.data import MultimodalDataset, collate_records
from medmm.models.encoders import ImagingEncoder
from medmm.models.volumes import VolumeSource
from medmm.tables import write_table

PATIENTS = ("validation/brats_2013_pat0003_1", "validation/brats_2013_pat0004_1")


@pytest.fixture(scope="module")
def brats_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder whose ``volumes.parquet`` points (via links, nothing copied) at two FLAIR volumes."""
    run = tmp_path_factory.mktemp("brats")
    (run / "vol").mkdir()
    vols, masks = [], []
    for p in PATIENTS:
        src = shared_data / "imaging" / "brats_subset" / p
        name = Path(p).name
        (run / "vol" / f"{name}_flair.nii.gz").symlink_to(src / "Flair_subtrMeanDivStd.nii.gz")
        (run / "vol" / f"{name}_seg.nii.gz").symlink_to(src / "OTMultiClass.nii.gz")
        vols.append({"volume_id": name, "path": f"vol/{name}_flair.nii.gz", "modality": "MR"})
        masks.append({"volume_id": name, "mask_path": f"vol/{name}_seg.nii.gz"})
    pd.DataFrame(vols).to_parquet(run / "volumes.parquet")
    pd.DataFrame(masks).to_csv(run / "masks.csv", index=False)
    return run


def test_largest_tumour_slice_is_chosen(brats_run: Path) -> None:
    cfg = ImageInputConfig(size=64, slice="largest_mask", mask_table=brats_run / "masks.csv", cache="memory")
    src = VolumeSource(brats_run, cfg, 2)
    # enhancing tumour only (label 4) can peak on another slice; the configured labels are honoured
    enh = VolumeSource(brats_run, cfg.model_copy(update={"mask_labels": [4], "cache": "none"}), 2)
    for name in (Path(p).name for p in PATIENTS):
        img: Any = nib.load(brats_run / "vol" / f"{name}_seg.nii.gz")
        seg = np.asarray(img.dataobj)
        assert nib.aff2axcodes(img.affine) == ("L", "P", "S")
        area = (seg > 0).sum(axis=(0, 1))  # LPS -> RAS flips x and y only: slice order is unchanged
        best = int(np.argmax(area))
        assert best != seg.shape[2] // 2  # the choice is not the middle slice by accident
        x, _ = src.get(name)
        assert x.shape == (1, 64, 64) and src.selected_slice(name) == best
        at_best = VolumeSource(
            brats_run, ImageInputConfig(size=64, slice="index", slice_index=best, cache="none"), 2
        )
        np.testing.assert_array_equal(x, at_best.get(name)[0])
        assert not np.array_equal(
            x, VolumeSource(brats_run, ImageInputConfig(size=64, cache="none"), 2).get(name)[0]
        )
        assert enh.selected_slice(name) == int(np.argmax((seg == 4).sum(axis=(0, 1))))


def test_3d_volume_is_reoriented_normalised_and_resized(brats_run: Path) -> None:
    name = Path(PATIENTS[0]).name
    src = VolumeSource(brats_run, ImageInputConfig(size=[240, 240, 155], resize="pad_crop", cache="none"), 3)
    x = src.get(name)[0]
    flair: Any = nib.load(brats_run / "vol" / f"{name}_flair.nii.gz")
    raw = np.asarray(flair.dataobj, np.float32)
    ras = np.flip(raw, (0, 1))
    fg = x[0][ras != 0]  # z-score over the brain (non-zero voxels), background left at 0
    assert abs(fg.mean()) < 1e-3 and abs(fg.std() - 1) < 1e-3 and np.all(x[0][ras == 0] == 0)
    np.testing.assert_allclose(
        x[0][ras != 0], (ras[ras != 0] - ras[ras != 0].mean()) / ras[ras != 0].std(), atol=1e-4
    )
    small = VolumeSource(brats_run, ImageInputConfig(size=32, pixdim=[2.0, 2.0, 2.0], cache="none"), 3).get(
        name
    )[0]
    assert small.shape == (1, 32, 32, 32) and np.isfinite(small).all()


def test_cached_worker_loader_and_train_step(brats_run: Path) -> None:
    names = [Path(p).name for p in PATIENTS]
    rows = [
        RecordRow(
            record_id=f"rec-{i}",
            patient_id=n,
            study_id=f"stu-{i}",
            image_id=n,
            has_image=True,
            labels=json.dumps({"abnormal": 1}),
        )
        for i, n in enumerate(names * 2)
    ]
    write_table(rows, brats_run / "records.parquet", RecordRow)
    records = pd.read_parquet(brats_run / "records.parquet")
    cfg = ImageInputConfig(size=32, slice="largest_foreground", cache="disk")
    ds = MultimodalDataset(records, {"image": VolumeSource(brats_run, cfg, 2, names)}, ["abnormal"])
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate_records)
    encoder = ImagingEncoder(8, "resnet_small", 2, 1)
    head = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD([*encoder.parameters(), *head.parameters()], lr=0.01)
    losses = []
    for batch in loader:
        assert batch.inputs["image"].shape == (2, 1, 32, 32) and batch.mask.all()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            head(encoder(batch.inputs["image"])), batch.labels
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert len(list((brats_run / "cache" / "image").glob("*/*.pt"))) == 2  # the workers filled the disk cache
