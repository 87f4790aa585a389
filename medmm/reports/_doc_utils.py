"""Fast per-document helpers over spaCy arrays (sentence bounds), avoiding Python loops over tokens.

>>> import spacy
>>> nlp = spacy.blank("en"); _ = nlp.add_pipe("sentencizer")
>>> sentence_bounds(nlp("No effusion. Mild cardiomegaly."))
[(0, 3), (3, 6)]
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

__all__ = ["sentence_bounds", "sentence_of"]


def sentence_bounds(doc: Any) -> list[tuple[int, int]]:
    """Token spans ``(start, end)`` of the sentences of ``doc`` (one span if it has no boundaries)."""
    from spacy.attrs import SENT_START

    n = len(doc)
    if n == 0:
        return []
    flags = doc.to_array(SENT_START)
    starts = [0] + [int(i) for i in (flags == 1).nonzero()[0] if i > 0]
    return [(s, starts[k + 1] if k + 1 < len(starts) else n) for k, s in enumerate(starts)]


def sentence_of(starts: list[int], token: int) -> int:
    """Index of the sentence holding ``token``, by bisection of ``starts`` (the sorted first tokens of
    the sentences of :func:`sentence_bounds`, built once per document).

    >>> sentence_of([0, 3], 4)
    1
    """
    return max(0, bisect_right(starts, token) - 1)
