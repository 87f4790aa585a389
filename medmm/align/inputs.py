"""Read a run's stage tables into alignable items, and materialise the chosen items as model inputs
(``RUN_DIR/inputs/<modality>/``, see :mod:`medmm.models.store`).

- image: ``volumes.parquet`` (``volume_id``, ``path``, ``patient_id``, ``study_id``, ``study_time``);
  the canonical NIfTI is loaded, intensity-normalised (MONAI ``NormalizeIntensity`` over non-zero
  voxels) and resized to ``size`` (2D: the middle axial slice; 3D: the whole volume).
- report: ``report_labels.parquet`` + ``manifest_reports.parquet`` (report -> patient/study); the
  input is the present/absent/uncertain vector over the run's finding vocabulary.
- signal: ``windows.parquet`` (+ ``signals.parquet`` for the channel kind, ``beats.parquet`` for beat
  features); only ECG windows with ``quality >= min_quality``; NaN edge padding becomes 0 and windows
  are cropped/padded to the most common length.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medmm.align.records import MODALITIES
from medmm.errors import ConfigError
from medmm.models.encoders.reports import STATUSES
from medmm.models.store import write_store
from medmm.tables import atomic_write_text

__all__ = ["image_items", "report_items", "signal_items", "write_inputs"]

log = logging.getLogger(__name__)


def _rows(frame: pd.DataFrame) -> list[Any]:
    return list(frame.itertuples())


def _item_ids(w: pd.DataFrame) -> list[str]:
    """Signal item ids ``record|channel|window``."""
    return [f"{r}|{c}|{n}" for r, c, n in zip(w["record"], w["channel"], w["window"], strict=True)]


def _epoch(series: pd.Series) -> pd.Series:
    """ISO date-times -> epoch seconds, as the signals stage counts them (naive = read as UTC, an
    offset converted); each value is parsed on its own, so a column mixing ``...T10:11:12``,
    ``...T10:11:12.500000`` (what ``isoformat`` writes) and dates without a time is read whole
    (pandas would infer one format from the first value and make the others NaT)."""
    ts = pd.to_datetime(series, errors="coerce", utc=True, format="ISO8601")
    return (ts - pd.Timestamp(0, tz="UTC")).dt.total_seconds()


def _spans(
    b_key: np.ndarray, b_time: np.ndarray, w_key: np.ndarray, w_start: np.ndarray, w_stop: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each window (key, [start, stop)), the range ``lo:hi`` of the beats of the same key inside it,
    as positions in ``order`` (the beats sorted by key, then time). Linear in beats + windows (up to the
    sorts): one ``searchsorted`` per key, never a scan of every beat per window.
    """
    order = np.lexsort((b_time, b_key))
    bk, bt = b_key[order], b_time[order]
    keys = np.unique(w_key)
    seg_lo = np.searchsorted(bk, keys, "left")
    seg_hi = np.searchsorted(bk, keys, "right")
    lo = np.zeros(len(w_key), np.int64)
    hi = np.zeros(len(w_key), np.int64)
    w_order = np.argsort(w_key, kind="stable")
    wk = w_key[w_order]
    w_lo = np.searchsorted(wk, keys, "left")
    w_hi = np.searchsorted(wk, keys, "right")
    for a, b, c, d in zip(seg_lo, seg_hi, w_lo, w_hi, strict=True):
        idx = w_order[c:d]
        times = bt[a:b]
        lo[idx] = a + np.searchsorted(times, w_start[idx], "left")
        hi[idx] = a + np.searchsorted(times, w_stop[idx], "left")
    return order, lo, hi


def _keys(*pairs: tuple[pd.Series, pd.Series]) -> list[np.ndarray]:
    """One int64 code per (record, channel) pair, shared across the given frames' columns."""
    recs = pd.concat([r.astype(str) for r, _ in pairs], ignore_index=True)
    chans = pd.concat([c.astype(str) for _, c in pairs], ignore_index=True)
    mi = pd.MultiIndex.from_arrays([recs, chans])
    codes = mi.codes[0].astype(np.int64) * (len(mi.levels[1]) + 1) + mi.codes[1].astype(np.int64)
    out, start = [], 0
    for r, _ in pairs:
        out.append(np.asarray(codes[start : start + len(r)]))
        start += len(r)
    return out


def _window_bounds(w: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    start = w["start_s"].to_numpy(dtype=float)
    dur = (w["stop_sample"].to_numpy(dtype=float) - w["start_sample"].to_numpy(dtype=float)) / w[
        "fs"
    ].to_numpy(dtype=float)
    return start, start + dur


def image_items(run_dir: Path) -> pd.DataFrame:
    """Items of ``volumes.parquet`` (empty when absent), with ``accession_id`` and ``precision``
    (``study_time_precision``) when the table has them."""
    path = Path(run_dir) / "volumes.parquet"
    if not path.exists():
        return pd.DataFrame(columns=["modality", "item_id", "patient_id", "study_id", "time"])
    v = pd.read_parquet(path)
    v = v[v["patient_id"].notna()]
    v, missing = _on_disk(run_dir, v, "volumes.parquet")
    items = pd.DataFrame(
        {
            "modality": "image",
            "item_id": v["volume_id"],
            "patient_id": v["patient_id"],
            "study_id": v["study_id"],
            "time": _epoch(v["study_time"]),
        }
    )
    # what links a report to the study beyond its uid (absent from tables written before they existed)
    if "accession_id" in v.columns:
        items["accession_id"] = v["accession_id"]
    if "study_time_precision" in v.columns:
        items["precision"] = v["study_time_precision"]  # "date": a date without a time of day
    items.attrs["missing_files"] = missing
    return items


def _on_disk(run_dir: Path, frame: pd.DataFrame, table: str) -> tuple[pd.DataFrame, int]:
    """Rows of ``frame`` whose ``path`` (relative to the run directory) exists, and how many do not.

    A file deleted or moved since its stage ran leaves its item out (counted and logged) instead of
    stopping the whole ``align`` when its inputs are written.
    """
    paths = frame["path"].astype(str)
    ok_path = {q: (Path(run_dir) / q).is_file() for q in paths.unique()}
    ok = paths.map(ok_path).to_numpy(dtype=bool)
    missing = int((~ok).sum())
    if missing:
        first = paths[~ok].iloc[0]
        log.warning(
            "%d rows of %s name a file that is not in %s (first: %s); they are left out. Re-run the stage "
            "that wrote them with --out %s, or restore the files",
            missing,
            table,
            run_dir,
            first,
            run_dir,
        )
    return frame[ok], missing


def report_items(run_dir: Path, label_findings: Sequence[str] = ()) -> tuple[pd.DataFrame, dict[str, dict]]:
    """Items of the reports stage and, for ``label_findings``, per-report labels (present 1, absent 0).

    The items carry ``accession_id``, ``link_time`` (the shifted report date, epoch seconds) and
    ``precision`` when the manifest has them (``reports parse --accession-column / --date-column``).
    """
    man_path = Path(run_dir) / "manifest_reports.parquet"
    if not man_path.exists() or not (Path(run_dir) / "report_labels.parquet").exists():
        return pd.DataFrame(columns=["modality", "item_id", "patient_id", "study_id", "time"]), {}
    man = pd.read_parquet(man_path)
    man = man[(man["status"] == "ingested") & man["patient_id"].notna()]
    labels: dict[str, dict] = {}
    if label_findings:
        rl_path = Path(run_dir) / "report_labels.parquet"
        labels = _finding_labels(rl_path, pd.read_parquet(rl_path, columns=LABEL_READ), label_findings)
    items = pd.DataFrame(
        {
            "modality": "report",
            "item_id": man["report_id"],
            "patient_id": man["patient_id"],
            "study_id": man["study_id"],
            "time": math.nan,
        }
    )
    # what links the report to its study beyond its uid (absent from manifests written before they
    # existed): the accession pseudonym, and the shifted report date (epoch seconds) and its precision
    if "accession_id" in man.columns:
        items["accession_id"] = man["accession_id"]
    if "report_time" in man.columns:
        items["link_time"] = _epoch(man["report_time"])
    if "report_time_precision" in man.columns:
        items["precision"] = man["report_time_precision"]
    return items, labels


LABEL_READ = ["report_id", "finding", "status"]


def _finding_labels(path: Path, rl: pd.DataFrame, findings: Sequence[str]) -> dict[str, dict]:
    """Per report: finding -> 1 (present), 0 (absent or not mentioned), ``None`` (uncertain).

    A finding that is neither in this run's ``report_labels`` nor in the radiology lexicon is a typo
    (it would label every record 0), so it is refused with the run's findings listed.
    """
    from medmm.reports.lexicon import load_lexicon

    in_run = sorted({str(f) for f in rl["finding"]})
    known: set[str] = set(in_run) | set(load_lexicon().kinds) | {"normal"}
    unknown = [f for f in findings if f not in known]
    if unknown:
        near = {f: difflib.get_close_matches(f, sorted(known), n=1) for f in unknown}
        hint = "; ".join(f"{f!r}: did you mean {m[0]!r}?" for f, m in near.items() if m)
        raise ConfigError(
            f"{path}: --label-finding {unknown} is not a finding of this run or of the lexicon"
            + (f" ({hint})" if hint else "")
            + f". Fix: use one of the run's findings {in_run}"
        )
    sub = rl[rl["finding"].isin(list(findings))]
    value = sub["status"].astype(str).map({"present": 1, "absent": 0})
    per: dict[str, dict[str, int | None]] = {}
    for rid, f, v in zip(sub["report_id"].tolist(), sub["finding"].tolist(), value.tolist(), strict=True):
        per.setdefault(str(rid), {})[str(f)] = None if pd.isna(v) else int(v)
    out: dict[str, dict] = {}
    for rid in rl["report_id"].astype(str).unique():
        mine = per.get(rid, {})
        out[rid] = {f: mine.get(f, 0) for f in findings}
    return out


def signal_items(
    run_dir: Path, min_quality: float = 0.5, pvc_label: str | None = None
) -> tuple[pd.DataFrame, dict]:
    """ECG windows as items (id ``record|channel|window``) and optional per-window PVC labels."""
    run_dir = Path(run_dir)
    wpath = run_dir / "windows.parquet"
    if not wpath.exists():
        return pd.DataFrame(columns=["modality", "item_id", "patient_id", "study_id", "time"]), {}
    w = pd.read_parquet(wpath)
    w = w[(w["anchor"] == "") & (w["quality"] >= min_quality)]
    w, missing = _on_disk(run_dir, w, "windows.parquet")
    spath = run_dir / "signals.parquet"
    if spath.exists():
        s = pd.read_parquet(spath, columns=["record", "channel", "kind"])
        ecg = pd.MultiIndex.from_frame(s.loc[s["kind"] == "ecg", ["record", "channel"]])
        # a boolean array, not a list: ``w[[]]`` (no window left) would select no *columns*
        w = w[pd.MultiIndex.from_frame(w[["record", "channel"]]).isin(ecg)]
    ids = pd.Series(_item_ids(w), index=w.index)
    items = pd.DataFrame(
        {
            "modality": "signal",
            "item_id": ids.to_numpy(),
            "patient_id": w["patient_id"].to_numpy(),
            "study_id": None,
            "time": w["start_abs_s"].astype(float).to_numpy(),
        }
    )
    items.attrs["missing_files"] = missing
    labels: dict[str, dict] = {}
    bpath = run_dir / "beats.parquet"
    if pvc_label and bpath.exists() and len(w):
        pvc = _pvc_labels(w, pd.read_parquet(bpath, columns=["record", "channel", "time_s", "ref_symbol"]))
        labels = {k: {pvc_label: v} for k, v in pvc.items()}
    return items, labels


def _pvc_labels(w: pd.DataFrame, b: pd.DataFrame) -> dict[str, int | None]:
    """Per window id: 1 when a beat inside the window matched a reference ``V`` annotation, else 0;
    ``None`` (unknown) for the windows of a record without reference annotations (no beat of the
    record matched any reference symbol), which would otherwise read as "no PVC"."""
    sym = b["ref_symbol"].fillna("").astype(str)
    annotated = set(b.loc[sym != "", "record"].astype(str))
    bk, wk = _keys((b["record"], b["channel"]), (w["record"], w["channel"]))
    start, stop = _window_bounds(w)
    order, lo, hi = _spans(bk, b["time_s"].to_numpy(dtype=float), wk, start, stop)
    is_v = np.concatenate([[0], np.cumsum((sym.to_numpy() == "V")[order])])
    has_v = (is_v[hi] - is_v[lo]) > 0
    known = w["record"].astype(str).isin(annotated).to_numpy()
    return {i: (int(v) if k else None) for i, v, k in zip(_item_ids(w), has_v, known, strict=True)}


def _image_array(path: Path, size: int, spatial_dims: int) -> np.ndarray:
    import nibabel as nib
    from monai.transforms import Compose, NormalizeIntensity, Resize

    img: Any = nib.load(str(path))
    data = np.asarray(img.get_fdata(), np.float32)
    while data.ndim > 3:
        data = data[..., 0]
    if data.ndim == 2:
        data = data[..., None]
    arr = data[:, :, data.shape[2] // 2][None] if spatial_dims == 2 else data[None]
    shape = (size,) * spatial_dims
    return np.asarray(
        Compose([NormalizeIntensity(nonzero=True), Resize(shape, mode="area")])(arr), np.float32
    )


def write_inputs(
    run_dir: Path, records: pd.DataFrame, size: int = 64, spatial_dims: int = 2
) -> dict[str, int]:
    """Write ``inputs/<modality>`` stores for the items the records use; returns items per modality.

    A modality no record uses any more (e.g. every image of last night's export deleted) has its
    ``inputs/<modality>/`` folder removed: no array of an item that is gone stays in the run directory.
    """
    run_dir = Path(run_dir)
    counts: dict[str, int] = {}
    img_ids = sorted(records["image_id"].dropna().unique())
    if img_ids:
        vols = pd.read_parquet(run_dir / "volumes.parquet").set_index("volume_id")
        arrays = [_image_array(run_dir / str(vols.at[i, "path"]), size, spatial_dims) for i in img_ids]
        write_store(run_dir / "inputs" / "image", img_ids, np.stack(arrays))
        counts["image"] = len(img_ids)
    rep_ids = sorted(records["report_id"].dropna().unique())
    if rep_ids:
        rl = pd.read_parquet(run_dir / "report_labels.parquet", columns=LABEL_READ)
        vocab = sorted(rl["finding"].unique())
        x = _finding_vectors(rl, rep_ids, vocab)
        write_store(run_dir / "inputs" / "report", rep_ids, x)
        atomic_write_text(run_dir / "inputs" / "report" / "vocabulary.json", json.dumps(vocab))
        counts["report"] = len(rep_ids)
    sig_ids = sorted(records["signal_id"].dropna().unique())
    if sig_ids:
        counts["signal"] = _write_signals(run_dir, sig_ids)
    for modality in MODALITIES:
        if modality not in counts:
            _remove_store(run_dir / "inputs" / modality)
    return counts


def _remove_store(folder: Path) -> None:
    """Remove a modality's stale store (arrays of items no record uses any more), if there is one."""
    if folder.is_dir():
        shutil.rmtree(folder)
        log.info("removed %s: no record of this run has that modality any more", folder)


def _finding_vectors(rl: pd.DataFrame, ids: Sequence[str], vocab: Sequence[str]) -> np.ndarray:
    """Row ``i``: the one-hot (finding, status) vector of report ``ids[i]``, as
    :func:`medmm.models.encoders.reports.finding_vector` builds it, for all reports at once."""
    x = np.zeros((len(ids), len(vocab) * len(STATUSES)), np.float32)
    row = pd.Series(np.arange(len(ids)), index=pd.Index([str(i) for i in ids]))
    r = rl["report_id"].astype(str).map(row)
    f = rl["finding"].map(pd.Series(np.arange(len(vocab)), index=pd.Index(vocab)))
    st = rl["status"].astype(str).map({s: k for k, s in enumerate(STATUSES)})
    ok = (r.notna() & f.notna() & st.notna()).to_numpy()
    cols = f.to_numpy(dtype=float)[ok].astype(int) * len(STATUSES) + st.to_numpy(dtype=float)[ok].astype(int)
    x[r.to_numpy(dtype=float)[ok].astype(int), cols] = 1.0
    return x


def _beat_features(w: pd.DataFrame, b: pd.DataFrame) -> np.ndarray:
    """Per window: beats per second, mean and (population) std of the beats' previous RR (0 when none)."""
    bk, wk = _keys((b["record"], b["channel"]), (w["record"], w["channel"]))
    start, stop = _window_bounds(w)
    order, lo, hi = _spans(bk, b["time_s"].to_numpy(dtype=float), wk, start, stop)
    rr = b["rr_prev_s"].to_numpy(dtype=float)[order]
    ok = np.isfinite(rr)
    rr0 = np.where(ok, rr, 0.0)

    def window_sum(v: np.ndarray) -> np.ndarray:
        c = np.concatenate([[0.0], np.cumsum(v, dtype=float)])
        return c[hi] - c[lo]

    n_rr = window_sum(ok.astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_rr > 0, window_sum(rr0) / n_rr, 0.0)
        var = np.where(n_rr > 0, window_sum(rr0 * rr0) / n_rr - mean * mean, 0.0)
    rate = (hi - lo) / np.maximum(stop - start, 1e-6)
    return np.stack([rate, mean, np.sqrt(np.maximum(var, 0.0))], axis=1).astype(np.float32)


def _write_signals(run_dir: Path, ids: Sequence[str]) -> int:
    w = pd.read_parquet(run_dir / "windows.parquet")
    w = w[w["anchor"] == ""].copy()
    w["item_id"] = _item_ids(w)
    w = w.set_index("item_id").loc[list(ids)]
    cache: dict[str, np.ndarray] = {}
    rows = []
    for row in _rows(w):
        if row.path not in cache:
            cache[row.path] = np.load(run_dir / row.path, mmap_mode="r")
        rows.append(np.nan_to_num(np.asarray(cache[row.path][row.row], np.float32)))
    length = int(pd.Series([len(r) for r in rows]).mode()[0])
    x = np.zeros((len(rows), 1, length), np.float32)
    for i, r in enumerate(rows):
        x[i, 0, : min(length, len(r))] = r[:length]
    feats = None
    bpath = run_dir / "beats.parquet"
    if bpath.exists():
        b = pd.read_parquet(bpath, columns=["record", "channel", "time_s", "rr_prev_s"])
        feats = _beat_features(w, b)
    write_store(run_dir / "inputs" / "signal", list(ids), x, feats)
    return len(rows)
