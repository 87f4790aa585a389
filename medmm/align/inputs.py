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

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medmm.models.encoders.reports import finding_vector
from medmm.models.store import write_store

__all__ = ["image_items", "report_items", "signal_items", "write_inputs"]

log = logging.getLogger(__name__)


def _rows(frame: pd.DataFrame) -> list[Any]:
    return list(frame.itertuples())


def _item_ids(w: pd.DataFrame) -> list[str]:
    """Signal item ids ``record|channel|window``."""
    return [f"{r}|{c}|{n}" for r, c, n in zip(w["record"], w["channel"], w["window"], strict=True)]


def _epoch(series: pd.Series) -> pd.Series:
    ts = pd.to_datetime(series, errors="coerce", utc=True)
    return (ts - pd.Timestamp(0, tz="UTC")).dt.total_seconds()


def image_items(run_dir: Path) -> pd.DataFrame:
    """Items of ``volumes.parquet`` (empty when absent)."""
    path = Path(run_dir) / "volumes.parquet"
    if not path.exists():
        return pd.DataFrame(columns=["modality", "item_id", "patient_id", "study_id", "time"])
    v = pd.read_parquet(path)
    v = v[v["patient_id"].notna()]
    return pd.DataFrame(
        {
            "modality": "image",
            "item_id": v["volume_id"],
            "patient_id": v["patient_id"],
            "study_id": v["study_id"],
            "time": _epoch(v["study_time"]),
        }
    )


def report_items(run_dir: Path, label_findings: Sequence[str] = ()) -> tuple[pd.DataFrame, dict[str, dict]]:
    """Items of the reports stage and, for ``label_findings``, per-report labels (present 1, absent 0)."""
    man_path = Path(run_dir) / "manifest_reports.parquet"
    if not man_path.exists() or not (Path(run_dir) / "report_labels.parquet").exists():
        return pd.DataFrame(columns=["modality", "item_id", "patient_id", "study_id", "time"]), {}
    man = pd.read_parquet(man_path)
    man = man[(man["status"] == "ingested") & man["patient_id"].notna()]
    labels: dict[str, dict] = {}
    if label_findings:
        rl = pd.read_parquet(Path(run_dir) / "report_labels.parquet")
        for rid, grp in rl.groupby("report_id"):
            status = dict(zip(grp["finding"], grp["status"].astype(str), strict=False))
            labels[str(rid)] = {
                f: {"present": 1, "absent": 0}.get(status.get(f, "absent")) for f in label_findings
            }
    items = pd.DataFrame(
        {
            "modality": "report",
            "item_id": man["report_id"],
            "patient_id": man["patient_id"],
            "study_id": man["study_id"],
            "time": math.nan,
        }
    )
    return items, labels


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
    spath = run_dir / "signals.parquet"
    if spath.exists():
        s = pd.read_parquet(spath)
        ecg = set(zip(s.loc[s["kind"] == "ecg", "record"], s.loc[s["kind"] == "ecg", "channel"], strict=True))
        w = w[[(r, c) in ecg for r, c in zip(w["record"], w["channel"], strict=True)]]
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
    labels: dict[str, dict] = {}
    bpath = run_dir / "beats.parquet"
    if pvc_label and bpath.exists():
        b = pd.read_parquet(bpath, columns=["record", "channel", "time_s", "ref_symbol"])
        for (rec, ch), grp in w.groupby(["record", "channel"]):
            beats = b[(b["record"] == rec) & (b["channel"] == ch)]
            for row in _rows(grp):
                dur = (row.stop_sample - row.start_sample) / row.fs
                inside = beats[(beats["time_s"] >= row.start_s) & (beats["time_s"] < row.start_s + dur)]
                labels[f"{rec}|{ch}|{row.window}"] = {pvc_label: int((inside["ref_symbol"] == "V").any())}
    return items, labels


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
    """Write ``inputs/<modality>`` stores for the items the records use; returns items per modality."""
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
        rl = pd.read_parquet(run_dir / "report_labels.parquet")
        vocab = sorted(rl["finding"].unique())
        by = {
            str(k): [(str(f), str(st)) for f, st in zip(g["finding"], g["status"], strict=True)]
            for k, g in rl.groupby("report_id")
        }
        x = np.stack([finding_vector(by.get(r, []), vocab) for r in rep_ids])
        write_store(run_dir / "inputs" / "report", rep_ids, x)
        (run_dir / "inputs" / "report" / "vocabulary.json").write_text(json.dumps(vocab))
        counts["report"] = len(rep_ids)
    sig_ids = sorted(records["signal_id"].dropna().unique())
    if sig_ids:
        counts["signal"] = _write_signals(run_dir, sig_ids)
    return counts


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
        feats = np.zeros((len(rows), 3), np.float32)
        for i, row in enumerate(_rows(w)):
            dur = (row.stop_sample - row.start_sample) / row.fs
            sel = b[
                (b["record"] == row.record)
                & (b["channel"] == row.channel)
                & (b["time_s"] >= row.start_s)
                & (b["time_s"] < row.start_s + dur)
            ]
            rr = sel["rr_prev_s"].dropna().to_numpy()
            feats[i] = [
                len(sel) / max(dur, 1e-6),
                rr.mean() if len(rr) else 0.0,
                rr.std() if len(rr) else 0.0,
            ]
    write_store(run_dir / "inputs" / "signal", list(ids), x, feats)
    return len(rows)
