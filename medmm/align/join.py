"""Alignment maths (pure pandas, no I/O): group modality items into one record per patient + study.

Items are rows ``modality, item_id, patient_id, study_id (or None), time (epoch seconds or NaN)``.
Rules, applied per patient (nothing is ever joined across patients):

1. Items with a ``study_id`` define studies; a study's time is the earliest time of its items.
2. An item without ``study_id`` joins the study of the same patient whose time is nearest to its own,
   if within ``tolerance_s``. When the patient has exactly one study and time cannot be compared (the
   item or every study is untimed), the item joins that study.
3. Items still unattached form new studies: timed items are chained while consecutive gaps stay within
   ``tolerance_s``; an untimed item becomes a study of its own.
4. A study keeps one item per modality: the one nearest the study time (then the smallest id).

>>> import pandas as pd
>>> items = pd.DataFrame({"modality": ["image", "report", "signal", "signal"],
...     "item_id": ["v1", "r1", "w1", "w2"], "patient_id": ["p1", "p1", "p1", "p2"],
...     "study_id": ["s1", "s1", None, None],
...     "time": [0.0, float("nan"), 600.0, 0.0]})
>>> rec = join_items(items, tolerance_s=3600)
>>> rec[["patient_id", "image_id", "report_id", "signal_id"]].fillna("-").values.tolist()
[['p1', 'v1', 'r1', 'w1'], ['p2', '-', '-', 'w2']]
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import numpy as np
import pandas as pd

from medmm.align.records import MODALITIES, RecordRow
from medmm.errors import ConfigError

__all__ = ["join_items", "parse_duration", "record_id"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``"90s"``, ``"30m"``, ``"24h"``, ``"2d"`` or plain seconds -> seconds.

    >>> parse_duration("24h"), parse_duration("90")
    (86400.0, 90.0)
    >>> parse_duration("-2h")
    Traceback (most recent call last):
    ...
    medmm.errors.ConfigError: bad time tolerance '-2h'; use a duration >= 0 such as 90s, 30m, ...
    """
    t = text.strip().lower()
    try:
        seconds = float(t[:-1]) * _UNITS[t[-1]] if t and t[-1] in _UNITS else float(t)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ConfigError(
            f"bad time tolerance {text!r}; use a duration >= 0 such as 90s, 30m, 24h, 2d (or plain seconds)"
        )
    return seconds


def record_id(patient_id: str, study_id: str) -> str:
    """Stable record id from the (pseudonymous) patient and study ids.

    >>> record_id("pat-1", "stu-1")
    'rec-...'
    """
    return "rec-" + hashlib.sha256(f"{patient_id}\x1f{study_id}".encode()).hexdigest()[:16]


def _iso(t: float) -> str | None:
    if t is None or math.isnan(t):
        return None
    return pd.Timestamp(t, unit="s").isoformat()


def _studies_of_patient(items: pd.DataFrame, tol: float) -> list[dict[str, Any]]:
    studies: dict[str, dict[str, Any]] = {}
    for sid, grp in items[items["study_id"].notna()].groupby("study_id", sort=True):
        studies[str(sid)] = {
            "study_id": str(sid),
            "time": float(np.nanmin(grp["time"])) if grp["time"].notna().any() else math.nan,
            "items": list(grp.itertuples(index=False)),
        }
    loose = items[items["study_id"].isna()].sort_values(["time", "item_id"], na_position="last")
    leftovers: list[Any] = []
    loose_rows: list[Any] = list(loose.itertuples(index=False))
    for it in loose_rows:
        timed = [s for s in studies.values() if not math.isnan(s["time"])]
        target = None
        if not math.isnan(it.time):
            best = min(timed, key=lambda s: (abs(s["time"] - it.time), s["study_id"]), default=None)
            if best is not None and abs(best["time"] - it.time) <= tol:
                target = best
            elif not timed and len(studies) == 1:
                target = next(iter(studies.values()))  # the patient's only study has no time to compare
        elif len(studies) == 1:
            target = next(iter(studies.values()))
        if target is None:
            leftovers.append(it)
        else:
            target["items"].append(it)
    chain: dict[str, Any] | None = None
    for it in leftovers:
        if not math.isnan(it.time) and chain is not None and it.time - chain["last"] <= tol:
            chain["items"].append(it)
            chain["last"] = it.time
            continue
        sid = f"stu-{it.modality}-{hashlib.sha256(str(it.item_id).encode()).hexdigest()[:12]}"
        chain = {"study_id": sid, "time": it.time, "last": it.time, "items": [it]}
        studies[sid] = chain
        if math.isnan(it.time):
            chain = None
    return list(studies.values())


def join_items(
    items: pd.DataFrame, tolerance_s: float, labels: dict[str, dict[str, Any]] | None = None
) -> pd.DataFrame:
    """Records (``RecordRow`` columns) from modality items; see the module docstring for the rules.

    ``labels`` maps record-independent item ids to label dicts (e.g. a report's finding labels); a
    record's labels are the union of its chosen items' labels.
    """
    bad = sorted(set(items["modality"]) - set(MODALITIES))
    if bad:
        raise ConfigError(f"unknown modalities {bad}; expected {list(MODALITIES)}")
    rows = []
    for pid, grp in items.groupby("patient_id", sort=True):
        for study in _studies_of_patient(grp, tolerance_s):
            chosen: dict[str, str] = {}
            for m in MODALITIES:
                cands = [it for it in study["items"] if it.modality == m]
                if not cands:
                    continue

                def key(it: Any, t: float = study["time"]) -> tuple[float, str]:
                    d = abs(it.time - t) if not (math.isnan(it.time) or math.isnan(t)) else math.inf
                    return (d, str(it.item_id))

                chosen[m] = str(min(cands, key=key).item_id)
            lab: dict[str, Any] = {}
            for i in chosen.values():
                lab.update((labels or {}).get(i, {}))
            rows.append(
                RecordRow(
                    record_id=record_id(str(pid), study["study_id"]),
                    patient_id=str(pid),
                    study_id=study["study_id"],
                    study_time=_iso(study["time"]),
                    image_id=chosen.get("image"),
                    report_id=chosen.get("report"),
                    signal_id=chosen.get("signal"),
                    has_image="image" in chosen,
                    has_report="report" in chosen,
                    has_signal="signal" in chosen,
                    labels=json.dumps(lab, sort_keys=True) if lab else "{}",
                ).model_dump()
            )
    return pd.DataFrame(rows, columns=list(RecordRow.model_fields))
