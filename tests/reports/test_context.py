"""ConText attributes `historical` and `experiencer` (medmm.reports.context) on entities and their effect
on report labels. Before them "History of pneumonia." made the report's pneumonia label `present` (and
`normal` absent), "Family history of lung cancer" / "history of CHF" were no entities at all."""

from __future__ import annotations

import random
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from medmm.reports.context import SentenceContext, context_of, context_phrases
from medmm.reports.extract import doc_records
from medmm.reports.negation import Trigger
from medmm.reports.nlp import PipelineSpec, get_pipeline


@pytest.fixture(scope="module")
def parse() -> Any:
    spec = PipelineSpec()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nlp = get_pipeline(spec)

    def run(text: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ents, labels, _ = doc_records(nlp(text), "r", spec)
        return ents, {lab["finding"]: lab["status"] for lab in labels}

    return run


def _ent(ents: list[dict[str, Any]], text: str) -> dict[str, Any]:
    found = [e for e in ents if e["text"] == text]
    assert len(found) == 1, (text, [e["text"] for e in ents])
    return found[0]


@pytest.mark.parametrize(
    ("text", "word", "finding"),
    [
        ("History of pneumonia.", "pneumonia", "pneumonia"),
        ("h/o pneumothorax.", "pneumothorax", "pneumothorax"),
        ("Hx of pneumothorax.", "pneumothorax", "pneumothorax"),
        ("Past medical history of pneumonia and pleural effusion.", "pleural effusion", "pleural effusion"),
        ("Patient with a history of CHF.", "CHF", "heart failure"),
        ("Known history of lung cancer.", "lung cancer", "malignancy"),
    ],
)
def test_history_is_historical_and_no_label(parse: Any, text: str, word: str, finding: str) -> None:
    ents, labels = parse(text)
    e = _ent(ents, word)
    assert e["historical"] is True and e["experiencer"] == "patient" and e["finding"] == finding
    assert not e["negated"] and not e["uncertain"]
    assert finding not in labels  # was "present"
    assert labels["normal"] == "present"  # was "absent"


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("Family history of lung cancer.", "lung cancer"),
        ("Mother with breast cancer.", "breast cancer"),
        ("Father's lung cancer.", "lung cancer"),
        ("Lung cancer in his mother.", "Lung cancer"),
        ("Strong family history of lymphoma.", "lymphoma"),
        ("Maternal history of lung cancer.", "lung cancer"),  # was historical too, as "history of"
    ],
)
def test_family_experiencer_and_no_label(parse: Any, text: str, word: str) -> None:
    ents, labels = parse(text)
    e = _ent(ents, word)
    assert e["experiencer"] == "family"
    assert e["historical"] is False  # "family history of" is the relative's, not the patient's past
    assert "malignancy" not in labels and labels["normal"] == "present"


@pytest.mark.parametrize(
    ("text", "word", "finding"),
    [
        # "prior" / "previous" name the previous exam or the cause of a sequela seen now (data/context.yaml)
        ("Compared with prior, there is stable cardiomegaly.", "cardiomegaly", "cardiomegaly"),
        ("Cardiomegaly, unchanged from prior.", "Cardiomegaly", "cardiomegaly"),
        ("The previous right pleural effusion is smaller.", "pleural effusion", "pleural effusion"),
        ("Prior granulomatous disease.", "granulomatous disease", "granuloma"),
        ("Evidence of prior granulomatous disease.", "granulomatous disease", "granuloma"),
        ("Deformity of the left anterior ribs from previous fractures.", "fractures", "fracture"),
        # old / healed / calcified / known: findings of this exam
        ("Old healed left rib fracture.", "fracture", "fracture"),
        ("Calcified granuloma in the right upper lobe.", "Calcified granuloma", "granuloma"),
        ("Known right upper lobe nodule, stable.", "nodule", "nodule"),
        # status post: the procedure's result is on the image
        ("Status post CABG with sternotomy wires.", "sternotomy wires", "device"),
        # scope: a new clause about now, a termination, another sentence
        ("History of COPD, now with new left pleural effusion.", "pleural effusion", "pleural effusion"),
        ("History of lung cancer, but there is a right upper lobe mass.", "mass", "mass"),
        ("Remote history of tuberculosis with calcified granulomas.", "calcified granulomas", "granuloma"),
        # "status post" after a history: the procedure's changes are on this image (was historical, and
        # the report's only surgical-change mention then gave no label)
        ("History of lung cancer status post right upper lobectomy.", "lobectomy", "surgical change"),
        ("History of lung cancer, s/p left upper lobectomy.", "lobectomy", "surgical change"),
    ],
)
def test_current_findings_stay_current(parse: Any, text: str, word: str, finding: str) -> None:
    ents, labels = parse(text)
    e = _ent(ents, word)
    assert e["historical"] is False and e["experiencer"] == "patient", e
    assert e["finding"] == finding and labels[finding] == "present"


def test_history_then_new_finding_in_one_report(parse: Any) -> None:
    ents, labels = parse("History of pneumonia. Right lower lobe pneumonia.")
    flags = [e["historical"] for e in ents if e["finding"] == "pneumonia"]
    assert flags == [True, False]
    assert labels["pneumonia"] == "present"  # decided by the current mention


def test_prior_resolved_is_negated_not_historical(parse: Any) -> None:
    ents, labels = parse("Prior right lower lobe pneumonia, now resolved.")
    e = _ent(ents, "pneumonia")
    assert e["negated"] is True and e["historical"] is False  # "prior" is no trigger; "resolved" negates
    assert labels["pneumonia"] == "absent" and labels["normal"] == "present"


def test_negated_history_is_both(parse: Any) -> None:
    ents, labels = parse("No history of pneumothorax.")
    e = _ent(ents, "pneumothorax")
    assert e["negated"] is True and e["historical"] is True
    assert "pneumothorax" not in labels


def test_negation_after_history_ends_its_scope(parse: Any) -> None:
    """An IU report: "... consistent with history of right lower lobectomy, without focal consolidation,
    pneumothorax, or effusion identified" - the negated findings are this exam's."""
    text = (
        "There is relative elevation of the right hemidiaphragm consistent with history of right lower "
        "lobectomy, without focal consolidation, pneumothorax, or effusion identified."
    )
    ents, labels = parse(text)
    assert _ent(ents, "lobectomy")["historical"] is True
    for word in ("consolidation", "pneumothorax", "effusion"):
        e = _ent(ents, word)
        assert e["negated"] is True and e["historical"] is False, word
    assert labels["pneumothorax"] == "absent"


def test_family_scope_ends_at_the_patient(parse: Any) -> None:
    ents, labels = parse("Mother with lung cancer; patient has a right upper lobe nodule.")
    assert _ent(ents, "lung cancer")["experiencer"] == "family"
    assert _ent(ents, "nodule")["experiencer"] == "patient"
    assert labels["nodule"] == "present"


def test_history_section_is_kept_but_labels_come_from_findings(parse: Any) -> None:
    ents, labels = parse("HISTORY: Pneumonia.\nFINDINGS: No acute cardiopulmonary disease.")
    e = _ent(ents, "Pneumonia")
    assert e["section"] == "HISTORY"
    assert "pneumonia" not in labels and labels["normal"] == "present"
    _, labels = parse("HISTORY: Pneumonia.\nFINDINGS: Right lower lobe pneumonia.")
    assert labels["pneumonia"] == "present"


def test_measurement_row_takes_the_context_of_its_finding(parse: Any) -> None:
    ents, _ = parse("History of a 12 mm left upper lobe nodule.")
    size = next(e for e in ents if e["label"] == "MEASUREMENT")
    assert size["historical"] is True and size["finding"] == "nodule" and size["laterality"] == "left"


def test_context_triggers_never_change_negation(parse: Any) -> None:
    """ "with" ends negation but not the family scope; both layers resolve their overlaps on their own."""
    ents, _ = parse("No fever, mother with pneumonia.")
    e = _ent(ents, "pneumonia")
    assert e["negated"] is False and e["experiencer"] == "family"


def test_trigger_lists() -> None:
    p = context_phrases()
    assert {"history of", "h/o", "past medical history"} <= set(p["hist_pre"])
    for trap in ("prior", "previous", "previously", "old", "healed", "status post", "s/p", "remote", "known"):
        assert trap not in p["hist_pre"]
    assert {"family history of", "mother", "father's"} <= set(p["fam_pre"])
    assert "in his mother" in p["fam_post"]
    assert "with" not in p["ctx_term"]


def test_sentence_context_agrees_with_reference() -> None:
    rng = random.Random(9)
    kinds = ["hist_pre", "hist_term", "fam_pre", "fam_post", "fam_term", "ctx_term", "hist_pre+ctx_term"]
    for _ in range(300):
        pos, triggers = 0, []
        while pos < 40:
            pos += rng.randint(1, 4)
            width = rng.randint(1, 2)
            triggers.append(Trigger(pos, pos + width, rng.choice(kinds)))
            pos += width
        sent = (rng.randint(0, 5), rng.randint(35, 50))
        sc = SentenceContext(triggers, *sent)
        taken = {i for t in triggers for i in range(t.start, t.end)}
        for a in range(sent[0], sent[1] - 1):
            if a in taken or a + 1 in taken:
                continue
            assert sc.context(a, a + 1) == context_of(a, a + 1, triggers, *sent), (a, triggers)


def test_one_long_sentence_costs_linear_work() -> None:
    """4,000 "history of X, no Y," in one sentence: each entity's attributes are one bisection away
    (no walk over the triggers between)."""
    n = 4000
    triggers = []
    for k in range(n):
        triggers += [Trigger(6 * k, 6 * k + 2, "hist_pre"), Trigger(6 * k + 3, 6 * k + 4, "ctx_term")]
    sc = SentenceContext(triggers, 0, 6 * n)
    calls = 0
    real = sc.hist

    class Counted(list):
        def __getitem__(self, i: Any) -> Any:
            nonlocal calls
            calls += 1
            return super().__getitem__(i)

    sc.hist = Counted(real)
    assert all(sc.context(6 * k + 2, 6 * k + 3) == (True, False) for k in range(n))
    assert all(sc.context(6 * k + 4, 6 * k + 5) == (False, False) for k in range(n))
    assert calls <= 2 * n


def test_parse_writes_the_columns(tmp_path: Path) -> None:
    from medmm.reports.pipeline import parse_reports
    from medmm.schemas import validate_frame

    rows = [
        ("a", "FINDINGS: History of pneumonia. Bilateral pleural effusions.\nIMPRESSION: Effusions."),
        ("b", "FINDINGS: Family history of lung cancer. Left upper lobe nodule."),
    ]
    csv = tmp_path / "r.csv"
    pd.DataFrame(rows, columns=["id", "report"]).to_csv(csv, index=False)
    parse_reports(csv, tmp_path / "run", workers=0, keep_report_ids=True)
    ents = pd.read_parquet(tmp_path / "run" / "entities.parquet")
    validate_frame(ents, "entities")
    ents = ents.astype({"laterality": object}).where(ents.notna(), None)
    got = {(r.report_id, r.text): (r.historical, r.experiencer, r.laterality) for r in ents.itertuples()}
    assert got[("a", "pneumonia")] == (True, "patient", None)
    assert got[("a", "pleural effusions")] == (False, "patient", "bilateral")
    assert got[("b", "lung cancer")] == (False, "family", None)
    assert got[("b", "nodule")] == (False, "patient", "left")
    labels = pd.read_parquet(tmp_path / "run" / "report_labels.parquet")
    status = {(r.report_id, r.finding): r.status for r in labels.itertuples()}
    assert ("a", "pneumonia") not in status and status[("a", "pleural effusion")] == "present"
    assert ("b", "malignancy") not in status and status[("b", "nodule")] == "present"


def test_render_marks_family_and_historical() -> None:
    from medmm.reports.render import render_html

    text = "History of pneumonia. Mother with lung cancer."
    ents = pd.DataFrame(
        [
            dict(start=11, end=20, label="FINDING", negated=False, uncertain=False, historical=True,
                 experiencer="patient", measurement_mm=None),
            dict(start=34, end=45, label="FINDING", negated=False, uncertain=False, historical=False,
                 experiencer="family", measurement_mm=None),
        ]
    )  # fmt: skip
    html = render_html(text, ents)
    assert "FINDING-HIST" in html and "FINDING-FAM" in html


def test_show_prints_the_columns_and_reads_older_runs(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from medmm.cli import app
    from medmm.reports.pipeline import parse_reports

    csv = tmp_path / "r.csv"
    pd.DataFrame([("a", "History of pneumonia. Left pleural effusion.")], columns=["id", "report"]).to_csv(
        csv, index=False
    )
    run = tmp_path / "run"
    parse_reports(csv, run, workers=0, keep_report_ids=True)
    res = CliRunner().invoke(app, ["reports", "show", "a", "--run", str(run)])
    assert res.exit_code == 0, res.output
    assert "historical" in res.output and "experiencer" in res.output and "laterality" in res.output
    ents = pd.read_parquet(run / "entities.parquet")
    ents.drop(columns=["historical", "experiencer", "laterality"]).to_parquet(run / "entities.parquet")
    res = CliRunner().invoke(app, ["reports", "show", "a", "--run", str(run)])  # a run parsed before them
    assert res.exit_code == 0 and "pneumonia" in res.output, res.output


def test_span_attributes() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        doc = get_pipeline(PipelineSpec())(
            "Family history of lung cancer. History of pneumonia. Left effusion."
        )
    got = {e.text: (e._.historical, e._.experiencer, e._.negated) for e in doc.ents}
    assert got["lung cancer"] == (False, "family", False)
    assert got["pneumonia"] == (True, "patient", False)
    assert got["effusion"] == (False, "patient", False)


def test_with_ends_history_not_family(parse: Any) -> None:
    ents, labels = parse("Remote history of tuberculosis with calcified granulomas.")
    assert _ent(ents, "tuberculosis")["historical"] is True
    assert _ent(ents, "calcified granulomas")["historical"] is False
    assert labels["granuloma"] == "present" and "tuberculosis" not in labels
    ents, _ = parse("Mother with breast cancer.")
    assert _ent(ents, "breast cancer")["experiencer"] == "family"
