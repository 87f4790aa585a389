"""EDF / EDF+ / BDF files (pyedflib): channels at their own rates in physical units, EDF+ annotations.

The patient code of the EDF+ header is the patient key (it is pseudonymized, never written); an empty
or anonymous code (``X``) falls back to the record name. An EDF+ file holding only annotations (no
signal channels) is ingested for its events.

>>> from medmm.datasets import shared_data_dir
>>> root = shared_data_dir()
>>> rec = read_edf(root / "signals/wfdb_sample_data", "test_edfann.edf") if root else None
>>> rec is None or (len(rec.channels), rec.events[0].label) == (0, "Sleep stage W")
True
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medmm.signals.errors import HeaderError, TruncatedSignalError
from medmm.signals.readers._base import Channel, Event, LoadedRecord, check_fs

__all__ = ["read_edf"]


def read_edf(root: Path, rel: str) -> LoadedRecord:
    """Read ``root/rel`` (``.edf``/``.bdf``) into a :class:`LoadedRecord`.

    >>> read_edf(Path("/nonexistent"), "x.edf")
    Traceback (most recent call last):
    ...
    medmm.signals.errors.HeaderError: x.edf: not a readable EDF/EDF+/BDF file (...). Fix: ...
    """
    import pyedflib

    path = Path(root) / rel
    try:
        f = pyedflib.EdfReader(str(path))
    except OSError as exc:
        text = str(exc).replace(str(path), rel)
        if path.exists() and ("size" in text.lower() or "records" in text.lower()):
            raise TruncatedSignalError(
                rel,
                f"EDF data shorter than its header declares ({text.strip()})",
                "re-copy the complete file",
            ) from exc
        raise HeaderError(
            rel,
            f"not a readable EDF/EDF+/BDF file ({text.strip()})",
            "re-export it as EDF+ (or check the copy)",
        ) from exc
    try:
        header = f.getHeader()
        code = str(header.get("patientcode") or "").strip()
        channels = []
        for i in range(f.signals_in_file):
            fs = check_fs(rel, f.getSampleFrequency(i))
            x = np.asarray(f.readSignal(i), dtype=np.float64)
            limits = (float(f.getPhysicalMinimum(i)), float(f.getPhysicalMaximum(i)))
            lo, hi = min(limits), max(limits)
            channels.append(
                Channel(f.getLabel(i).strip(), f.getPhysicalDimension(i).strip(), fs, x, (lo, hi))
            )
        onsets, durations, labels = f.readAnnotations()
        events = [
            Event(float(o), float(d) if d == d and d >= 0 else 0.0, str(lbl), "edf+")
            for o, d, lbl in zip(onsets, durations, labels, strict=True)
        ]
        start = f.getStartdatetime()
        duration = float(f.getFileDuration())
    finally:
        f.close()
    record = rel.rsplit(".", 1)[0]
    rec = LoadedRecord(
        record=record,
        format="edf",
        patient_key="" if code.upper() in ("", "X") else code,
        start=start,
        channels=channels,
        events=events,
        segments=[(0.0, duration, False)],
    )
    rec.check_not_empty(rel)
    return rec
