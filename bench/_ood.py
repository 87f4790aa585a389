"""Images from sources the constructed cohort's models never saw, as a run directory of image-only records
(:func:`write_ood_run`), and the cohort re-drawn without its source shift (:func:`same_source_cohort`).

Used by ``bench/bench_embedding_ood.py`` and ``tests/models/test_embedding_anomaly_cohort.py`` (one copy):
the 34 ``covid_chestxray_subset`` pictures (27 chest X-rays, 7 CT) and 5 other CT/MR images (pydicom
``CT_small`` / ``MR_small``, nibabel ``anatomical.nii``, pyradiomics ``brain1`` / ``brain2``), prepared as
:func:`bench.cohort.image_items` prepares the BraTS slices (z-score over non-zero pixels, area resize with
MONAI), so only their content differs from the cohort's images.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from medmm.align.records import RecordRow
from medmm.models.store import write_store
from medmm.tables import write_table

__all__ = ["OOD_SOURCES", "ood_files", "same_source_cohort", "write_ood_run"]

#: (group, path relative to the data root): images from sources the cohort's model never saw.
OOD_SOURCES: dict[str, tuple[str, ...]] = {
    "chest_picture": ("covid_chestxray_subset/images",),  # 27 X-rays + 7 CT pictures (PNG/JPEG)
    "other_ct_mr": (
        "imaging/pydicom_testfiles/test_files/CT_small.dcm",
        "imaging/pydicom_testfiles/test_files/MR_small.dcm",
        "imaging/nibabel_testdata/anatomical.nii",
        "imaging/pyradiomics_labeled/nifti_converted/brain1_image.nii.gz",
        "imaging/pyradiomics_labeled/nifti_converted/brain2_image.nii.gz",
    ),
}


def _pixels(path: Path) -> np.ndarray:
    """A 2D grey array: a picture, a DICOM image, or the middle axial slice of a NIfTI volume."""
    if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
        from PIL import Image

        with Image.open(path) as im:
            return np.asarray(im.convert("L"), np.float32)
    if path.suffix.lower() == ".dcm":
        import pydicom

        return np.asarray(pydicom.dcmread(path).pixel_array, np.float32)
    import nibabel as nib

    vol = np.asarray(nib.load(path).get_fdata(), np.float32)  # type: ignore[attr-defined]
    vol = vol.reshape(*vol.shape[:3], -1)[..., 0] if vol.ndim > 3 else vol
    return vol[:, :, vol.shape[2] // 2]


def ood_files(data_root: Path) -> list[tuple[str, Path]]:
    """``(group, file)`` for every image of :data:`OOD_SOURCES` under ``data_root``, in a fixed order.

    >>> ood_files(Path("/nonexistent"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileNotFoundError: ...
    """
    out: list[tuple[str, Path]] = []
    for group, rels in OOD_SOURCES.items():
        for rel in rels:
            p = Path(data_root) / rel
            if not p.exists():
                raise FileNotFoundError(f"{p}: an out-of-distribution source is missing from the data root")
            out += [
                (group, f) for f in (sorted(f for f in p.iterdir() if f.is_file()) if p.is_dir() else [p])
            ]
    return out


def write_ood_run(data_root: Path, out: Path, size: int) -> pd.DataFrame:
    """A run of image-only records whose images come from :data:`OOD_SOURCES`, prepared as
    :func:`bench.cohort.image_items` prepares the BraTS slices (z-score over non-zero pixels, area resize).

    Records carry no labels; ids are ``rec-oodNNN`` (no patient identity: the files are public test data).
    Returns ``record_id, group``.

    >>> groups = write_ood_run(shared_data_dir(), Path(tempfile.mkdtemp()), 32)  # doctest: +SKIP
    >>> groups["group"].value_counts().to_dict()  # doctest: +SKIP
    {'chest_picture': 34, 'other_ct_mr': 5}
    """
    from monai.transforms import Compose, NormalizeIntensity, Resize

    tf = Compose([NormalizeIntensity(nonzero=True), Resize((size, size), mode="area")])
    ids: list[str] = []
    xs: list[np.ndarray] = []
    rows: list[RecordRow] = []
    groups: list[str] = []
    for k, (group, f) in enumerate(ood_files(data_root)):
        ids.append(f"ood{k:03d}")
        xs.append(np.asarray(tf(_pixels(f)[None]), np.float32))
        groups.append(group)
        rows.append(
            RecordRow(
                record_id=f"rec-ood{k:03d}",
                patient_id=f"pat-ood{k:03d}",
                study_id=f"stu-ood{k:03d}",
                image_id=f"ood{k:03d}",
                has_image=True,
                has_report=False,
                has_signal=False,
                labels=json.dumps({}),
            )
        )
    write_store(Path(out) / "inputs" / "image", ids, np.stack(xs))
    write_table(rows, Path(out) / "records.parquet", RecordRow)
    return pd.DataFrame({"record_id": [r.record_id for r in rows], "group": groups})


def same_source_cohort(
    cohort: Path, data_root: Path, out: Path, seed: int = 0, fractions: tuple[float, float] = (0.35, 0.15)
) -> dict[str, int]:
    """The cohort ``cohort`` (``bench/cohort.py``) with its images re-drawn so that no split is shifted.

    The cohort's own split keeps 2 BraTS patients for test and draws train *and* validation images from
    the other 2: its test images come from patients the validation images (the conformal calibration
    set) never show. Here every usable slice of the 4 patients goes to one split at random (``fractions``
    = test, validation share of the slices; the rest train), and each record keeps its split, patient,
    report, signal and labels but draws a slice of its own split with its ``image_abnormal`` label
    (without replacement, cycling as the cohort does). Test and validation slices are then different
    slices of the same patients: exchangeable, the setting the conformal rate is stated for.

    Writes ``out`` (``records.parquet``, ``splits.parquet``, ``inputs/`` linked to the cohort's store, which
    holds every slice); returns the distinct slices per split.

    >>> same_source_cohort(Path("runs/cohort"), shared_data_dir(), Path("runs/same"))  # doctest: +SKIP
    {'train': 211, 'val': 64, 'test': 148}
    """
    from bench.cohort import _Sampler, image_items

    size = int(json.loads((Path(cohort) / "cohort.json").read_text())["image_size"])
    items = image_items(Path(data_root), size)
    rng = np.random.default_rng(seed)
    u = rng.random(len(items))
    test_f, val_f = fractions
    split_of = np.where(u < test_f, "test", np.where(u < test_f + val_f, "val", "train"))
    samplers = {
        (s, a): _Sampler(items.loc[(split_of == s) & (items["abnormal"] == a), "item_id"].tolist(), rng)
        for s in ("train", "val", "test")
        for a in (False, True)
    }
    records = pd.read_parquet(Path(cohort) / "records.parquet")
    splits = pd.read_parquet(Path(cohort) / "splits.parquet")
    split = records["record_id"].map(splits.set_index("record_id")["split"])
    tumour = records["labels"].map(lambda s: bool(json.loads(s)["image_abnormal"]))
    records["image_id"] = [samplers[(s, bool(a))].draw() for s, a in zip(split, tumour, strict=True)]
    out = Path(out)
    (out / "inputs").mkdir(parents=True, exist_ok=True)
    for store in sorted((Path(cohort) / "inputs").iterdir()):
        link = out / "inputs" / store.name
        if not link.exists():
            link.symlink_to(store.resolve(), target_is_directory=True)
    write_table(records, out / "records.parquet", RecordRow)
    write_table(splits, out / "splits.parquet")
    return {s: int((split_of == s).sum()) for s in ("train", "val", "test")}
