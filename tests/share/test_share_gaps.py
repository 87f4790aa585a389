"""Gaps of `medmm share` closed in session 8: names no manifest knows, ordinary words equal to a file stem,
and the outputs of `medmm anomaly evaluate`, `medmm models compare` and `medmm ingest --ids` tables."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd
import pytest

from medmm.pseudonym import Pseudonymizer
from medmm.share import share_run
from medmm.share.names import SourceNames
from medmm.share.words import looks_like_name, medmm_words
from medmm.signals.pipeline import run_signals

Scan = Callable[[Path, Iterable[str]], list[str]]


def _key(folder: Path) -> Path:
    path = folder / "site.key"
    path.write_text("ef" * 32 + "\n")
    path.chmod(0o600)
    return path


def test_missing_segment_name_in_real_wfdb_reason_is_pseudonymized(
    shared_data: Path, tmp_path: Path, strings_in_run: Scan
) -> None:
    """The real multi-segment record p000878 lacks segment 3269321_0003: its reason names the missing
    file, which is in no manifest; the share replaces it and keeps medmm's text."""
    key = _key(tmp_path)
    run = tmp_path / "run"
    run_signals(shared_data / "signals" / "wfdb_sample_data", run, workers=0, key_file=key)
    reasons = pd.read_parquet(run / "manifest_signals.parquet")["reason"]
    assert reasons.str.contains("3269321_0003.hea is missing").any()  # the case this test is about
    manifest_paths = set(pd.read_parquet(run / "manifest_signals.parquet")["path"])
    assert not any(p.endswith("3269321_0003.hea") for p in manifest_paths)  # unknown to the run
    share_run(run, tmp_path / "share", key_file=key)
    assert strings_in_run(tmp_path / "share", ["3269321_0003", "3269321"]) == []
    shared = pd.read_parquet(tmp_path / "share" / "manifest_signals.parquet")
    missing = shared[shared["reason"].str.contains("MissingSegmentError")]["reason"]
    p = Pseudonymizer(bytes.fromhex("ef" * 32))
    expected = (
        f"segment {p.id('3269321_0003', 'file')} is listed but {p.id('3269321_0003.hea', 'file')} is missing"
    )
    assert len(missing) > 0 and missing.str.contains(expected, regex=False).all()
    assert missing.str.endswith("Fix: copy every segment of the record").all()


def test_words_of_medmm_messages_survive_a_file_named_like_them(tmp_path: Path) -> None:
    """An archive with ``empty.dcm``: its reason "file is empty" keeps the word, the name goes, and the
    self-check passes (it checks such a word only as a whole value)."""
    from pydicom.data import get_testdata_file

    from medmm.ingest.pipeline import ingest_archive

    key = _key(tmp_path)
    archive = tmp_path / "archive"
    (archive / "empty").mkdir(parents=True)
    shutil.copyfile(str(get_testdata_file("CT_small.dcm")), archive / "empty" / "scan.dcm")
    (archive / "empty.dcm").write_bytes(b"")
    run = tmp_path / "run"
    ingest_archive(archive, run, workers=0, key_file=key)
    reason = str(pd.read_parquet(run / "manifest.parquet").set_index("path").loc["empty.dcm", "reason"])
    assert "empty.dcm" in reason and "file is empty" in reason
    share_run(run, tmp_path / "share", key_file=key)
    shared = pd.read_parquet(tmp_path / "share" / "manifest.parquet")
    p = Pseudonymizer(bytes.fromhex("ef" * 32))
    row = shared.set_index("path").loc[p.id("empty.dcm", "file")]
    assert "file is empty" in row["reason"]
    assert "empty.dcm" not in row["reason"] and p.id("empty.dcm", "file") in row["reason"]


def test_scrub_is_token_aware() -> None:
    p = Pseudonymizer(b"k" * 32)
    names = SourceNames.build(["corrupt.nii.gz", "DOE^JOHN/img.dcm"], ["p000020-2183-04-28-17-47"], p)
    text = "CorruptFileError: corrupt.nii.gz: corrupt gzip stream; see DOE^JOHN and p000020-2183-04-28-17-47"
    out = names.scrub(text)
    assert "corrupt gzip stream" in out and "corrupt.nii.gz" not in out
    assert "DOE" not in out and "p000020" not in out
    assert names.scrub("0.5 mV over 650000 samples in run.json") == "0.5 mV over 650000 samples in run.json"
    unknown = names.scrub("see other/DOE_JANE.dcm, 1970-01-01 and ACC-20240105 (19700101 is a number)")
    assert "DOE_JANE" not in unknown and "1970-01-01" not in unknown and "20240105" not in unknown
    assert "(19700101 is a number)" in unknown  # numbers stay: medmm's messages print counts
    assert looks_like_name("1.2.826.0.1.3680043.8.498.1") and not looks_like_name("1.2.840.10008.1.2.1")
    assert "DOE" not in medmm_words() and "file" in medmm_words()


def _fake_compare(folder: Path, record_ids: list[str]) -> None:
    """What `medmm models compare` writes (columns as compare.py writes them; a checkpoint's bytes)."""
    folder.mkdir(parents=True)
    table = pd.DataFrame(
        {
            "model": ["unimodal image", "fusion sum (findings)"],
            "test_modalities": ["image", "image+report"],
            "n_test": [3, 3],
            "best_epoch": [1, 2],
            "auroc_value": [0.5, 0.75],
            "auroc_lo": [0.1, 0.2],
            "auroc_hi": [0.9, 1.0],
            "report_inputs": ["", "findings"],
        }
    )
    table.to_csv(folder / "compare.csv", index=False)
    (folder / "compare.md").write_text("| model |\n|---|\n| unimodal image |\n")
    compare = {
        "target": "abnormal",
        "settings": {"epochs": 1, "output_dir": "/site/archive/DOE^JOHN/models"},
        "embedding_anomaly": {"unimodal image": {"threshold": 1.5, "note": "fitted on 4 records"}},
    }
    (folder / "compare.json").write_text(json.dumps(compare))
    pd.DataFrame({"record_id": record_ids, "split": ["train"] * len(record_ids)}).to_parquet(
        folder / "splits.parquet"
    )
    (folder / "unimodal_image").mkdir()
    (folder / "unimodal_image" / "model.pt").write_bytes(b"weights")


def test_evaluate_and_compare_outputs_are_shared_with_records_pseudonymized(
    shared_data: Path, tmp_path: Path, strings_in_run: Scan
) -> None:
    """A signals run with an `anomaly evaluate` folder and a compare folder inside, and an `--ids` table
    copied in: the evaluation tables are shared with record names pseudonymized (joining signals), the
    compare table and card without paths, checkpoints and the ids table never; nothing is unknown."""
    from medmm.anomaly.evaluate import EvalResult

    key = _key(tmp_path)
    run = tmp_path / "run"
    src = tmp_path / "wfdb"
    src.mkdir()
    for ext in ("hea", "dat", "atr"):
        shutil.copyfile(shared_data / "signals" / "wfdb_sample_data" / f"100.{ext}", src / f"100.{ext}")
    run_signals(src, run, workers=0, key_file=key)
    records = sorted(set(pd.read_parquet(run / "signals.parquet")["record"]))
    assert records == ["100"]
    # the tables `medmm anomaly evaluate --out RUN/evaluate` writes (its CLI writes EvalResult so)
    res = EvalResult(
        per_record=pd.DataFrame({"record": ["100"], "beats": [10], "model_se": [0.9], "threshold": [2.0]}),
        pooled=pd.DataFrame({"method": ["model", "rr_ratio_baseline"], "se": [0.9, 0.8], "tp": [9, 8]}),
        beats=pd.DataFrame(
            {"record": ["100"] * 2, "sample": [10, 20], "y": [True, False], "score": [3.0, 1.0]}
        ),
        nested=pd.DataFrame({"record": ["100"], "chosen": ["floor0.050_gate0.5_noise1.5_k5t0.3"], "tp": [9]}),
    )
    ev = run / "evaluate"
    ev.mkdir()
    res.per_record.to_csv(ev / "per_record.csv", index=False)
    res.pooled.to_csv(ev / "pooled.csv", index=False)
    assert res.nested is not None
    res.nested.to_csv(ev / "nested.csv", index=False)
    res.beats.to_parquet(ev / "beats.parquet")
    (ev / "run.json").write_text(
        json.dumps({"stages": {"anomaly_evaluate": {"options": {"signals_run": "DOE_run", "seed": 0}}}})
    )
    _fake_compare(run / "compare", ["rec-1", "rec-2"])
    (run / "site_ids.csv").write_text("path,patient_id\n100.hea,MRN98765432\n")
    info = json.loads((run / "run.json").read_text())
    info["stages"]["ingest"] = {"options": {"ids": {"table": "site_ids.csv", "modality": None}}}
    (run / "run.json").write_text(json.dumps(info))

    report = share_run(run, tmp_path / "share", key_file=key)
    share = tmp_path / "share"
    assert report["left_out"] == {}
    p = Pseudonymizer(bytes.fromhex("ef" * 32))
    per = pd.read_csv(share / "evaluate" / "per_record.csv")
    assert per["record"].tolist() == [p.id("100", "signal")]
    assert per["record"].isin(pd.read_parquet(share / "signals.parquet")["record"]).all()
    assert per["model_se"].tolist() == [0.9]
    assert pd.read_csv(share / "evaluate" / "nested.csv")["record"].tolist() == [p.id("100", "signal")]
    assert pd.read_csv(share / "evaluate" / "pooled.csv")["method"].tolist() == ["model", "rr_ratio_baseline"]
    beats = pd.read_parquet(share / "evaluate" / "beats.parquet")
    assert set(beats["record"]) == {p.id("100", "signal")} and beats["score"].tolist() == [3.0, 1.0]
    evaluate_run = json.loads((share / "evaluate" / "run.json").read_text())
    assert evaluate_run["stages"]["anomaly_evaluate"]["options"] == {"seed": 0}  # a folder's name goes
    compare = pd.read_csv(share / "compare" / "compare.csv", keep_default_na=False)
    assert compare["model"].tolist() == ["unimodal image", "fusion sum (findings)"]
    assert compare["auroc_value"].tolist() == [0.5, 0.75]
    card = json.loads((share / "compare" / "compare.json").read_text())
    assert (
        "output_dir" not in card["settings"]
        and card["embedding_anomaly"]["unimodal image"]["threshold"] == 1.5
    )
    splits = pd.read_parquet(share / "compare" / "splits.parquet")
    assert splits["record_id"].tolist() == [p.id("rec-1", "record"), p.id("rec-2", "record")]
    assert not (share / "compare" / "unimodal_image").exists() and not (share / "site_ids.csv").exists()
    assert not (share / "compare" / "compare.md").exists()
    dropped = json.dumps(report["dropped"])
    assert "--ids table" in dropped and "checkpoints" in dropped
    assert strings_in_run(share, ["MRN98765432", str(run)]) == []


@pytest.mark.parametrize("bad", ["DOE_JOHN", "MRN98765432"])
def test_an_unknown_text_column_of_an_evaluation_table_is_left_out(tmp_path: Path, bad: str) -> None:
    """Number columns of a metric table are kept without a name; a text column still needs a policy."""
    key = _key(tmp_path)
    run = tmp_path / "run"
    (run / "evaluate").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    pd.DataFrame({"record": ["r1"], "auroc": [0.5], "note": [bad]}).to_csv(
        run / "evaluate" / "per_record.csv", index=False
    )
    report = share_run(run, tmp_path / "share", key_file=key)
    assert report["tables"]["evaluate/per_record.csv"]["left_out_columns"] == {
        "note": "not on the allow-list"
    }
    assert bad not in (tmp_path / "share" / "evaluate" / "per_record.csv").read_text()


def test_demo_run_with_scoring_plots_and_evaluation_shares_with_nothing_unknown(tmp_path: Path) -> None:
    """A fresh demo run, its anomaly scoring with `--plot 2` and `medmm anomaly evaluate --out RUN/evaluate`
    (tiny): the share leaves nothing out as unknown; the demo's copied inputs and the strips are dropped
    with their reason; the evaluation's tables are shared with record names pseudonymized."""
    from typer.testing import CliRunner

    from medmm.cli import app
    from medmm.demo.run import run_full_demo

    key = _key(tmp_path)
    run = tmp_path / "run"
    run_full_demo(run, workers=1, key_file=key)
    cli = CliRunner()
    env = {"MEDMM_KEY_FILE": str(key)}
    scored = cli.invoke(
        app,
        ["anomaly", "score", str(run), "-m", str(run / "models" / "beats"), "-o", str(run), "--plot", "2"],
        env=env,
    )
    assert scored.exit_code == 0, scored.output
    assert len(list((run / "top_windows").glob("*.png"))) == 2
    tiny = ["--epochs", "1", "--ensemble", "1", "--no-nested", "--device", "cpu"]
    evaluated = cli.invoke(
        app, ["anomaly", "evaluate", str(run), "--out", str(run / "evaluate"), *tiny], env=env
    )
    assert evaluated.exit_code == 0, evaluated.output
    shared = cli.invoke(app, ["share", str(run), "--out", str(tmp_path / "share"), "--key-file", str(key)])
    assert shared.exit_code == 0, shared.output
    report = json.loads((tmp_path / "share" / "share_report.json").read_text())
    assert report["left_out"] == {}
    assert {"sample_archive/", "sample_signals/", "sample_reports/", "top_windows/"} <= set(report["dropped"])
    records = set(pd.read_parquet(run / "signals.parquet")["record"])
    per = pd.read_csv(tmp_path / "share" / "evaluate" / "per_record.csv")
    assert len(per) == len(records) and not per["record"].isin(records).any()
    assert per["record"].isin(pd.read_parquet(tmp_path / "share" / "signals.parquet")["record"]).all()
    assert {t: v["left_out_columns"] for t, v in report["tables"].items() if v["left_out_columns"]} == {}
    # the evaluation folder shared as a run of its own: every column of its real tables has a policy
    alone = cli.invoke(
        app, ["share", str(run / "evaluate"), "--out", str(tmp_path / "eval"), "--key-file", str(key)]
    )
    assert alone.exit_code == 0, alone.output
    report = json.loads((tmp_path / "eval" / "share_report.json").read_text())
    assert report["left_out"] == {} and set(report["tables"]) == {
        "per_record.csv",
        "pooled.csv",
        "beats.parquet",
    }
    assert {t: v["left_out_columns"] for t, v in report["tables"].items() if v["left_out_columns"]} == {}
    beats = pd.read_parquet(tmp_path / "eval" / "beats.parquet")
    assert not beats["record"].isin(records).any() and set(beats["record"]) == set(per["record"])


def test_self_check_reads_csv_cells_as_whole_values(tmp_path: Path) -> None:
    """A record name too short to search inside text (MIT-BIH's ``100``) is a finding as a CSV cell."""
    from medmm.share.check import find_source_names

    pd.DataFrame({"record": ["100"], "auroc": [0.5]}).to_csv(tmp_path / "per_record.csv", index=False)
    pd.DataFrame({"record": ["sig-1"], "note": ["x 100 y"]}).to_csv(tmp_path / "ok.csv", index=False)
    assert find_source_names(tmp_path, ["100", "x.hea"]) == ["per_record.csv: column record"]


def test_train_outputs_outside_models_and_a_cohort_split_are_shared(tmp_path: Path) -> None:
    """`medmm train --out RUN/exp` (splits.parquet with folds, metrics.json) and a cohort's
    RUN/splits.parquet: record ids re-keyed, paths out of the metrics, nothing unknown."""
    key = _key(tmp_path)
    run = tmp_path / "run"
    (run / "exp").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    splits = pd.DataFrame(
        {"record_id": ["r1", "r2"], "patient_id": ["pat-1", "pat-2"], "split": ["train", "test"]}
    )
    splits.assign(fold=[0, 0]).to_parquet(run / "exp" / "splits.parquet")
    splits[["record_id", "split"]].to_parquet(run / "splits.parquet")
    metrics = {"config": {"out_dir": "/site/runs/exp", "fusion": "late"}, "test": {"auroc": 0.7}}
    (run / "exp" / "metrics.json").write_text(json.dumps(metrics))
    report = share_run(run, tmp_path / "share", key_file=key)
    assert report["left_out"] == {}
    p = Pseudonymizer(bytes.fromhex("ef" * 32))
    for rel in ("exp/splits.parquet", "splits.parquet"):
        shared = pd.read_parquet(tmp_path / "share" / rel)
        assert shared["record_id"].tolist() == [p.id("r1", "record"), p.id("r2", "record")], rel
    card = json.loads((tmp_path / "share" / "exp" / "metrics.json").read_text())
    assert card == {"config": {"fusion": "late"}, "test": {"auroc": 0.7}}
