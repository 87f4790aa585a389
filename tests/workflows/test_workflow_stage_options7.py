"""`medmm run` takes the options the stage commands gained: ingest's ids table, align's label table."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from medmm.cli import app
from medmm.errors import ConfigError
from medmm.pseudonym import Pseudonymizer, load_key
from medmm.workflows.config import load_workflow
from medmm.workflows.run import run_workflow

RAW = {
    "a.png": ("MRN-ALPHA-7731", "ACC-0001"),
    "b.png": ("MRN-ALPHA-7731", "ACC-0002"),
    "c.png": ("MRN-BETA-9902", "ACC-0003"),
}


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    """A workflow folder: 3 PNG pictures, an ids table with non-default column names, a label table."""
    rng = np.random.default_rng(0)
    (tmp_path / "pics").mkdir()
    for name in RAW:
        Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8)).save(tmp_path / "pics" / name)
    rows = [f"{name},{p},{s},2020-01-0{i + 1}" for i, (name, (p, s)) in enumerate(RAW.items())]
    (tmp_path / "ids.csv").write_text("filename,mrn,accession,when\n" + "\n".join(rows) + "\n")
    labels = ["patient,study,covid", "MRN-ALPHA-7731,,1", "MRN-BETA-9902,ACC-0003,0"]
    (tmp_path / "labels.csv").write_text("\n".join(labels) + "\n")
    return tmp_path


def _workflow(folder: Path, ingest_options: str, align_options: str = "{}") -> Path:
    path = folder / "w.yaml"
    path.write_text(
        "name: ids\nrun_dir: run\nkey_file: site.key\nstages:\n"
        f"  - {{stage: ingest, input: pics, options: {ingest_options}}}\n"
        f"  - {{stage: align, options: {align_options}}}\n"
    )
    return path


def test_ingest_ids_and_align_labels_from_a_workflow(
    site: Path, strings_in_run: Callable[[Path, Iterable[str]], list[str]]
) -> None:
    ingest = (
        "{ids: ids.csv, path_column: filename, patient_column: mrn, study_column: accession, "
        "time_column: when, modality: DX}"
    )
    path = _workflow(site, ingest, "{labels: labels.csv}")  # relative paths: against the workflow's folder
    res = CliRunner().invoke(app, ["run", str(path)])
    assert res.exit_code == 0, res.output
    pseudo = Pseudonymizer(load_key(site / "site.key"))
    volumes = pd.read_parquet(site / "run" / "volumes.parquet")
    assert len(volumes) == 3
    assert sorted(volumes["patient_id"]) == sorted(pseudo.id(p, "patient") for p, _ in RAW.values())
    assert sorted(volumes["study_id"]) == sorted(pseudo.id(s, "study") for _, s in RAW.values())
    assert set(volumes["modality"]) == {"DX"}
    records = pd.read_parquet(site / "run" / "records.parquet")
    assert sorted(json.loads(t).get("covid") for t in records["labels"]) == [0, 1, 1]
    raw_ids = {v for pair in RAW.values() for v in pair}
    assert strings_in_run(site / "run", raw_ids) == []  # bytes and every table cell
    assert not [r for r in raw_ids if r in res.output]


def test_a_mistyped_ingest_option_is_refused_with_a_suggestion(site: Path) -> None:
    cfg, base = load_workflow(_workflow(site, "{ids: ids.csv, patient_colum: mrn}"))
    with pytest.raises(ConfigError, match=r"patient_colum.*did you mean 'patient_column'"):
        run_workflow(cfg, base)
    assert not (site / "run" / "volumes.parquet").exists()


def test_id_columns_without_an_ids_table_are_refused(site: Path) -> None:
    cfg, base = load_workflow(_workflow(site, "{patient_column: mrn}"))
    with pytest.raises(ConfigError, match="add `ids:"):
        run_workflow(cfg, base)


def test_a_missing_ids_table_names_the_resolved_file(site: Path) -> None:
    res = CliRunner().invoke(app, ["run", str(_workflow(site, "{ids: nope.csv}"))])
    assert res.exit_code == 2
    assert str(site / "nope.csv") in res.output.replace("\n", "")
