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

import contextlib
import math
import re
from datetime import date, datetime
from pathlib import Path

import numpy as np

from medmm.errors import reason_of
from medmm.signals.errors import (
    AnnotationFileError,
    EmptyRecordError,
    HeaderError,
    MissingSegmentError,
    MissingSignalFileError,
    SampleCountMismatchError,
    TruncatedSignalError,
    UnknownFormatError,
)
from medmm.signals.readers._base import Annotations, Channel, Event, LoadedRecord, check_fs

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
_ALARMS = {"Asystole", "Bradycardia", "Tachycardia", "Ventricular_Tachycardia", "Ventricular_Flutter_Fib"}
_BYTES = {"8": 1.0, "16": 2.0, "24": 3.0, "32": 4.0, "61": 2.0, "80": 1.0, "160": 2.0, "212": 1.5}
_BYTES.update({"310": 4 / 3, "311": 4 / 3})
_COMPRESSED = {"508", "516", "524"}
_BITS = {"8": 8, "16": 16, "24": 24, "32": 32, "61": 16, "80": 8, "160": 16, "212": 12, "310": 10, "311": 10}
_BITS.update({"508": 8, "516": 16, "524": 24})


def _header(path: Path, rel: str):
    import wfdb

    if path.suffix != ".hea" and path.exists():  # wfdb opens NAME + ".hea" only: "header not found"
        raise HeaderError(
            rel,
            f"WFDB reads headers only with a lower-case .hea extension, not {path.suffix}",
            f"rename it to {path.stem}.hea",
        )
    try:
        if not path.read_bytes().strip():  # wfdb's own error would be an IndexError
            raise HeaderError(rel, "the header file is empty", "copy the record's .hea file again")
        return wfdb.rdheader(str(path.with_suffix("")))
    except HeaderError:
        raise
    except FileNotFoundError as exc:
        raise HeaderError(rel, f"header not found ({exc.filename})", "restore the .hea file") from exc
    except Exception as exc:
        raise HeaderError(
            rel, f"unreadable WFDB header ({type(exc).__name__}: {exc})", "fix the header syntax"
        ) from exc


def wfdb_header_files(path: Path, rel: str) -> tuple[bool, list[str]]:
    """``(is_multisegment, files)``: the files a header needs, relative to its folder.

    For a multi-segment header these are the segment headers and their signal files; for a single
    record its signal files. Missing files are listed too (the reader reports them).
    """
    h = _header(path, rel)
    if hasattr(h, "seg_name"):
        files: list[str] = []
        for seg in h.seg_name:
            if seg == "~":
                continue
            files.append(f"{seg}.hea")
            seg_hea = path.parent / f"{seg}.hea"
            if seg_hea.exists():
                with contextlib.suppress(HeaderError):
                    files += list(dict.fromkeys(_header(seg_hea, rel).file_name or []))
        return True, files
    return False, list(dict.fromkeys(h.file_name or []))


UNCALIBRATED = "uncalibrated"


def _uncalibrated(path: Path) -> set[int]:
    """Indices of the signals whose ADC gain is 0 or missing in the header text at ``path``.

    ``wfdb.rdheader`` replaces both by 200 (WFDB's DEFGAIN), so only the raw line tells them apart.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "r.hea"
    >>> lines = ["r 3 250 10", "r.dat 16 0 16 0 0 0 0 II", "r.dat 16", "r.dat 16 200(0)/mV 16 0 0 0 0 V"]
    >>> _ = p.write_text("\\n".join(lines))
    >>> sorted(_uncalibrated(p))
    [0, 1]
    """
    lines = [ln.strip() for ln in path.read_bytes().decode("latin-1").splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    out = set()
    for i, line in enumerate(lines[1:]):
        fields = line.split()
        gain = re.match(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", fields[2]) if len(fields) > 2 else None
        if gain is None or float(gain.group(0)) == 0.0:
            out.add(i)
    return out


def _names(names: list[str | None]) -> list[str]:
    """Signal descriptions, ``signal<i>`` where the header has none (the field is optional).

    >>> _names(["II", None])
    ['II', 'signal1']
    """
    return [n if n else f"signal{i}" for i, n in enumerate(names)]


def _units(h, i: int, uncalibrated: set[int]) -> str:
    return UNCALIBRATED if i in uncalibrated else (h.units[i] or "")


def _check_single(h, folder: Path, rel: str) -> None:
    fs = check_fs(rel, h.fs)
    del fs
    if h.n_sig == 0:
        raise EmptyRecordError(rel, "the header declares no signals", "re-export the record with its signals")
    if h.sig_len == 0:
        raise EmptyRecordError(
            rel, "the header declares 0 samples (zero-length record)", "drop or re-export it"
        )
    per_file: dict[str, list[int]] = {}
    for i, (fname, fmt) in enumerate(zip(h.file_name, h.fmt, strict=True)):
        if fmt not in _BITS:
            raise UnknownFormatError(
                rel, f"signal {i} uses unknown WFDB format code {fmt!r}", "convert it to format 16 or 212"
            )
        per_file.setdefault(fname, []).append(i)
    for fname, idx in per_file.items():
        fpath = folder / fname
        if not fpath.exists():
            other = (
                [f.name for f in folder.iterdir() if f.name.lower() == fname.lower()]
                if folder.is_dir()
                else []
            )
            if other:  # e.g. the header names 100.DAT and the copy is 100.dat (case-sensitive file systems)
                raise MissingSignalFileError(
                    rel,
                    f"signal file {fname} is missing; {other[0]} differs from it only in letter case",
                    f"rename {other[0]} to {fname} (or fix the name in the header)",
                )
            raise MissingSignalFileError(
                rel, f"signal file {fname} is missing", f"copy {fname} beside the header"
            )
        fmts = {h.fmt[i] for i in idx}
        if fmts & _COMPRESSED or h.sig_len is None:
            continue
        spf = sum((h.samps_per_frame[i] or 1) for i in idx)
        bps = _BYTES[h.fmt[idx[0]]]
        offset = (h.byte_offset[idx[0]] or 0) if h.byte_offset else 0
        expected = offset + math.ceil(h.sig_len * spf * bps)
        size = fpath.stat().st_size
        frame_bytes = math.ceil(spf * bps)
        if size < expected:
            held = int((size - offset) / (spf * bps))
            raise TruncatedSignalError(
                rel,
                f"{fname} holds {size} bytes ({held} samples) but the header declares {h.sig_len} samples "
                f"({expected} bytes)",
                "re-copy the complete signal file",
            )
        if size > expected + frame_bytes:
            held = int((size - offset) / (spf * bps))
            raise SampleCountMismatchError(
                rel,
                f"{fname} holds {held} samples but the header declares {h.sig_len}",
                "fix the sample count on the header's first line",
            )


def _adc_limits(h, i: int) -> tuple[float, float] | None:
    gain = (h.adc_gain[i] or 200.0) if h.adc_gain else 200.0
    baseline = (h.baseline[i] or 0) if h.baseline else 0
    res = (h.adc_res[i] or 0) if h.adc_res else 0
    zero = (h.adc_zero[i] or 0) if h.adc_zero else 0
    if res:
        lo, hi = zero - 2 ** (res - 1), zero + 2 ** (res - 1) - 1
    else:
        bits = _BITS.get(h.fmt[i], 16)
        lo, hi = -(2 ** (bits - 1)) + 1, 2 ** (bits - 1) - 1
    return ((lo - baseline) / gain, (hi - baseline) / gain)


def _start(h) -> tuple[datetime | None, bool]:
    if h.base_time is None:
        return None, False
    if h.base_date is None:
        return datetime.combine(date(1970, 1, 1), h.base_time), False
    return datetime.combine(h.base_date, h.base_time), True


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


def _alarm_events(comments: list[str]) -> list[Event]:
    words = [c.strip() for c in comments or []]
    alarm = next((w for w in words if w in _ALARMS), None)
    if alarm is None:
        return []
    truth = next((w for w in words if w in ("True alarm", "False alarm")), "")
    label = f"alarm:{alarm}" + (f" ({truth})" if truth else "")
    return [Event(onset_s=300.0, duration_s=0.0, label=label, source="alarm")]


def _check_segments(h, folder: Path, rel: str, record: str, fs: float) -> list[tuple[float, float, bool]]:
    """A multi-segment header's layout ``(start_s, dur_s, is_gap)``, or the error of a missing segment."""
    segments: list[tuple[float, float, bool]] = []
    total = 0
    for seg, n in zip(h.seg_name, h.seg_len, strict=True):
        if seg != "~":
            seg_hea = folder / f"{seg}.hea"
            if not seg_hea.exists():
                raise MissingSegmentError(
                    rel,
                    f"segment {seg} is listed but {seg}.hea is missing",
                    "copy every segment of the record",
                )
            if n:
                _check_single(_header(seg_hea, rel), folder, f"{Path(record).parent / seg}.hea")
        if n:
            segments.append((total / fs, n / fs, seg == "~"))
        total += int(n)
    if h.sig_len is not None and total != h.sig_len:
        raise SampleCountMismatchError(
            rel,
            f"segments add up to {total} samples but the header declares {h.sig_len}",
            "fix the header",
        )
    if total == 0:
        raise EmptyRecordError(rel, "the multi-segment record has 0 samples", "drop or re-export it")
    return segments


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
    h = _header(path, rel)
    folder = path.parent
    base = str(path.with_suffix(""))
    if annotation_extensions is None:
        annotation_extensions = [e for e in ANNOTATION_EXTENSIONS if (folder / f"{path.stem}.{e}").exists()]
    fs = check_fs(rel, h.fs)
    start, has_date = _start(h)
    segments: list[tuple[float, float, bool]] = []
    channels: list[Channel] = []
    if hasattr(h, "seg_name"):
        fmt = "wfdb-multisegment"
        segments = _check_segments(h, folder, rel, record, fs)
        r = wfdb.rdrecord(base, m2s=True, smooth_frames=True)
        data = np.asarray(r.p_signal, dtype=np.float64)
        for i, name in enumerate(_names(r.sig_name)):
            channels.append(Channel(name, r.units[i] or "", fs, np.ascontiguousarray(data[:, i])))
    else:
        fmt = "wfdb"
        _check_single(h, folder, rel)
        r = wfdb.rdrecord(base, smooth_frames=False)
        raw_gain = _uncalibrated(path)
        for i, name in enumerate(_names(r.sig_name)):
            spf = (r.samps_per_frame[i] or 1) if r.samps_per_frame else 1
            x = np.asarray(r.e_p_signal[i], dtype=np.float64)
            channels.append(Channel(name, _units(r, i, raw_gain), fs * spf, x, _adc_limits(r, i)))
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
        events=_alarm_events(h.comments),
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
    h = _header(path, rel)
    if hasattr(h, "seg_name"):
        return _multi_meta(h, path, rel, record, annotation_extensions, min_samples)
    if any((s or 1) != 1 for s in (h.samps_per_frame or [])):
        return None
    _check_single(h, path.parent, rel)
    if (h.sig_len or 0) < min_samples:
        return None
    fs = check_fs(rel, h.fs)
    folder = path.parent
    if annotation_extensions is None:
        annotation_extensions = [e for e in ANNOTATION_EXTENSIONS if (folder / f"{path.stem}.{e}").exists()]
    start, has_date = _start(h)
    raw_gain = _uncalibrated(path)
    channels = [
        Channel(name, _units(h, i, raw_gain), fs, np.zeros(0), _adc_limits(h, i))
        for i, name in enumerate(_names(h.sig_name))
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
        events=_alarm_events(h.comments),
        segments=[(0.0, int(h.sig_len) / fs, False)],
        start_has_date=has_date,
        n_samples=int(h.sig_len),
    )


def _multi_meta(
    h, path: Path, rel: str, record: str, annotation_extensions: list[str] | None, min_samples: int
) -> LoadedRecord | None:
    import wfdb

    fs = check_fs(rel, h.fs)
    segments = _check_segments(h, path.parent, rel, record, fs)
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
    start, has_date = _start(h)
    anns, bad = _annotations(path.with_suffix(""), fs, annotation_extensions, record)
    return LoadedRecord(
        record=record,
        format="wfdb-multisegment",
        patient_key="",
        start=start,
        channels=[Channel(name, u or "", fs, np.zeros(0)) for name, u in zip(names, units, strict=True)],
        annotations=anns,
        bad_files=bad,
        events=_alarm_events(h.comments),
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
