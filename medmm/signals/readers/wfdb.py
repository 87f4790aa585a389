"""WFDB records (PhysioNet): single- and multi-segment headers, signal files, reference annotations.

Files are checked before decoding so a bad record gets a precise reason: a missing ``.dat``, a signal
file shorter than the header's sample count (truncated) or longer (count mismatch), an unknown format
code, a sampling frequency of 0, a missing segment of a multi-segment record. Multi-segment records are
read with ``wfdb.rdrecord(m2s=True)``: the gaps between segments (``~``) and channels absent from a
segment become NaN, and the layout is kept in ``LoadedRecord.segments``.

WFDB headers carry no patient identifier, so the reader leaves ``patient_key`` empty and the pipeline
uses the record name (see ``docs/signals.md``). A signal whose header gain is 0 or missing is
*uncalibrated* in WFDB's terms (``wfdb`` silently assumes 200 ADC units per mV): its values are
those ``wfdb`` gives, and its units are ``"uncalibrated"`` (never ``mV``). Challenge-2015 alarm
records (comment lines naming the alarm type) get an ``alarm`` event at 300 s, where that challenge
puts every alarm onset.

>>> from medmm.datasets import shared_data_dir
>>> root = shared_data_dir()
>>> rec = read_wfdb(root / "signals/mitdb_subset", "100") if root else None
>>> first = (rec.channels[0].name, rec.channels[0].fs, rec.annotations[0].extension) if rec else None
>>> rec is None or first == ("MLII", 360.0, "atr")
True
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medmm.errors import reason_of
from medmm.signals.errors import AnnotationFileError
from medmm.signals.readers._base import Annotations, Channel, LoadedRecord, check_fs
from medmm.signals.readers.wfdb_header import (
    adc_limits,
    alarm_events,
    check_segments,
    check_signal_files,
    read_header,
    signal_names,
    signal_units,
    start_of,
    uncalibrated_signals,
    wfdb_header_files,
)
from medmm.signals.readers.wfdb_header import read_header as _header  # noqa: F401 (medmm.signals.chunked)

__all__ = [
    "ANNOTATION_EXTENSIONS",
    "BEAT_SYMBOLS",
    "read_wfdb",
    "read_wfdb_meta",
    "read_wfdb_span",
    "wfdb_header_files",
]

#: Annotation file extensions read as reference annotations, most authoritative first.
ANNOTATION_EXTENSIONS: tuple[str, ...] = ("atr", "ecg", "qrs", "ari", "sqrs", "gqrsh", "gqrs", "wqrs")
#: WFDB beat annotation symbols (non-beat marks such as rhythm ``+`` are not beats).
BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")


def _annotations(
    record_path: Path, fs: float, extensions: list[str], record: str
) -> tuple[list[Annotations], dict[str, str]]:
    """The readable annotation sets, and ``{file: reason}`` for those that cannot be read.

    A truncated or corrupt annotation file does not cost the record its signals: the record is
    ingested without that set and the file is quarantined with the reason.
    """
    import wfdb

    out = []
    bad: dict[str, str] = {}
    for ext in extensions:
        try:
            ann = wfdb.rdann(str(record_path), ext)
        except Exception as exc:
            err = AnnotationFileError(
                f"{record}.{ext}",
                f"unreadable WFDB annotation file ({type(exc).__name__}: {exc}; truncated, or not "
                "an annotation file)",
                "re-copy it, or remove it to ingest the record without these reference annotations",
            )
            bad[f"{record}.{ext}"] = reason_of(err)
            continue
        aux = [a or "" for a in (ann.aux_note or [""] * len(ann.sample))]
        out.append(
            Annotations(
                extension=ext,
                fs=float(ann.fs or fs),
                sample=np.asarray(ann.sample, dtype=np.int64),
                symbol=list(ann.symbol or []),
                aux=aux,
            )
        )
    return out, bad


def read_wfdb(root: Path, record: str, annotation_extensions: list[str] | None = None) -> LoadedRecord:
    """Read the WFDB record ``root/record`` (``record`` = header path without ``.hea``).

    Parameters
    ----------
    root
        Input root; ``record`` is relative to it (POSIX separators).
    record
        Record path without extension, e.g. ``"100"`` or ``"multi-segment/s25047/s25047-2704-05-04-10-44"``.
    annotation_extensions
        Annotation files to read (``["atr"]``); default: those of :data:`ANNOTATION_EXTENSIONS` present.

    Returns
    -------
    LoadedRecord
        Channels at their native rates in physical units (NaN = gap), annotations, alarm events.

    >>> from medmm.datasets import shared_data_dir
    >>> root = shared_data_dir()
    >>> rec = read_wfdb(root / "signals/wfdb_sample_data", "a103l") if root else None
    >>> rec is None or [e.label for e in rec.events] == ["alarm:Asystole (False alarm)"]
    True
    """
    import wfdb

    path = Path(root) / f"{record}.hea"
    rel = f"{record}.hea"
    h = read_header(path, rel)
    folder = path.parent
    base = str(path.with_suffix(""))
    if annotation_extensions is None:
        annotation_extensions = [e for e in ANNOTATION_EXTENSIONS if (folder / f"{path.stem}.{e}").exists()]
    fs = check_fs(rel, h.fs)
    start, has_date = start_of(h)
    segments: list[tuple[float, float, bool]] = []
    channels: list[Channel] = []
    if hasattr(h, "seg_name"):
        fmt = "wfdb-multisegment"
        segments = check_segments(h, folder, rel, record, fs)
        r = wfdb.rdrecord(base, m2s=True, smooth_frames=True)
        data = np.asarray(r.p_signal, dtype=np.float64)
        for i, name in enumerate(signal_names(r.sig_name)):
            channels.append(Channel(name, r.units[i] or "", fs, np.ascontiguousarray(data[:, i])))
    else:
        fmt = "wfdb"
        check_signal_files(h, folder, rel)
        r = wfdb.rdrecord(base, smooth_frames=False)
        raw_gain = uncalibrated_signals(path)
        for i, name in enumerate(signal_names(r.sig_name)):
            spf = (r.samps_per_frame[i] or 1) if r.samps_per_frame else 1
            x = np.asarray(r.e_p_signal[i], dtype=np.float64)
            channels.append(Channel(name, signal_units(r, i, raw_gain), fs * spf, x, adc_limits(r, i)))
        segments.append((0.0, (r.sig_len or 0) / fs, False))
    anns, bad = _annotations(Path(base), fs, annotation_extensions, record)
    rec = LoadedRecord(
        record=record,
        format=fmt,
        patient_key="",
        start=start,
        channels=channels,
        annotations=anns,
        bad_files=bad,
        events=alarm_events(h.comments),
        segments=segments,
        start_has_date=has_date,
    )
    rec.check_not_empty(rel)
    return rec


def read_wfdb_meta(
    root: Path, record: str, annotation_extensions: list[str] | None = None, *, min_samples: int = 1
) -> LoadedRecord | None:
    """A single-rate record's header, annotations and events, without its samples.

    Returns ``None`` (read it whole with :func:`read_wfdb`) for multi-rate (``samps_per_frame``)
    single-segment records and for records shorter than ``min_samples``. Channels carry empty ``data``
    and ``n_samples`` is the header's length; read the samples span by span with :func:`read_wfdb_span`
    (``multi=True`` for a multi-segment record, ``format == "wfdb-multisegment"``, whose channels are
    those of its layout, as :func:`read_wfdb` gives them). Header and segment errors are those of
    :func:`read_wfdb`.

    >>> from medmm.datasets import shared_data_dir
    >>> root = shared_data_dir()
    >>> rec = read_wfdb_meta(root / "signals/mitdb_subset", "100") if root else None
    >>> rec is None or (rec.channels[0].data.size, rec.n_samples) == (0, 650000)
    True
    """
    path = Path(root) / f"{record}.hea"
    rel = f"{record}.hea"
    h = read_header(path, rel)
    if hasattr(h, "seg_name"):
        return _multi_meta(h, path, rel, record, annotation_extensions, min_samples)
    if any((s or 1) != 1 for s in (h.samps_per_frame or [])):
        return None
    check_signal_files(h, path.parent, rel)
    if (h.sig_len or 0) < min_samples:
        return None
    fs = check_fs(rel, h.fs)
    folder = path.parent
    if annotation_extensions is None:
        annotation_extensions = [e for e in ANNOTATION_EXTENSIONS if (folder / f"{path.stem}.{e}").exists()]
    start, has_date = start_of(h)
    raw_gain = uncalibrated_signals(path)
    channels = [
        Channel(name, signal_units(h, i, raw_gain), fs, np.zeros(0), adc_limits(h, i))
        for i, name in enumerate(signal_names(h.sig_name))
    ]
    anns, bad = _annotations(path.with_suffix(""), fs, annotation_extensions, record)
    return LoadedRecord(
        record=record,
        format="wfdb",
        patient_key="",
        start=start,
        channels=channels,
        annotations=anns,
        bad_files=bad,
        events=alarm_events(h.comments),
        segments=[(0.0, int(h.sig_len) / fs, False)],
        start_has_date=has_date,
        n_samples=int(h.sig_len),
    )


def _multi_meta(
    h, path: Path, rel: str, record: str, annotation_extensions: list[str] | None, min_samples: int
) -> LoadedRecord | None:
    import wfdb

    fs = check_fs(rel, h.fs)
    segments = check_segments(h, path.parent, rel, record, fs)
    n = int(sum(h.seg_len))
    if n < min_samples:
        return None
    if annotation_extensions is None:
        folder = path.parent
        annotation_extensions = [e for e in ANNOTATION_EXTENSIONS if (folder / f"{path.stem}.{e}").exists()]
    layout = _multi_layout(wfdb.rdheader(str(path.with_suffix("")), rd_segments=True))
    if layout is None:
        return None
    names, units = layout
    start, has_date = start_of(h)
    anns, bad = _annotations(path.with_suffix(""), fs, annotation_extensions, record)
    return LoadedRecord(
        record=record,
        format="wfdb-multisegment",
        patient_key="",
        start=start,
        channels=[Channel(name, u or "", fs, np.zeros(0)) for name, u in zip(names, units, strict=True)],
        annotations=anns,
        bad_files=bad,
        events=alarm_events(h.comments),
        segments=segments,
        start_has_date=has_date,
        n_samples=n,
    )


def _multi_layout(m) -> tuple[list[str], list[str | None]] | None:
    """Channel names and units ``rdrecord(m2s=True)`` gives a multi-segment record (header only).

    As ``wfdb.MultiRecord.multi_to_single``: a fixed layout takes its first segment's; a variable
    layout takes the layout header's names and, per channel, the units of the first segment holding
    it. ``None`` when the segments disagree on a channel's units (the whole-record read decides).
    """
    first = m.segments[0]
    if m.layout == "fixed":
        return list(first.sig_name), list(first.units)
    names = list(first.sig_name)
    units: list[str | None] = [None] * len(names)
    for seg in m.segments[1:]:
        if seg is None:
            continue
        for name, u in zip(seg.sig_name, seg.units, strict=True):
            ch = names.index(name)
            if units[ch] is None:
                units[ch] = u
            elif units[ch] != u:
                return None
    return names, units


def read_wfdb_span(
    root: Path, record: str, start: int, stop: int, *, multi: bool = False
) -> list[np.ndarray]:
    """Samples ``[start, stop)`` of every channel of a record, physical units (NaN = gap).

    The values are those :func:`read_wfdb` returns for the same samples; ``multi=True`` reads a
    multi-segment record (only the segments the span touches; gaps and absent channels are NaN).

    >>> from medmm.datasets import shared_data_dir
    >>> root = shared_data_dir()
    >>> xs = read_wfdb_span(root / "signals/mitdb_subset", "100", 10, 20) if root else None
    >>> xs is None or {x.size for x in xs} == {10}
    True
    """
    import wfdb

    base = str(Path(root) / record)
    if multi:
        r = wfdb.rdrecord(base, m2s=True, smooth_frames=True, sampfrom=start, sampto=stop)
        data = np.asarray(r.p_signal, dtype=np.float64)
        return [np.ascontiguousarray(data[:, i]) for i in range(data.shape[1])]
    r = wfdb.rdrecord(base, sampfrom=start, sampto=stop, smooth_frames=False)
    return [np.asarray(x, dtype=np.float64) for x in r.e_p_signal]
