"""The MONAI transform chain of the imaging branch, built from an :class:`ImageInputConfig`.

The chain is deterministic (so MONAI's ``CacheDataset`` / ``PersistentDataset`` can cache all of it) and
works on dictionaries ``{"image": path, "mask": path (optional), "modality": "CT"|"MR"|...}``:

1. ``LoadImaged`` (``NibabelReader``), ``EnsureChannelFirstd``, first channel only (4D series keep
   their first frame), ``Orientationd`` (``orientation``, default ``RAS``), ``Spacingd`` to ``pixdim``
   (optional; bilinear for the image, nearest for the mask);
2. 2D only: the per-slice area of the mask (``mask_labels``, default any label > 0) or of the image's
   non-zero voxels, stored as ``areas`` for :func:`select_slice`; the mask is then dropped;
3. intensity: ``zscore`` (``NormalizeIntensityd``), ``zscore_nonzero`` (over non-zero voxels),
   ``ct_window`` (``ScaleIntensityRanged`` ``ct_window`` -> [0, 1], clipped), ``percentiles``
   (``ScaleIntensityRangePercentilesd`` -> [0, 1], clipped), ``none``, or ``auto`` (``ct_window`` when the
   volume's modality is CT and it came from DICOM/NIfTI/ANALYZE, i.e. holds Hounsfield units;
   ``zscore_nonzero`` otherwise, including CT pictures exported as PNG/JPEG/TIFF, 0-255 grey);
4. 2D, every ``slice`` mode but ``all``: the slice :func:`select_slice` picks is cut here (after the
   volume-wide normalisation), so a cache holds one slice per volume; ``slice`` records its index;
5. ``Resized`` (``mode="area"``) or ``ResizeWithPadOrCropd`` to ``size``: every axis in 3D, in-plane in
   2D (with ``slice: all`` the slice axis, the last one, is kept and slices are cut after the cache).

>>> from medmm.models.config import ImageInputConfig
>>> cfg = ImageInputConfig(size=32, slice="largest_mask")
>>> [type(t).__name__ for t in image_transform(cfg, 2, with_mask=True).transforms][:4]
['LoadImaged', 'EnsureChannelFirstd', 'FirstChanneld', 'Orientationd']
>>> output_shape(cfg, 2), output_shape(ImageInputConfig(size=[8, 8, 4]), 3)
((1, 32, 32), (1, 8, 8, 4))
>>> int(select_slice(np.array([0.0, 5.0, 9.0, 2.0]), 4, cfg, "vol-1"))
2
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.transforms import MapTransform

from medmm.errors import ConfigError, InputError
from medmm.models.config import ImageInputConfig

__all__ = [
    "HU_SOURCES",
    "ByModalityd",
    "FirstChanneld",
    "SelectSliced",
    "SliceAreasd",
    "augmentation",
    "image_transform",
    "output_shape",
    "select_slice",
    "transform_digest",
]


def _spatial_size(cfg: ImageInputConfig, spatial_dims: int) -> tuple[int, ...]:
    size = cfg.size
    n = 2 if spatial_dims == 2 else 3
    sizes = [size] * n if isinstance(size, int) else list(size)
    if len(sizes) != n or any(s < 1 for s in sizes):
        raise ConfigError(
            f"image_input.size {size!r} must be a positive int or {n} positive ints "
            f"for spatial_dims={spatial_dims}"
        )
    return tuple(int(s) for s in sizes)


def output_shape(cfg: ImageInputConfig, spatial_dims: int) -> tuple[int, ...]:
    """Shape ``[C, *spatial]`` of one item the imaging branch yields (C = 1)."""
    return (1, *_spatial_size(cfg, spatial_dims))


def transform_digest(cfg: ImageInputConfig, spatial_dims: int) -> str:
    """SHA-256 (hex, 16 chars) of everything that changes the cached output: config + MONAI version.

    Keys the on-disk cache folder, so a changed chain never reads stale items.
    """
    import monai

    fields = cfg.model_dump(mode="json", exclude={"source", "cache", "cache_dir", "cache_workers", "augment"})
    # "auto": 2 = a CT picture export (png/jpeg/tiff) is z-scored, not HU-windowed (older caches are stale)
    chain = {"cfg": fields, "dims": spatial_dims, "monai": monai.__version__, "auto": 2}
    text = json.dumps(chain, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class FirstChanneld(MapTransform):
    """Keep channel 0 of ``keys`` (a 4D series -> its first frame)."""

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            if d[key].shape[0] > 1:
                d[key] = d[key][:1]
        return d


class SliceAreasd(MapTransform):
    """``areas[z]`` = voxels of slice ``z`` in the mask (``labels``; any > 0) or non-zero in the image."""

    def __init__(self, source: str, labels: list[int] | None) -> None:
        super().__init__([source])
        self.source, self.labels = source, labels

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        x = torch.as_tensor(d[self.source])[0]
        if "mask" in d and tuple(d["mask"].shape[1:]) != tuple(d["image"].shape[1:]):
            meta = getattr(d["mask"], "meta", {})
            raise InputError(
                str(meta.get("filename_or_obj", "mask")),
                f"mask grid {tuple(d['mask'].shape[1:])} differs from the image's "
                f"{tuple(d['image'].shape[1:])}",
                "link a mask that was segmented on this volume",
            )
        if self.source == "image":
            fg = x != 0
        elif self.labels is None:
            fg = x > 0
        else:
            fg = torch.isin(x.round().long(), torch.tensor(self.labels))
        d["areas"] = fg.reshape(-1, fg.shape[-1]).sum(0).to(torch.float32)
        d.pop("mask", None)
        return d


class SelectSliced(MapTransform):
    """Cut the slice :func:`select_slice` picks (last axis) from ``image``; ``slice`` = its index."""

    def __init__(self, cfg: ImageInputConfig) -> None:
        super().__init__(["image"])
        self.cfg = cfg

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        n = int(d["image"].shape[-1])
        name = str(d.get("volume_id", getattr(d["image"], "meta", {}).get("filename_or_obj", "volume")))
        z = select_slice(np.asarray(d.pop("areas")), n, self.cfg, name)
        d["image"] = d["image"][..., z]
        d["slice"] = z
        return d


#: source formats whose CT voxels are Hounsfield units (``normalize: auto`` windows only these)
HU_SOURCES = frozenset({"dicom", "nifti", "analyze"})


def _source_format(data: Mapping[Hashable, Any]) -> str:
    """``source_format`` of the item, else of its sidecar (``<id>.json`` beside it); "" if unknown."""
    given = data.get("source_format")
    if given:
        return str(given).lower()
    image = data.get("image")
    name = getattr(image, "meta", {}).get("filename_or_obj") if image is not None else None
    if not name and isinstance(image, (str, Path)):
        name = image
    if not name:
        return ""
    path = Path(str(name))
    stem = path.name[: -len(".nii.gz")] if path.name.endswith(".nii.gz") else path.stem
    side = path.with_name(f"{stem}.json")
    try:
        return str(json.loads(side.read_text(encoding="utf-8")).get("source_format") or "").lower()
    except (OSError, ValueError, AttributeError):
        return ""


class ByModalityd(MapTransform):
    """Apply ``ct`` to CT volumes holding Hounsfield units and ``other`` to the rest (``normalize: auto``).

    A CT volume is windowed only when its ``source_format`` (the item's key, else its sidecar) is unknown
    or one of :data:`HU_SOURCES`; a CT picture export (png/jpeg/tiff: 0-255 grey) gets ``other``.
    """

    def __init__(self, ct: Any, other: Any) -> None:
        super().__init__(["image"])
        self.ct, self.other = ct, other

    def __call__(self, data: Mapping[Hashable, Any]) -> Any:
        is_ct = str(data.get("modality", "")).upper() == "CT"
        if is_ct:
            source = _source_format(data)
            is_ct = source == "" or source in HU_SOURCES
        return (self.ct if is_ct else self.other)(data)


def _intensity(cfg: ImageInputConfig, kind: str) -> Any:
    from monai.transforms import NormalizeIntensityd, ScaleIntensityRanged, ScaleIntensityRangePercentilesd

    if kind == "zscore":
        return NormalizeIntensityd("image")
    if kind == "zscore_nonzero":
        return NormalizeIntensityd("image", nonzero=True)
    if kind == "ct_window":
        lo, hi = cfg.ct_window
        if hi <= lo:
            raise ConfigError(f"image_input.ct_window {cfg.ct_window} must be (low, high) with low < high")
        return ScaleIntensityRanged("image", a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True)
    if kind == "percentiles":
        lo, hi = cfg.percentiles
        if not 0 <= lo < hi <= 100:
            raise ConfigError(
                f"image_input.percentiles {cfg.percentiles} must satisfy 0 <= low < high <= 100"
            )
        return ScaleIntensityRangePercentilesd("image", lower=lo, upper=hi, b_min=0.0, b_max=1.0, clip=True)
    if kind == "auto":
        return ByModalityd(_intensity(cfg, "ct_window"), _intensity(cfg, "zscore_nonzero"))
    return None


def _load_images(keys: list[str]) -> Any:
    """MONAI ``LoadImaged`` with ``NibabelReader``, built without MONAI's nvImageCodec notices."""
    from medmm.models.quiet import quiet_monai_notices

    with quiet_monai_notices():
        from monai.data import NibabelReader
        from monai.transforms import LoadImaged

        return LoadImaged(keys, reader=NibabelReader(), image_only=True)  # type: ignore[arg-type]


def image_transform(cfg: ImageInputConfig, spatial_dims: int, with_mask: bool = False) -> Any:
    """The deterministic MONAI ``Compose`` for ``cfg`` (see the module docstring for the steps).

    Parameters
    ----------
    cfg
        The ``image_input`` section of the training config.
    spatial_dims
        2 (the selected slice ``[1, H, W]`` and its index ``slice``; with ``slice: all`` the volume
        ``[1, H, W, n_slices]``) or 3.
    with_mask
        Items carry a ``mask`` path (used for ``slice: largest_mask``).
    """
    from monai.transforms import (
        Compose,
        EnsureChannelFirstd,
        EnsureTyped,
        Orientationd,
        Resized,
        ResizeWithPadOrCropd,
        Spacingd,
    )

    keys = ["image", "mask"] if with_mask else ["image"]
    steps: list[Any] = [
        _load_images(keys),
        EnsureChannelFirstd(keys),
        FirstChanneld(keys),
        Orientationd(keys, axcodes=cfg.orientation, labels=(("L", "R"), ("P", "A"), ("I", "S"))),
    ]
    if cfg.pixdim is not None:
        if len(cfg.pixdim) != 3 or min(cfg.pixdim) <= 0:
            raise ConfigError(f"image_input.pixdim {cfg.pixdim} must be 3 positive spacings (mm)")
        steps.append(Spacingd(keys, cfg.pixdim, mode=["bilinear", "nearest"][: len(keys)], dtype=np.float32))
    if spatial_dims == 2:
        source = "mask" if with_mask and cfg.slice == "largest_mask" else "image"
        steps.append(SliceAreasd(source, cfg.mask_labels))
    elif with_mask:
        raise ConfigError("a mask is only used to choose 2D slices; drop image_input.mask_table for 3D")
    norm = _intensity(cfg, cfg.normalize)
    if norm is not None:
        steps.append(norm)
    size: tuple[int, ...] = _spatial_size(cfg, spatial_dims)
    if spatial_dims == 2 and cfg.slice == "all":
        size = (*size, -1)
    elif spatial_dims == 2:
        steps.append(SelectSliced(cfg))
    if cfg.resize == "resize":
        steps.append(Resized("image", size, mode="area"))
    else:
        steps.append(ResizeWithPadOrCropd("image", size))
    steps.append(EnsureTyped("image", dtype=np.float32))
    return Compose(steps)


def augmentation(cfg: ImageInputConfig, spatial_dims: int, seed: int) -> Any:
    """The seeded random ``Compose`` of ``cfg.augment`` on ``{"image": [C, *spatial]}`` (None if off).

    >>> from medmm.models.config import AugmentConfig
    >>> aug = augmentation(ImageInputConfig(augment=AugmentConfig(flip_prob=1.0)), 2, seed=0)
    >>> aug({"image": torch.arange(4.0).reshape(1, 2, 2)})["image"][0].tolist()
    [[2.0, 3.0], [0.0, 1.0]]
    """
    from monai.transforms import Compose, RandFlipd, RandRotate90d, RandScaleIntensityd, RandShiftIntensityd

    a = cfg.augment
    if not a.active():
        return None
    size = _spatial_size(cfg, spatial_dims)
    if a.rotate90_prob and size[0] != size[1]:
        raise ConfigError(f"image_input.augment.rotate90_prob needs a square in-plane size, got {list(size)}")
    steps: list[Any] = []
    if a.flip_prob:
        steps.append(RandFlipd("image", prob=a.flip_prob, spatial_axis=0))
    if a.rotate90_prob:
        steps.append(RandRotate90d("image", prob=a.rotate90_prob, max_k=3, spatial_axes=(0, 1)))
    if a.shift_intensity:
        steps.append(RandShiftIntensityd("image", offsets=a.shift_intensity, prob=1.0))
    if a.scale_intensity:
        steps.append(RandScaleIntensityd("image", factors=a.scale_intensity, prob=1.0))
    return Compose(steps).set_random_state(seed=seed)


def select_slice(areas: np.ndarray, n_slices: int, cfg: ImageInputConfig, volume_id: str) -> int:
    """Index of the 2D slice (last axis) that ``cfg.slice`` picks for one volume.

    ``middle``: ``n // 2``; ``index``: ``slice_index`` (negative counts from the end);
    ``largest_mask`` / ``largest_foreground``: the slice with the largest area (the first on ties; the
    middle slice when the mask or image is empty). ``all`` is expanded by the Dataset, not here.
    """
    if cfg.slice == "index":
        i = cfg.slice_index + n_slices if cfg.slice_index < 0 else cfg.slice_index
        if not 0 <= i < n_slices:
            raise InputError(
                volume_id,
                f"slice_index {cfg.slice_index} is outside the volume's {n_slices} slices",
                "choose image_input.slice_index within range or slice: middle",
            )
        return i
    if cfg.slice in ("largest_mask", "largest_foreground") and len(areas) and float(np.max(areas)) > 0:
        return int(np.argmax(areas))
    return n_slices // 2
