"""Report-level labels of a whole batch at once, from the entity columns (the ``parse`` fast path).

The same rules and row order as :func:`~medmm.reports.findings.label_tuples` (tested against it on the
IU reports): per report and finding, the scored mentions (sections ``FINDINGS``/``IMPRESSION``/``BODY``,
finding not ``normal``) are grouped; the best mention is the lowest rank (present < uncertain <
absent), then the earliest start, then the first one; rows come in the order of each finding's first
scored mention, then the ``normal`` row of the report. Groups are found with numpy and the columns
taken from the entity columns with Arrow; only the reports without any abnormal finding run the
normal-phrase regex, one by one.

>>> import numpy as np, pyarrow as pa
>>> t = batch_labels(
...     ids=pa.array(["r1", "r2"]), rep=np.array([0, 0]), finding=np.array([0, 0]),
...     finding_names=["edema"], scored=np.array([True, True]), negated=np.array([True, False]),
...     uncertain=np.array([False, True]), start=np.array([0, 10]), end=np.array([5, 15]),
...     text=pa.array(["edema", "edema"]), section=pa.array(["FINDINGS", "FINDINGS"]),
...     normal_phrase=lambda j: None, section_at=lambda j, pos: "BODY")
>>> list(zip(*t.select(["report_id", "finding", "status", "n_mentions"]).to_pydict().values()))
[('r1', 'edema', 'uncertain', 2), ('r1', 'normal', 'absent', 0), ('r2', 'normal', 'present', 0)]
>>> t["evidence"].to_pylist()
['edema', 'edema uncertain: edema', 'no abnormal finding present or uncertain']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from medmm.reports.findings import NORMAL

__all__ = ["LABEL_SCHEMA", "NO_ABNORMAL", "batch_labels"]

_S, _I = pa.string(), pa.int64()
#: Arrow schema of the report-label rows (the columns of :class:`~medmm.reports.records.ReportLabelRow`).
LABEL_SCHEMA = pa.schema(
    [
        ("report_id", _S),
        ("finding", _S),
        ("status", _S),
        ("evidence", _S),
        ("section", _S),
        ("start", _I),
        ("end", _I),
        ("n_mentions", _I),
    ]
)
#: Evidence of a ``normal`` label when no abnormal finding and no explicit normal phrase was found.
NO_ABNORMAL = "no abnormal finding present or uncertain"
_STATUS = pa.array(["present", "uncertain", "absent"], _S)


def batch_labels(
    *,
    ids: pa.Array,
    rep: np.ndarray,
    finding: np.ndarray,
    finding_names: Sequence[str],
    scored: np.ndarray,
    negated: np.ndarray,
    uncertain: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    text: pa.Array,
    section: pa.Array,
    normal_phrase: Callable[[int], tuple[int, int, str] | None],
    section_at: Callable[[int, int], str],
) -> pa.Table:
    """Label rows of the reports of ``ids``, grouped by report in report order (:data:`LABEL_SCHEMA`).

    Parameters
    ----------
    ids
        Report ids; each report gets at least its ``normal`` row.
    rep, finding, scored, negated, uncertain, start, end, text, section
        One value per entity, entities grouped by report in report order and in text order within
        it: report index (into ``ids``), finding code (index into ``finding_names``, ``-1`` for
        none), whether its section is scored, assertion flags, char span, text and section name.
    normal_phrase
        ``(start, end, text)`` of the first explicit normal statement of report ``j`` in its scored
        sections, or ``None``; asked only for reports without an abnormal finding.
    section_at
        Name of the section of report ``j`` holding a char offset.
    """
    n_reports = len(ids)
    names = pa.array([*finding_names, NORMAL], _S)
    normal_code = next((i for i, n in enumerate(finding_names) if n == NORMAL), -2)
    sel = np.flatnonzero((finding >= 0) & scored & (finding != normal_code))
    rank = np.where(negated[sel], 2, np.where(uncertain[sel], 1, 0))
    key = rep[sel] * (len(finding_names) + 1) + finding[sel]
    order = np.lexsort((sel, start[sel], rank, key))  # best mention of a group first
    ks = key[order]
    head = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]]) if len(ks) else np.zeros(0, dtype=np.int64)
    best = sel[order[head]]  # entity index of each group's best mention
    best_rank = rank[order[head]]
    count = np.diff(np.r_[head, len(ks)])
    first = np.minimum.reduceat(sel[order], head) if len(head) else head  # first scored mention
    g = np.argsort(first, kind="stable")  # groups in report order, by first mention
    best, best_rank, count, first = best[g], best_rank[g], count[g], first[g]
    g_rep = rep[best]
    g_start, g_end = start[best], end[best]
    groups = pa.table(
        [
            ids.take(pa.array(g_rep, _I)),
            names.take(pa.array(finding[best], _I)),
            _STATUS.take(pa.array(best_rank, _I)),
            text.take(pa.array(best, _I)),
            section.take(pa.array(best, _I)),
            pa.array(g_start, _I),
            pa.array(g_end, _I),
            pa.array(count, _I),
        ],
        schema=LABEL_SCHEMA,
    )
    # the abnormal finding of each report: a group present or uncertain, earliest best mention first
    ab = np.flatnonzero(best_rank != 2)
    ab = ab[np.lexsort((first[ab], g_start[ab], g_rep[ab]))]
    ab = ab[np.r_[True, g_rep[ab][1:] != g_rep[ab][:-1]]] if len(ab) else ab
    abnormal = np.full(n_reports, -1, dtype=np.int64)
    abnormal[g_rep[ab]] = ab
    normal = _normal_rows(ids, groups, abnormal, normal_phrase, section_at)
    # each report's groups, then its normal row
    bounds = np.searchsorted(g_rep, np.arange(n_reports + 1))
    take = np.empty(len(best) + n_reports, dtype=np.int64)
    take[np.arange(len(best)) + g_rep] = np.arange(len(best))
    take[bounds[1:] + np.arange(n_reports)] = len(best) + np.arange(n_reports)
    return pa.concat_tables([groups, normal]).take(pa.array(take, _I)).combine_chunks()


def _normal_rows(
    ids: pa.Array,
    groups: pa.Table,
    abnormal: np.ndarray,
    normal_phrase: Callable[[int], tuple[int, int, str] | None],
    section_at: Callable[[int, int], str],
) -> pa.Table:
    """The ``normal`` row of each report: ``absent`` with its abnormal group as evidence
    (``"<finding> <status>: <text>"``), else ``present`` with the report's explicit normal phrase, else
    ``present`` with :data:`NO_ABNORMAL`."""
    has = np.flatnonzero(abnormal >= 0)
    a = pa.array(abnormal[has], _I)
    found = pc.binary_join_element_wise(
        pc.binary_join_element_wise(groups["finding"].take(a), groups["status"].take(a), " "),
        groups["evidence"].take(a),
        ": ",
    )
    # reports without an abnormal finding, one by one
    other = np.flatnonzero(abnormal < 0).tolist()
    evidence: list[str] = []
    section: list[str | None] = []
    start: list[int | None] = []
    end: list[int | None] = []
    n: list[int] = []
    for j in other:
        phrase = normal_phrase(j)
        if phrase is None:
            evidence.append(NO_ABNORMAL)
            section.append(None)
            start.append(None)
            end.append(None)
            n.append(0)
        else:
            evidence.append(phrase[2])
            section.append(section_at(j, phrase[0]))
            start.append(phrase[0])
            end.append(phrase[1])
            n.append(1)
    rows = pa.table(
        [
            ids.take(pa.array(has, _I)),
            pa.nulls(len(has), _S),
            pa.nulls(len(has), _S),
            found,
            groups["section"].take(a),
            groups["start"].take(a),
            groups["end"].take(a),
            pa.array(np.zeros(len(has), dtype=np.int64), _I),
        ],
        schema=LABEL_SCHEMA,
    )
    rest = pa.table(
        [
            ids.take(pa.array(other, _I)),
            pa.nulls(len(other), _S),
            pa.nulls(len(other), _S),
            pa.array(evidence, _S),
            pa.array(section, _S),
            pa.array(start, _I),
            pa.array(end, _I),
            pa.array(n, _I),
        ],
        schema=LABEL_SCHEMA,
    )
    order = np.empty(len(abnormal), dtype=np.int64)
    order[has] = np.arange(len(has))
    order[other] = len(has) + np.arange(len(other))
    both = pa.concat_tables([rows, rest]).take(pa.array(order, _I))
    status = pa.array(np.where(abnormal >= 0, 1, 0), _I)
    both = both.set_column(1, "finding", pa.array([NORMAL] * len(abnormal), _S))
    return both.set_column(2, "status", pa.array(["present", "absent"], _S).take(status))
