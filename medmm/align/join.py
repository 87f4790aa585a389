"""Alignment maths (pure pandas, no I/O): group modality items into one record per patient + study.

Items are rows ``modality, item_id, patient_id, study_id (or None), time (epoch seconds or NaN)``.
Rules, applied per patient (nothing is ever joined across patients):

1. Items with a ``study_id`` define studies; a study's time is the earliest time of its items.
2. An item without ``study_id`` joins the study of the same patient whose time is nearest to its own,
   if within ``tolerance_s`` (inclusive; equally near studies: the smaller study id wins). When the
   patient has exactly one study and time cannot be compared (the item or every study is untimed), the
   item joins that study; with several, an untimed item is never guessed into one.
3. Items still unattached form new studies: timed items are chained while consecutive gaps stay within
   ``tolerance_s``; an untimed item becomes a study of its own.
4. A study keeps one item per modality: the one nearest the study time (then the smallest id).

The result does not depend on the order of the rows, and costs O(n log n) in the items (each patient's
items are one slice of the rows sorted by patient; the nearest study is found by bisection).

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

import bisect
import hashlib
import json
import math
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from medmm.align.records import MODALITIES, RecordRow
from medmm.errors import ConfigError

__all__ = ["join_items", "parse_duration", "record_id"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``"90s"``, ``"30m"``, ``"36h"``, ``"2d"`` or plain seconds -> seconds (a number >= 0, one unit).

    The tolerance is inclusive: an item exactly ``tolerance`` seconds from a study joins it.

    >>> parse_duration("36h"), parse_duration("2d"), parse_duration("90")
    (129600.0, 172800.0, 90.0)
    >>> parse_duration("-2h")
    Traceback (most recent call last):
    ...
    medmm.errors.ConfigError: --window: bad time tolerance '-2h' (a number >= 0 with one unit s, m, h ...
    """
    t = text.strip().lower()
    try:
        seconds = float(t[:-1]) * _UNITS[t[-1]] if t and t[-1] in _UNITS else float(t)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ConfigError(
            f"--window: bad time tolerance {text!r} (a number >= 0 with one unit s, m, h or d). "
            "Fix: use e.g. 90s, 30m, 36h, 2d, or plain seconds"
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


class _Item(NamedTuple):
    modality: str
    item_id: str
    study_id: str | None
    time: float


class _Study:
    __slots__ = ("items", "last", "study_id", "time")

    def __init__(self, study_id: str, time: float, items: list[_Item]) -> None:
        self.study_id, self.time, self.last, self.items = study_id, time, time, items


def _study_key(value: Any) -> str | None:
    """A study id as a string; ``None``, NaN and ``""`` mean "no study id"."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    return str(value)


def _nearest(times: list[float], sids: list[str], t: float) -> int | None:
    """Index in ``times`` (sorted, unique) of the study time nearest ``t``; ties -> smaller study id."""
    k = bisect.bisect_left(times, t)
    cands = [j for j in (k - 1, k) if 0 <= j < len(times)]
    if not cands:
        return None
    return min(cands, key=lambda j: (abs(times[j] - t), sids[j]))


def _studies_of_patient(items: list[_Item], tol: float) -> list[_Study]:
    """Rules 1-3 of the module docstring for one patient's items; O(n log n) in the items."""
    studies: dict[str, _Study] = {}
    loose: list[_Item] = []
    for it in items:
        if it.study_id is None:
            loose.append(it)
            continue
        st = studies.get(it.study_id)
        if st is None:
            studies[it.study_id] = _Study(it.study_id, it.time, [it])
        else:
            st.items.append(it)
            if not math.isnan(it.time) and not (st.time <= it.time):  # NaN-aware minimum
                st.time = it.time
    studies = dict(sorted(studies.items()))
    timed = sorted((s.time, s.study_id) for s in studies.values() if not math.isnan(s.time))
    times: list[float] = []
    sids: list[str] = []
    for t, sid in timed:  # one entry per distinct time, holding its smallest study id
        if not times or times[-1] != t:
            times.append(t)
            sids.append(sid)
    only = next(iter(studies.values())) if len(studies) == 1 else None
    loose.sort(key=lambda it: (math.isnan(it.time), 0.0 if math.isnan(it.time) else it.time, it.item_id))
    leftovers: list[_Item] = []
    for it in loose:
        target = None
        if not math.isnan(it.time):
            j = _nearest(times, sids, it.time)
            if j is not None and abs(times[j] - it.time) <= tol:
                target = studies[sids[j]]
            elif not times and only is not None:
                target = only  # the patient's only study has no time to compare
        elif only is not None:
            target = only
        if target is None:
            leftovers.append(it)
        else:
            target.items.append(it)
    out = list(studies.values())
    chain: _Study | None = None
    for it in leftovers:
        if not math.isnan(it.time) and chain is not None and it.time - chain.last <= tol:
            chain.items.append(it)
            chain.last = it.time
            continue
        sid = f"stu-{it.modality}-{hashlib.sha256(it.item_id.encode()).hexdigest()[:12]}"
        chain = _Study(sid, it.time, [it])
        out.append(chain)
        if math.isnan(it.time):
            chain = None
    return out


def _choose(study: _Study) -> dict[str, str]:
    """Rule 4: per modality the item nearest the study time, then the smallest id."""
    best: dict[str, tuple[float, str]] = {}
    t = study.time
    for it in study.items:
        d = abs(it.time - t) if not (math.isnan(it.time) or math.isnan(t)) else math.inf
        key = (d, it.item_id)
        if it.modality not in best or key < best[it.modality]:
            best[it.modality] = key
    return {m: best[m][1] for m in MODALITIES if m in best}


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
    items = items[items["patient_id"].notna()]
    order = np.argsort(items["patient_id"].astype(str).to_numpy(), kind="stable")
    pids = items["patient_id"].astype(str).to_numpy()[order]
    sid_col = items["study_id"].to_numpy(dtype=object)[order]
    rows_it = [
        _Item(str(m), str(i), _study_key(s), float(t))
        for m, i, s, t in zip(
            items["modality"].to_numpy()[order],
            items["item_id"].to_numpy()[order],
            sid_col,
            pd.to_numeric(items["time"], errors="coerce").to_numpy(dtype=float)[order],
            strict=True,
        )
    ]
    bounds = np.flatnonzero(pids[1:] != pids[:-1]) + 1 if len(pids) else np.array([], int)
    starts = [0, *bounds.tolist()] if len(pids) else []
    ends = [*bounds.tolist(), len(pids)] if len(pids) else []
    labels = labels or {}
    rows: list[tuple[Any, ...]] = []
    for a, b in zip(starts, ends, strict=True):
        pid = str(pids[a])
        for study in _studies_of_patient(rows_it[a:b], tolerance_s):
            chosen = _choose(study)
            lab: dict[str, Any] = {}
            for i in chosen.values():
                lab.update(labels.get(i, {}))
            rows.append(
                (
                    record_id(pid, study.study_id),
                    pid,
                    study.study_id,
                    _iso(study.time),
                    chosen.get("image"),
                    chosen.get("report"),
                    chosen.get("signal"),
                    "image" in chosen,
                    "report" in chosen,
                    "signal" in chosen,
                    json.dumps(lab, sort_keys=True) if lab else "{}",
                )
            )
    return pd.DataFrame(rows, columns=list(RecordRow.model_fields)).astype(
        {f"has_{m}": bool for m in MODALITIES}
    )
