"""The imaging branch of the Dataset: ingested NIfTI volumes read lazily through the MONAI chain of
:mod:`medmm.models.transforms`, with MONAI caching, behind the same interface as
:class:`~medmm.models.store.ArrayStore` (``get``, ``item_shape``, ``n_features``, ``digest``).

Caching (``image_input.cache``): ``none`` runs the whole chain on every access (``monai.data.Dataset``);
``memory`` is a ``CacheDataset`` (the chain runs once per volume when the source opens, worker processes
share the cache copy-on-write); ``disk`` is a ``PersistentDataset`` under
``RUN_DIR/cache/image/<transform hash>`` (or ``cache_dir``): the chain runs once per volume on first
access, later epochs and later runs load the cached tensors. The chain is fully deterministic, so all
of it is cached: one slice per volume in 2D (with ``slice: all`` the in-plane-resized stack, slices cut
at access time), the resized volume in 3D.

>>> from medmm.models.config import ImageInputConfig
>>> resolve_image_source(ImageInputConfig(), Path("/nonexistent"))
'arrays'
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medmm.errors import ConfigError, InputError
from medmm.models.config import ImageInputConfig, TrainConfig
from medmm.models.store import ArrayStore

__all__ = ["AbsentSource", "VolumeSource", "open_sources", "resolve_image_source", "source_kinds"]


class AbsentSource:
    """Stands in for a modality that no record of the scored set has (never read: its mask is False).

    A model trained with an image branch can score a run that holds only reports and ECG; the branch is
    masked for every record, so nothing needs to be opened.

    >>> AbsentSource("image").kind
    'absent'
    """

    kind = "absent"
    expands_slices = False

    def __init__(self, modality: str) -> None:
        self.modality = modality

    def get(self, item: str, *args: object, **kwargs: object) -> tuple[np.ndarray, np.ndarray | None]:
        """Never called for a masked modality; raises if it is."""
        raise ConfigError(f"no {self.modality} input was opened, but record item {item!r} asks for one")

    def digest(self) -> str:
        """Data version of an absent modality."""
        return "absent"


def resolve_image_source(cfg: ImageInputConfig, run_dir: Path) -> str:
    """``volumes`` or ``arrays``: ``auto`` means ``volumes`` when ``RUN_DIR/volumes.parquet`` exists."""
    if cfg.source != "auto":
        return cfg.source
    return "volumes" if (Path(run_dir) / "volumes.parquet").exists() else "arrays"


def _mask_paths(table: Path, run_dir: Path) -> dict[str, Path]:
    """``volume_id -> mask path`` from a CSV/parquet table (``mask_path`` relative to the run dir)."""
    table = Path(table)
    if not table.exists():
        raise InputError(str(table), "mask table not found", "fix image_input.mask_table")
    frame = pd.read_parquet(table) if table.suffix == ".parquet" else pd.read_csv(table)
    if not {"volume_id", "mask_path"} <= set(frame.columns):
        raise InputError(str(table), "needs columns volume_id, mask_path", "add them (one row per volume)")
    return {
        str(v): Path(run_dir) / str(p) for v, p in zip(frame["volume_id"], frame["mask_path"], strict=True)
    }


@contextmanager
def _unwrapped(path: str) -> Iterator[None]:
    """Errors inside MONAI's ``RuntimeError("applying transform ...")`` become ours: our own input/config
    errors are re-raised as they are, anything else (an unreadable file, ...) as an ``InputError`` on
    ``path``."""
    try:
        yield
    except RuntimeError as exc:
        cause: BaseException | None = exc
        root: BaseException = exc
        while cause is not None and not isinstance(cause, InputError | ConfigError):
            root = cause
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            raise cause from None
        raise InputError(
            path,
            f"the image chain failed ({type(root).__name__}: {str(root)[:200]})",
            "check that the file is a readable NIfTI (re-run `medmm ingest`) or change image_input",
        ) from exc


def _file_stamp(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}-{st.st_mtime_ns}"


class VolumeSource:
    """Volumes of ``volumes.parquet`` as model inputs ``[1, *size]`` (2D: one slice per item).

    Parameters
    ----------
    run_dir
        Run directory with ``volumes.parquet`` (paths in it are relative to the run directory).
    cfg
        The ``image_input`` section of the training config.
    spatial_dims
        The imaging encoder's dimensionality (2: slices, 3: volumes).
    item_ids
        Volume ids to serve (default: every volume of the table); only these are cached.
    seed
        Seed of the random augmentation (``cfg.augment``), applied only when ``get(augment=True)``.

    Examples
    --------
    >>> src = VolumeSource(run_dir, ImageInputConfig(size=32), 2)  # doctest: +SKIP
    >>> src.get("vol-1")[0].shape  # doctest: +SKIP
    (1, 32, 32)
    """

    kind = "volumes"

    def __init__(
        self,
        run_dir: Path,
        cfg: ImageInputConfig,
        spatial_dims: int,
        item_ids: Sequence[str] | None = None,
        seed: int = 0,
    ) -> None:
        from medmm.models.transforms import augmentation, image_transform, output_shape, transform_digest

        self.run_dir, self.cfg, self.spatial_dims = Path(run_dir), cfg, spatial_dims
        table = self.run_dir / "volumes.parquet"
        if not table.exists():
            raise InputError(str(table), "no volumes table", "run `medmm ingest` into this run directory")
        vols = pd.read_parquet(table).drop_duplicates("volume_id").set_index("volume_id")
        ids = sorted({str(i) for i in (vols.index if item_ids is None else item_ids)})
        with_mask = spatial_dims == 2 and cfg.slice == "largest_mask"
        if with_mask and cfg.mask_table is None:
            raise ConfigError(
                "image_input.slice: largest_mask needs image_input.mask_table (volume_id, mask_path)"
            )
        masks = _mask_paths(cfg.mask_table, self.run_dir) if with_mask and cfg.mask_table else {}
        self.items: list[dict[str, Any]] = []
        for vid in ids:
            if vid not in vols.index:
                raise InputError(str(table), f"volume {vid!r} is not in the table", "re-run `medmm align`")
            path = self.run_dir / str(vols.at[vid, "path"])
            if not path.exists():
                raise InputError(str(path), f"volume file of {vid!r} is missing", "re-run `medmm ingest`")
            item = {"image": str(path), "volume_id": vid, "modality": str(vols.at[vid, "modality"] or "")}
            item["stamp"] = _file_stamp(path)
            if with_mask:
                if vid not in masks or not masks[vid].exists():
                    raise InputError(
                        str(cfg.mask_table),
                        f"no existing mask file for volume {vid!r}",
                        "add its row (volume_id, mask_path) or use slice: largest_foreground",
                    )
                item["mask"] = str(masks[vid])
                item["mask_stamp"] = _file_stamp(masks[vid])
            self.items.append(item)
        self.index = {it["volume_id"]: n for n, it in enumerate(self.items)}
        self.hash = transform_digest(cfg, spatial_dims)
        self._shape = output_shape(cfg, spatial_dims)
        self.cache_dir: Path | None = None
        self.augmenter = augmentation(cfg, spatial_dims, seed)
        with _unwrapped(str(table)):
            self.data = self._dataset(image_transform(cfg, spatial_dims, with_mask))

    def _dataset(self, transform: Any) -> Any:
        from monai.data import CacheDataset, Dataset, PersistentDataset

        if self.cfg.cache == "memory":
            return CacheDataset(
                self.items,
                transform,
                cache_rate=1.0,
                num_workers=self.cfg.cache_workers,
                progress=False,
                copy_cache=False,
            )
        if self.cfg.cache == "disk":
            root = self.cfg.cache_dir or self.run_dir / "cache" / "image"
            self.cache_dir = Path(root) / self.hash
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            return PersistentDataset(self.items, transform, cache_dir=self.cache_dir)
        return Dataset(self.items, transform)

    @property
    def item_shape(self) -> tuple[int, ...]:
        """Shape of one item, ``(1, *size)``."""
        return self._shape

    @property
    def n_features(self) -> int:
        """Images carry no per-item features."""
        return 0

    @property
    def expands_slices(self) -> bool:
        """``slice: all`` in 2D: every slice of a volume is its own sample."""
        return self.spatial_dims == 2 and self.cfg.slice == "all"

    def _volume(self, item_id: str) -> dict[str, Any]:
        try:
            n = self.index[item_id]
        except KeyError:
            raise InputError(
                str(self.run_dir / "volumes.parquet"),
                f"volume {item_id!r} was not opened by this source",
                "open the source with the records' image ids",
            ) from None
        with _unwrapped(self.items[n]["image"]):
            return dict(self.data[n])

    def n_slices(self, item_id: str) -> int:
        """Slices of the (transformed) volume along the slice axis (loads or hits the cache)."""
        return int(self._volume(item_id)["image"].shape[-1])

    def selected_slice(self, item_id: str) -> int:
        """Index of the slice a 2D item shows (the configured ``slice`` mode; not for ``all``)."""
        if self.spatial_dims != 2 or self.expands_slices:
            raise ConfigError("selected_slice is defined for 2D sources whose slice mode is not `all`")
        return int(self._volume(item_id)["slice"])

    def get(
        self, item_id: str, slice_index: int | None = None, augment: bool = False
    ) -> tuple[np.ndarray, None]:
        """The transformed item and no features; ``slice_index`` picks the slice with ``slice: all``;
        ``augment`` applies the configured random augmentation (training samples)."""
        d = self._volume(item_id)
        x = d["image"]
        x = x.as_tensor() if hasattr(x, "as_tensor") else x
        if self.expands_slices:
            z = (int(x.shape[-1]) // 2) if slice_index is None else slice_index
            x = x[..., z]
        elif slice_index is not None:
            raise ConfigError("an explicit slice index needs image_input.slice: all (2D)")
        if augment and self.augmenter is not None:
            x = self.augmenter({"image": x.clone()})["image"]
            x = x.as_tensor() if hasattr(x, "as_tensor") else x
        return np.ascontiguousarray(np.asarray(x, dtype=np.float32)), None

    def digest(self) -> str:
        """SHA-256 of the transform config hash and every served volume (and mask) file's bytes."""
        h = hashlib.sha256(self.hash.encode())
        for item in self.items:
            h.update(item["volume_id"].encode())
            for key in ("image", "mask"):
                if key in item:
                    with open(item[key], "rb") as fh:
                        for chunk in iter(lambda: fh.read(1 << 20), b""):
                            h.update(chunk)
        return h.hexdigest()


def open_sources(
    config: TrainConfig,
    run_dir: Path,
    modalities: Sequence[str],
    records: pd.DataFrame | None = None,
    image_source: str | None = None,
    absent_ok: bool = False,
) -> dict[str, Any]:
    """Per modality, the item source of ``run_dir``: ``inputs/<m>`` arrays, or for ``image`` the
    :class:`VolumeSource` when ``config.image_input`` resolves to ``volumes``.

    ``records`` limits the volumes opened (and cached) to the ones they use; ``image_source`` overrides
    the config's choice (a checkpoint records the one it was trained with). With ``absent_ok`` (scoring,
    not training), a modality that none of ``records`` has gets an :class:`AbsentSource` instead of
    opening inputs the run may not have.

    Examples
    --------
    >>> import tempfile
    >>> from medmm.models.store import write_store
    >>> run = Path(tempfile.mkdtemp())
    >>> _ = write_store(run / "inputs" / "report", ["r1"], np.ones((1, 3), np.float32))
    >>> cfg = TrainConfig.model_validate({"run_dir": str(run), "modalities": {"report": {}},
    ...     "tasks": [{"name": "dx", "labels": ["abnormal"]}]})
    >>> source_kinds(open_sources(cfg, run, ["report"]))
    {'report': 'arrays'}
    """
    out: dict[str, Any] = {}
    for m in modalities:
        if absent_ok and records is not None and not records[f"has_{m}"].to_numpy(bool).any():
            out[m] = AbsentSource(m)
            continue
        kind = (
            (image_source or resolve_image_source(config.image_input, run_dir)) if m == "image" else "arrays"
        )
        if kind == "volumes":
            ids = None
            if records is not None:
                ids = (
                    records.loc[records["has_image"].to_numpy(bool), "image_id"].dropna().astype(str).tolist()
                )
            dims = config.modalities["image"].spatial_dims if "image" in config.modalities else 2
            out[m] = VolumeSource(run_dir, config.image_input, dims, ids, seed=config.train.seed)
        else:
            out[m] = ArrayStore(Path(run_dir) / "inputs" / m)
    return out


def source_kinds(sources: Mapping[str, Any]) -> dict[str, str]:
    """``modality -> "volumes" | "arrays"`` (stored in checkpoints).

    >>> source_kinds({"report": object()})
    {'report': 'arrays'}
    """
    return {m: getattr(s, "kind", "arrays") for m, s in sources.items()}
