"""The normal-phrase scan of ASCII text with one pattern per first word finds what one case-insensitive
pattern over the whole text finds (many matches per text, spans cutting through them)."""

from __future__ import annotations

import random

from medmm.reports.findings import _NORMAL_PHRASES, find_normal_phrase

WORDS = [
    "no", "No", "NO", "acute", "active", "cardiopulmonary", "CHEST", "chest", "study", "exam", "examination",
    "is", "within", "normal", "Normal", "limits", "negative", "radiographic", "evidence", "of", "disease",
    "findings", "finding", "x-ray", "xray", "cxr", "abnormality", "abnormalities", "process", "pathology",
    "thoracic", "intrathoracic", "sno", "nochest", "examnormal", "negatives", "a", "IMPRESSION:", "1",
    "no acute", "No active", "normal chest", "chest is", "exam within normal limits", "negative study",
    "no radiographic evidence of", "cardiopulmonary disease", "examination normal",
]  # fmt: skip
SEPARATORS = [" ", " ", " ", "", "  ", "\n", ".", ", ", ": ", "-", "_"]


def test_same_as_one_case_insensitive_pattern() -> None:
    rng = random.Random(11)
    found = several = 0
    for _ in range(20_000):
        text = "".join(rng.choice(WORDS) + rng.choice(SEPARATORS) for _ in range(rng.randint(0, 16)))
        spans = [] if rng.random() < 0.3 else [(a, a + rng.randint(0, 40)) for a in (rng.randint(0, 60),)]
        ranges = spans or [(0, len(text))]
        matches = [m.span() for m in _NORMAL_PHRASES.finditer(text)]
        expected = next((s for s in matches if any(a <= s[0] < b for a, b in ranges)), None)
        assert find_normal_phrase(text, spans) == expected, (text, spans)
        found += expected is not None
        several += len(matches) > 1
    assert found > 3_000 and several > 1_000
