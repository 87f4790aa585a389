"""The measurement patterns written to start with a character class match what the plain ones match."""

from __future__ import annotations

import random
import re

import pytest

from medmm.reports import measurements as m

# the patterns as they were first written: a look-behind, then the number
_PLAIN = {
    "dims": re.compile(
        rf"(?<![\w.]){m._NUM}\s*{m._OPT_UNIT}\s*(?:x|×|by)\s*{m._NUM}\s*{m._OPT_UNIT}"
        rf"(?:\s*(?:x|×|by)\s*{m._NUM})?\s*{m._UNIT}\b",
        re.I,
    ),
    "range": re.compile(rf"(?<![\w.]){m._NUM}\s*{m._OPT_UNIT}\s*(?:-|–|to)\s*{m._NUM}\s*{m._UNIT}\b", re.I),
    "single": re.compile(rf"(?<![\w.]){m._NUM}\s*-?\s*{m._UNIT}\b", re.I),
}
_NEW = {"dims": m._DIMS, "range": m._RANGE, "single": m._SINGLE}
PIECES = [
    "3", "12", "1.5", ".5", "0.", ".", "..", " ", "  ", "-", "\u2013", "\n", "mm", "MM", "Mm", "cm", "CM",
    "millimeter", "MILLIMETRES", "centimeters", "Centimetre", "x", "X", "\u00d7", "by", "BY", "to", "nodule",
    "a", "_", "\u0663", "\u0130", "\u212a", "\u00e9",
]  # fmt: skip


NUMS = ["3", "12", "1.5", ".5", "7", "0.", "\u0663", "1.5.2", "a1", ".2."]
SEPS = ["x", "X", "\u00d7", "by", "-", "\u2013", "to", "TO", "x", "-", " and "]
UNITS = ["mm", "CM", "millimetres", "Centimeter", "mm", "cm", "", "cms"]


def _text(rng: random.Random) -> str:
    """Random pieces, or a size-like sequence (number, unit, separator ...) with noise between."""
    if rng.random() < 0.4:
        return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 14)))
    parts = []
    for kind in [NUMS, UNITS, SEPS, NUMS, UNITS, SEPS, NUMS, UNITS][: rng.choice([2, 5, 8])]:
        parts.append(rng.choice(kind))
        parts.append(rng.choice([" ", "", " ", "", "  ", "\n", rng.choice(PIECES)]))
    return rng.choice(["", "a", ".", " ", "_"]) + "".join(parts)


@pytest.mark.parametrize("name", list(_NEW))
def test_same_matches_and_groups_as_plain_pattern(name: str) -> None:
    rng = random.Random(len(name))
    texts = [_text(rng) for _ in range(30_000)]
    texts += ["A 1.2 x 0.8 cm nodule", "3-4 mm", "x.5 cm", "a.5 cm", ".5 cm", "1.5.2 mm", "2 to 3 cm", "7mm."]
    old, new = _PLAIN[name], _NEW[name]
    got = [[(x.span(), x.groups()) for x in new.finditer(t)] for t in texts]
    assert got == [[(x.span(), x.groups()) for x in old.finditer(t)] for t in texts]
    assert sum(map(bool, got)) > 300  # matches are exercised
    assert new.pattern.startswith("([\\d.]")  # the engine's first-character skip applies


def test_find_sizes_is_find_measurements_when_a_size_may_be_there() -> None:
    rng = random.Random(3)
    texts = ["".join(rng.choice(PIECES) for _ in range(rng.randint(0, 14))) for _ in range(5_000)]
    maybe = [t for t in texts if m.has_measurement(t)]
    assert len(maybe) > 500
    assert [m.find_sizes(t) for t in maybe] == [m.find_measurements(t) for t in maybe]
