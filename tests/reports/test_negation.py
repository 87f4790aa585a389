"""Negation / uncertainty through the lexicon pipeline, plus the pure scope function."""

from __future__ import annotations

import pytest

from medmm.reports.negation import Trigger, assertion_of, trigger_phrases
from medmm.reports.nlp import PipelineSpec, get_pipeline


@pytest.fixture(scope="module")
def nlp():
    return get_pipeline(PipelineSpec())


def _status(nlp, text: str, finding: str) -> str:
    doc = nlp(text)
    ents = [e for e in doc.ents if e.ent_id_ == finding]
    assert ents, f"{finding!r} not found in {text!r}: {[(e.text, e.ent_id_) for e in doc.ents]}"
    e = ents[0]
    return "absent" if e._.negated else "uncertain" if e._.uncertain else "present"


@pytest.mark.parametrize(
    ("text", "finding", "expected"),
    [
        ("No pneumothorax.", "pneumothorax", "absent"),
        ("There is no pleural effusion or pneumothorax.", "pneumothorax", "absent"),
        ("Lungs are clear without focal consolidation.", "consolidation", "absent"),
        ("Negative for pneumothorax.", "pneumothorax", "absent"),
        ("There is no evidence of pneumothorax.", "pneumothorax", "absent"),
        ("There are no XXXX of a pleural effusion.", "pleural effusion", "absent"),
        ("The previously seen effusion has resolved.", "pleural effusion", "absent"),
        ("Pneumothorax is not seen.", "pneumothorax", "absent"),
        ("Possible small left pleural effusion.", "pleural effusion", "uncertain"),
        ("Pneumonia cannot be excluded.", "pneumonia", "uncertain"),
        ("Cannot exclude a small pneumothorax.", "pneumothorax", "uncertain"),
        ("Opacity may represent atelectasis.", "atelectasis", "uncertain"),
        ("Rib lesions versus pulmonary nodules.", "nodule", "uncertain"),
        ("No change in the mild cardiomegaly.", "cardiomegaly", "present"),
        ("Mild cardiomegaly.", "cardiomegaly", "present"),
        ("No pneumothorax, but there is a small pleural effusion.", "pleural effusion", "present"),
        ("Stable calcified granuloma.", "granuloma", "present"),
        ("No focal air space opacity to suggest a pneumonia.", "pneumonia", "absent"),
    ],
)
def test_assertion_cases(nlp, text: str, finding: str, expected: str) -> None:
    assert _status(nlp, text, finding) == expected


def test_nearest_trigger_decides() -> None:
    # "possible nodule, no effusion": effusion is negated, nodule uncertain
    triggers = [Trigger(0, 1, "unc_pre"), Trigger(3, 4, "neg_pre")]
    assert assertion_of(1, 2, triggers, 0, 6) == (False, True)
    assert assertion_of(4, 5, triggers, 0, 6) == (True, False)


def test_termination_stops_scope() -> None:
    triggers = [Trigger(0, 1, "neg_pre"), Trigger(2, 3, "term")]
    assert assertion_of(4, 5, triggers, 0, 6) == (False, False)


def test_scope_does_not_cross_sentences() -> None:
    assert assertion_of(5, 6, [Trigger(0, 1, "neg_pre")], 3, 8) == (False, False)


def test_termsets_merge_negspacy_and_additions() -> None:
    phrases = trigger_phrases()
    assert "no evidence of" in phrases["neg_pre"]  # negspacy en_clinical
    assert "has resolved" in phrases["neg_post"]  # ours
    assert "cannot be excluded" in phrases["unc_post"]
    assert "versus" not in phrases["neg_pre"] and "versus" in phrases["unc_pre"]
