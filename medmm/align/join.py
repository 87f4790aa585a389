"""Alignment maths (pure pandas, no I/O): group modality items into one record per patient + study.

Items are rows ``modality, item_id, patient_id, study_id (or None), time (epoch seconds or NaN)``.
Rules, applied per patient (nothing is ever joined across patients):

1. Items with a ``study_id`` define studies; a study's time is the earliest time of its items.
   Images without one (pictures of an ids table without a study column) become studies by rules 2-3
   first (one study per accession number), so reports link to them as to any study.
   Reports are linked to the studies holding an image, in this order (column
   ``report_link``): **uid** (the report's study id is the study's), **accession** (the report's
   ``accession_id`` is on the study's images; on two studies of the patient: not linked, counted),
   **date** (a report without study id: the nearest study within ``report_window_s`` of its
   ``link_time``, no other equally near - a tie is not linked, counted; a study whose images carry
   other accession numbers is another exam and never a candidate). A report whose accession number is
   only on another patient's images is refused (counted). An unlinked report with a study id forms that
   study (as before); one without joins by rule 2 (as an undated item: only the patient's only study,
   ``only_study``) or forms its own record. Times of precision ``"date"`` (a date without a time of day)
   are compared as whole days (:func:`gap_s`), here and in rule 2.
2. An item without ``study_id`` joins the study of the same patient whose time is nearest to its own,
   if within ``tolerance_s`` (inclusive; equally near studies: the smaller study id wins; an item with
   an accession number joins the study whose images carry it, and never one whose images carry only
   other accession numbers). When the
   patient has exactly one study and time cannot be compared (the item or every study is untimed), the
   item joins that study; with several, an untimed item is never guessed into one.
3. Items still unattached form new studies: timed items are chained while consecutive gaps stay within
   ``tolerance_s`` (never two accession numbers in one chain); an untimed item becomes a study of its own.
4. A study keeps one item per modality: the one nearest the study time (then the smallest id); of
   reports, the one linked the strongest way first (uid, accession, date, only study).

The result does not depend on the order of the rows, and costs O(n log n) in the items (each patient's
items are one slice of the rows sorted by patient; the nearest study is found by bisection). The rules
for one patient are :mod:`medmm.align.patient_studies`; this module turns the items table into records.

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

from medmm.align.patient_studies import LINK_COUNTS, LINKS, Item, choose_items, gap_s, studies_of_patient
from medmm.align.records import MODALITIES, RecordRow
from medmm.errors import ConfigError

__all__ = ["LINKS", "LINK_COUNTS", "REPORT_WINDOW_S", "gap_s", "join_items", "parse_duration", "record_id"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: Default ``--report-window``: a report is linked by its date to the nearest study of its patient at
#: most this far (inclusive; 3 days: a report is written the day of the exam or within a few days, an
#: outpatient report after a weekend)
REPORT_WINDOW_S = 3 * 86400.0


def parse_duration(text: str, option: str = "--window") -> float:
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
            f"{option}: bad time tolerance {text!r} (a number >= 0 with one unit s, m, h or d). "
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


def _study_key(value: Any) -> str | None:
    """A study id as a string; ``None``, NaN and ``""`` mean "no study id"."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    return str(value)


def _column(items: pd.DataFrame, name: str, order: np.ndarray, default: Any) -> list[Any]:
    """``items[name]`` in ``order`` with missing values (and a missing column) as ``default``."""
    if name not in items.columns:
        return [default] * len(order)
    values = items[name].to_numpy(dtype=object)[order]
    return [
        default if v is None or (isinstance(v, float) and math.isnan(v)) or v == "" else v for v in values
    ]


def join_items(
    items: pd.DataFrame,
    tolerance_s: float,
    labels: dict[str, dict[str, Any]] | None = None,
    *,
    report_window_s: float = REPORT_WINDOW_S,
    counts: dict[str, int] | None = None,
) -> pd.DataFrame:
    """Records (``RecordRow`` columns) from modality items; see the module docstring for the rules.

    ``labels`` maps record-independent item ids to label dicts (e.g. a report's finding labels); a
    record's labels are the union of its chosen items' labels. Optional item columns: ``precision``
    (``"date"`` for a time that is a whole day), ``accession_id`` and, for reports, ``link_time`` (the
    report's date, epoch seconds): a report links by uid, accession, then date within
    ``report_window_s``. ``counts``, when given, receives :data:`LINK_COUNTS`.
    """
    bad = sorted(set(items["modality"]) - set(MODALITIES))
    if bad:
        raise ConfigError(f"unknown modalities {bad}; expected {list(MODALITIES)}")
    items = items[items["patient_id"].notna()]
    order = np.argsort(items["patient_id"].astype(str).to_numpy(), kind="stable")
    pids = items["patient_id"].astype(str).to_numpy()[order]
    sid_col = items["study_id"].to_numpy(dtype=object)[order]
    link_time = (
        pd.to_numeric(items["link_time"], errors="coerce").to_numpy(dtype=float)[order]
        if "link_time" in items.columns
        else np.full(len(order), math.nan)
    )
    rows_it = [
        Item(str(m), str(i), _study_key(s), float(t), str(p), None if acc is None else str(acc), float(lt))
        for m, i, s, t, p, acc, lt in zip(
            items["modality"].to_numpy()[order],
            items["item_id"].to_numpy()[order],
            sid_col,
            pd.to_numeric(items["time"], errors="coerce").to_numpy(dtype=float)[order],
            _column(items, "precision", order, "datetime"),
            _column(items, "accession_id", order, None),
            link_time,
            strict=True,
        )
    ]
    # accession numbers on non-report items, by patient: a report's accession found only on another
    # patient's images is refused (counted), never linked across patients
    owners: dict[str, set[str]] = {}
    for pid, it in zip(pids, rows_it, strict=True):
        if it.accession is not None and it.modality != "report":
            owners.setdefault(it.accession, set()).add(str(pid))
    tally = dict.fromkeys(LINK_COUNTS, 0)
    bounds = np.flatnonzero(pids[1:] != pids[:-1]) + 1 if len(pids) else np.array([], int)
    starts = [0, *bounds.tolist()] if len(pids) else []
    ends = [*bounds.tolist(), len(pids)] if len(pids) else []
    labels = labels or {}
    rows: list[tuple[Any, ...]] = []
    for a, b in zip(starts, ends, strict=True):
        pid = str(pids[a])
        mine = rows_it[a:b]
        foreign = {
            it.accession
            for it in mine
            if it.modality == "report" and it.accession in owners and pid not in owners[it.accession]
        }
        for study in studies_of_patient(mine, tolerance_s, report_window_s, foreign, tally):
            for it in study.items:
                if it.modality == "report":
                    link = study.links.get(it.item_id)
                    tally[f"report_links_{link}" if link else "reports_unlinked"] += 1
            chosen = choose_items(study)
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
                    study.links.get(chosen["report"]) if "report" in chosen else None,
                    None if math.isnan(study.time) else study.precision,
                )
            )
    if counts is not None:
        counts.update(tally)
    return pd.DataFrame(rows, columns=list(RecordRow.model_fields)).astype(
        {f"has_{m}": bool for m in MODALITIES}
    )
