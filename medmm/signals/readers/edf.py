"""EDF / EDF+ / BDF files (pyedflib): channels at their own rates in physical units, EDF+ annotations.

The patient code of the EDF+ header is the patient key (it is pseudonymized, never written); an empty
or anonymous code (``X``) falls back to the record name. An EDF+ file holding only annotations (no
signal channels) is ingested for its events. The header's patient name, code, administration code and
birth date are removed from the annotation labels (:mod:`medmm.signals.readers.redact`): free text such
as ``"Patient Müller moved"`` is written as ``"Patient [redacted] moved"``.

>>> from medmm.datasets import shared_data_dir
>>> root = shared_data_dir()
>>> rec = read_edf(root / "signals/wfdb_sample_data", "test_edfann.edf") if root else None
>>> rec is None or (len(rec.channels), rec.events[0].label) == (0, "Sleep stage W")
True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medmm.signals.errors import EmptyRecordError, HeaderError, TruncatedSignalError, UnknownFormatError
from medmm.signals.readers._base import Channel, Event, LoadedRecord, check_fs

__all__ = ["date_is_known", "read_edf", "read_edf_meta", "read_edf_span"]


def read_edf(root: Path, rel: str) -> LoadedRecord:
    """Read ``root/rel`` (``.edf``/``.bdf``) into a :class:`LoadedRecord`.

    >>> read_edf(Path("/nonexistent"), "x.edf")
    Traceback (most recent call last):
    ...
    medmm.signals.errors.HeaderError: x.edf: not a readable EDF/EDF+/BDF file (...). Fix: ...
    """
    f = _open(Path(root) / rel, rel)
    try:
        header = f.getHeader()
        code = str(header.get("patientcode") or "").strip()
        channels = []
        for i in range(f.signals_in_file):
            x = np.asarray(f.readSignal(i), dtype=np.float64)
            channels.append(_channel(f, i, rel, x))
        events = _events(f)
        start = f.getStartdatetime()
        duration = float(f.getFileDuration())
    finally:
        f.close()
    rec = _record(rel, code, start, channels, events, duration, has_date=date_is_known(Path(root) / rel))
    rec.check_not_empty(rel)
    return rec


def _declared_records(path: Path) -> int | None:
    """The header's number of data records (bytes 236-244), ``None`` when unreadable.

    >>> _declared_records(Path("/nonexistent.edf")) is None
    True
    """
    try:
        with path.open("rb") as fh:
            head = fh.read(244)
        return int(head[236:244].decode("ascii").strip()) if len(head) == 244 else None
    except (OSError, ValueError):
        return None


def _open(path: Path, rel: str) -> Any:
    """An open ``pyedflib.EdfReader``, or the reader's :class:`~medmm.errors.InputError`."""
    import pyedflib

    try:
        return pyedflib.EdfReader(str(path))
    except OSError as exc:
        text = str(exc).replace(str(path), rel)
        if "discontinuous" in text.lower():
            raise UnknownFormatError(
                rel,
                "EDF+D (discontinuous: the data records have gaps in time) is not supported",
                "export it as EDF+C (continuous), e.g. one file per uninterrupted stretch",
            ) from exc
        n_records = _declared_records(path)
        if n_records == 0:
            raise EmptyRecordError(
                rel, "the EDF header declares 0 data records (zero-length)", "drop or re-export it"
            ) from exc
        if n_records == -1:
            raise HeaderError(
                rel,
                "the EDF header's number of data records is -1: the recorder never finished writing the file",
                "export the recording again once it has been closed",
            ) from exc
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


def _channel(f: Any, i: int, rel: str, x: NDArray[np.float64]) -> Channel:
    fs = check_fs(rel, f.getSampleFrequency(i))
    limits = (float(f.getPhysicalMinimum(i)), float(f.getPhysicalMaximum(i)))
    return Channel(
        f.getLabel(i).strip(), f.getPhysicalDimension(i).strip(), fs, x, (min(limits), max(limits))
    )


def _events(f: Any) -> list[Event]:
    from medmm.signals.readers.redact import IdentityRedactor

    onsets, durations, labels = f.readAnnotations()
    h = f.getHeader()
    redact = IdentityRedactor(
        [h.get(k) or "" for k in ("patientname", "patientcode", "admincode")], str(h.get("birthdate") or "")
    )
    return [
        Event(float(o), float(d) if d == d and d >= 0 else 0.0, redact(str(lbl)), "edf+")
        for o, d, lbl in zip(onsets, durations, labels, strict=True)
    ]


def _record(
    rel: str,
    code: str,
    start: Any,
    channels: list[Channel],
    events: list[Event],
    duration: float,
    n: int = 0,
    has_date: bool = True,
) -> LoadedRecord:
    return LoadedRecord(
        record=rel.rsplit(".", 1)[0],
        format="edf",
        patient_key="" if code.upper() in ("", "X") else code,
        start=start,
        channels=channels,
        events=events,
        segments=[(0.0, duration, False)],
        n_samples=n,
        start_has_date=has_date,
    )


def date_is_known(path: Path) -> bool:
    """False for an EDF+ file whose recording field says ``Startdate X`` (date unknown, as anonymizers
    write it); its header date (``01.01.85`` ...) is then a placeholder, not the recording's date.

    >>> date_is_known(Path("/nonexistent.edf"))
    True
    """
    try:
        with Path(path).open("rb") as fh:
            head = fh.read(236)
    except OSError:
        return True
    if len(head) < 236 or head[192:196] != b"EDF+":
        return True
    words = head[88:168].decode("latin-1").split()
    return not (len(words) >= 2 and words[0] == "Startdate" and words[1].upper() == "X")


def read_edf_meta(root: Path, rel: str, *, min_samples: int = 1) -> LoadedRecord | None:
    """A single-rate EDF file's header and EDF+ annotations, without its samples.

    Returns ``None`` (read it whole with :func:`read_edf`) when its signal channels have different
    sampling rates or lengths, when it has no signal channel, and when it is shorter than
    ``min_samples``. Channels carry empty ``data`` and ``n_samples`` is their length; read the samples
    span by span with :func:`read_edf_span`. Header errors are those of :func:`read_edf`.

    >>> from medmm.datasets import shared_data_dir
    >>> root = shared_data_dir()
    >>> read_edf_meta(root / "signals/wfdb_sample_data", "test_edfann.edf") if root else None
    """
    f = _open(Path(root) / rel, rel)
    try:
        lengths = {int(n) for n in f.getNSamples()}
        rates = {float(f.getSampleFrequency(i)) for i in range(f.signals_in_file)}
        if len(rates) != 1 or len(lengths) != 1 or min(lengths) < min_samples:
            return None
        channels = [_channel(f, i, rel, np.zeros(0)) for i in range(f.signals_in_file)]
        code = str(f.getHeader().get("patientcode") or "").strip()
        rec = _record(
            rel,
            code,
            f.getStartdatetime(),
            channels,
            _events(f),
            float(f.getFileDuration()),
            min(lengths),
            has_date=date_is_known(Path(root) / rel),
        )
    finally:
        f.close()
    return rec


def read_edf_span(root: Path, rel: str, start: int, stop: int) -> list[NDArray[np.float64]]:
    """Samples ``[start, stop)`` of every channel of a single-rate EDF file, physical units.

    The values are those :func:`read_edf` returns for the same samples (``readSignal(i, start, n)``).

    >>> from medmm.datasets import shared_data_dir
    >>> root = shared_data_dir()
    >>> read_edf_span(root / "signals/wfdb_sample_data", "test_edfann.edf", 0, 10) if root else []
    []
    """
    f = _open(Path(root) / rel, rel)
    try:
        return [
            np.asarray(f.readSignal(i, start, stop - start), dtype=np.float64)
            for i in range(f.signals_in_file)
        ]
    finally:
        f.close()
