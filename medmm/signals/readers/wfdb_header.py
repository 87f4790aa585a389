"""A WFDB header read and its signal files checked before any sample is decoded.

:func:`read_header` reads a ``.hea`` file (refusing an upper-case extension and an empty file with a
reason, where ``wfdb`` would say "not found" or raise ``IndexError``); :func:`check_signal_files` checks
a single-segment record's signal files against it (missing, truncated, longer than declared, unknown
format code, letter case of the name) and :func:`check_segments` every segment of a multi-segment
record. The other helpers give a header's channel names, units (``"uncalibrated"`` for a gain of 0 or
none, which ``wfdb`` silently replaces by 200), ADC limits, start time and alarm events; the readers
are :mod:`medmm.signals.readers.wfdb`.

>>> signal_names(["II", None])
['II', 'signal1']
"""

from __future__ import annotations

import contextlib
import math
import re
from datetime import date, datetime
from pathlib import Path

from medmm.signals.errors import (
    EmptyRecordError,
    HeaderError,
    MissingSegmentError,
    MissingSignalFileError,
    SampleCountMismatchError,
    TruncatedSignalError,
    UnknownFormatError,
)
from medmm.signals.readers._base import Event, check_fs

__all__ = [
    "UNCALIBRATED",
    "adc_limits",
    "alarm_events",
    "check_segments",
    "check_signal_files",
    "read_header",
    "signal_names",
    "signal_units",
    "start_of",
    "uncalibrated_signals",
    "wfdb_header_files",
]

_ALARMS = {"Asystole", "Bradycardia", "Tachycardia", "Ventricular_Tachycardia", "Ventricular_Flutter_Fib"}
_BYTES = {"8": 1.0, "16": 2.0, "24": 3.0, "32": 4.0, "61": 2.0, "80": 1.0, "160": 2.0, "212": 1.5}
_BYTES.update({"310": 4 / 3, "311": 4 / 3})
_COMPRESSED = {"508", "516", "524"}
_BITS = {"8": 8, "16": 16, "24": 24, "32": 32, "61": 16, "80": 8, "160": 16, "212": 12, "310": 10, "311": 10}
_BITS.update({"508": 8, "516": 16, "524": 24})


def read_header(path: Path, rel: str):
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
        from medmm.imaging.errors import library_message  # hides the values wfdb quotes

        # wfdb quotes what it cannot parse ("time data '31/13/1980' does not match ..."): a date
        problem = f"unreadable WFDB header ({type(exc).__name__}: {library_message(exc)})"
        raise HeaderError(rel, problem, "fix the header syntax") from exc


def wfdb_header_files(path: Path, rel: str) -> tuple[bool, list[str]]:
    """``(is_multisegment, files)``: the files a header needs, relative to its folder.

    For a multi-segment header these are the segment headers and their signal files; for a single
    record its signal files. Missing files are listed too (the reader reports them).
    """
    h = read_header(path, rel)
    if hasattr(h, "seg_name"):
        files: list[str] = []
        for seg in h.seg_name:
            if seg == "~":
                continue
            files.append(f"{seg}.hea")
            seg_hea = path.parent / f"{seg}.hea"
            if seg_hea.exists():
                with contextlib.suppress(HeaderError):
                    files += list(dict.fromkeys(read_header(seg_hea, rel).file_name or []))
        return True, files
    return False, list(dict.fromkeys(h.file_name or []))


UNCALIBRATED = "uncalibrated"


def uncalibrated_signals(path: Path) -> set[int]:
    """Indices of the signals whose ADC gain is 0 or missing in the header text at ``path``.

    ``wfdb.rdheader`` replaces both by 200 (WFDB's DEFGAIN), so only the raw line tells them apart.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "r.hea"
    >>> lines = ["r 3 250 10", "r.dat 16 0 16 0 0 0 0 II", "r.dat 16", "r.dat 16 200(0)/mV 16 0 0 0 0 V"]
    >>> _ = p.write_text("\\n".join(lines))
    >>> sorted(uncalibrated_signals(p))
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


def signal_names(names: list[str | None]) -> list[str]:
    """Signal descriptions, ``signal<i>`` where the header has none (the field is optional).

    >>> signal_names(["II", None])
    ['II', 'signal1']
    """
    return [n if n else f"signal{i}" for i, n in enumerate(names)]


def signal_units(h, i: int, uncalibrated: set[int]) -> str:
    return UNCALIBRATED if i in uncalibrated else (h.units[i] or "")


def check_signal_files(h, folder: Path, rel: str) -> None:
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


def adc_limits(h, i: int) -> tuple[float, float] | None:
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


def start_of(h) -> tuple[datetime | None, bool]:
    if h.base_time is None:
        return None, False
    if h.base_date is None:
        return datetime.combine(date(1970, 1, 1), h.base_time), False
    return datetime.combine(h.base_date, h.base_time), True


def alarm_events(comments: list[str]) -> list[Event]:
    words = [c.strip() for c in comments or []]
    alarm = next((w for w in words if w in _ALARMS), None)
    if alarm is None:
        return []
    truth = next((w for w in words if w in ("True alarm", "False alarm")), "")
    label = f"alarm:{alarm}" + (f" ({truth})" if truth else "")
    return [Event(onset_s=300.0, duration_s=0.0, label=label, source="alarm")]


def check_segments(h, folder: Path, rel: str, record: str, fs: float) -> list[tuple[float, float, bool]]:
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
                check_signal_files(read_header(seg_hea, rel), folder, f"{Path(record).parent / seg}.hea")
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
