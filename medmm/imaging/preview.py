"""Look at a written volume: one slice in RAS, with a label map (lesion, tumour, organ) laid over it.

The volumes medmm writes are RAS+, so ``data[:, :, k].T`` drawn with ``origin="lower"`` is an axial slice
seen from below, in the radiological convention (patient's right on the left of the picture). When a
label map is given the slice shown is, unless an index is asked for, the one with the most labelled
voxels, so the lesion is in the picture. 4D volumes show their first 3D volume.

>>> import numpy as np
>>> label = np.zeros((4, 4, 5), dtype=np.uint8)
>>> label[1:3, 1:3, 3] = 1
>>> most_labelled_slice(label, axis=2)
3
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medmm.imaging.errors import ImageFileError

__all__ = ["most_labelled_slice", "plot_slice"]

_AXES = {0: "sagittal", 1: "coronal", 2: "axial"}


def most_labelled_slice(label: np.ndarray, axis: int = 2) -> int:
    """Index along ``axis`` of the slice with the most non-zero voxels (the middle one if there are none).

    Parameters
    ----------
    label
        3D label map (0 = background).
    axis
        0 (sagittal), 1 (coronal) or 2 (axial) in RAS voxel order.

    Returns
    -------
    int
        Slice index; ties go to the lowest index.

    >>> most_labelled_slice(np.zeros((3, 3, 7)), axis=2)
    3
    """
    lab = np.asarray(label)
    while lab.ndim > 3:
        lab = lab[..., 0]
    counts = np.count_nonzero(lab, axis=tuple(a for a in range(3) if a != axis))
    return int(np.argmax(counts)) if counts.any() else int(lab.shape[axis]) // 2


def _load_3d(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(first 3D volume as float32, affine) of a NIfTI file; an unreadable file is an ImageFileError."""
    import nibabel as nib

    try:
        image: Any = nib.load(path)
        data = np.asanyarray(image.dataobj, dtype=np.float32)
    except Exception as exc:  # FileNotFoundError, nibabel's ImageFileError, gzip errors ...
        raise ImageFileError(
            str(path),
            f"cannot read the volume ({type(exc).__name__}: {exc})",
            "pass a volumes/<volume_id>.nii.gz written by medmm ingest (see volumes.parquet `path`)",
        ) from exc
    while data.ndim > 3:
        data = data[..., 0]
    if data.ndim < 3:
        data = data.reshape(data.shape + (1,) * (3 - data.ndim))
    return data, np.asarray(image.affine, dtype=float)


def plot_slice(
    volume: str | Path,
    *,
    label: str | Path | None = None,
    axis: int = 2,
    index: int | None = None,
    out: str | Path | None = None,
    title: str | None = None,
    ax: Any = None,
) -> Any:
    """Draw one slice of a RAS volume in grey, with ``label``'s non-zero voxels in colour over it.

    Parameters
    ----------
    volume
        A NIfTI file, typically ``run_dir / volumes.parquet["path"]``.
    label
        Optional label map on the same voxel grid (same shape and affine), e.g. a tumour mask ingested
        next to its image.
    axis
        0 (sagittal), 1 (coronal) or 2 (axial, default).
    index
        Slice index along ``axis``; default: the most labelled slice with ``label``, else the middle one.
    out
        Where to save the figure as PNG (parent folders are created); ``None`` saves nothing.
    title
        Figure title; default: file name, plane and slice index.
    ax
        A matplotlib Axes to draw into; default: a new 5x5 inch figure.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn into.

    Raises
    ------
    ImageFileError
        A file cannot be read, ``label`` does not share the volume's grid, or ``axis``/``index`` is out of
        range; the message names the file and the fix.

    Examples
    --------
    >>> import tempfile, nibabel as nib
    >>> d = Path(tempfile.mkdtemp())
    >>> nib.save(nib.Nifti1Image(np.random.default_rng(0).random((8, 8, 6)).astype(np.float32), np.eye(4)),
    ...          d / "t1.nii.gz")
    >>> mask = np.zeros((8, 8, 6), dtype=np.uint8); mask[2:5, 2:5, 4] = 1
    >>> nib.save(nib.Nifti1Image(mask, np.eye(4)), d / "lesion.nii.gz")
    >>> fig = plot_slice(d / "t1.nii.gz", label=d / "lesion.nii.gz", out=d / "figures" / "t1.png")
    >>> fig.axes[0].get_title(), (d / "figures" / "t1.png").stat().st_size > 0
    ('t1.nii.gz: axial slice 4 of 6', True)
    """
    import matplotlib.pyplot as plt

    volume = Path(volume)
    if axis not in _AXES:
        raise ImageFileError(str(volume), f"axis {axis} is not a spatial axis", "use 0, 1 or 2")
    data, affine = _load_3d(volume)
    mask = None
    if label is not None:
        mask, label_affine = _load_3d(Path(label))
        if mask.shape != data.shape or not np.allclose(label_affine, affine, atol=1e-3):
            raise ImageFileError(
                str(label),
                f"label map grid {mask.shape} does not match the volume {volume.name} {data.shape} "
                "(shape or affine differ)",
                "pass the mask ingested from the same image grid, or resample it onto the volume first",
            )
    n = data.shape[axis]
    k = (most_labelled_slice(mask, axis) if mask is not None else n // 2) if index is None else index
    if not 0 <= k < n:
        raise ImageFileError(
            str(volume), f"slice {k} is outside 0..{n - 1} along axis {axis}", "pick an index in range"
        )
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 5))
    else:
        fig = ax.figure
    ax.imshow(np.take(data, k, axis=axis).T, cmap="gray", origin="lower")
    if mask is not None:
        plane = np.take(mask, k, axis=axis).T
        ax.imshow(
            np.ma.masked_equal(plane, 0), cmap="autumn", alpha=0.5, origin="lower", interpolation="nearest"
        )
    ax.set_title(title or f"{volume.name}: {_AXES[axis]} slice {k} of {n}")
    ax.axis("off")
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=100, bbox_inches="tight")
    return fig
