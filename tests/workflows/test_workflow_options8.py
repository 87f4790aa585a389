"""`medmm run` with this session's linkage options: the ingest stage's `accession_column` (ids table), the
reports stage's `accession_column`, and align's `report_window_s`, on the real COVID chest X-ray pictures.

The ids table and the RIS export are made here from the collection's metadata (its own table has no
accession numbers): one accession number per case, under a column name that is not `accession`."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from medmm.cli import app
from medmm.errors import ConfigError
from medmm.pseudonym import Pseudonymizer, load_key
from medmm.reports.io.inputs import report_pseudonymizer
from medmm.workflows.config import load_workflow
from medmm.workflows.run import run_workflow


def _site(folder: Path, covid: Path) -> dict[str, str]:
    """ids.csv (accession column `RIS Accession`), ris.csv (one report per case) and a site key in
    ``folder``; returns file name -> raw accession number."""
    meta = pd.read_csv(covid / "metadata_subset_licensed.csv")
    meta = meta[[(covid / "images" / f).is_file() for f in meta["filename"]]]
    cases = {url: f"RISX-{4417000 + i}" for i, url in enumerate(sorted(meta[" url"].unique()))}
    ids = pd.DataFrame(
        {
            "filename": meta["filename"],
            "Patientid": meta["Patientid"].astype(str),
            "case": meta[" url"],  # one study per case (a PA and a lateral view of one exam share it)
            "RIS Accession": meta[" url"].map(cases),
            "modality": meta["modality"],
        }
    )
    ids.to_csv(folder / "ids.csv", index=False)
    ris = ids.drop_duplicates("case")
    pd.DataFrame(
        {
            "rid": [f"R{i}" for i in range(len(ris))],
            "Patientid": ris["Patientid"],
            "accession_no": ris["RIS Accession"],
            "findings": "Bilateral patchy airspace opacities. No pleural effusion.",
        }
    ).to_csv(folder / "ris.csv", index=False)
    (folder / "site.key").write_text("ef" * 32 + "\n")
    (folder / "site.key").chmod(0o600)
    return dict(zip(ids["filename"], ids["RIS Accession"], strict=True))


def _workflow(folder: Path, images: Path, ingest: str, align: str = "{report_window_s: 3d}") -> Path:
    path = folder / "w.yaml"
    path.write_text(
        "name: linkage\nrun_dir: run\nkey_file: site.key\ncluster: {workers: 1}\nstages:\n"
        f"  - {{stage: ingest, input: {images}, options: {ingest}}}\n"
        "  - stage: reports\n    input: ris.csv\n    options: {id_column: rid, text_columns: [findings], "
        "patient_column: Patientid, accession_column: accession_no}\n"
        f"  - {{stage: align, options: {align}}}\n"
    )
    return path


def test_a_workflow_links_real_pictures_to_reports_by_accession(
    tmp_path: Path, shared_data: Path, strings_in_run: Callable[[Path, Iterable[str]], list[str]]
) -> None:
    covid = shared_data / "covid_chestxray_subset"
    accession = _site(tmp_path, covid)
    ingest = (
        "{ids: ids.csv, path_column: filename, patient_column: Patientid, study_column: case, "
        "accession_column: 'RIS Accession'}"
    )
    res = CliRunner().invoke(app, ["run", str(_workflow(tmp_path, covid / "images", ingest))])
    assert res.exit_code == 0, res.output
    run = tmp_path / "run"
    volumes = pd.read_parquet(run / "volumes.parquet")
    assert len(volumes) == len(accession) == 34
    as_report = report_pseudonymizer(Pseudonymizer(load_key(tmp_path / "site.key")))
    got = {Path(s[0]).name: a for s, a in zip(volumes["sources"], volumes["accession_id"], strict=True)}
    assert got == {name: as_report(raw) for name, raw in accession.items()}

    manifest = pd.read_parquet(run / "manifest_reports.parquet")
    records = pd.read_parquet(run / "records.parquet")
    linked = records.dropna(subset=["report_id"])
    assert len(linked) == len(manifest) == len(set(accession.values()))
    assert (linked["report_link"] == "accession").all() and linked["has_image"].all()
    study_accession = dict(zip(volumes["study_id"], volumes["accession_id"], strict=True))
    report_accession = dict(zip(manifest["report_id"], manifest["accession_id"], strict=True))
    for report, study in zip(linked["report_id"], linked["study_id"], strict=True):
        assert report_accession[report] == study_accession[study]

    raw = set(accession.values())
    assert strings_in_run(run, raw) == []
    assert not [r for r in raw if r in res.output]


def _tiny_site(tmp_path: Path) -> Path:
    (tmp_path / "pics").mkdir()
    (tmp_path / "ids.csv").write_text("path,patient_id,acc\n")
    (tmp_path / "ris.csv").write_text("rid,Patientid,accession_no,findings\n")
    return tmp_path / "pics"


def test_accession_column_without_an_ids_table_is_refused(tmp_path: Path) -> None:
    cfg, base = load_workflow(_workflow(tmp_path, _tiny_site(tmp_path), "{accession_column: acc}"))
    with pytest.raises(ConfigError, match="add `ids:"):
        run_workflow(cfg, base)
    assert not (tmp_path / "run" / "volumes.parquet").exists()


def test_a_mistyped_accession_option_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    cfg, base = load_workflow(
        _workflow(tmp_path, _tiny_site(tmp_path), "{ids: ids.csv, accesion_column: acc}")
    )
    with pytest.raises(ConfigError, match=r"accesion_column.*did you mean 'accession_column'"):
        run_workflow(cfg, base)


WORKFLOW_DIR = Path(__file__).resolve().parents[2] / "workflows"


def _uncommented(path: Path) -> str:
    """A shipped workflow with its commented options switched on (``# key: value`` -> ``key: value``,
    indentation kept), as a user who copies it does; the commented predict stage (it needs a trained
    checkpoint) stays off."""
    lines = []
    for line in path.read_text().splitlines():
        if "- stage: predict" in line:
            break
        lines.append(re.sub(r"^(\s*)# (\s*[a-z_]+:.*)$", r"\1\2", line))
    return "\n".join(lines) + "\n"


def test_archive_batch_runs_with_its_commented_linkage_options(
    tmp_path: Path, key_file: Path, strings_in_run: Callable[[Path, Iterable[str]], list[str]]
) -> None:
    from medmm.demo.samples import write_sample_ecg

    text = _uncommented(WORKFLOW_DIR / "archive_batch.yaml")
    for key in ("ids:", "accession_column:", "date_column:", "report_window_s:", "patient_column:"):
        assert f"  {key}" in text and f"# {key}" not in text, key  # the commented options are still there
    (tmp_path / "archive_batch.yaml").write_text(text)
    archive = tmp_path / "archive"
    (archive / "imaging").mkdir(parents=True)
    rng = np.random.default_rng(1)
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(rng.integers(0, 255, (20, 20), dtype=np.uint8)).save(archive / "imaging" / name)
    (archive / "ids.csv").write_text(
        "filename,mrn,study_uid,accession_no,exam_date\n"
        "a.png,MRN-GAMMA-5150,1.2.840.99.1,RISQ-7700101,2022-06-01\n"
        "b.png,MRN-GAMMA-5150,1.2.840.99.2,RISQ-7700102,2022-06-01\n"
        "c.png,MRN-DELTA-6161,1.2.840.99.3,,2022-09-10T08:30:00\n"
    )
    pd.DataFrame(
        {
            "uid": ["U1", "U2", "U3"],
            "mrn": ["MRN-GAMMA-5150", "MRN-GAMMA-5150", "MRN-DELTA-6161"],
            "accession_no": ["RISQ-7700102", "RISQ-7700101", None],
            "exam_date": ["2022-06-01", "2022-06-01", "2022-09-12"],  # U3: 2 days after c.png, no accession
            "indication": ["cough", "fever", "dyspnea"],
            "findings": ["Small right pleural effusion.", "The lungs are clear.", "No pneumothorax."],
            "impression": ["Effusion.", "Normal.", "Normal."],
        }
    ).to_csv(archive / "reports.csv", index=False)
    write_sample_ecg(archive / "signals", n_records=1, duration_s=30.0)

    cfg, base = load_workflow(tmp_path / "archive_batch.yaml")
    result = run_workflow(cfg, base, workers=1)
    run = tmp_path / "runs" / "archive_batch"
    assert result.counts["ingest"].get("ingested") == 3 and result.n_quarantined == 0
    volumes = pd.read_parquet(run / "volumes.parquet")
    manifest = pd.read_parquet(run / "manifest_reports.parquet")
    as_report = report_pseudonymizer(Pseudonymizer(load_key(key_file)))
    assert set(volumes["accession_id"].dropna()) == {as_report("RISQ-7700101"), as_report("RISQ-7700102")}
    assert manifest["report_time"].notna().all()
    records = pd.read_parquet(run / "records.parquet")
    link = dict(zip(records["report_id"], records["report_link"], strict=True))
    report_of = dict(zip(manifest["path"].str.split("#").str[-1], manifest["report_id"], strict=True))
    by_row = {row: link.get(rid) for row, rid in report_of.items()}
    assert sorted(by_row.values()) == ["accession", "accession", "date"], by_row
    # U1 names b.png's accession number: it sits in b.png's record, not in a.png's (same patient, same day)
    vol_of_record = dict(zip(records["report_id"], records["image_id"], strict=True))
    acc_of_volume = dict(zip(volumes["volume_id"], volumes["accession_id"], strict=True))
    u1 = manifest.loc[manifest["accession_id"] == as_report("RISQ-7700102"), "report_id"].item()
    assert acc_of_volume[vol_of_record[u1]] == as_report("RISQ-7700102")
    raw = ["MRN-GAMMA-5150", "MRN-DELTA-6161", "RISQ-7700101", "RISQ-7700102", "1.2.840.99.1"]
    assert strings_in_run(run, raw) == []


def test_screening_runs_with_its_commented_plot_option(tmp_path: Path, key_file: Path) -> None:
    from medmm.anomaly.stage import train_on_run
    from medmm.demo.samples import write_sample_ecg
    from medmm.signals.pipeline import run_signals

    write_sample_ecg(tmp_path / "train_ecg", n_records=1, duration_s=60.0, seed=3)
    run_signals(tmp_path / "train_ecg", tmp_path / "train_run", workers=0, key_file=key_file)
    train_on_run(tmp_path / "train_run", tmp_path / "srv" / "medmm" / "models" / "beats", epochs=2)
    write_sample_ecg(tmp_path / "srv" / "ecg-export", n_records=2, duration_s=60.0)
    (tmp_path / "srv" / "pacs-export").mkdir()
    text = _uncommented(WORKFLOW_DIR / "screening.yaml")
    assert "  plot:" in text and "# plot:" not in text
    text = text.replace("/srv/", str(tmp_path / "srv") + "/").replace("key_file: ", "# key_file: ")
    (tmp_path / "screening.yaml").write_text(text)
    cfg, base = load_workflow(tmp_path / "screening.yaml")
    result = run_workflow(cfg, base, workers=1)
    run = tmp_path / "srv" / "medmm" / "screening"
    windows = pd.read_parquet(run / "window_anomalies.parquet")
    assert result.counts["anomaly"]["windows"] == len(windows) > 0
    plot = int(yaml.safe_load(text)["stages"][-1]["options"]["plot"])
    assert len(list((run / "top_windows").glob("top_window_*.png"))) == min(plot, len(windows))
