"""Session 9 review: a report with a "HISTORY:" / "INDICATION:" heading and no "FINDINGS:" heading put
the findings written after it (in their own paragraph, without a heading) into the unscored HISTORY
section, so the report came out `normal`: a silent wrong result. A reason-for-exam section now ends at
its first paragraph break; the headerless text after it is the report body (BODY)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd
import pytest

from medmm.reports.sections import find_sections, paragraph_sections, scored_sections


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (
            "CLINICAL HISTORY: Cough.\n\nThe heart is enlarged. Small left pleural effusion.",
            ["HISTORY", "BODY"],
        ),
        ("INDICATION: fever\n\nRight lower lobe consolidation.", ["INDICATION", "BODY"]),
        ("REASON FOR EXAM: cough\r\n\r\nCardiomegaly.\r\n", ["INDICATION", "BODY"]),  # CRLF line ends
        ("COMPARISON: None.\n  \nHeart enlarged.", ["COMPARISON", "BODY"]),  # a blank line with spaces
        ("TECHNIQUE: PA and lateral.\n\nEffusion.", ["TECHNIQUE", "BODY"]),
        # a header alone on its line followed by a blank line: its own text comes after the break
        ("HISTORY:\n\nCough.", ["HISTORY"]),
        ("HISTORY\n\nCough.\n\nHeart enlarged.", ["HISTORY", "BODY"]),
        # blank lines before the next header only: nothing to move
        ("HISTORY: Cough.\n\n\nFINDINGS: Effusion.", ["HISTORY", "FINDINGS"]),
        ("HISTORY: Cough.\n\n", ["HISTORY"]),
        # only the headerless text up to the next header is body
        (
            "INDICATION: cough\n\nHeart enlarged.\n\nIMPRESSION: Cardiomegaly.",
            ["INDICATION", "BODY", "IMPRESSION"],
        ),
        # one line, no paragraph break: kept as one HISTORY section (documented limit)
        ("HISTORY: cough. Heart enlarged.", ["HISTORY"]),
        ("HISTORY: cough.\nHeart enlarged.", ["HISTORY"]),
        # FINDINGS, IMPRESSION (and RECOMMENDATION) may span paragraphs
        ("FINDINGS: Heart enlarged.\n\nSmall effusion.", ["FINDINGS"]),
        ("IMPRESSION: Cardiomegaly.\n\nEffusion.", ["IMPRESSION"]),
        ("RECOMMENDATION: CT.\n\nFollow up in 6 weeks.", ["RECOMMENDATION"]),
    ],
)
def test_reason_for_exam_ends_at_paragraph_break(text: str, names: list[str]) -> None:
    secs = find_sections(text)
    assert [s.name for s in secs] == names
    # the sections still cover the text from the first header to its end, in order
    assert all(a.end == b.start for a, b in itertools.pairwise(secs))
    assert secs[-1].end == len(text)


def test_body_after_the_break_starts_at_its_text() -> None:
    text = "CLINICAL HISTORY: Cough.\n\nThe heart is enlarged."
    hist, body = find_sections(text)
    assert text[hist.body_start : hist.end].strip() == "Cough."
    assert text[body.body_start : body.end] == "The heart is enlarged."
    assert "BODY" in scored_sections() and "HISTORY" not in scored_sections()


def test_split_sections_are_the_history_sections_of_report_features() -> None:
    """Report features prefix these sections' entities ``history|``; the body after the break ``body|``."""
    from medmm.models.encoders.report_features import HISTORY_SECTIONS

    assert paragraph_sections() == HISTORY_SECTIONS
    assert not paragraph_sections() & scored_sections()


def test_findings_after_a_history_paragraph_are_labelled(tmp_path: Path) -> None:
    from medmm.models.encoders.report_features import entity_tokens
    from medmm.reports.pipeline import parse_reports

    rows = [
        ("a", "CLINICAL HISTORY: Cough.\n\nThe heart is enlarged. Small left pleural effusion."),
        ("b", "INDICATION: rule out pneumonia.\n\nRight lower lobe consolidation."),
        ("c", "HISTORY: pneumonia.\n\nNo acute cardiopulmonary disease."),
        ("d", "HISTORY: cough. Heart enlarged."),  # one line: stays history (documented limit)
    ]
    csv = tmp_path / "r.csv"
    pd.DataFrame(rows, columns=["id", "report"]).to_csv(csv, index=False)
    parse_reports(csv, tmp_path / "run", workers=0, keep_report_ids=True)
    labels = pd.read_parquet(tmp_path / "run" / "report_labels.parquet")
    status = {(r.report_id, r.finding): r.status for r in labels.itertuples()}
    assert status[("a", "cardiomegaly")] == "present"
    assert status[("a", "pleural effusion")] == "present"
    assert status[("a", "normal")] == "absent"
    assert status[("b", "consolidation")] == "present"
    assert ("b", "pneumonia") not in status  # the indication's "rule out pneumonia" is still no label
    assert ("c", "pneumonia") not in status
    assert status[("c", "normal")] == "present"
    assert ("d", "cardiomegaly") not in status
    assert status[("d", "normal")] == "present"

    ents = pd.read_parquet(tmp_path / "run" / "entities.parquet")
    tokens_a = entity_tokens(ents[ents.report_id == "a"].to_dict("records"))
    tokens_c = entity_tokens(ents[ents.report_id == "c"].to_dict("records"))
    assert any(t.startswith("body|") and "cardiomegaly" in t for t in tokens_a), tokens_a
    assert any(t.startswith("history|") and "pneumonia" in t for t in tokens_c), tokens_c
