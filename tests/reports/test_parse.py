"""End to end: `medmm reports parse` over a small CSV on a local Dask cluster; schemas; models; rendering."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from medmm.pseudonym import Pseudonymizer
from medmm.schemas import validate_frame

KEY = bytes.fromhex("ab" * 32)


def rid(raw: str) -> str:
    """The report id a parse with the test's key writes for the input id ``raw``."""
    return Pseudonymizer(KEY).id(raw, "report")


CSV = (
    "uid,patient,indication,findings,impression\n"
    '1,P1,r/o pneumonia,"Heart is mildly enlarged. No pneumothorax. A 12 mm spiculated nodule in the right '
    'upper lobe.",Possible left lower lobe atelectasis.\n'
    """2,P2,,"<p>The lungs are clear. No pleural effusion.</p>",No acute cardiopulmonary abnormality.
2,P2,,dup,dup
3,P3,, ,
4,P4,cough,"Chronic obstructive pulmonary disease (COPD) with hyperinflation. COPD is stable.",Emphysema.
"""
)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from medmm.reports.pipeline import parse_reports

    base = tmp_path_factory.mktemp("reports")
    (base / "r.csv").write_text(CSV)
    key = base / "site.key"
    key.write_text(KEY.hex() + "\n")
    parse_reports(
        base / "r.csv",
        base / "run",
        patient_column="patient",
        workers=2,
        batch_size=2,
        key_file=key,
        keep_text=True,
    )
    return base / "run"


def test_every_input_in_manifest_once(run_dir: Path) -> None:
    m = pd.read_parquet(run_dir / "manifest_reports.parquet")
    assert m["path"].tolist() == [f"r.csv#{i}" for i in range(1, 6)]
    assert m["status"].tolist() == ["ingested", "ingested", "duplicate", "quarantined", "ingested"]
    # report ids (accession numbers) are pseudonyms in every row, rejected rows too
    assert m["report_id"].tolist() == [rid(i) for i in "12234"]
    assert "same report_id as r.csv#2" in m.loc[2, "reason"]
    assert m.loc[0, "patient_id"].startswith("pat-") and "P1" not in m.loc[0, "patient_id"]
    assert "html-stripped" in m.loc[1, "notes"]


def test_outputs_match_schemas(run_dir: Path) -> None:
    for table, schema in [
        ("entities", "entities"),
        ("report_labels", "report_labels"),
        ("report_texts", "report_texts"),
        ("manifest_reports", "manifest_reports"),
    ]:
        frame = pd.read_parquet(run_dir / f"{table}.parquet")
        assert validate_frame(frame, schema) == len(frame) > 0


def test_labels_and_entities(run_dir: Path) -> None:
    labels = pd.read_parquet(run_dir / "report_labels.parquet")
    got = {(r.report_id, r.finding): r.status for r in labels.itertuples()}
    assert got[(rid("1"), "cardiomegaly")] == "present"
    assert got[(rid("1"), "pneumothorax")] == "absent"
    assert got[(rid("1"), "atelectasis")] == "uncertain"
    assert (rid("1"), "pneumonia") not in got  # indication only: not a report finding
    assert got[(rid("1"), "normal")] == "absent" and got[(rid("2"), "normal")] == "present"
    assert got[(rid("4"), "emphysema")] == "present"
    ents = pd.read_parquet(run_dir / "entities.parquet")
    copd = ents[(ents.report_id == rid("4")) & (ents.text == "COPD")]
    assert set(copd["long_form"]) == {"Chronic obstructive pulmonary disease"}
    pneu = ents[(ents.report_id == rid("1")) & (ents.finding == "pneumonia")].iloc[0]
    assert pneu["section"] == "INDICATION" and pneu["uncertain"]
    nodule = ents[(ents.report_id == rid("1")) & (ents.finding == "nodule") & (ents.label == "FINDING")].iloc[
        0
    ]
    assert nodule["measurement_mm"] == 12.0 and nodule["location"] == "right upper lobe"
    assert set(ents["source"]) == {"lexicon:radiology-v1"}


def test_run_json_names_pipeline(run_dir: Path) -> None:
    from medmm.runinfo import read_run_json

    stage = read_run_json(run_dir)["stages"]["reports"]
    assert stage["pipeline"].startswith("lexicon:radiology-v1")
    assert stage["counts"]["ingested"] == 3 and stage["counts"]["reports"] == 5


def test_render_and_show(run_dir: Path, tmp_path: Path) -> None:
    from medmm.cli import app
    from medmm.reports.render import render_report

    key = run_dir.parent / "site.key"
    html = render_report("1", run_dir, key_file=key)
    assert "FINDING-NEG" in html and "FINDING-UNC" in html and "MEASUREMENT 12 mm" in html
    assert render_report(rid("1"), run_dir, key_file=key) == html  # the pseudonym finds it too
    out = tmp_path / "r1.html"
    show = ["reports", "show", "1", "--run", str(run_dir), "--html", str(out), "--key-file", str(key)]
    res = CliRunner().invoke(app, show)
    assert res.exit_code == 0, res.output
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and f"<title>report {rid('1')}</title>" in page
    res = CliRunner().invoke(
        app, ["reports", "show", rid("4"), "--run", str(run_dir), "--key-file", str(key)]
    )
    assert res.exit_code == 0 and "emphysema" in res.output, res.output
    res = CliRunner().invoke(app, ["reports", "show", "nope", "--run", str(run_dir), "--key-file", str(key)])
    assert res.exit_code == 2 and "no parsed report" in res.output and "nope" not in res.output
    other = tmp_path / "other.key"
    other.write_text("cd" * 32 + "\n")
    res = CliRunner().invoke(app, ["reports", "show", "1", "--run", str(run_dir), "--key-file", str(other)])
    assert res.exit_code == 2 and "is not the site key" in res.output and "--key-file" in res.output


def test_unknown_model_lists_installed(tmp_path: Path) -> None:
    from medmm.cli import app

    (tmp_path / "r.csv").write_text(CSV)
    res = CliRunner().invoke(
        app,
        [
            "reports",
            "parse",
            str(tmp_path / "r.csv"),
            "--out",
            str(tmp_path / "o"),
            "--model",
            "en_core_sci_nonexistent",
            "--workers",
            "0",
        ],
    )
    assert res.exit_code == 2
    assert "installed:" in res.output and "ai2-s2-scispacy/releases" in res.output
    assert not (tmp_path / "o" / "entities.parquet").exists()


def test_model_by_path_records_source(tmp_path: Path) -> None:
    import spacy
    from scispacy.custom_tokenizer import combined_rule_tokenizer

    from medmm.reports.pipeline import parse_reports

    nlp = spacy.blank("en")
    nlp.tokenizer = combined_rule_tokenizer(nlp)
    ruler = nlp.add_pipe("entity_ruler", name="ner")
    ruler.add_patterns(
        [{"label": "DISEASE", "pattern": "sarcoidosis"}, {"label": "DISEASE", "pattern": "effusion"}]
    )
    nlp.to_disk(tmp_path / "model")
    (tmp_path / "r.csv").write_text("uid,text\n1,History of sarcoidosis. Small effusion.\n")
    summary = parse_reports(tmp_path / "r.csv", tmp_path / "o", model=str(tmp_path / "model"), workers=0)
    assert summary.pipeline.startswith("model:model-")
    ents = pd.read_parquet(tmp_path / "o" / "entities.parquet").set_index("text")
    assert ents.loc["sarcoidosis", "source"].startswith("model:model-")
    assert ents.loc["sarcoidosis", "label"] == "DISEASE"
    assert ents.loc["effusion", "source"] == "lexicon:radiology-v1"  # the lexicon wins overlaps


def test_evaluate_ner_cli_scores_a_saved_pipeline(tmp_path: Path) -> None:
    import json

    import spacy
    from scispacy.custom_tokenizer import combined_rule_tokenizer

    from medmm.cli import app

    nlp = spacy.blank("en")
    nlp.tokenizer = combined_rule_tokenizer(nlp)
    ruler = nlp.add_pipe("entity_ruler", name="ner")
    ruler.add_patterns([{"label": "DISEASE", "pattern": "pneumonia"}])
    nlp.to_disk(tmp_path / "model")
    corpus = tmp_path / "devel.tsv"
    corpus.write_text("Severe\tO\npneumonia\tB-Disease\n.\tO\n\nNo\tO\nasthma\tB-Disease\n.\tO\n")
    res = CliRunner().invoke(
        app,
        [
            "reports",
            "evaluate-ner",
            "--model",
            str(tmp_path / "model"),
            "--corpus",
            str(corpus),
            "--label-map",
            "DISEASE=Disease",
        ],
    )
    assert res.exit_code == 0, res.output
    scores = json.loads(res.output)
    assert scores["micro"]["precision"] == 1.0 and scores["micro"]["recall"] == 0.5


def test_dask_workers_wrote_the_parts(run_dir: Path) -> None:
    """Workers that see the run directory write their parts themselves; the marker is removed."""
    folder = run_dir / ".reports_parts"
    assert len(list(folder.glob("part-*-reports.arrow"))) == 2  # 3 parsed reports in batches of 2
    assert not list(folder.glob(".writer-*")) and not list(folder.glob(".todo-*"))


def test_task_without_the_marker_sends_its_tables(tmp_path: Path) -> None:
    """A worker on another file system (no marker) returns the tables for the driver to write."""
    from medmm.reports.io.inputs import ReportInput
    from medmm.reports.pipeline import BatchTables
    from medmm.reports.resume import Parts
    from medmm.reports.tasks import PartWritten, Work, parse_to_part, stage

    work = Work.of([ReportInput("1", "x#1", "csv", "No pneumothorax.", 16)], ["k1"])
    res = parse_to_part(work, str(tmp_path), "not-a-token")
    assert isinstance(res, BatchTables) and res.entities["finding"].to_pylist() == ["pneumothorax"]
    token = Parts(tmp_path).mark()
    (staged,) = stage(tmp_path / "todo", [work])
    done = parse_to_part(staged, str(tmp_path), token, None, True)
    assert isinstance(done, PartWritten) and done.n_reports == 1
    assert Parts(tmp_path).done_keys() == {"k1"}


def test_auto_batch_size_aims_at_six_tasks_per_worker() -> None:
    from medmm.reports.pipeline import auto_batch_size

    assert auto_batch_size(6_000, 2) == 500
    assert auto_batch_size(10, 2) == 100 and auto_batch_size(10**6, 2) == 1000


@pytest.mark.parametrize("n", [0, 1, 399, 400, 801, 2_000, 10_236, 123_457])
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_planned_task_sizes_shrink_and_cover_every_report(n: int, workers: int) -> None:
    from medmm.reports.tasks import TASK_LIMITS, plan_sizes

    sizes = plan_sizes(n, workers)
    assert sum(sizes) == n and all(0 < s <= TASK_LIMITS[1] for s in sizes)
    assert sizes == sorted(sizes, reverse=True)  # big tasks first, small ones last
    if n >= 4 * workers * TASK_LIMITS[0]:
        assert sizes[-1] < 2 * TASK_LIMITS[0] and sizes[0] >= min(TASK_LIMITS[1], n // (2 * workers))
