"""`medmm run` with this session's linkage options: the ingest stage's `accession_column` (ids table), the
reports stage's `accession_column`, and align's `report_window_s`, on the real COVID chest X-ray pictures.

The ids table and the RIS export are made here from the collection's metadata (its own table has no
accession numbers): one accession number per case, under a column name that is not `accession`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd
import pytest
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
