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


class _Item(NamedTuple):
    modality: str
    item_id: str
    study_id: str | None
    time: float
    precision: str = "datetime"  # of ``time`` / ``link_time``: "date" = a whole day, not midnight
    accession: str | None = None
    link_time: float = math.nan  # a report's date (``--date-column``), used only to link it


class _Study:
    __slots__ = ("accessions", "items", "last", "links", "precision", "study_id", "time")

    def __init__(self, study_id: str, time: float, items: list[_Item], precision: str = "datetime") -> None:
        self.study_id, self.time, self.last, self.items = study_id, time, time, items
        self.precision = precision
        self.accessions: set[str] = set()
        self.links: dict[str, str] = {}  # report item id -> how it was linked here

    def add_timed(self, it: _Item) -> None:
        """Add an item that defines the study (same study id): NaN-aware earliest time."""
        self.items.append(it)
        if math.isnan(it.time):
            return
        if math.isnan(self.time) or it.time < self.time:
            self.time, self.last, self.precision = it.time, it.time, it.precision
        elif it.time == self.time and it.precision == "datetime":
            self.precision = "datetime"


#: Link types of ``report_link``, strongest first (a study keeps the report linked the strongest way).
LINKS = ("uid", "accession", "date", "only_study")
_RANK = {name: k for k, name in enumerate(LINKS)}
#: Counts of :func:`join_items` (``counts=``), all present (0 when none).
LINK_COUNTS = (
    "report_links_uid",
    "report_links_accession",
    "report_links_date",
    "report_links_only_study",
    "reports_unlinked",
    "report_date_ties",
    "report_accession_ambiguous",
    "report_accession_other_patient",
    "report_accession_unmatched",
)
_DAY = 86400.0


def gap_s(t1: float, p1: str, t2: float, p2: str) -> float:
    """Seconds between two times; when either is a date without a time of day (precision ``"date"``),
    whole days between their calendar days (a date is a day, not its midnight); ``inf`` if one is NaN.

    >>> gap_s(0.0, "datetime", 15 * 3600.0, "datetime"), gap_s(0.0, "date", 15 * 3600.0, "datetime")
    (54000.0, 0.0)
    >>> gap_s(0.0, "date", 86400.0 + 60, "datetime")
    86400.0
    """
    if math.isnan(t1) or math.isnan(t2):
        return math.inf
    if p1 == "date" or p2 == "date":
        return abs(math.floor(t1 / _DAY) - math.floor(t2 / _DAY)) * _DAY
    return abs(t1 - t2)


def _study_key(value: Any) -> str | None:
    """A study id as a string; ``None``, NaN and ``""`` mean "no study id"."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    return str(value)


class _Timeline:
    """The timed studies of a patient, sorted, for nearest-study lookups (precision-aware gaps)."""

    def __init__(self, studies: list[_Study]) -> None:
        timed = sorted((s.time, s.study_id, s) for s in studies if not math.isnan(s.time))
        self.times = [t for t, _, _ in timed]
        self.studies = [s for _, _, s in timed]

    def near(self, t: float, precision: str, tol: float) -> list[tuple[float, str, _Study]]:
        """``(gap, study id, study)`` of the studies within ``tol`` of ``t``, nearest first."""
        lo = bisect.bisect_left(self.times, t - tol - _DAY)
        hi = bisect.bisect_right(self.times, t + tol + _DAY)
        out = []
        for st in self.studies[lo:hi]:
            g = gap_s(t, precision, st.time, st.precision)
            if g <= tol:
                out.append((g, st.study_id, st))
        return sorted(out, key=lambda x: (x[0], x[1]))


def _compatible(rep: _Item, st: _Study) -> bool:
    """A study whose images carry accession numbers, none of them the report's, is another exam."""
    return rep.accession is None or not st.accessions or rep.accession in st.accessions


def _index_accessions(studies: list[_Study]) -> dict[str, list[_Study]]:
    """Set each study's ``accessions`` (those on its non-report items); accession -> its studies, in order."""
    index: dict[str, list[_Study]] = {}
    for st in studies:
        st.accessions = {
            it.accession for it in st.items if it.accession is not None and it.modality != "report"
        }
        for number in st.accessions:
            index.setdefault(number, []).append(st)
    return index


def _new_study_id(it: _Item) -> str:
    """The id of a study an item without study id starts: ``stu-<modality>-<hash of the item id>``."""
    return f"stu-{it.modality}-{hashlib.sha256(it.item_id.encode()).hexdigest()[:12]}"


def _link_report(
    rep: _Item,
    by_accession: dict[str, list[_Study]],
    timeline: _Timeline,
    report_tol: float,
    foreign: bool,
    counts: dict[str, int],
) -> tuple[_Study | None, str | None]:
    """The image study a report belongs to and how (accession, date), or ``(None, None)``; uid links
    are made before (:func:`_studies_of_patient`).

    ``foreign``: the report's accession number is on another patient's images (never linked there).
    """
    if rep.accession is not None:
        found = by_accession.get(rep.accession, [])
        if len(found) == 1:
            return found[0], "accession"
        if len(found) > 1:
            counts["report_accession_ambiguous"] += 1
            return None, None
        counts["report_accession_other_patient" if foreign else "report_accession_unmatched"] += 1
        if foreign:
            return None, None
    if rep.study_id is not None or math.isnan(rep.link_time):
        return None, None  # a report naming another study is never placed by its date
    near = [c for c in timeline.near(rep.link_time, rep.precision, report_tol) if _compatible(rep, c[2])]
    if not near:
        return None, None
    if len(near) > 1 and near[1][0] == near[0][0]:
        counts["report_date_ties"] += 1  # two studies equally near: never guessed
        return None, None
    return near[0][2], "date"


def _add_named(studies: dict[str, _Study], rep: _Item) -> None:
    """A report naming a study that no image links it to: that study (made when none has images)."""
    sid = str(rep.study_id)
    if sid not in studies:
        studies[sid] = _Study(sid, math.nan, [], rep.precision)
    studies[sid].add_timed(rep)


def _by_time(it: _Item) -> tuple[bool, float, str]:
    """Sort key: timed items by time, then untimed ones; ties by item id."""
    return math.isnan(it.time), 0.0 if math.isnan(it.time) else it.time, it.item_id


def _place_loose(loose: list[_Item], studies: dict[str, _Study], tol: float) -> list[_Study]:
    """Rules 2 and 3 for the items without a study id (no reports); returns the new studies.

    An item joins the nearest study within ``tol`` (or the patient's only study when time cannot be
    compared); the rest are chained into new studies. Items with an accession number (pictures of an ids
    table with an accession column) go as one exam per accession number: to the study whose images carry
    it, else as any item but never into a study or chain whose images carry other accession numbers
    (another exam), so two pictures of one day with two accession numbers stay two studies.
    """
    carriers = _index_accessions(list(studies.values()))
    timeline = _Timeline(list(studies.values()))
    only = next(iter(studies.values())) if len(studies) == 1 else None
    exams: dict[str, list[_Item]] = {}
    units: list[list[_Item]] = []
    for it in loose:
        if it.accession is None:
            units.append([it])
        else:
            exams.setdefault(it.accession, []).append(it)
    units += [exams[number] for number in sorted(exams)]
    # the earliest timed item first: its time (NaN when none is timed) and precision are the unit's
    units = [sorted(u, key=_by_time) for u in units]
    leftovers: list[tuple[float, float, str, list[_Item], str | None]] = []
    for unit in units:
        acc, t = unit[0].accession, unit[0].time
        target = None
        if acc is not None and acc in carriers:  # on two studies: ambiguous, a study of its own
            target = carriers[acc][0] if len(carriers[acc]) == 1 else None
        elif not math.isnan(t):
            near = [c for c in timeline.near(t, unit[0].precision, tol) if acc is None or not c[2].accessions]
            if near:
                target = near[0][2]  # equally near: the smaller study id
            elif not timeline.times and only is not None and (acc is None or not only.accessions):
                target = only  # the patient's only study has no time to compare
        elif only is not None and (acc is None or not only.accessions):
            target = only
        if target is not None:
            target.items.extend(unit)
            if acc is not None:
                target.accessions.add(acc)
        else:
            last = max((it.time for it in unit if not math.isnan(it.time)), default=math.nan)
            leftovers.append((t, last, min(it.item_id for it in unit), unit, acc))
    leftovers.sort(key=lambda u: (math.isnan(u[0]), 0.0 if math.isnan(u[0]) else u[0], u[2]))
    fresh: list[_Study] = []
    chain: _Study | None = None
    for t, last, _, unit, acc in leftovers:
        if (
            not math.isnan(t)
            and chain is not None
            and t - chain.last <= tol
            and (acc is None or not chain.accessions)
        ):
            chain.items.extend(unit)
            chain.last = max(chain.last, last)
        else:
            it = unit[0]
            fresh.append(_Study(_new_study_id(it), t, list(unit), it.precision))
            fresh[-1].last = last
            chain = None if math.isnan(t) else fresh[-1]
        if acc is not None and chain is not None:
            chain.accessions.add(acc)
    return fresh


def _studies_of_patient(
    items: list[_Item], tol: float, report_tol: float, foreign: set[str], counts: dict[str, int]
) -> list[_Study]:
    """The rules of the module docstring for one patient's items; O(n log n) in the items.

    Order: the studies of the items with a study id, the reports naming them (uid); reports naming a
    study without images that no accession number can link elsewhere make that study; the items
    without a study id join or form studies (rules 2-3), so images without a study id (pictures of an
    ids table without a study column) are studies too; then the other reports are linked (accession,
    date) to every study holding an image, or join the patient's only study, or form their own record.
    """
    studies: dict[str, _Study] = {}
    reports: list[_Item] = []
    loose: list[_Item] = []
    for it in items:
        if it.modality == "report":
            reports.append(it)
        elif it.study_id is None:
            loose.append(it)
        elif it.study_id in studies:
            studies[it.study_id].add_timed(it)
        else:
            studies[it.study_id] = _Study(it.study_id, math.nan, [], it.precision)
            studies[it.study_id].add_timed(it)
    reports.sort(key=lambda it: it.item_id)
    waiting: list[_Item] = []
    on_images = {it.accession for it in items if it.modality != "report" and it.accession is not None}
    own = set(studies)  # the studies of items with a study id, before reports add their own
    for rep in reports:  # uid first: a report naming the study is part of it (its time counts)
        if rep.study_id is not None and rep.study_id in own:
            studies[rep.study_id].add_timed(rep)
            studies[rep.study_id].links[rep.item_id] = "uid"
    for rep in reports:
        if rep.study_id is not None and rep.study_id in own:
            continue
        if rep.study_id is not None and rep.accession not in on_images:
            if rep.accession is not None:  # counted as when linking: found on no image of the patient
                counts[
                    "report_accession_other_patient"
                    if rep.accession in foreign
                    else "report_accession_unmatched"
                ] += 1
            _add_named(studies, rep)
        else:
            waiting.append(rep)
    studies = dict(sorted(studies.items()))
    fresh = _place_loose(loose, studies, tol)
    imaged = [
        st
        for st in sorted([*studies.values(), *fresh], key=lambda s: s.study_id)
        if any(it.modality == "image" for it in st.items)
    ]
    by_accession = _index_accessions(imaged)
    timeline = _Timeline(imaged)
    unplaced: list[_Item] = []
    for rep in waiting:
        # no uid link here (those were made first): a study named by a report alone is no image study
        target, link = _link_report(rep, by_accession, timeline, report_tol, rep.accession in foreign, counts)
        if target is not None and link is not None:
            target.items.append(rep)
            target.links[rep.item_id] = link
        elif rep.study_id is not None:
            _add_named(studies, rep)
        else:
            unplaced.append(rep)
    pool = {st.study_id: st for st in [*studies.values(), *imaged]}  # not the studies of signals alone
    only = next(iter(pool.values())) if len(pool) == 1 else None
    named = _Timeline(list(studies.values()))
    pictures = _Timeline([st for st in fresh if st.study_id in pool])
    out = [*sorted(studies.values(), key=lambda s: s.study_id), *fresh]
    for rep in unplaced:  # rule 2 for a report: the nearest study by its time, else the only study
        target = None
        if not math.isnan(rep.time):
            near = named.near(rep.time, rep.precision, tol) or pictures.near(rep.time, rep.precision, tol)
            if near:
                target = near[0][2]  # equally near: the smaller study id
            elif not named.times and not pictures.times:
                target = only
        else:
            target = only
        if target is not None:
            refused = (
                rep.accession is not None and rep.accession in foreign and rep.accession not in by_accession
            )
            dated = not math.isnan(rep.link_time) and not math.isnan(target.time)
            if refused or dated or not _compatible(rep, target):
                target = None  # another patient's or exam's accession, or a date that did not place it
        if target is not None:
            target.items.append(rep)
            target.links[rep.item_id] = "date" if not math.isnan(rep.time) else "only_study"
        else:
            out.append(_Study(_new_study_id(rep), rep.time, [rep], rep.precision))
    return out


def _choose(study: _Study) -> dict[str, str]:
    """Rule 4: per modality the item nearest the study time, then the smallest id; a report linked a
    stronger way (uid, accession, date, only study) first."""
    best: dict[str, tuple[int, float, str]] = {}
    t = study.time
    for it in study.items:
        rank = _RANK.get(study.links.get(it.item_id, ""), 0) if it.modality == "report" else 0
        key = (rank, gap_s(it.time, it.precision, t, study.precision), it.item_id)
        if it.modality not in best or key < best[it.modality]:
            best[it.modality] = key
    return {m: best[m][2] for m in MODALITIES if m in best}


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
        _Item(str(m), str(i), _study_key(s), float(t), str(p), None if acc is None else str(acc), float(lt))
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
        for study in _studies_of_patient(mine, tolerance_s, report_window_s, foreign, tally):
            for it in study.items:
                if it.modality == "report":
                    link = study.links.get(it.item_id)
                    tally[f"report_links_{link}" if link else "reports_unlinked"] += 1
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
                    study.links.get(chosen["report"]) if "report" in chosen else None,
                    None if math.isnan(study.time) else study.precision,
                )
            )
    if counts is not None:
        counts.update(tally)
    return pd.DataFrame(rows, columns=list(RecordRow.model_fields)).astype(
        {f"has_{m}": bool for m in MODALITIES}
    )
