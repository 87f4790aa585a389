"""Session 8 audit: a long report (hundreds of sentences, findings, measurements) costs work linear in
its length. Measurement linking scanned every sentence for every (measurement, finding) pair and the
assertion step every trigger of the document for each entity: a 100,000-character report took 0.74 s
of CPU against 0.08 s for the same text as 40 reports. Checked by counting work, not by timing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from medmm.reports import negation
from medmm.reports.measurements import find_measurements, link_measurements
from medmm.reports.nlp import PipelineSpec, get_pipeline


class _Counted(list):
    """A list counting the items read from it (indexing and iteration)."""

    reads = 0

    def __getitem__(self, i: Any) -> Any:
        type(self).reads += 1
        return super().__getitem__(i)

    def __iter__(self) -> Iterator[Any]:
        for x in super().__iter__():
            type(self).reads += 1
            yield x


def test_link_measurements_work_is_linear() -> None:
    sentence = "A 12 mm nodule and a 3 x 4 cm mass. "
    n = 300
    text = sentence * n
    ms = find_measurements(text)
    findings = []
    for k in range(n):
        base = k * len(sentence)
        findings += [(base + 8, base + 14), (base + 30, base + 34)]
    sentences = _Counted((k * len(sentence), (k + 1) * len(sentence)) for k in range(n))
    _Counted.reads = 0
    links = link_measurements(ms, findings, sentences)
    assert len(links) == 2 * n
    assert all(findings[f][0] > ms[m].start for m, f in links.items())  # the finding after each size
    assert _Counted.reads < 20 * n, _Counted.reads  # was ~ n * 2n * n / 2 (tens of millions)


def test_assertion_sees_only_the_sentence_triggers(monkeypatch: pytest.MonkeyPatch) -> None:
    nlp = get_pipeline(PipelineSpec())
    seen: list[int] = []
    real = negation.SentenceTriggers.__init__

    def spy(self, triggers: list, *rest: int) -> None:
        seen.append(len(triggers))
        real(self, triggers, *rest)

    monkeypatch.setattr(negation.SentenceTriggers, "__init__", spy)
    doc = nlp("No pleural effusion. Possible small nodule. Pneumothorax has been ruled out. " * 200)
    assert len(seen) == 600  # one per sentence with an entity
    assert max(seen) <= 2  # was every trigger of the report (600) for each entity
    flags = [(e._.negated, e._.uncertain) for e in doc.ents[:3]]
    assert flags == [(True, False), (False, True), (True, False)]


def test_one_long_sentence_walks_only_near_triggers() -> None:
    """One sentence of 4,000 "no effusion," (a list without full stops): every entity filtered all
    4,000 triggers of the sentence (0.78 s of CPU for 52,000 characters, ~3 s at the 100,000 cap)."""
    n = 4000
    triggers = [negation.Trigger(2 * k, 2 * k + 1, "neg_pre") for k in range(n)]
    st = negation.SentenceTriggers(triggers, 0, 2 * n)
    st.kinds = _Counted(st.kinds)
    _Counted.reads = 0
    assert all(st.assertion(2 * k + 1, 2 * k + 2) == (True, False) for k in range(n))
    assert _Counted.reads <= 2 * n, _Counted.reads


def test_sentence_triggers_agree_with_assertion_of() -> None:
    import random

    rng = random.Random(8)
    kinds = [
        "neg_pre",
        "neg_post",
        "unc_pre",
        "unc_post",
        "pseudo",
        "term",
        "neg_pre+neg_post",
        "unc_pre+unc_post",
    ]
    for _ in range(300):
        pos, triggers = 0, []
        while pos < 40:
            pos += rng.randint(1, 4)
            width = rng.randint(1, 2)
            triggers.append(negation.Trigger(pos, pos + width, rng.choice(kinds)))
            pos += width
        sent = (rng.randint(0, 5), rng.randint(35, 50))
        st = negation.SentenceTriggers(triggers, *sent)
        taken = {i for t in triggers for i in range(t.start, t.end)}
        for a in range(sent[0], sent[1] - 1):
            if a in taken or a + 1 in taken:
                continue  # an entity never overlaps a trigger
            assert st.assertion(a, a + 1) == negation.assertion_of(a, a + 1, triggers, *sent), (a, triggers)
