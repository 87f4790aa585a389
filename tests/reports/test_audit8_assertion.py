"""Session 8 audit: negations a hospital's templates write after the finding ("... ruled out",
"Pneumothorax: none."), and entity spans that could carry a name or a date into entities.parquet."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from medmm.reports.nlp import PipelineSpec, get_pipeline


@pytest.fixture(scope="module")
def nlp():
    return get_pipeline(PipelineSpec())


def _status(nlp, text: str, finding: str) -> str:
    ents = [e for e in nlp(text).ents if e.ent_id_ == finding]
    assert ents, f"{finding!r} not found in {text!r}"
    e = ents[0]
    return "absent" if e._.negated else "uncertain" if e._.uncertain else "present"


@pytest.mark.parametrize(
    ("text", "finding", "expected"),
    [
        ("Left pleural effusion ruled out.", "pleural effusion", "absent"),  # was present
        ("Pneumothorax has been ruled out.", "pneumothorax", "absent"),  # was present
        ("Pneumothorax is ruled out on the upright view.", "pneumothorax", "absent"),
        ("Pneumothorax excluded.", "pneumothorax", "absent"),
        ("Pneumothorax: none.", "pneumothorax", "absent"),  # structured template; was present
        # a header's colon before "Negative for" (the IU reports) stays a preceding negation
        ("FINDINGS: Negative for cardiac enlargement.", "cardiomegaly", "absent"),
        ("IMPRESSION: None of the prior effusion remains. Pneumothorax.", "pneumothorax", "present"),
        # the longer hedges still win over the new triggers
        ("Pneumonia cannot be ruled out.", "pneumonia", "uncertain"),
        ("Pneumothorax not ruled out.", "pneumothorax", "uncertain"),
        ("Pneumonia is not excluded.", "pneumonia", "uncertain"),
        ("Rule out fracture.", "fracture", "uncertain"),
        # "none" of another field in another sentence does not negate
        ("Comparison: none. Small left effusion.", "pleural effusion", "present"),
        # structured templates: the answer after the colon (were all present)
        ("Pleural effusion: No.", "pleural effusion", "absent"),
        ("Pleural effusion: no\nPneumothorax: yes", "pleural effusion", "absent"),
        ("Pleural effusion: no\nPneumothorax: yes", "pneumothorax", "present"),
        ("Effusion: negative", "pleural effusion", "absent"),
        # ... and a header's colon keeps the preceding meaning and the pseudo-negations
        ("FINDINGS: No pneumothorax.", "pneumothorax", "absent"),
        ("FINDINGS: No change in the small left effusion.", "pleural effusion", "present"),
        ("Pneumothorax: No change.", "pneumothorax", "present"),
        ("FINDINGS: None. Pneumothorax.", "pneumothorax", "present"),
    ],
)
def test_following_negations(nlp, text: str, finding: str, expected: str) -> None:
    assert _status(nlp, text, finding) == expected


@pytest.mark.parametrize(
    "text",
    ["Heart of Mr Smithson enlarged.", "Heart per Dr Warbleton is enlarged.", "Heart 12/03/2021 enlarged."],
)
def test_heart_pattern_never_spans_a_name_or_date(nlp, text: str) -> None:
    """The words the 'heart ... enlarged' pattern skips were any token: the entity text (written to
    entities.parquet) held 'Heart of Mr Smithson enlarged'."""
    for e in nlp(text).ents:
        assert not any(w in e.text for w in ("Smithson", "Warbleton", "2021", "Mr", "Dr")), e.text


@pytest.mark.parametrize(
    "text", ["Heart size is mildly enlarged.", "HEART SIZE IS ENLARGED.", "The heart is slightly enlarged."]
)
def test_heart_pattern_still_finds_cardiomegaly(nlp, text: str) -> None:
    assert _status(nlp, text, "cardiomegaly") == "present"


def test_names_in_report_text_reach_no_table(tmp_path: Path, strings_in_run) -> None:
    """Names, dates and record numbers written in report text stay out of every output of a parse
    without --keep-text (entity spans, evidence, long forms, manifest, run.json)."""
    from medmm.reports.pipeline import parse_reports

    rows = [
        (
            "ACC-77",
            "FINDINGS: Patient John Smithson (JS), DOB 03/04/1950, MRN 123456789. Heart of Mr Smithson "
            "enlarged. Smithson effusion ruled out. A 1.2 x 3.4 cm nodule in the right upper lobe.\n"
            "IMPRESSION: No acute cardiopulmonary abnormality, discussed with Dr Warbleton on 2021-05-06.",
        ),
        (
            "ACC-78",
            "Findings: Normal chest per Quimbley. Pneumothorax: none. Chronic obstructive "
            "pulmonary disease (COPD) per Quimbley (QB).",
        ),
    ]
    csv = tmp_path / "r.csv"
    pd.DataFrame(rows, columns=["accession", "report"]).to_csv(csv, index=False)
    run = tmp_path / "run"
    parse_reports(csv, run, workers=0)
    leaks = strings_in_run(
        run,
        ["Smithson", "John", "Warbleton", "Quimbley", "1950", "123456789", "2021-05-06", "ACC-77", "ACC-78"],
    )
    assert leaks == []
    labels = pd.read_parquet(run / "report_labels.parquet")
    status = dict(zip(labels["finding"], labels["status"], strict=False))
    assert status["pleural effusion"] == "absent" and status["pneumothorax"] == "absent"
