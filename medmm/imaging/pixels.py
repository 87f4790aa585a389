"""Decode DICOM pixel data into rescaled arrays, one file at a time (memory bounded by one series).

Single-frame slices go through MONAI's :class:`monai.data.PydicomReader` (pydicom + pylibjpeg decoders,
RescaleSlope/Intercept applied, array indexed ``[column, row]``). MONAI's own series combining sorts by
InstanceNumber and measures spacing along z only, so stacking is done here in the order
:func:`~medmm.imaging.series.assemble_series` chose. Multi-frame objects are decoded with pydicom
directly, because PydicomReader neither reorders frames nor applies the per-frame rescale of enhanced
objects; Siemens mosaics are unpacked with nibabel's CSA-aware ``MosaicWrapper``.

>>> decode_error_type(ValueError("The length of the pixel data in the dataset doesn't match"))
'TruncatedPixelDataError'
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from medmm.imaging.errors import PixelDecodeError, TruncatedPixelDataError
from medmm.imaging.records import DicomInstance

__all__ = ["decode_error_type", "read_mosaic", "read_multiframe", "read_slice"]

_TRUNCATION_HINTS = (
    "length of the pixel data",
    "truncat",
    "end of file",
    "not enough",
    "insufficient",
    "fewer",
)


def decode_error_type(exc: BaseException) -> str:
    """Name of the InputError class a decoder exception maps to (truncation vs other decode failure)."""
    text = str(exc).lower()
    return "TruncatedPixelDataError" if any(h in text for h in _TRUNCATION_HINTS) else "PixelDecodeError"


def _raise_decode(rel_path: str, inst: DicomInstance, exc: BaseException) -> None:
    if decode_error_type(exc) == "TruncatedPixelDataError":
        raise TruncatedPixelDataError(
            rel_path,
            f"pixel data is truncated or shorter than the header says ({exc})",
            "the transfer was cut off; copy the file again from the source",
        ) from exc
    raise PixelDecodeError(
        rel_path,
        f"cannot decode pixel data with transfer syntax {inst.transfer_syntax_uid or 'unknown'} "
        f"({type(exc).__name__}: {exc})",
        "install the decoder for this syntax (pylibjpeg plugins / GDCM) or re-export uncompressed",
    ) from exc


def read_slice(path: Path, inst: DicomInstance) -> np.ndarray:
    """One single-frame image as ``[column, row]`` (``[column, row, channel]`` for colour), rescaled.

    Monochrome data with RescaleSlope/Intercept becomes float32 (CT in Hounsfield units); data without
    rescale keeps its stored dtype.
    """
    from monai.data import PydicomReader

    reader = PydicomReader(swap_ij=True, affine_lps_to_ras=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = reader.read(str(path))
            data = np.asarray(ds.pixel_array)  # decode once here to classify decoder errors
    except Exception as exc:  # decoders raise many types; all mean "this file's pixels are unusable"
        _raise_decode(inst.path, inst, exc)
    if data.ndim == 2 and inst.photometric_interpretation == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        return np.ascontiguousarray(np.transpose(apply_color_lut(data, ds), (1, 0, 2)))
    if data.ndim == 2:
        # MONAI path: rescale + [column, row] layout (geometry is ours, its affine is ignored)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                arr, _meta = reader.get_data(ds)
        except (ValueError, TypeError, AttributeError, KeyError):
            # MONAI's affine step needs PixelSpacing/IPP/IOP; 2D images without them are rescaled here
            arr = _rescale(data, inst.rescale_slope, inst.rescale_intercept).T
        return np.asarray(arr)
    if data.ndim == 3 and inst.samples_per_pixel > 1:  # colour: [row, column, channel]
        return np.ascontiguousarray(np.transpose(data, (1, 0, 2)))
    raise PixelDecodeError(
        inst.path,
        f"unexpected pixel array shape {data.shape} for a single-frame image",
        "re-export the image",
    )


def _rescale(data: np.ndarray, slope: float | None, intercept: float | None) -> np.ndarray:
    if slope is None and intercept is None:
        return data
    return data.astype(np.float32) * np.float32(slope if slope is not None else 1.0) + np.float32(
        intercept or 0.0
    )


def read_multiframe(path: Path, inst: DicomInstance, frame_order: list[int] | None) -> np.ndarray:
    """A multi-frame object as ``[column, row, frame(, channel)]`` in ``frame_order``, rescaled.

    Enhanced objects carry RescaleSlope/Intercept per frame (Pixel Value Transformation); each frame is
    rescaled with its own values.
    """
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
            data = np.asarray(ds.pixel_array)
    except Exception as exc:
        _raise_decode(inst.path, inst, exc)
    colour = inst.samples_per_pixel > 1
    if inst.n_frames == 1:
        data = data[None]
    slopes, intercepts = _frame_rescale(ds, inst)
    if frame_order is not None:
        data = data[frame_order]
        slopes, intercepts = [slopes[k] for k in frame_order], [intercepts[k] for k in frame_order]
    if not colour and any(s is not None or i is not None for s, i in zip(slopes, intercepts, strict=True)):
        out = np.empty(data.shape, dtype=np.float32)
        for k in range(data.shape[0]):
            out[k] = _rescale(data[k], slopes[k] if slopes[k] is not None else 1.0, intercepts[k] or 0.0)
        data = out
    axes = (2, 1, 0, 3) if colour else (2, 1, 0)
    return np.ascontiguousarray(np.transpose(data, axes))


def _frame_rescale(ds: Any, inst: DicomInstance) -> tuple[list[float | None], list[float | None]]:
    from medmm.imaging._dicom_values import as_float

    n = inst.n_frames
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    slopes: list[float | None] = [inst.rescale_slope] * n
    intercepts: list[float | None] = [inst.rescale_intercept] * n
    for k, item in enumerate(per_frame[:n]):
        seq = item.get("PixelValueTransformationSequence")
        if seq:
            slopes[k] = as_float(seq[0].get("RescaleSlope"))
            intercepts[k] = as_float(seq[0].get("RescaleIntercept"))
    return slopes, intercepts


def read_mosaic(path: Path, inst: DicomInstance) -> tuple[np.ndarray, np.ndarray]:
    """Unpack a Siemens MOSAIC image into ``[column, row, slice]`` plus its LPS voxel->world affine.

    Uses nibabel's DICOM wrapper, which reads the number of tiles and the slice normal from the Siemens
    CSA header (not available through MONAI).
    """
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from nibabel.nicom import dicomwrappers

            ds = pydicom.dcmread(path)
            wrapper = dicomwrappers.wrapper_from_data(ds)
            if not isinstance(wrapper, dicomwrappers.MosaicWrapper):
                raise PixelDecodeError(
                    inst.path,
                    "ImageType says MOSAIC but the Siemens CSA header has no mosaic layout",
                    "re-export the series as separate slices (or enhanced MR)",
                )
            raw = ds.pixel_array  # decode errors (codec, truncation) are reported as such
    except PixelDecodeError:
        raise
    except Exception as exc:
        _raise_decode(inst.path, inst, exc)
    del raw
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = np.asarray(wrapper.get_data())  # [column, row, slice], rescaled by nibabel
            affine = np.asarray(wrapper.affine, dtype=float)  # voxel -> LPS
    except Exception as exc:
        raise PixelDecodeError(
            inst.path,
            f"the Siemens mosaic layout (CSA header) does not fit the pixel data "
            f"({type(exc).__name__}: {exc})",
            "re-export the series as separate slices or enhanced MR",
        ) from exc
    return data, affine
