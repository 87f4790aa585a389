"""Read a signals run directory (``medmm signals ingest``) into beat inputs for the anomaly model.

The signals stage writes ``beats.parquet`` (record, channel, sample at the native rate, time_s ...) but
stores waveforms only as resampled tiled windows, so the beat morphology is re-read here from the
original record: ``run.json`` names the input root, ``manifest_signals.parquet`` the record's main file
and ``signals.parquet`` its format. The ``ref_symbol`` column is carried for evaluation only; it never
reaches a model input.

>>> from pathlib import Path
>>> try:
...     load_signals_run(Path("/nonexistent"))
... except SignalsRunError as err:
...     "beats.parquet" in str(err)
True
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from medmm.anomaly.features import BeatInputs, WindowSpec, beat_inputs, concat_inputs
from medmm.errors import InputError, reason_of

__all__ = [
    "RecordBeats",
    "SignalsRunError",
    "WindowTables",
    "load_signals_run",
    "load_window_tables",
    "read_lead",
    "read_run_lead",
    "run_inputs",
]

log = logging.getLogger(__name__)

KEY_COLUMNS = ("record", "patient_id", "channel", "sample", "time_s")


class SignalsRunError(InputError):
    """A signals run directory lacks a table, or a record's waveform cannot be re-read."""


@dataclass
class RecordBeats:
    """Beats of one record/channel: keys (``beats`` rows, sorted by sample) and its lead waveform."""

    record: str
    channel: str
    beats: pd.DataFrame
    signal: NDArray[np.float64]
    fs: float


def _input_root(run_dir: Path, input_root: Path | None) -> Path:
    if input_root is not None:
        return Path(input_root)
    path = run_dir / "run.json"
    try:
        opts = json.loads(path.read_text())["stages"]["signals"]["options"]
        return Path(opts["input"])
    except (OSError, KeyError, ValueError) as exc:
        raise SignalsRunError(
            str(path), f"cannot find the signals input root ({type(exc).__name__})", "pass --input ROOT"
        ) from exc


def read_lead(root: Path, record: str, fmt: str, main_path: str, channel: str) -> tuple[NDArray, float]:
    """The physical samples and native rate of ``channel`` of one record, read with the signals readers.

    ``channel`` is matched against the canonical name, then the source label; a record with one
    channel uses it whatever its name.
    """
    from medmm.signals import readers

    if fmt.startswith("wfdb"):
        loaded = readers.read_wfdb(root, record, annotation_extensions=[])
    elif fmt == "edf":
        loaded = readers.read_edf(root, main_path)
    elif fmt.startswith("dicom"):
        loaded = readers.read_dicom_waveform(root, main_path)
    else:
        raise SignalsRunError(record, f"format {fmt!r} has no ECG waveform", "score ECG records only")
    chans = [c for c in loaded.channels if c.name == channel] or [
        c for c in loaded.channels if c.source_name == channel
    ]
    if not chans and len(loaded.channels) == 1:
        chans = loaded.channels
    if not chans:
        raise SignalsRunError(
            record, f"channel {channel!r} not found on re-read", "re-run the signals stage on the same input"
        )
    return np.asarray(chans[0].data, dtype=np.float64), float(chans[0].fs)


def _lead_sources(run_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Per record: its format (``signals.parquet``) and main file (``manifest_signals.parquet``)."""
    fmt: dict[str, str] = {}
    sig_path = run_dir / "signals.parquet"
    if sig_path.is_file():
        sig = pd.read_parquet(sig_path, columns=["record", "format"])
        fmt = {str(r): str(f) for r, f in zip(sig["record"], sig["format"], strict=False)}
    main: dict[str, str] = {}
    man_path = run_dir / "manifest_signals.parquet"
    if man_path.is_file():
        man = pd.read_parquet(man_path)
        man = man[man["status"] == "ingested"]
        main = {str(r): str(p) for r, p in zip(man["record"], man["path"], strict=False)}
    return fmt, main


def read_run_lead(
    run_dir: Path, record: str, channel: str, input_root: Path | None = None
) -> tuple[NDArray[np.float64], float]:
    """The native-rate samples and rate of one lead of a signals run's record (see :func:`read_lead`).

    >>> from pathlib import Path
    >>> try:
    ...     read_run_lead(Path("/nonexistent"), "100", "MLII")
    ... except SignalsRunError as err:
    ...     "--input" in str(err)
    True
    """
    run_dir = Path(run_dir)
    root = _input_root(run_dir, input_root)
    fmt, main = _lead_sources(run_dir)
    return read_lead(root, str(record), fmt.get(str(record), "wfdb"), main.get(str(record), ""), channel)


@dataclass
class WindowTables:
    """What window scoring reads from a signals run: windows, every beat, the beat-detected channels
    and the run's ``good_sqi`` (signals option; 0.5 when the run does not record it)."""

    windows: pd.DataFrame
    beats: pd.DataFrame
    beat_channels: set[tuple[str, str]]
    good_sqi: float = 0.5


def load_window_tables(run_dir: Path) -> WindowTables | None:
    """``windows.parquet``, the beat keys of ``beats.parquet`` and the channels on which the signals
    stage ran beat detection (``signals.parquet`` rows with ``n_beats`` set); None without windows.

    >>> from pathlib import Path
    >>> load_window_tables(Path("/nonexistent")) is None
    True
    """
    run_dir = Path(run_dir)
    wpath = run_dir / "windows.parquet"
    if not wpath.is_file():
        return None
    windows = pd.read_parquet(wpath)
    bpath = run_dir / "beats.parquet"
    cols = ["record", "channel", "sample", "time_s"]
    beats = pd.read_parquet(bpath, columns=cols) if bpath.is_file() else pd.DataFrame(columns=cols)
    spath = run_dir / "signals.parquet"
    if spath.is_file():
        sig = pd.read_parquet(spath, columns=["record", "channel", "n_beats"])
        sig = sig[sig["n_beats"].notna()]
        chans = {(str(r), str(c)) for r, c in zip(sig["record"], sig["channel"], strict=True)}
    else:  # no signals table: the channels with a detected beat
        chans = {(str(r), str(c)) for r, c in zip(beats["record"], beats["channel"], strict=True)}
    good_sqi = 0.5
    try:
        opts = json.loads((run_dir / "run.json").read_text())["stages"]["signals"]["options"]
        good_sqi = float(opts.get("good_sqi", good_sqi))
    except (OSError, KeyError, ValueError, TypeError):
        pass  # an older or hand-made run: the signals stage's default
    return WindowTables(windows, beats, chans, good_sqi)


def load_signals_run(
    run_dir: Path, input_root: Path | None = None, skipped: list[str] | None = None
) -> list[RecordBeats]:
    """Every (record, channel) with beats in a signals run directory, with its re-read waveform.

    Raises :class:`SignalsRunError` when ``beats.parquet`` is missing; a record whose waveform cannot
    be re-read is skipped and its reason (``"record: ClassName: message"``) appended to ``skipped``
    (the CLI writes them to ``run.json``); the other records go on.
    """
    run_dir = Path(run_dir)
    beats_path = run_dir / "beats.parquet"
    if not beats_path.is_file():
        raise SignalsRunError(
            str(beats_path), "no beats.parquet", "run `medmm signals ingest INPUT --out RUN_DIR` first"
        )
    beats = pd.read_parquet(beats_path)
    missing = {"record", "channel", "sample"} - set(beats.columns)
    if missing:
        raise SignalsRunError(
            str(beats_path), f"columns {sorted(missing)} missing", "re-run the signals stage"
        )
    if beats.empty:
        return []
    root = _input_root(run_dir, input_root)
    fmt, main = _lead_sources(run_dir)
    out = []
    for (record, channel), rows in beats.groupby(["record", "channel"], sort=True):
        rows = rows.sort_values("sample", kind="stable").drop_duplicates("sample").reset_index(drop=True)
        try:
            signal, fs = read_lead(
                root, str(record), fmt.get(str(record), "wfdb"), main.get(str(record), ""), str(channel)
            )
        except (InputError, OSError, ValueError) as exc:
            log.warning("skipping a record whose waveform cannot be re-read: %s", type(exc).__name__)
            if skipped is not None:
                skipped.append(f"{record}: {reason_of(exc)}")
            continue
        out.append(RecordBeats(str(record), str(channel), rows, signal, fs))
    return out


def run_inputs(records: list[RecordBeats], spec: WindowSpec | None = None) -> tuple[BeatInputs, pd.DataFrame]:
    """Model inputs of all beats plus their key columns (same row order); ``group`` = record index.

    >>> import numpy as np, pandas as pd
    >>> sig = np.zeros(3600); sig[::360] = 1.0
    >>> rb = RecordBeats("r", "ECG", pd.DataFrame({"record": "r", "channel": "ECG",
    ...                  "sample": np.arange(360, 3600, 360)}), sig, 360.0)
    >>> bi, keys = run_inputs([rb])
    >>> len(bi) == len(keys) == 9, list(keys.columns)[:3]
    (True, ['record', 'patient_id', 'channel'])
    """
    spec = spec or WindowSpec()
    parts, keys = [], []
    for i, rb in enumerate(records):
        samples = rb.beats["sample"].to_numpy(dtype=np.int64)
        parts.append(beat_inputs(rb.signal, rb.fs, samples, spec, group=i))
        k = pd.DataFrame(
            {
                "record": rb.record,
                "patient_id": rb.beats.get("patient_id", pd.Series([""] * len(samples)))
                .astype(str)
                .to_numpy(),
                "channel": rb.channel,
                "sample": samples,
                "time_s": rb.beats["time_s"].to_numpy(dtype=np.float64)
                if "time_s" in rb.beats
                else samples / rb.fs,
            }
        )
        if "ref_symbol" in rb.beats:
            k["ref_symbol"] = rb.beats["ref_symbol"].astype(str).to_numpy()
        keys.append(k)
    frame = pd.concat(keys, ignore_index=True) if keys else pd.DataFrame(columns=list(KEY_COLUMNS))
    return concat_inputs(parts), frame
