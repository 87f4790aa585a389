"""Classify a DICOM object by its SOP Class UID into a :class:`DicomKind`.

Non-image objects (SR, SEG, RT, presentation states, waveforms, DICOMDIR, documents) are kept with their
kind so later stages can use them; images become volumes; pixel data we cannot stack into a volume
(whole-slide microscopy, video) is ``unsupported_image``.

>>> from pydicom import Dataset
>>> ds = Dataset(); ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.9.1.1"
>>> classify(ds)
(<DicomKind.waveform: 'waveform'>, '12-lead ECG Waveform Storage')
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import os
import sys
from typing import Any

from medmm.imaging.records import DicomKind

__all__ = ["classify", "kind_of_sop_class"]

_STORAGE = "1.2.840.10008.5.1.4.1.1."
_DICOMDIR = "1.2.840.10008.1.3.10"

#: SOP class prefixes (after ``1.2.840.10008.5.1.4.1.1.``), longest match wins.
_PREFIXES: dict[str, DicomKind] = {
    "88.": DicomKind.sr,  # structured reports, key object selection, CAD SR ...
    "66.4": DicomKind.seg,  # Segmentation Storage
    "66.5": DicomKind.seg,  # Surface Segmentation Storage
    "66.": DicomKind.other_non_image,  # raw data, registration, fiducials, real world value map
    "67": DicomKind.other_non_image,  # real world value mapping
    "481.": DicomKind.rt,  # RT image/dose/structure set/plan/treatment records
    "11.": DicomKind.presentation_state,
    "9.": DicomKind.waveform,
    "104.": DicomKind.other_non_image,  # encapsulated PDF/CDA/STL/OBJ
    "68.": DicomKind.other_non_image,  # surface scan
    "82.": DicomKind.other_non_image,  # surface mesh
    "200.": DicomKind.other_non_image,  # CT/XA protocols
    "77.1.6": DicomKind.unsupported_image,  # VL Whole Slide Microscopy
    "77.1.1.1": DicomKind.unsupported_image,  # video endoscopic
    "77.1.2.1": DicomKind.unsupported_image,  # video microscopic
    "77.1.4.1": DicomKind.unsupported_image,  # video photographic
    "77.1.5.": DicomKind.unsupported_image,  # ophthalmic photography / tomography (OCT)
    "14.": DicomKind.unsupported_image,  # intravascular OCT
    "13.1.": DicomKind.multiframe_image,  # breast tomosynthesis / projection X-ray
}
#: Enhanced (functional-group) image SOP classes: always multi-frame even with one frame.
_ENHANCED = {
    "2.1",  # Enhanced CT
    "2.2",  # Legacy converted enhanced CT
    "4.1",  # Enhanced MR
    "4.3",  # Enhanced MR colour
    "4.4",  # Legacy converted enhanced MR
    "128.1",  # Legacy converted enhanced PET
    "130",  # Enhanced PET
    "12.1.1",  # Enhanced XA
    "12.2.1",  # Enhanced XRF
    "6.2",  # Enhanced US volume
}


def _sop_name(uid: str) -> str:
    key = uid.strip()  # pydicom's UID(uid).name (a UID strips its padding), without pydicom
    entry = _uid_names().get(key) if uid else None
    name = str(entry[0]) if entry else key
    return name if name and name != uid else (f"SOP class {uid}" if uid else "no SOP Class UID")


@functools.cache
def _uid_names() -> dict[str, tuple[str, ...]]:
    """pydicom's UID dictionary (``pydicom._uid_dict.UID_dictionary``: UID -> (name, type, ...)).

    A plain DICOM header is read without pydicom (:mod:`medmm.imaging._element_stream`), and importing
    pydicom only for this table costs ~0.1 s of CPU in every process that scans (each Dask worker).
    When pydicom is not imported yet, its ``_uid_dict.py`` (one dict literal, no imports) is loaded by
    itself, from pydicom's cached bytecode; any surprise there falls back to importing pydicom.
    """
    loaded = sys.modules.get("pydicom._uid_dict")
    if loaded is None:
        try:
            found = importlib.util.find_spec("pydicom")  # the package's location, without importing it
            if found is None or found.origin is None:
                raise ImportError("pydicom not found")
            path = os.path.join(os.path.dirname(found.origin), "_uid_dict.py")
            loader = importlib.machinery.SourceFileLoader("medmm.imaging._pydicom_uid_dict", path)
            spec = importlib.util.spec_from_loader(loader.name, loader)
            if spec is None:
                raise ImportError(path)
            module = importlib.util.module_from_spec(spec)
            loader.exec_module(module)
            if isinstance(module.UID_dictionary, dict):
                return module.UID_dictionary
        except Exception:  # pragma: no cover - another pydicom layout: ask pydicom itself
            pass
        import pydicom._uid_dict

        loaded = pydicom._uid_dict
    table: dict[str, tuple[str, ...]] = loaded.UID_dictionary
    return table


def kind_of_sop_class(sop_class_uid: str, n_frames: int = 1) -> DicomKind:
    """Kind of an object from its SOP Class UID alone (``image`` when unknown but image-like).

    >>> kind_of_sop_class("1.2.840.10008.5.1.4.1.1.2")  # CT Image Storage
    <DicomKind.image: 'image'>
    >>> kind_of_sop_class("1.2.840.10008.5.1.4.1.1.77.1.6")  # whole slide
    <DicomKind.unsupported_image: 'unsupported_image'>
    """
    if sop_class_uid == _DICOMDIR:
        return DicomKind.dicomdir
    if sop_class_uid.startswith(_STORAGE):
        tail = sop_class_uid[len(_STORAGE) :]
        best = ""
        for prefix in _PREFIXES:
            if (tail == prefix.rstrip(".") or tail.startswith(prefix)) and len(prefix) > len(best):
                best = prefix
        if best:
            return _PREFIXES[best]
        if tail in _ENHANCED:
            return DicomKind.multiframe_image
    elif sop_class_uid.startswith("1.2.840.10008.5.1.4.1.1") is False and sop_class_uid.startswith(
        "1.2.840.10008."
    ):
        return DicomKind.other_non_image
    return DicomKind.multiframe_image if n_frames > 1 else DicomKind.image


def classify(ds: Any) -> tuple[DicomKind, str]:
    """(kind, SOP class name) of a pydicom dataset read without pixel data.

    DICOMDIR is recognised by its Media Storage SOP Class or a Directory Record Sequence.
    """
    meta = getattr(ds, "file_meta", None)
    media = str(meta.get("MediaStorageSOPClassUID", "")) if meta is not None else ""
    if media == _DICOMDIR or "DirectoryRecordSequence" in ds:
        return DicomKind.dicomdir, "Media Storage Directory (DICOMDIR)"
    sop = str(ds.get("SOPClassUID", "") or media).strip()
    try:
        frames = int(ds.get("NumberOfFrames") or 1)
    except (TypeError, ValueError):
        frames = 1
    kind = kind_of_sop_class(sop, frames)
    if kind is DicomKind.image and "PerFrameFunctionalGroupsSequence" in ds:
        kind = DicomKind.multiframe_image
    return kind, _sop_name(sop)
