"""`medmm share` on whole runs: the demo's run and a run whose file and record names identify a patient.

No source name (path, file name, stem, record name, absolute input root) may reach the share, and the
shared tables must still join (the same record or file gets the same pseudonym in every table).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from medmm.cli import app
from medmm.share import share_run

Scan = Callable[[Path, Iterable[str]], list[str]]

MIMIC_RECORD = "p000020-2183-04-28-17-47"
IDENTIFYING = ["DOE", "JOHN", "19700101", "2024-01-05", "MRN98765432", "p000020", "2183-04-28", MIMIC_RECORD]


def _key(folder: Path) -> Path:
    path = folder / "site.key"
    path.write_text("cd" * 32 + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The demo's run (every stage on its sample data) and its key."""
    from medmm.demo.run import run_full_demo

    base = tmp_path_factory.mktemp("demo")
    key = _key(base)
    run_full_demo(base / "run", workers=1, key_file=key)
    return base / "run", key


@pytest.fixture(scope="module")
def identifying_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A run whose archive names the patient: a DICOM file ``DOE^JOHN/2024-01-05/DOE_JOHN_19700101.dcm``,
    an empty ``MRN98765432.dcm`` (quarantined, its reason names the path) and a WFDB record named like
    MIMIC's matched subset (``p000020-2183-04-28-17-47``: the real recording date). Plus an unknown file
    with an identifying name and an unknown column, which a share must leave out."""
    import wfdb
    from pydicom.data import get_testdata_file

    from medmm.align.pipeline import align_run
    from medmm.demo.samples import synthetic_ecg
    from medmm.ingest.pipeline import ingest_archive
    from medmm.signals.pipeline import run_signals

    base = tmp_path_factory.mktemp("ident")
    key = _key(base)
    study = base / "archive" / "DOE^JOHN" / "2024-01-05"
    study.mkdir(parents=True)
    shutil.copyfile(str(get_testdata_file("CT_small.dcm")), study / "DOE_JOHN_19700101.dcm")
    (study / "MRN98765432.dcm").write_bytes(b"")
    signals = base / "signals" / "p00" / "p000020"
    signals.mkdir(parents=True)
    ecg, _, _ = synthetic_ecg(250.0, 60.0, pvc_every=7, seed=1)
    wfdb.wrsamp(
        MIMIC_RECORD,
        fs=250,
        units=["mV"],
        sig_name=["II"],
        p_signal=ecg[:, None],
        fmt=["16"],
        adc_gain=[200.0],
        baseline=[0],
        write_dir=str(signals),
    )
    run = base / "run"
    ingest_archive(base / "archive", run, workers=1, processes=False, key_file=key)
    run_signals(base / "signals", run, workers=0, key_file=key)
    align_run(run, key_file=key)
    (run / "DOE_JOHN_notes.csv").write_text("not a medmm artifact\n")
    beats = pd.read_parquet(run / "beats.parquet")
    beats.assign(operator="DOE").to_parquet(run / "beats.parquet", index=False)  # a column no policy names
    return run, key


def _source_strings(run: Path) -> list[str]:
    """Full source paths, file names and record names of the run, and its absolute input roots."""
    out: set[str] = set()
    for name in ("manifest.parquet", "manifest_signals.parquet", "manifest_reports.parquet"):
        if (run / name).exists():
            for path in pd.read_parquet(run / name)["path"].dropna():
                out |= {path, path.rsplit("/", 1)[-1].split("#", 1)[0]}
    for name in ("signals.parquet", "beats.parquet", "windows.parquet"):
        if (run / name).exists():
            out |= set(pd.read_parquet(run / name, columns=["record"])["record"].dropna())
    out.add(str(run.parent))
    return sorted(out)


def _split(strings: list[str]) -> tuple[list[str], set[str]]:
    """Names to search for inside text, and short numbers (DICOM file names like ``2392``, MIT-BIH's
    ``100``) that also occur inside any number, so are looked for as whole table cells only."""
    short = {s for s in strings if s.isdigit() and len(s) < 6}
    return [s for s in strings if s not in short], short


def _whole_cells(share: Path, names: set[str]) -> list[str]:
    hits = []
    for f in share.rglob("*.parquet"):
        frame = pd.read_parquet(f)
        for column in frame.columns:
            cells = frame[column].map(lambda v: list(v) if isinstance(v, np.ndarray) else [v]).explode()
            if cells.map(lambda v: isinstance(v, str) and v in names).any():
                hits.append(f"{f.name}: {column}")
    return hits


def test_demo_share_holds_no_source_name_and_still_joins(
    demo_run: tuple[Path, Path], tmp_path: Path, strings_in_run: Scan
) -> None:
    run, key = demo_run
    out = tmp_path / "share"
    report = share_run(run, out, key_file=key, with_volumes=True, with_windows=True)
    strings, short = _split(_source_strings(run))
    assert len(strings) > 40 and "demo_ecg_1" in strings and "2392" in short
    assert strings_in_run(out, strings) == []
    assert _whole_cells(out, short) == []
    assert report["self_check"]["findings"] == 0
    # what must never travel
    assert not (out / "report_texts.parquet").exists() and not (out / "figures").exists()
    for name in ("manifest.parquet", "manifest_signals.parquet", "manifest_reports.parquet"):
        assert "mtime_ns" not in pd.read_parquet(out / name).columns
    assert "text" not in pd.read_parquet(out / "entities.parquet").columns
    assert "evidence" not in pd.read_parquet(out / "report_labels.parquet").columns
    run_json = json.loads((out / "run.json").read_text())
    assert "key_check" not in run_json and "platform" not in run_json["versions"]
    assert run_json["stages"]["signals"]["counts"]["beats"] > 0  # counts and options that are no path stay
    assert "archive" not in run_json["stages"]["ingest"]["options"]
    # the shared tables join as the run's did
    src_beats, beats = pd.read_parquet(run / "beats.parquet"), pd.read_parquet(out / "beats.parquet")
    assert (
        beats.groupby("record").size().sort_values().tolist()
        == src_beats.groupby("record").size().sort_values().tolist()
    )
    signals = set(pd.read_parquet(out / "signals.parquet")["record"])
    for name in ("beats", "anomalies", "features", "windows"):
        assert set(pd.read_parquet(out / f"{name}.parquet")["record"]) == signals, name
    assert all(r.startswith("sig-") for r in signals)
    records = pd.read_parquet(out / "records.parquet")
    assert {s.split("|")[0] for s in records["signal_id"].dropna()} == signals
    assert set(pd.read_parquet(out / "predictions.parquet")["record_id"]) <= set(records["record_id"])
    assert set(pd.read_parquet(out / "models/fusion/splits.parquet")["record_id"]) == set(
        records["record_id"]
    )
    windows = pd.read_parquet(out / "windows.parquet")
    for path, row in windows[["path", "row"]].drop_duplicates("path").itertuples(index=False):
        assert np.load(out / path).shape[0] > row
    manifest, volumes = pd.read_parquet(out / "manifest.parquet"), pd.read_parquet(out / "volumes.parquet")
    assert {p for s in volumes["sources"] for p in s} <= set(manifest["path"])
    assert set(manifest["volume_id"].dropna()) == set(volumes["volume_id"])
    assert all((out / p).is_file() for p in volumes["path"])
    # the same pseudonyms in two shares of the same run (collaborators can merge updates)
    again = share_run(run, tmp_path / "again", key_file=key)
    assert again["tables"].keys() == report["tables"].keys()
    assert pd.read_parquet(tmp_path / "again" / "beats.parquet")["record"].equals(beats["record"])


def test_share_of_identifying_names(
    identifying_run: tuple[Path, Path], tmp_path: Path, strings_in_run: Scan
) -> None:
    run, key = identifying_run
    assert strings_in_run(run, IDENTIFYING)  # the run itself holds them (the test can fail)
    out = tmp_path / "share"
    result = CliRunner().invoke(
        app,
        ["share", str(run), "--out", str(out), "--key-file", str(key), "--with-volumes", "--with-windows"],
    )
    assert result.exit_code == 0, result.output
    assert strings_in_run(out, [*IDENTIFYING, *_source_strings(run)]) == []
    assert not any(s in result.output for s in IDENTIFYING)  # the console summary neither
    report = json.loads((out / "share_report.json").read_text())
    assert report["tables"]["beats.parquet"]["left_out_columns"] == {"operator": "not on the allow-list"}
    assert "operator" not in pd.read_parquet(out / "beats.parquet").columns
    left_out = report["left_out"]
    assert len(left_out) == 1 and next(iter(left_out.values())) == {"not on medmm share's allow-list": 1}
    assert "left out:" in result.output and "self-check" in result.output
    manifest = pd.read_parquet(out / "manifest.parquet").set_index("status")
    quarantined = manifest.loc["quarantined"]
    assert (
        quarantined["reason"].startswith("EmptyFileError: fil-")
        and quarantined["path"] in quarantined["reason"]
    )
    records = pd.read_parquet(out / "records.parquet")
    beats = pd.read_parquet(out / "beats.parquet")
    assert set(beats["record"]) == {s.split("|")[0] for s in records["signal_id"].dropna()}
    assert (
        not records["study_id"].str.startswith("stu-signal-").any()
    )  # unkeyed hash of the record name re-keyed


def _small_run(folder: Path) -> tuple[Path, Path]:
    """A run directory with a report stage's tables (and report texts kept with --keep-text)."""
    from medmm.pseudonym import Pseudonymizer, load_key
    from medmm.runinfo import claim_site_key

    key = _key(folder)
    run = folder / "run"
    claim_site_key(run, Pseudonymizer(load_key(key)).check_value())
    pd.DataFrame(
        {
            "report_id": ["rep-1"],
            "section": ["FINDINGS"],
            "start": [0],
            "end": [5],
            "text": ["heart"],
            "label": ["ANATOMY"],
        }
    ).to_parquet(run / "entities.parquet")
    pd.DataFrame(
        {"report_id": ["rep-1"], "text": ["Patient DOE JOHN, MRN98765432: heart normal"]}
    ).to_parquet(run / "report_texts.parquet")
    return run, key


def test_wrong_key_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    run, _ = _small_run(tmp_path)
    wrong = tmp_path / "other.key"
    wrong.write_text("ef" * 32 + "\n")
    out = tmp_path / "share"
    result = CliRunner().invoke(app, ["share", str(run), "--out", str(out), "--key-file", str(wrong)])
    assert result.exit_code == 2
    assert (
        "not the site key" in result.output and "Fix:" in result.output and "Traceback" not in result.output
    )
    assert not out.exists() and not list(tmp_path.glob(".share.partial-*"))
    missing = CliRunner().invoke(
        app, ["share", str(run), "--out", str(out), "--key-file", str(tmp_path / "nope.key")]
    )
    assert missing.exit_code == 2 and "no site key there" in missing.output
    assert not (tmp_path / "nope.key").exists()  # never creates a key


def test_missing_run_dir_and_non_empty_out(tmp_path: Path) -> None:
    run, key = _small_run(tmp_path)
    result = CliRunner().invoke(
        app, ["share", str(tmp_path / "no_run"), "--out", str(tmp_path / "s"), "--key-file", str(key)]
    )
    assert result.exit_code == 2 and "no such run directory" in result.output and "Fix:" in result.output
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    result = CliRunner().invoke(
        app, ["share", str(run), "--out", str(tmp_path / "full"), "--key-file", str(key)]
    )
    assert result.exit_code == 2 and "not empty" in result.output
    inside = CliRunner().invoke(app, ["share", str(run), "--out", str(run / "share"), "--key-file", str(key)])
    assert inside.exit_code == 2 and "inside the run directory" in inside.output


def test_a_column_policy_that_would_leak_is_caught_and_the_share_removed(
    identifying_run: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The self-check is the backstop: were the manifest's path column kept as is, the share is refused."""
    from medmm.share.policy import TABLES, Policy

    monkeypatch.setitem(TABLES["manifest.parquet"], "path", Policy.keep)
    run, key = identifying_run
    out = tmp_path / "share"
    result = CliRunner().invoke(app, ["share", str(run), "--out", str(out), "--key-file", str(key)])
    assert result.exit_code == 2
    assert "manifest.parquet: column path" in result.output
    assert not any(s in result.output for s in IDENTIFYING)  # names the place, never the string
    assert not out.exists() and not list(tmp_path.iterdir())


def test_report_texts_never_shared_entity_spans_only_when_deidentified(
    tmp_path: Path, strings_in_run: Scan
) -> None:
    run, key = _small_run(tmp_path)
    assert strings_in_run(run, ["MRN98765432"])
    report = share_run(run, tmp_path / "share", key_file=key, reports_deidentified=True)
    assert report["dropped"]["report_texts.parquet"] == {"report text, not de-identified": 1}
    assert strings_in_run(tmp_path / "share", ["MRN98765432", "DOE"]) == []
    assert pd.read_parquet(tmp_path / "share" / "entities.parquet")["text"].tolist() == ["heart"]
    plain = share_run(run, tmp_path / "plain", key_file=key)
    assert plain["tables"]["entities.parquet"]["dropped_columns"]["text"] == "report text"
    assert "text" not in pd.read_parquet(tmp_path / "plain" / "entities.parquet").columns


def test_raw_report_ids_get_the_pseudonym_parse_would_have_given(
    tmp_path: Path, strings_in_run: Scan
) -> None:
    """Reports parsed with --keep-report-ids (a folder of .txt reports: the id is the file stem, here
    an accession number) are shared with the ``rep-`` pseudonym, in every table, so they still join."""
    from medmm.pseudonym import Pseudonymizer, load_key
    from medmm.reports.pipeline import parse_reports

    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "ACC20240105DOE.txt").write_text("FINDINGS: Mild cardiomegaly. No pleural effusion.\n")
    key = _key(tmp_path)
    run = tmp_path / "run"
    parse_reports(reports, run, key_file=key, keep_report_ids=True, workers=0)
    assert strings_in_run(run, ["ACC20240105DOE"])
    report = share_run(run, tmp_path / "share", key_file=key)
    assert strings_in_run(tmp_path / "share", ["ACC20240105DOE"]) == []
    rep = Pseudonymizer(load_key(key)).id("ACC20240105DOE", "report")
    for name in ("manifest_reports", "entities", "report_labels"):
        assert set(pd.read_parquet(tmp_path / "share" / f"{name}.parquet")["report_id"]) == {rep}, name
    assert report["tables"]["entities.parquet"]["columns"]["report_id"] == "report_id"
    plain = tmp_path / "plain_run"
    parse_reports(reports, plain, key_file=key, workers=0)
    shared = share_run(plain, tmp_path / "plain_share", key_file=key)
    assert shared["tables"]["entities.parquet"]["columns"]["report_id"] == "keep"
    assert set(pd.read_parquet(plain / "entities.parquet")["report_id"]) == {rep}  # the same pseudonym


def test_run_without_key_check_is_shared_with_a_note(tmp_path: Path) -> None:
    run, key = _small_run(tmp_path)
    data = json.loads((run / "run.json").read_text())
    del data["key_check"]
    (run / "run.json").write_text(json.dumps(data))
    result = CliRunner().invoke(
        app, ["share", str(run), "--out", str(tmp_path / "s"), "--key-file", str(key)]
    )
    assert result.exit_code == 0, result.output
    assert "could not be verified" in result.output
    assert json.loads((tmp_path / "s" / "share_report.json").read_text())["notes"]
    (run / "run.json").unlink()
    missing = CliRunner().invoke(
        app, ["share", str(run), "--out", str(tmp_path / "t"), "--key-file", str(key)]
    )
    assert missing.exit_code == 2 and "not a medmm run directory" in missing.output
