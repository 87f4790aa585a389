"""The imaging branch of the Dataset: ingested NIfTI through the configured MONAI chain, cached.

Small synthetic volumes (an LPS-oriented, anisotropic NIfTI; one run made by the real `ingest_archive`)
check geometry, intensity normalisation, slice selection, caching (identical tensors, no re-reads), a
2-worker DataLoader with the mask-carrying collate, and a tiny train -> predict.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from medmm.align.records import RecordRow
from medmm.errors import InputError
from medmm.models.config import ImageInputConfig, TrainConfig
from medmm.models.data import MultimodalDataset, collate_records
from medmm.models.store import write_store
from medmm.models.transforms import image_transform
from medmm.models.volumes import VolumeSource, open_sources
from medmm.tables import write_table

SHAPE = (20, 16, 10)
LPS = np.diag([-1.5, -1.0, 3.0, 1.0])


def _volume(seed: int) -> np.ndarray:
    """Head-like blob (value 100 +- noise) on zero background; slice 7 has the widest foreground."""
    rng = np.random.default_rng(seed)
    data = np.zeros(SHAPE, np.float32)
    data[4:16, 3:13, :] = 100 + rng.normal(0, 10, (12, 10, SHAPE[2]))
    data[1:19, 1:15, 7] = 120
    data[5, 4, 2] = 400  # a marker voxel
    return data


def _run(root: Path, modality: str = "MR", n: int = 3) -> Path:
    """A run directory with ``n`` raw LPS volumes listed in ``volumes.parquet`` and a mask table."""
    (root / "vol").mkdir(parents=True)
    rows, masks = [], []
    for i in range(n):
        nib.save(nib.Nifti1Image(_volume(i), LPS), root / "vol" / f"v{i}.nii.gz")
        mask = np.zeros(SHAPE, np.int16)
        mask[6:9, 5:8, 3] = 2  # the "tumour" is largest on slice 3 ...
        mask[6:7, 5:6, 8] = 1  # ... and smaller on slice 8
        nib.save(nib.Nifti1Image(mask, LPS), root / "vol" / f"m{i}.nii.gz")
        rows.append({"volume_id": f"vol-{i}", "path": f"vol/v{i}.nii.gz", "modality": modality})
        masks.append({"volume_id": f"vol-{i}", "mask_path": f"vol/m{i}.nii.gz"})
    pd.DataFrame(rows).to_parquet(root / "volumes.parquet")
    pd.DataFrame(masks).to_csv(root / "masks.csv", index=False)
    return root


def _records(root: Path, image_ids: list[str | None]) -> pd.DataFrame:
    """One record per entry (``None``: no image); every record has a report (arrays store)."""
    n = len(image_ids)
    write_store(root / "inputs" / "report", [f"rep-{i}" for i in range(n)], np.eye(n, 4, dtype=np.float32))
    rows = [
        RecordRow(
            record_id=f"rec-{i}",
            patient_id=f"pat-{i}",
            study_id=f"stu-{i}",
            image_id=v,
            report_id=f"rep-{i}",
            has_image=v is not None,
            has_report=True,
            labels=json.dumps({"abnormal": i % 2}),
        )
        for i, v in enumerate(image_ids)
    ]
    write_table(rows, root / "records.parquet", RecordRow)
    return pd.read_parquet(root / "records.parquet")


@pytest.fixture()
def counted_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Names of the files MONAI's NibabelReader reads in this process."""
    from monai.data import NibabelReader

    reads: list[str] = []
    original = NibabelReader.read

    def read(self: NibabelReader, data: Any, **kwargs: Any) -> Any:
        reads.append(str(data))
        return original(self, data, **kwargs)

    monkeypatch.setattr(NibabelReader, "read", read)
    yield reads


def test_chain_gives_configured_orientation_spacing_and_shape(tmp_path: Path) -> None:
    run = _run(tmp_path / "run", n=1)
    item = {"image": str(run / "vol" / "v0.nii.gz"), "modality": "MR"}
    # no resampling, pad/crop to the native shape: exactly the LPS data flipped to RAS
    cfg = ImageInputConfig(size=list(SHAPE), resize="pad_crop", normalize="none")
    out = image_transform(cfg, 3)(item)["image"]
    assert nib.aff2axcodes(np.asarray(out.affine)) == ("R", "A", "S")
    np.testing.assert_allclose(out[0].numpy(), np.flip(_volume(0), (0, 1)), atol=1e-3)
    # resampled to 1.5 x 1 x 1.5 mm: the slice axis doubles (10 x 3 mm -> 20 x 1.5 mm)
    cfg = ImageInputConfig(size=[20, 16, 20], resize="pad_crop", normalize="none", pixdim=[1.5, 1.0, 1.5])
    out = image_transform(cfg, 3)(item)["image"]
    assert tuple(out.shape) == (1, 20, 16, 20)
    np.testing.assert_allclose(out.pixdim.numpy(), [1.5, 1.0, 1.5], atol=1e-4)
    x, y, z = np.unravel_index(int(out[0].argmax()), out.shape[1:])
    assert (x, y) == (SHAPE[0] - 1 - 5, SHAPE[1] - 1 - 4) and abs(z - 4) <= 1  # marker at LPS (5, 4, 2)
    # "resize" interpolates to any size; 2D keeps the slice axis for slice selection
    out = image_transform(ImageInputConfig(size=12), 3)(item)["image"]
    assert tuple(out.shape) == (1, 12, 12, 12)
    d = image_transform(ImageInputConfig(size=[8, 6]), 2)(item)  # 2D: the chosen slice, cut before resizing
    assert tuple(d["image"].shape) == (1, 8, 6) and d["slice"] == SHAPE[2] // 2
    d = image_transform(ImageInputConfig(size=[8, 6], slice="all"), 2)(item)  # all: the stack is kept
    assert tuple(d["image"].shape) == (1, 8, 6, SHAPE[2]) and "slice" not in d


@pytest.mark.parametrize("modality", ["MR", "CT"])
def test_intensity_normalisation(tmp_path: Path, modality: str) -> None:
    run = _run(tmp_path / "run", modality=modality, n=1)
    native = {"size": list(SHAPE), "resize": "pad_crop", "cache": "none"}
    auto = VolumeSource(run, ImageInputConfig(**native), 3).get("vol-0")[0]
    if modality == "MR":  # auto = z-score over the non-zero voxels
        fg = auto[np.flip(_volume(0), (0, 1))[None] != 0]
        assert abs(fg.mean()) < 1e-4 and abs(fg.std() - 1) < 1e-3
    else:  # auto = CT window [-1000, 1000] HU -> [0, 1]
        np.testing.assert_allclose(auto[0], (np.flip(_volume(0), (0, 1)) + 1000) / 2000, atol=1e-5)
    pct = VolumeSource(run, ImageInputConfig(normalize="percentiles", **native), 3).get("vol-0")[0]
    assert pct.min() == 0.0 and pct.max() == 1.0
    z = VolumeSource(run, ImageInputConfig(normalize="zscore", **native), 3).get("vol-0")[0]
    assert abs(z.mean()) < 1e-4 and abs(z.std() - 1) < 1e-3


def test_slice_selection(tmp_path: Path) -> None:
    run = _run(tmp_path / "run", n=1)
    base = {"size": list(SHAPE[:2]), "resize": "pad_crop", "normalize": "none", "cache": "none"}
    ras = np.flip(_volume(0), (0, 1))

    def picked(**kw: object) -> int:
        x = VolumeSource(run, ImageInputConfig(**{**base, **kw}), 2).get("vol-0")[0][0]
        matches = [z for z in range(SHAPE[2]) if np.allclose(x, ras[:, :, z], atol=1e-3)]
        assert len(matches) == 1
        return matches[0]

    assert picked(slice="middle") == SHAPE[2] // 2
    assert picked(slice="index", slice_index=2) == 2
    assert picked(slice="index", slice_index=-1) == SHAPE[2] - 1
    assert picked(slice="largest_foreground") == 7
    assert picked(slice="largest_mask", mask_table=run / "masks.csv") == 3
    assert picked(slice="largest_mask", mask_table=run / "masks.csv", mask_labels=[1]) == 8
    with pytest.raises(InputError, match="slice_index"):
        VolumeSource(run, ImageInputConfig(**{**base, "slice": "index", "slice_index": 99}), 2).get("vol-0")


def test_all_slices_are_samples_and_missing_images_are_masked(tmp_path: Path) -> None:
    run = _run(tmp_path / "run", n=2)
    records = _records(run, ["vol-0", None, "vol-1"])
    src = VolumeSource(run, ImageInputConfig(size=8, slice="all"), 2, ["vol-0", "vol-1"])
    ds = MultimodalDataset(records, {"image": src, **open_sources_report(run)}, ["abnormal"])
    assert len(ds) == 2 * SHAPE[2] + 1
    batch = collate_records([ds[i] for i in range(len(ds))])
    assert batch.inputs["image"].shape == (2 * SHAPE[2], 1, 8, 8)
    assert batch.mask[:, 0].sum() == 2 * SHAPE[2] and not batch.mask[SHAPE[2], 0]  # rec-1: no image
    assert SHAPE[2] not in batch.index["image"].tolist()  # masked, not zero-filled
    assert batch.record_ids.count("rec-0") == SHAPE[2] and batch.record_ids.count("rec-1") == 1
    z = [ds[i]["inputs"]["image"] for i in range(SHAPE[2])]  # type: ignore[index]
    assert not torch.equal(z[0], z[7])
    with pytest.raises(InputError, match="vol-9"):
        VolumeSource(run, ImageInputConfig(), 2, ["vol-9"])
    (run / "vol" / "v1.nii.gz").write_bytes(b"not a NIfTI")  # a damaged file: an error naming it
    with pytest.raises(InputError, match=r"v1\.nii\.gz"):
        VolumeSource(run, ImageInputConfig(cache="none"), 2).get("vol-1")


def open_sources_report(run: Path) -> dict[str, Any]:
    cfg = TrainConfig.model_validate(
        {"run_dir": str(run), "modalities": {"report": {}}, "tasks": [{"name": "dx", "labels": ["abnormal"]}]}
    )
    return open_sources(cfg, run, ["report"])


def test_caches_return_identical_tensors_and_do_not_reread(tmp_path: Path, counted_reads: list[str]) -> None:
    run = _run(tmp_path / "run", n=3)
    ids = ["vol-0", "vol-1", "vol-2"]

    def two_epochs(src: VolumeSource) -> list[np.ndarray]:
        first = [src.get(i)[0] for i in ids]
        second = [src.get(i)[0] for i in ids]
        assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
        return first

    cfg = {"size": 12, "slice": "largest_foreground"}
    reference = two_epochs(VolumeSource(run, ImageInputConfig(cache="none", **cfg), 2))
    assert len(counted_reads) == 6  # uncached: every access reads the file
    counted_reads.clear()
    memory = VolumeSource(run, ImageInputConfig(cache="memory", **cfg), 2)
    assert len(counted_reads) == 3  # CacheDataset: once per volume, when the source opens
    assert all(np.array_equal(a, b) for a, b in zip(two_epochs(memory), reference, strict=True))
    assert len(counted_reads) == 3
    counted_reads.clear()
    disk = VolumeSource(run, ImageInputConfig(cache="disk", **cfg), 2)
    assert all(np.array_equal(a, b) for a, b in zip(two_epochs(disk), reference, strict=True))
    assert len(counted_reads) == 3 and disk.cache_dir is not None
    assert disk.cache_dir.parent == run / "cache" / "image" and len(list(disk.cache_dir.glob("*.pt"))) == 3
    again = VolumeSource(run, ImageInputConfig(cache="disk", **cfg), 2)  # a later run: no read at all
    assert all(np.array_equal(a, b) for a, b in zip(two_epochs(again), reference, strict=True))
    assert len(counted_reads) == 3
    other = VolumeSource(run, ImageInputConfig(cache="disk", size=10), 2)  # another chain: another folder
    assert other.cache_dir != disk.cache_dir


@pytest.fixture(scope="module")
def ingested_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run made by the real ``ingest_archive`` from six small volumes (RAS canonical NIfTI)."""
    from medmm.ingest.pipeline import ingest_archive

    root = tmp_path_factory.mktemp("ingest")
    archive = root / "archive"
    archive.mkdir()
    for i in range(6):
        data = _volume(i)
        data[4:16, 3:13, 4:6] += 80 * (i % 2)  # "abnormal" volumes are brighter in the middle
        nib.save(nib.Nifti1Image(data, LPS), archive / f"s{i}.nii.gz")
    key = root / "site.key"
    key.write_text("ab" * 32 + "\n")
    key.chmod(0o600)
    ingest_archive(archive, root / "run", workers=1, processes=False, key_file=key, show_progress=False)
    return root / "run"


def test_worker_loader_train_and_predict_on_an_ingested_run(ingested_run: Path, tmp_path: Path) -> None:
    from medmm.models.checkpoint import load_checkpoint
    from medmm.models.runner import train_from_config
    from medmm.predict.predict import predict_run

    vols = pd.read_parquet(ingested_run / "volumes.parquet").sort_values("sources")
    assert len(vols) == 6 and set(vols["orientation"]) == {"RAS"}
    ids = vols["volume_id"].tolist()
    records = _records(ingested_run, [*ids, None, None])
    cfg = TrainConfig.model_validate(
        {
            "run_dir": str(ingested_run),
            "out_dir": str(tmp_path / "model"),
            "fusion": "attention",
            "embed_dim": 8,
            "modalities": {"image": {"out_dim": 8}, "report": {"out_dim": 8}},
            "tasks": [{"name": "dx", "labels": ["abnormal"]}],
            "image_input": {"size": 16, "slice": "largest_foreground", "augment": {"flip_prob": 0.5}},
            "train": {"epochs": 2, "batch_size": 4, "progress": False, "n_boot": 10, "test_fraction": 0.25},
        }
    )
    sources = open_sources(cfg, ingested_run, ["image", "report"], records)
    assert type(sources["image"]).__name__ == "VolumeSource"  # auto: the run has volumes.parquet
    ds = MultimodalDataset(records, sources, ["abnormal"])
    serial = [collate_records([ds[i] for i in range(k, min(k + 3, len(ds)))]) for k in range(0, len(ds), 3)]
    loader = DataLoader(ds, batch_size=3, num_workers=2, collate_fn=collate_records)
    for got, want in zip(loader, serial, strict=True):
        assert got.record_ids == want.record_ids and torch.equal(got.mask, want.mask)
        assert sorted(got.inputs) == sorted(want.inputs) and sorted(got.index) == sorted(want.index)
        for m in want.inputs:
            assert torch.equal(got.inputs[m], want.inputs[m]) and torch.equal(got.index[m], want.index[m])
    assert serial[0].inputs["image"].shape == (3, 1, 16, 16) and "image" not in serial[-1].inputs
    summary = train_from_config(cfg)
    assert len(summary["folds"][0]["history"]) == 2
    meta = load_checkpoint(tmp_path / "model" / "model.pt")["meta"]
    assert meta["input_sources"] == {"image": "volumes", "report": "arrays"}
    assert meta["input_shapes"]["image"]["shape"] == [1, 16, 16]
    counts = predict_run(tmp_path / "model" / "model.pt", ingested_run, out=tmp_path / "pred.parquet")
    pred = pd.read_parquet(tmp_path / "pred.parquet")
    assert counts["records"] == 8 and set(pred["record_id"]) == set(records["record_id"])
    assert (pred["modalities"] == "image+report").sum() == 6


def test_all_slices_train_and_predict_per_slice(ingested_run: Path, tmp_path: Path) -> None:
    from medmm.models.runner import train_from_config
    from medmm.predict.predict import predict_run

    vols = pd.read_parquet(ingested_run / "volumes.parquet").sort_values("sources")
    _records(ingested_run, [*vols["volume_id"].tolist()[:4], None])
    cfg = TrainConfig.model_validate(
        {
            "run_dir": str(ingested_run),
            "out_dir": str(tmp_path / "model"),
            "fusion": "sum",
            "embed_dim": 4,
            "modalities": {"image": {"out_dim": 4}, "report": {"out_dim": 4}},
            "tasks": [{"name": "dx", "labels": ["abnormal"]}],
            "image_input": {"size": 8, "slice": "all", "cache": "disk"},
            "train": {"epochs": 1, "batch_size": 16, "progress": False, "n_boot": 5, "val_fraction": 0.2},
        }
    )
    summary = train_from_config(cfg)
    assert summary["folds"][0]["n"]["train"] >= 1
    predict_run(tmp_path / "model" / "model.pt", ingested_run, out=tmp_path / "pred.parquet")
    pred = pd.read_parquet(tmp_path / "pred.parquet")
    assert pred["record_id"].tolist() == [f"rec-{i}" for i in range(5)]  # slices aggregated per record
    assert pred["n_slices"].tolist()[:4] == [SHAPE[2]] * 4 and pd.isna(pred["n_slices"].iloc[4])
    assert (ingested_run / "cache" / "image").exists()


def test_augmentation_is_seeded_train_only_and_after_the_cache(
    tmp_path: Path, counted_reads: list[str]
) -> None:
    run = _run(tmp_path / "run", n=2)
    records = _records(run, ["vol-0", "vol-1"])
    flip = {"size": 12, "cache": "memory", "augment": {"flip_prob": 1.0}}
    src = VolumeSource(run, ImageInputConfig.model_validate(flip), 2)
    plain = src.get("vol-0")[0]
    np.testing.assert_array_equal(src.get("vol-0", augment=True)[0], np.flip(plain, 1))
    random = {"size": 12, "cache": "memory", "augment": {"rotate90_prob": 0.5, "shift_intensity": 0.5}}

    def epochs(seed: int) -> list[np.ndarray]:
        s = VolumeSource(run, ImageInputConfig.model_validate(random), 2, seed=seed)
        ds = MultimodalDataset(records, {"image": s}, ["abnormal"], augment=True)
        return [ds[i]["inputs"]["image"].numpy() for _ in range(3) for i in range(2)]  # type: ignore[index]

    a, b, c = epochs(0), epochs(0), epochs(1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))  # same seed, same augmentations
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))
    assert not np.array_equal(a[0], a[2])  # a new draw every epoch
    assert len(counted_reads) == 2 + 3 * 2  # augmentation never re-reads: one read per volume and source
    ds = MultimodalDataset(
        records, {"image": VolumeSource(run, ImageInputConfig.model_validate(random), 2)}, []
    )
    np.testing.assert_array_equal(ds[0]["inputs"]["image"].numpy(), plain)  # type: ignore[index]
