"""`entities.laterality`: the side a finding's own phrase names (left / right / bilateral / null). Before
it the side was only used to clear a conflicting `location`; docs/reports.md said "There is no
laterality column yet"."""

from __future__ import annotations

import random
import warnings
from typing import Any

import numpy as np
import pytest

from medmm.reports.extract import doc_records
from medmm.reports.laterality import batch_sides, finding_side, sides_of
from medmm.reports.nlp import PipelineSpec, get_pipeline


@pytest.fixture(scope="module")
def rows() -> Any:
    spec = PipelineSpec()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nlp = get_pipeline(spec)

    def run(text: str) -> dict[str, Any]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ents, _, _ = doc_records(nlp(text), "r", spec)
        return {e["text"]: e["laterality"] for e in ents}

    return run


@pytest.mark.parametrize(
    ("text", "word", "side"),
    [
        ("Small left pleural effusion.", "pleural effusion", "left"),
        ("Right-sided pneumothorax.", "pneumothorax", "right"),
        ("Bilateral pleural effusions.", "pleural effusions", "bilateral"),
        ("Bibasilar atelectasis.", "atelectasis", "bilateral"),
        ("Opacity in the right lower lobe.", "Opacity", "right"),
        ("Effusion on the left.", "Effusion", "left"),
        ("Right lower lobe opacity and a left pleural effusion.", "opacity", "right"),
        ("Right lower lobe opacity and a left pleural effusion.", "pleural effusion", "left"),
        ("Cardiomegaly.", "Cardiomegaly", None),
        ("Right lung with pleural effusion.", "pleural effusion", None),  # "with": not its own side
        # "both" as the conjunction was read as a side (bilateral atelectasis)
        ("Could represent both atelectasis and pneumonia.", "atelectasis", None),
        ("Both atelectasis and scarring are possible.", "atelectasis", None),
        ("Both lower lobe opacities and a small effusion.", "opacities", "bilateral"),
        # sides after the finding other than "on/in/at/of the left/right" were not read (null)
        ("Effusions in both lungs.", "Effusions", "bilateral"),
        ("Opacities in the bilateral lower lobes.", "Opacities", "bilateral"),
        ("Pleural effusions bilaterally.", "Pleural effusions", "bilateral"),
        ("Opacity in left lower lobe.", "Opacity", "left"),
        # two sides compared: was the first side alone ("left"), or null
        ("Left greater than right pleural effusions.", "pleural effusions", "bilateral"),
        ("Effusion, right greater than left.", "Effusion", "bilateral"),
        ("Right-sided greater than left-sided pleural effusions.", "pleural effusions", "bilateral"),
        ("Left greater than right basilar atelectasis.", "atelectasis", "bilateral"),
    ],
)
def test_laterality_of_findings(rows: Any, text: str, word: str, side: str | None) -> None:
    assert rows(text)[word] == side


def test_anatomy_has_no_laterality_and_measurements_take_their_findings(rows: Any) -> None:
    got = rows("A 12 mm nodule in the left upper lobe.")
    assert got["nodule"] == "left"
    assert got["left upper lobe"] is None  # the location names its side itself
    assert got["12 mm"] == "left"  # the measurement row of the nodule


def test_sides_of_equals_finding_side_everywhere() -> None:
    """The one-scan pre-check never changes a side: every span of random texts of side words, fillers
    and punctuation gets what finding_side gives it."""
    rng = random.Random(3)
    words = [
        "left",
        "right",
        "bilateral",
        "Both",
        "bibasilar",
        "on the",
        "in the",
        "lower",
        "lobe",
        "and",
        "small",
        "effusion",
        "opacity",
        ",",
        ".",
        "with",
        "sided",
        "-",
        "x" * 40,
        "bilaterally",
        "in both",
        "or",
        "greater than",
    ]
    for _ in range(200):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 30)))
        spans = sorted(
            {
                (a, min(len(text), a + rng.randint(1, 12)))
                for a in rng.sample(range(len(text)), min(8, len(text)))
            }
        )
        assert sides_of(text, spans) == [finding_side(text, a, b) for a, b in spans], text


def test_batch_sides_equal_finding_side_everywhere() -> None:
    """The batch scan (texts joined, side words found once, far entities dropped with numpy) gives
    finding_side's side for every span, ASCII or not (lower() may change a non-ASCII text's length)."""
    rng = random.Random(4)
    words = [
        "left",
        "RIGHT",
        "Bilateral",
        "both",
        "bibasilar",
        "on the",
        "in the",
        "of the",
        "lower",
        "and",
        "effusion",
        ",",
        ".",
        "with",
        "-sided",
        "İ",
        "straße",
        "cleft",
        "x" * 50,
        "\n",
        "bilaterally",
        "greater than",
        "or",
    ]
    for _ in range(100):
        texts = [
            " ".join(rng.choice(words) for _ in range(rng.randint(0, 25))) for _ in range(rng.randint(1, 5))
        ]
        if rng.random() < 0.5:
            texts = [t.encode("ascii", "ignore").decode() for t in texts]
        rep, start, end = [], [], []
        for k, t in enumerate(texts):
            for _ in range(rng.randint(0, 6)):
                if t:
                    a = rng.randrange(len(t))
                    rep.append(k), start.append(a), end.append(min(len(t), a + rng.randint(1, 10)))
        got = batch_sides(
            texts,
            np.array(rep, dtype=np.int64),
            np.array(start, dtype=np.int64),
            np.array(end, dtype=np.int64),
        )
        want = {
            i: finding_side(texts[k], a, b) for i, (k, a, b) in enumerate(zip(rep, start, end, strict=True))
        }
        assert got == {i: s for i, s in want.items() if s is not None}, texts
