"""One patient's items grouped into studies: rules 1-4 of :mod:`medmm.align.join`, pure Python.

:func:`studies_of_patient` applies rules 1-3 (studies from study ids; reports linked by uid,
accession, date; items without a study id joined to the nearest study or chained into new ones) to
the :class:`Item` rows of one patient, :func:`choose_items` rule 4 (one item per modality of a
study). Times of precision ``"date"`` are whole days (:func:`gap_s`); the nearest study is found by
bisection (:class:`Timeline`), so a patient costs O(n log n) in its items.

>>> a = Item("image", "v1", "s1", 0.0)
>>> b = Item("signal", "w1", None, 600.0)
>>> [sorted(it.item_id for it in st.items) for st in studies_of_patient([a, b], 3600.0, 0.0, set(), {})]
[['v1', 'w1']]
"""

from __future__ import annotations

import bisect
import hashlib
import math
from typing import NamedTuple

from medmm.align.records import MODALITIES

__all__ = ["LINKS", "LINK_COUNTS", "Item", "Study", "Timeline", "choose_items", "gap_s", "studies_of_patient"]


class Item(NamedTuple):
    modality: str
    item_id: str
    study_id: str | None
    time: float
    precision: str = "datetime"  # of ``time`` / ``link_time``: "date" = a whole day, not midnight
    accession: str | None = None
    link_time: float = math.nan  # a report's date (``--date-column``), used only to link it


class Study:
    __slots__ = ("accessions", "items", "last", "links", "precision", "study_id", "time")

    def __init__(self, study_id: str, time: float, items: list[Item], precision: str = "datetime") -> None:
        self.study_id, self.time, self.last, self.items = study_id, time, time, items
        self.precision = precision
        self.accessions: set[str] = set()
        self.links: dict[str, str] = {}  # report item id -> how it was linked here

    def add_timed(self, it: Item) -> None:
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


class Timeline:
    """The timed studies of a patient, sorted, for nearest-study lookups (precision-aware gaps)."""

    def __init__(self, studies: list[Study]) -> None:
        timed = sorted((s.time, s.study_id, s) for s in studies if not math.isnan(s.time))
        self.times = [t for t, _, _ in timed]
        self.studies = [s for _, _, s in timed]

    def near(self, t: float, precision: str, tol: float) -> list[tuple[float, str, Study]]:
        """``(gap, study id, study)`` of the studies within ``tol`` of ``t``, nearest first."""
        lo = bisect.bisect_left(self.times, t - tol - _DAY)
        hi = bisect.bisect_right(self.times, t + tol + _DAY)
        out = []
        for st in self.studies[lo:hi]:
            g = gap_s(t, precision, st.time, st.precision)
            if g <= tol:
                out.append((g, st.study_id, st))
        return sorted(out, key=lambda x: (x[0], x[1]))


def _compatible(rep: Item, st: Study) -> bool:
    """A study whose images carry accession numbers, none of them the report's, is another exam."""
    return rep.accession is None or not st.accessions or rep.accession in st.accessions


def _index_accessions(studies: list[Study]) -> dict[str, list[Study]]:
    """Set each study's ``accessions`` (those on its non-report items); accession -> its studies, in order."""
    index: dict[str, list[Study]] = {}
    for st in studies:
        st.accessions = {
            it.accession for it in st.items if it.accession is not None and it.modality != "report"
        }
        for number in st.accessions:
            index.setdefault(number, []).append(st)
    return index


def _new_study_id(it: Item) -> str:
    """The id of a study an item without study id starts: ``stu-<modality>-<hash of the item id>``."""
    return f"stu-{it.modality}-{hashlib.sha256(it.item_id.encode()).hexdigest()[:12]}"


def _link_report(
    rep: Item,
    by_accession: dict[str, list[Study]],
    timeline: Timeline,
    report_tol: float,
    foreign: bool,
    counts: dict[str, int],
) -> tuple[Study | None, str | None]:
    """The image study a report belongs to and how (accession, date), or ``(None, None)``; uid links
    are made before (:func:`studies_of_patient`).

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


def _add_named(studies: dict[str, Study], rep: Item) -> None:
    """A report naming a study that no image links it to: that study (made when none has images)."""
    sid = str(rep.study_id)
    if sid not in studies:
        studies[sid] = Study(sid, math.nan, [], rep.precision)
    studies[sid].add_timed(rep)


def _by_time(it: Item) -> tuple[bool, float, str]:
    """Sort key: timed items by time, then untimed ones; ties by item id."""
    return math.isnan(it.time), 0.0 if math.isnan(it.time) else it.time, it.item_id


def _place_loose(loose: list[Item], studies: dict[str, Study], tol: float) -> list[Study]:
    """Rules 2 and 3 for the items without a study id (no reports); returns the new studies.

    An item joins the nearest study within ``tol`` (or the patient's only study when time cannot be
    compared); the rest are chained into new studies. Items with an accession number (pictures of an ids
    table with an accession column) go as one exam per accession number: to the study whose images carry
    it, else as any item but never into a study or chain whose images carry other accession numbers
    (another exam), so two pictures of one day with two accession numbers stay two studies.
    """
    carriers = _index_accessions(list(studies.values()))
    timeline = Timeline(list(studies.values()))
    only = next(iter(studies.values())) if len(studies) == 1 else None
    exams: dict[str, list[Item]] = {}
    units: list[list[Item]] = []
    for it in loose:
        if it.accession is None:
            units.append([it])
        else:
            exams.setdefault(it.accession, []).append(it)
    units += [exams[number] for number in sorted(exams)]
    # the earliest timed item first: its time (NaN when none is timed) and precision are the unit's
    units = [sorted(u, key=_by_time) for u in units]
    leftovers: list[tuple[float, float, str, list[Item], str | None]] = []
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
    fresh: list[Study] = []
    chain: Study | None = None
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
            fresh.append(Study(_new_study_id(it), t, list(unit), it.precision))
            fresh[-1].last = last
            chain = None if math.isnan(t) else fresh[-1]
        if acc is not None and chain is not None:
            chain.accessions.add(acc)
    return fresh


def studies_of_patient(
    items: list[Item], tol: float, report_tol: float, foreign: set[str], counts: dict[str, int]
) -> list[Study]:
    """The rules of :mod:`medmm.align.join` for one patient's items; O(n log n) in the items.

    Order: the studies of the items with a study id, the reports naming them (uid); reports naming a
    study without images that no accession number can link elsewhere make that study; the items
    without a study id join or form studies (rules 2-3), so images without a study id (pictures of an
    ids table without a study column) are studies too; then the other reports are linked (accession,
    date) to every study holding an image, or join the patient's only study, or form their own record.
    """
    studies: dict[str, Study] = {}
    reports: list[Item] = []
    loose: list[Item] = []
    for it in items:
        if it.modality == "report":
            reports.append(it)
        elif it.study_id is None:
            loose.append(it)
        elif it.study_id in studies:
            studies[it.study_id].add_timed(it)
        else:
            studies[it.study_id] = Study(it.study_id, math.nan, [], it.precision)
            studies[it.study_id].add_timed(it)
    reports.sort(key=lambda it: it.item_id)
    waiting: list[Item] = []
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
    timeline = Timeline(imaged)
    unplaced: list[Item] = []
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
    named = Timeline(list(studies.values()))
    pictures = Timeline([st for st in fresh if st.study_id in pool])
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
            out.append(Study(_new_study_id(rep), rep.time, [rep], rep.precision))
    return out


def choose_items(study: Study) -> dict[str, str]:
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
