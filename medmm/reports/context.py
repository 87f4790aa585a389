"""ConText attributes beyond negation: ``historical`` and ``experiencer`` (family) of each entity.

After Chapman/Harkema's ConText (and medspaCy's default rules), with the trigger phrases in
``data/context.yaml`` (which also says why "prior", "old", "healed" and "status post" are not
historical triggers in radiology). Rules, per sentence, for each entity; the two attributes are
independent of each other and of negation/uncertainty:

* ``historical``: walking left from the entity, the nearest trigger that is a historical trigger
  ("history of", "h/o", "past medical history") or a termination of it ("now", "new", "but",
  "there is", ";" ...) decides: a historical trigger makes the entity historical;
* ``family``: the same walk with the family triggers ("family history of", "mother", "father" ...)
  and their terminations ("patient", "she", "but" ...); else, walking right, the nearest following
  family trigger ("in his mother") decides, stopped by a termination or a preceding family trigger.

A preceding negation trigger of :mod:`medmm.reports.negation` ("no", "without") also ends both scopes
(the assertion component adds them as ``ctx_term``): in "consistent with history of right lower
lobectomy, without consolidation, pneumothorax or effusion" the negated findings are this exam's.

Triggers are given as objects with ``start``, ``end`` and ``kind`` (a
:class:`~medmm.reports.negation.Trigger`; several kinds joined by ``+``), token spans that never overlap.

>>> from medmm.reports.negation import Trigger
>>> t = [Trigger(0, 2, "hist_pre"), Trigger(4, 5, "hist_term")]
>>> context_of(2, 3, t, 0, 9), context_of(6, 7, t, 0, 9)
((True, False), (False, False))
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from medmm.reports.lexicon import load_data

__all__ = ["CONTEXT_KINDS", "EXPERIENCERS", "SentenceContext", "context_of", "context_phrases"]

#: Trigger kinds: historical (preceding, termination), family (preceding, following, termination),
#: and terminations of both.
CONTEXT_KINDS = ("hist_pre", "hist_term", "fam_pre", "fam_post", "fam_term", "ctx_term")
#: Values of ``entities.experiencer``: the patient, or a relative (ConText's "other" experiencer).
EXPERIENCERS = ("patient", "family")
_HIST_STOP = {"hist_term", "ctx_term"}
_FAM_STOP = {"fam_term", "ctx_term"}
_FAM_POST_STOP = {"fam_term", "ctx_term", "fam_pre"}


@lru_cache(maxsize=1)
def context_phrases() -> dict[str, tuple[str, ...]]:
    """Trigger phrases per kind of :data:`CONTEXT_KINDS`, from ``data/context.yaml`` (lower case).

    >>> p = context_phrases()
    >>> "history of" in p["hist_pre"], "prior" in p["hist_pre"], "in his mother" in p["fam_post"]
    (True, False, True)
    """
    spec = load_data("context.yaml")
    hist, fam = spec["historical"], spec["family"]
    relatives = [str(r).lower() for r in fam["relatives"]]
    out = {
        "hist_pre": hist["preceding"],
        "hist_term": hist["termination"],
        "fam_pre": [
            *fam["preceding"],
            *relatives,
            *(f"{r} 's" for r in relatives),
            *(f"{r}'s" for r in relatives),
        ],
        "fam_post": [str(form).format(rel=r) for form in fam["following_forms"] for r in relatives],
        "fam_term": fam["termination"],
        "ctx_term": spec["termination"],
    }
    return {k: tuple(sorted({str(p).lower() for p in v})) for k, v in out.items()}


def context_of(
    ent_start: int, ent_end: int, triggers: Sequence[Any], sent_start: int, sent_end: int
) -> tuple[bool, bool]:
    """``(historical, family)`` of the entity at tokens ``[ent_start, ent_end)`` (the reference rule:
    every trigger of the sentence looked at; :class:`SentenceContext` gives the same in linear time).

    Parameters
    ----------
    ent_start, ent_end
        Token span of the entity.
    triggers
        Non-overlapping context triggers (``start``, ``end``, ``kind``); those outside the sentence
        are ignored.
    sent_start, sent_end
        Token span of the entity's sentence.

    >>> from medmm.reports.negation import Trigger
    >>> context_of(0, 1, [Trigger(1, 4, "fam_post")], 0, 5)
    (False, True)
    """
    inside = [t for t in triggers if t.start >= sent_start and t.end <= sent_end]
    before = sorted((t for t in inside if t.end <= ent_start), key=lambda t: -t.start)
    after = sorted((t for t in inside if t.start >= ent_end), key=lambda t: t.start)

    def walk(seq: list[Any], hit: str, stop: set[str]) -> bool:
        for t in seq:
            kinds = set(t.kind.split("+"))
            if hit in kinds:
                return True
            if kinds & stop:
                return False
        return False

    family = walk(before, "fam_pre", _FAM_STOP) or walk(after, "fam_post", _FAM_POST_STOP)
    return walk(before, "hist_pre", _HIST_STOP), family


class SentenceContext:
    """The context triggers of one sentence, sorted, with each attribute's decision at every trigger
    worked out once (a prefix scan for the walks left, a suffix scan for the walk right): an entity's
    attributes are then one bisection away, so a long sentence with thousands of entities and triggers
    costs linear work, whatever triggers lie between.

    >>> from medmm.reports.negation import Trigger
    >>> t = [Trigger(0, 2, "hist_pre"), Trigger(3, 4, "fam_pre"), Trigger(6, 7, "ctx_term")]
    >>> sc = SentenceContext(t, 0, 10)
    >>> sc.context(4, 5), sc.context(8, 9)
    ((True, True), (False, False))
    """

    def __init__(self, triggers: Sequence[Any], sent_start: int, sent_end: int) -> None:
        inside = sorted(
            (t for t in triggers if t.start >= sent_start and t.end <= sent_end),
            key=lambda t: (t.start, t.end),
        )
        self.ends = [t.end for t in inside]
        self.starts = [t.start for t in inside]
        kinds = [set(t.kind.split("+")) for t in inside]
        hist: list[bool] = []  # decision of the walk left from just after trigger i
        fam: list[bool] = []
        h = f = False
        for k in kinds:
            if "hist_pre" in k:
                h = True
            elif k & _HIST_STOP:
                h = False
            if "fam_pre" in k:
                f = True
            elif k & _FAM_STOP:
                f = False
            hist.append(h)
            fam.append(f)
        self.hist, self.fam = hist, fam
        post = [False] * (len(kinds) + 1)  # decision of the walk right from just before trigger i
        for i in range(len(kinds) - 1, -1, -1):
            k = kinds[i]
            post[i] = True if "fam_post" in k else (False if k & _FAM_POST_STOP else post[i + 1])
        self.post = post

    def context(self, ent_start: int, ent_end: int) -> tuple[bool, bool]:
        """``(historical, family)`` of the entity at tokens ``[ent_start, ent_end)``, as
        :func:`context_of`."""
        i = bisect_right(self.ends, ent_start) - 1  # the nearest trigger ending before the entity
        hist = self.hist[i] if i >= 0 else False
        family = self.fam[i] if i >= 0 else False
        if not family:  # as negation: the walk right when the walk left found no family trigger
            family = self.post[bisect_left(self.starts, ent_end)]
        return hist, family
