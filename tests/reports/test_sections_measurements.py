"""Section headers and measurements (units, ranges, dimensions, linking to findings and locations)."""

from __future__ import annotations

import pytest

from medmm.reports.measurements import find_measurements, link_measurements, to_mm
from medmm.reports.sections import find_sections, section_at


def test_headers_with_variants() -> None:
    text = (
        "EXAM: Chest 2 views\nCLINICAL HISTORY: cough.\nComparison: none.\n"
        "FINDINGS: Lungs clear.\nIMPRESSION:\nNormal chest."
    )
    names = [s.name for s in find_sections(text)]
    assert names == ["TECHNIQUE", "HISTORY", "COMPARISON", "FINDINGS", "IMPRESSION"]
    sections = find_sections(text)
    assert section_at(sections, text.index("Normal chest")) == "IMPRESSION"
    assert section_at(sections, text.index("cough")) == "HISTORY"


def test_inline_headers_after_sentence_end() -> None:
    text = "Indication: fever. Findings: small effusion. Conclusion: effusion."
    assert [s.name for s in find_sections(text)] == ["INDICATION", "FINDINGS", "IMPRESSION"]


def test_words_inside_sentences_are_not_headers() -> None:
    text = "The findings are stable. No impression of mass."
    assert [s.name for s in find_sections(text)] == ["BODY"]


def test_text_before_first_header_is_body() -> None:
    sections = find_sections("Portable chest.\nIMPRESSION: No acute disease.")
    assert [s.name for s in sections] == ["BODY", "IMPRESSION"]


@pytest.mark.parametrize(
    ("text", "values", "kind"),
    [
        ("12 mm spiculated nodule", (12.0,), "single"),
        ("a 1.2 x 0.8 cm mass", (12.0, 8.0), "dimensions"),
        ("3-4 mm nodules", (3.0, 4.0), "range"),
        ("2 to 3 cm", (20.0, 30.0), "range"),
        ("1cm x 2cm", (10.0, 20.0), "dimensions"),
        ("3 x 4 x 5 cm", (30.0, 40.0, 50.0), "dimensions"),
        ("15 millimeters", (15.0,), "single"),
        ("0.5 cm", (5.0,), "single"),
    ],
)
def test_measurements(text: str, values: tuple[float, ...], kind: str) -> None:
    (m,) = find_measurements(text)
    assert m.values_mm == values and m.kind == kind
    assert m.size_mm == max(values)


def test_non_measurements_are_ignored() -> None:
    assert find_measurements("T12-L1 disc space; 5th rib; 2 views") == []


def test_unit_conversion() -> None:
    assert to_mm(1.25, "cm") == 12.5
    with pytest.raises(KeyError):
        to_mm(1, "inch")


def test_link_prefers_following_finding_then_preceding() -> None:
    text = "A 12 mm nodule. Effusion measuring 3 cm."
    ms = find_measurements(text)
    findings = [
        (text.index("nodule"), text.index("nodule") + 6),
        (text.index("Effusion"), text.index("Effusion") + 8),
    ]
    sents = [(0, 15), (16, len(text))]
    assert link_measurements(ms, findings, sents) == {0: 0, 1: 1}


def test_measurement_linked_in_pipeline() -> None:
    from medmm.reports.extract import doc_rows
    from medmm.reports.nlp import PipelineSpec, get_pipeline

    spec = PipelineSpec()
    text = "FINDINGS: 12 mm spiculated nodule in the right upper lobe. No effusion."
    rows, labels = doc_rows(get_pipeline(spec)(text), "r1", spec)
    nodule = next(r for r in rows if r.finding == "nodule" and r.label == "FINDING")
    assert nodule.measurement_mm == 12.0 and nodule.location == "right upper lobe"
    meas = next(r for r in rows if r.label == "MEASUREMENT")
    assert meas.finding == "nodule" and meas.section == "FINDINGS"
    status = {lab.finding: lab.status.value for lab in labels}
    assert status == {"nodule": "present", "pleural effusion": "absent", "normal": "absent"}
