"""Measurements of the reports of a batch (the ``parse`` fast path): the ``MEASUREMENT`` rows and the
measurement columns of the findings they size, as :func:`~medmm.reports.extract.doc_records` makes them.

Only the few reports that may hold a size (:func:`~medmm.reports.measurements.has_measurement`) are
looked at, one by one, with the batch's entity arrays; the rest of the batch is untouched.

>>> import numpy as np
>>> m = batch_measurements(
...     measured=[0], texts=["A 12 mm nodule."], rep=np.array([0]), char_a=np.array([8]),
...     char_b=np.array([14]), is_anat=np.array([False]), sent_chars=lambda j: [(0, 15)],
...     section_at=lambda j, pos: "BODY")
>>> m.linked, [(x.start, x.size_mm) for x in m.sizes], m.row_section, m.row_sentence
({0: 0}, [(2, 12.0)], ['BODY'], [0])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from medmm.reports.measurements import Measurement, find_sizes, has_measurement, link_measurements

__all__ = ["BatchMeasurements", "batch_measurements", "may_hold_size"]


def may_hold_size(text: str) -> bool:
    """:func:`~medmm.reports.measurements.has_measurement`, skipping its case-insensitive regex for ASCII
    text without a digit or without any of the unit words the pattern ends with (most reports: a few
    substring searches cost a fraction of the scan).

    >>> may_hold_size("No effusion."), may_hold_size("A 3 MM nodule"), may_hold_size("mm"), may_hold_size("3")
    (False, True, False, False)
    """
    if text.isascii():  # then \d is 0-9, and the lower-case copy has the same characters
        if not (
            "0" in text
            or "1" in text
            or "2" in text
            or "3" in text
            or "4" in text
            or "5" in text
            or "6" in text
            or "7" in text
            or "8" in text
            or "9" in text
        ):
            return False
        low = text.lower()
        if "mm" not in low and "cm" not in low and "millimet" not in low and "centimet" not in low:
            return False
    return has_measurement(text)


@dataclass
class BatchMeasurements:
    """What :func:`batch_measurements` found.

    ``linked`` maps an entity (index in the batch arrays) to the index in ``sizes`` of the measurement
    that sizes it. Each size makes one ``MEASUREMENT`` row (:func:`~medmm.reports.entity_table.entity_table`):
    by the same index, ``row_rep`` is its report, ``row_entity`` the entity it sizes (or -1; the row
    takes that entity's assertion flags, finding and location), ``row_section`` and ``row_sentence``
    the section name and the sentence index (in its report) of its start.
    """

    sizes: list[Measurement] = field(default_factory=list)
    linked: dict[int, int] = field(default_factory=dict)
    row_rep: list[int] = field(default_factory=list)
    row_entity: list[int] = field(default_factory=list)
    row_section: list[str] = field(default_factory=list)
    row_sentence: list[int] = field(default_factory=list)


def batch_measurements(
    *,
    measured: Sequence[int],
    texts: Sequence[str],
    rep: np.ndarray,
    char_a: np.ndarray,
    char_b: np.ndarray,
    is_anat: np.ndarray,
    sent_chars: Callable[[int], list[tuple[int, int]]],
    section_at: Callable[[int, int], str],
) -> BatchMeasurements:
    """Measurements of the reports ``measured`` (indices into the batch; ``texts`` by the same index).

    Parameters
    ----------
    measured
        The reports to look at; each passes :func:`may_hold_size` (others are not searched).
    rep, char_a, char_b, is_anat
        One value per entity of the batch, grouped by report in report order: report index, char
        span, whether it is an ANATOMY entity (the others can be sized).
    sent_chars
        Char spans of the sentences of report ``j``.
    section_at
        Name of the section of report ``j`` holding a char offset.
    """
    out = BatchMeasurements()
    bounds = np.searchsorted(rep, np.arange(len(texts) + 1)) if len(measured) else np.zeros(0, dtype=np.int64)
    for j in measured:
        text = texts[j]
        found = find_sizes(text)  # the reports in `measured` passed may_hold_size
        if not found:
            continue
        lo, hi = int(bounds[j]), int(bounds[j + 1])
        sizable = [i for i in range(lo, hi) if not is_anat[i]]
        spans = [(int(char_a[i]), int(char_b[i])) for i in sizable]
        sentences = sent_chars(j)
        links = link_measurements(found, spans, sentences)
        for mi, m in enumerate(found):
            k = len(out.sizes)
            out.sizes.append(m)
            entity = sizable[links[mi]] if mi in links else -1
            if entity >= 0:
                out.linked[entity] = k
            out.row_sentence.append(next((s for s, (a, b) in enumerate(sentences) if a <= m.start < b), 0))
            out.row_section.append(section_at(j, m.start))
            out.row_rep.append(j)
            out.row_entity.append(entity)
    return out
