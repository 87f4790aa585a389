"""The fast normal-phrase scan (lower-case factored regex, scan from the first scored span) finds
exactly what a full case-insensitive scan of the whole text finds."""

from __future__ import annotations

import random

from medmm.reports.findings import _NORMAL_PHRASES, find_normal_phrase

WORDS = [
    "no", "No", "NO", "acute", "active", "cardiopulmonary", "chest", "Chest", "study", "exam",
    "examination", "EXAMINATION", "is", "within", "normal", "limits", "negative", "radiographic",
    "evidence", "of", "disease", "findings", "FINDINGS:", "IMPRESSION:", "x-ray", "cxr", "abnormality",
    ":", ".", ",", "-", "\u017f", "\u0130", "\u0131", "\u212a", "\u00e9", "1", "pathology", "thoracic",
]  # fmt: skip
SEPARATORS = [" ", "  ", "\n", "\t", "", "\u00a0", "\u2003"]


def _full_scan(text: str, spans: list[tuple[int, int]]) -> tuple[int, int] | None:
    ranges = spans or [(0, len(text))]
    for m in _NORMAL_PHRASES.finditer(text):
        if any(a <= m.start() < b for a, b in ranges):
            return m.start(), m.end()
    return None


def test_same_as_full_case_insensitive_scan() -> None:
    rng = random.Random(7)
    found = 0
    for _ in range(5_000):
        text = "".join(rng.choice(WORDS) + rng.choice(SEPARATORS) for _ in range(rng.randint(1, 14)))
        spans = []
        for _ in range(rng.randint(0, 2)):
            a = rng.randint(0, len(text))
            spans.append((a, rng.randint(a, len(text) + 2)))
        expected = _full_scan(text, spans)
        assert find_normal_phrase(text, spans) == expected, (text, spans)
        found += expected is not None
    assert found > 200  # the cases exercise matches, not only misses


def test_statement_reaching_into_the_span_is_not_cut() -> None:
    # "Exam\nnormal" starts before the span and takes "normal": a scan from the span's start would
    # find "normal chest" instead; the full scan finds nothing in the span
    text = "Exam\nnormal chest"
    assert [m.span() for m in _NORMAL_PHRASES.finditer(text, 5)] == [(5, 17)]
    assert _full_scan(text, [(5, len(text))]) is None
    assert find_normal_phrase(text, [(5, len(text))]) is None
    # after a header's colon the scan starts at the span and finds the same
    assert find_normal_phrase("INDICATION: x. FINDINGS: Normal chest.", [(25, 38)]) == (25, 37)
