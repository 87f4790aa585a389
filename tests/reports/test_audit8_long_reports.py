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
    real = negation.assertion_of

    def spy(ent_start: int, ent_end: int, triggers: list, *rest: int) -> tuple[bool, bool]:
        seen.append(len(triggers))
        return real(ent_start, ent_end, triggers, *rest)

    monkeypatch.setattr(negation, "assertion_of", spy)
    doc = nlp("No pleural effusion. Possible small nodule. Pneumothorax has been ruled out. " * 200)
    assert len(seen) == 600
    assert max(seen) <= 2  # was every trigger of the report (600) for each entity
    flags = [(e._.negated, e._.uncertain) for e in doc.ents[:3]]
    assert flags == [(True, False), (False, True), (True, False)]
