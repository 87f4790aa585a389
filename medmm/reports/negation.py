"""NegEx-style negation and uncertainty: pure scope rules plus a spaCy component that applies them.

Triggers come from negspacy's ``en_clinical`` termset with the additions and removals in
``data/assertion.yaml``. Rules, per sentence, for each entity:

* walking left from the entity, the nearest assertion trigger decides (a preceding negation or
  uncertainty trigger); a termination trigger ("but", "however", "there is" ...) stops the walk;
* otherwise, walking right, the nearest following trigger ("is not seen", "has resolved",
  "cannot be excluded") decides; a termination or any preceding trigger stops the walk;
* pseudo-triggers ("no change", "no increase") are matched (longest match wins) and ignored.

>>> t = [Trigger(0, 1, "neg_pre"), Trigger(5, 6, "term")]
>>> assertion_of(2, 3, t, 0, 10)
(True, False)
>>> assertion_of(7, 8, t, 0, 10)
(False, False)
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from medmm.reports._doc_utils import sentence_bounds, sentence_of
from medmm.reports.lexicon import load_data

__all__ = ["ASSERTION_KEY", "KINDS", "Trigger", "assertion_of", "make_assertion_component", "trigger_phrases"]

#: ``doc.user_data`` key of ``{(ent.start, ent.end): (negated, uncertain, historical, family)}`` set by
#: the component (the last two: :mod:`medmm.reports.context`).
ASSERTION_KEY = "medmm_assertion"
#: Trigger kinds: preceding/following negation and uncertainty, pseudo, termination.
KINDS = ("neg_pre", "neg_post", "unc_pre", "unc_post", "pseudo", "term")
_PRE = {"neg_pre", "unc_pre"}
_POST = {"neg_post", "unc_post"}


@dataclass(frozen=True)
class Trigger:
    """A matched trigger: token ``start``/``end`` (end exclusive) and its ``kind``.

    A phrase listed under several kinds ("versus" precedes and follows) has them joined by ``+``.
    """

    start: int
    end: int
    kind: str


def assertion_of(
    ent_start: int, ent_end: int, triggers: list[Trigger], sent_start: int, sent_end: int
) -> tuple[bool, bool]:
    """``(negated, uncertain)`` of the entity at tokens ``[ent_start, ent_end)``.

    Parameters
    ----------
    ent_start, ent_end
        Token span of the entity.
    triggers
        Non-overlapping triggers of the document (any order); those outside the sentence are ignored.
    sent_start, sent_end
        Token span of the entity's sentence.

    >>> assertion_of(0, 1, [Trigger(1, 4, "neg_post")], 0, 5)
    (True, False)
    >>> assertion_of(3, 4, [Trigger(0, 1, "unc_pre"), Trigger(1, 2, "neg_pre")], 0, 5)
    (True, False)
    """
    inside = [t for t in triggers if t.start >= sent_start and t.end <= sent_end]
    before = sorted((t for t in inside if t.end <= ent_start), key=lambda t: -t.start)
    for t in before:
        kinds = set(t.kind.split("+"))
        if "neg_pre" in kinds:
            return True, False
        if "unc_pre" in kinds:
            return False, True
        if "term" in kinds or kinds & _POST:
            break
    after = sorted((t for t in inside if t.start >= ent_end), key=lambda t: t.start)
    for t in after:
        kinds = set(t.kind.split("+"))
        if "neg_post" in kinds:
            return True, False
        if "unc_post" in kinds:
            return False, True
        if "term" in kinds or kinds & _PRE:
            break
    return False, False


@lru_cache(maxsize=1)
def trigger_phrases() -> dict[str, tuple[str, ...]]:
    """Trigger phrases per kind: negspacy ``en_clinical`` + ``data/assertion.yaml``.

    >>> "cannot exclude" in trigger_phrases()["unc_pre"]
    True
    >>> "versus" in trigger_phrases()["neg_pre"]
    False
    """
    from negspacy.termsets import termset

    base = termset("en_clinical").get_patterns()
    spec = load_data("assertion.yaml")
    names = {
        "preceding_negations": "neg_pre",
        "following_negations": "neg_post",
        "pseudo_negations": "pseudo",
        "termination": "term",
    }
    out: dict[str, set[str]] = {k: set() for k in KINDS}
    for src, kind in names.items():
        out[kind].update(p.lower() for p in base.get(src, []))
        out[kind].update(str(p).lower() for p in spec["add"].get(src, []))
        out[kind].difference_update(str(p).lower() for p in spec["remove"].get(src, []))
    out["unc_pre"].update(str(p).lower() for p in spec["uncertainty"]["preceding"])
    out["unc_post"].update(str(p).lower() for p in spec["uncertainty"]["following"])
    _add_template_answers(out)
    return {k: tuple(sorted(v)) for k, v in out.items()}


#: Answers of structured templates ("Pleural effusion: No.", "Pneumothorax: none").
_ANSWERS = (": no", ": no.", ": none", ": negative")


def _add_template_answers(out: dict[str, set[str]]) -> None:
    """Negative answers after a colon, as triggers both ways: "Pleural effusion: No." negates the
    finding before it, "FINDINGS: No pneumothorax." the one after it (the answer is longer than "no",
    so it is the trigger matched there and must keep its preceding meaning). Pseudo-negations get a
    colon form too ("FINDINGS: No change in the effusion" stays a pseudo-negation), and
    ": negative for" keeps "negative for" after a header.
    """
    for kind in ("neg_pre", "neg_post"):
        out[kind].update(_ANSWERS)
    out["neg_pre"].add(": negative for")
    out["pseudo"].update(f": {p}" for p in list(out["pseudo"]) if p.startswith(("no ", "not ")))


class SentenceTriggers:
    """The triggers of one sentence, sorted, for :func:`assertion_of` by bisection: an entity's walk
    starts at its nearest triggers instead of filtering every trigger of the sentence (a long sentence
    of thousands of entities and triggers was quadratic).

    >>> st = SentenceTriggers([Trigger(0, 1, "unc_pre"), Trigger(1, 2, "neg_pre")], 0, 5)
    >>> st.assertion(3, 4) == assertion_of(3, 4, [Trigger(0, 1, "unc_pre"), Trigger(1, 2, "neg_pre")], 0, 5)
    True
    """

    def __init__(self, triggers: list[Trigger], sent_start: int, sent_end: int) -> None:
        inside = [t for t in triggers if t.start >= sent_start and t.end <= sent_end]
        self.triggers = sorted(inside, key=lambda t: (t.start, t.end))
        self.ends = [t.end for t in self.triggers]
        self.starts = [t.start for t in self.triggers]
        self.kinds = [set(t.kind.split("+")) for t in self.triggers]

    def assertion(self, ent_start: int, ent_end: int) -> tuple[bool, bool]:
        """``(negated, uncertain)`` of the entity at tokens ``[ent_start, ent_end)``, as assertion_of."""
        # triggers do not overlap, so sorted by start they are sorted by end too
        for i in range(bisect_right(self.ends, ent_start) - 1, -1, -1):
            kinds = self.kinds[i]
            if "neg_pre" in kinds:
                return True, False
            if "unc_pre" in kinds:
                return False, True
            if "term" in kinds or kinds & _POST:
                break
        for i in range(bisect_left(self.starts, ent_end), len(self.triggers)):
            kinds = self.kinds[i]
            if "neg_post" in kinds:
                return True, False
            if "unc_post" in kinds:
                return False, True
            if "term" in kinds or kinds & _PRE:
                break
        return False, False


class _AssertionComponent:
    """Sets ``Span._.negated`` / ``Span._.uncertain`` (:func:`assertion_of`) on ``doc.ents`` and the
    context flags (:mod:`medmm.reports.context`), read as ``Span._.historical`` / ``Span._.experiencer``
    (getters over ``doc.user_data``: setting four extension attributes per entity cost more than
    working them out).

    One phrase matcher holds both trigger sets; each set's matches resolve their overlaps on their own
    (longest wins), so the context triggers never change a negation or uncertainty. A document (or a
    sentence) without a historical or family trigger is not walked for them.
    """

    def __init__(self, nlp: Any) -> None:
        from spacy.matcher import PhraseMatcher
        from spacy.tokens import Doc, Span

        from medmm.reports.context import context_phrases

        for name in ("negated", "uncertain"):
            if not Span.has_extension(name):
                Span.set_extension(name, default=False)
        if not Span.has_extension("historical"):
            Span.set_extension("historical", getter=lambda span: _context_flag(span, 2))
        if not Span.has_extension("experiencer"):
            Span.set_extension(
                "experiencer", getter=lambda span: "family" if _context_flag(span, 3) else "patient"
            )
        if not Doc.has_extension("assertion_triggers"):
            Doc.set_extension("assertion_triggers", default=None)
        self.matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
        for kind, phrases in trigger_phrases().items():
            self.matcher.add(kind, [nlp.make_doc(p) for p in phrases])
        for kind, phrases in context_phrases().items():
            self.matcher.add(kind, [nlp.make_doc(p) for p in phrases])
        strings = nlp.vocab.strings
        self.assertion_ids = {strings[k] for k in KINDS}
        self.opening_ids = {strings[k] for k in ("hist_pre", "fam_pre", "fam_post")}

    def __call__(self, doc: Any) -> Any:
        matches = self.matcher(doc)
        ent_tokens = {i for e in doc.ents for i in range(e.start, e.end)}
        strings = doc.vocab.strings
        ids = self.assertion_ids
        triggers = _triggers([m for m in matches if m[0] in ids], ent_tokens, strings)
        doc._.assertion_triggers = [(t.start, t.end, t.kind) for t in triggers]
        bounds = sentence_bounds(doc)
        starts = [s for s, _ in bounds]
        # triggers grouped by sentence, sentences found by bisection: a long report (thousands of
        # entities and triggers) was quadratic when each entity scanned every trigger and sentence
        by_sentence: dict[int, list[Trigger]] = {}
        for t in triggers:
            by_sentence.setdefault(sentence_of(starts, t.start), []).append(t)
        opening = self.opening_ids
        context = (
            _context_by_sentence(matches, ids, triggers, ent_tokens, strings, starts, bounds)
            if any(m[0] in opening for m in matches)
            else {}
        )
        inside: dict[int, SentenceTriggers] = {}
        flags: dict[tuple[int, int], tuple[bool, bool, bool, bool]] = {}
        for ent in doc.ents:
            k = sentence_of(starts, ent.start)
            if k not in inside:
                inside[k] = SentenceTriggers(by_sentence.get(k, []), *bounds[k])
            neg, unc = inside[k].assertion(ent.start, ent.end)
            ent._.negated = neg
            ent._.uncertain = unc
            ctx = context.get(k)
            hist, fam = ctx.context(ent.start, ent.end) if ctx is not None else (False, False)
            flags[(ent.start, ent.end)] = (neg, unc, hist, fam)
        doc.user_data[ASSERTION_KEY] = flags  # the same, as a dict (Span._ access is slow in bulk)
        return doc


def _context_flag(span: Any, i: int) -> bool:
    """Flag ``i`` of :data:`ASSERTION_KEY` of ``span`` (``False`` before the component ran)."""
    flags = span.doc.user_data.get(ASSERTION_KEY)
    got = flags.get((span.start, span.end)) if flags else None
    return bool(got[i]) if got is not None and len(got) > i else False


def _context_by_sentence(
    matches: list[tuple[int, int, int]],
    assertion_ids: set[int],
    triggers: list[Trigger],
    ent_tokens: set[int],
    strings: Any,
    starts: list[int],
    bounds: list[tuple[int, int]],
) -> dict[int, Any]:
    """:class:`~medmm.reports.context.SentenceContext` of each sentence holding a historical or family
    trigger (in the others no entity is historical or a relative's)."""
    from medmm.reports.context import SentenceContext

    context = _triggers([m for m in matches if m[0] not in assertion_ids], ent_tokens, strings)
    context += _negations_ending_context(triggers, context)
    grouped: dict[int, list[Trigger]] = {}
    opened: set[int] = set()
    for t in context:
        k = sentence_of(starts, t.start)
        grouped.setdefault(k, []).append(t)
        if t.kind != "ctx_term" and any(x in t.kind for x in ("hist_pre", "fam_pre", "fam_post")):
            opened.add(k)
    return {k: SentenceContext(grouped[k], *bounds[k]) for k in opened}


def _triggers(matches: list[tuple[int, int, int]], ent_tokens: set[int], strings: Any) -> list[Trigger]:
    """Non-overlapping triggers of phrase-matcher ``matches`` ``(kind id, start, end)``: of overlapping
    ones the longest, then the earliest (as ``spacy.util.filter_spans``, which this was: a span whose
    first or last token is taken is dropped); a span matched under several kinds has them joined by
    ``+``; a trigger overlapping an entity is left out.

    >>> import spacy
    >>> strings = spacy.blank("en").vocab.strings
    >>> m = [(strings.add("neg_pre"), 0, 1), (strings.add("neg_pre"), 0, 3), (strings.add("term"), 2, 3)]
    >>> _triggers(m, set(), strings)
    [Trigger(start=0, end=3, kind='neg_pre')]
    """
    kinds: dict[tuple[int, int], set[str]] = {}
    for key, start, end in matches:
        kinds.setdefault((start, end), set()).add(strings[key])
    kept: list[tuple[int, int]] = []
    seen: set[int] = set()
    for start, end in sorted(kinds, key=lambda se: (se[1] - se[0], -se[0]), reverse=True):
        if start not in seen and end - 1 not in seen:
            kept.append((start, end))
            seen.update(range(start, end))
    return [
        Trigger(start, end, "+".join(sorted(kinds[(start, end)])))
        for start, end in sorted(kept)
        if not any(i in ent_tokens for i in range(start, end))
    ]


def _negations_ending_context(triggers: list[Trigger], context: list[Trigger]) -> list[Trigger]:
    """The preceding negations among ``triggers`` as context terminations (``ctx_term``): "history of
    lobectomy, without consolidation or effusion" is about this exam after "without". Those overlapping
    a context trigger are left out ("no new": its "new" ends the scope already; "no history of"), so
    the context triggers stay non-overlapping."""
    taken = {i for t in context for i in range(t.start, t.end)}
    return [
        Trigger(t.start, t.end, "ctx_term")
        for t in triggers
        if "neg_pre" in t.kind.split("+") and not any(i in taken for i in range(t.start, t.end))
    ]


def make_assertion_component(nlp: Any, name: str = "medmm_assertion") -> Any:
    """Add the assertion component to ``nlp`` (after NER) and return it.

    >>> import spacy  # doctest: +SKIP
    >>> nlp = spacy.blank("en"); nlp.add_pipe("sentencizer")  # doctest: +SKIP
    >>> make_assertion_component(nlp)  # doctest: +SKIP
    """
    from spacy.language import Language

    if not Language.has_factory(name):
        Language.factory(name, func=lambda nlp, name: _AssertionComponent(nlp))
    return nlp.add_pipe(name, last=True)
