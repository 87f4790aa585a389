"""`medmm models compare` trains its report models on the configured ``report_input`` (entity vectors,
text embedding), side by side when several sets are given, and refuses ``text`` without kept texts."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from medmm.align.records import RecordRow
from medmm.cli import app
from medmm.errors import InputError
from medmm.models.compare import compare_models
from medmm.models.runner import evaluate_checkpoint, load_model
from medmm.models.store import ArrayStore, write_store
from medmm.tables import write_table

#: a made-up name in the generated report texts: it must reach no compare output
NAME = "Quibblesworth"
#: small, fast settings (the section sizes keep the entity / text layers small)
SETTINGS = {"epochs": 12, "batch_size": 8, "lr": 0.01, "n_boot": 20, "seed": 0, "num_threads": 1}
SECTION = {"entity_dim": 64, "text": {"buckets": 512, "dim": 8}}


def make_run(root: Path, n: int = 60, seed: int = 0) -> Path:
    """``n`` records (one patient each) with a report and an ECG window; ``effusion`` is only in the
    report's entities and text (the finding vectors are all zero, the signals are noise)."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.5
    rep = [f"rep-{i:03d}" for i in range(n)]
    sig = [f"sig-{i:03d}" for i in range(n)]
    write_store(root / "inputs" / "report", rep, np.zeros((n, 6), np.float32))
    (root / "inputs" / "report" / "vocabulary.json").write_text(json.dumps(["effusion", "normal"]))
    noise = rng.normal(0, 1, (n, 1, 32)).astype(np.float32)
    write_store(root / "inputs" / "signal", sig, noise, rng.normal(0, 1, (n, 2)).astype(np.float32))
    texts, ents, rows = [], [], []
    for i in range(n):
        lead = "There is a small left pleural effusion." if y[i] else "No pleural effusion."
        texts.append({"report_id": rep[i], "text": f"FINDINGS: {lead} Seen by Dr {NAME}."})
        ents.append(
            {
                "report_id": rep[i],
                "section": "FINDINGS",
                "label": "FINDING",
                "text": "pleural effusion",
                "negated": not y[i],
                "uncertain": False,
                "finding": "pleural effusion",
                "long_form": None,
                "location": None,
            }
        )
        rows.append(
            RecordRow(
                record_id=f"rec-{i:03d}",
                patient_id=f"pat-{i:03d}",
                study_id=f"stu-{i:03d}",
                report_id=rep[i],
                signal_id=sig[i],
                has_image=False,
                has_report=True,
                has_signal=True,
                labels=json.dumps({"effusion": int(y[i])}),
            )
        )
    pd.DataFrame(texts).to_parquet(root / "report_texts.parquet")
    pd.DataFrame(ents).to_parquet(root / "entities.parquet")
    write_table(rows, root / "records.parquet", RecordRow)
    return root


def _auroc(table: pd.DataFrame, model: str, tested: str) -> float:
    row = table[(table["model"] == model) & (table["test_modalities"] == tested)]
    assert len(row) == 1, table[["model", "test_modalities"]]
    return float(row["auroc_value"].iloc[0])


def test_every_report_model_reads_the_configured_inputs(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    strategies = ["sum", "late"]
    plain = compare_models(run, tmp_path / "plain", "effusion", strategies, dict(SETTINGS), device="cpu")
    settings = {**SETTINGS, "report_input": {**SECTION, "features": ["entities", "findings"]}}
    ent = compare_models(run, tmp_path / "ent", "effusion", strategies, settings, device="cpu")
    # the same rows (names unchanged with one input set), on the same split
    assert plain[["model", "test_modalities", "n_test"]].equals(ent[["model", "test_modalities", "n_test"]])
    assert pd.read_parquet(tmp_path / "plain" / "splits.parquet").equals(
        pd.read_parquet(tmp_path / "ent" / "splits.parquet")
    )
    with_report = ent["model"] != "unimodal signal"
    assert set(ent.loc[with_report, "report_inputs"]) == {"findings+entities"}  # canonical order
    assert set(ent.loc[~with_report, "report_inputs"]) == {""}
    assert set(plain.loc[with_report, "report_inputs"]) == {"findings"}
    for folder in ("unimodal_report", "fusion_sum", "fusion_late"):
        _, config, meta = load_model(tmp_path / "ent" / folder / "model.pt")
        assert config.report_input.features == ["findings", "entities"]
        assert config.report_input.entity_dim == 64
        assert meta["report_inputs"] == {  # this run's entities table has no ConText columns
            "features": ["findings", "entities"],
            "text_key_check": None,
            "entity_context": False,
        }
        assert meta["input_shapes"]["report"]["shape"] == [6 + 64]  # finding vector + entity columns
    _, config, meta = load_model(tmp_path / "ent" / "unimodal_signal" / "model.pt")
    assert config.report_input.is_default() and meta["report_inputs"] is None
    # the label is only in the entities: the finding-vector models cannot see it, these ones do
    for name, tested in [("unimodal report", "report"), ("fusion sum", "report+signal")]:
        assert _auroc(plain, name, tested) < 0.7, plain
        assert _auroc(ent, name, tested) > 0.9, ent
    info = json.loads((tmp_path / "ent" / "compare.json").read_text())
    assert [r["features"] for r in info["report_inputs"]] == [["findings", "entities"]]
    assert info["report_inputs"][0]["models"] == ["fusion late", "fusion sum", "unimodal report"]
    assert info["report_inputs"][0]["inputs_sha256"] == info["data_version"]["report_inputs_sha256"]
    assert info["report_inputs"][0]["entity_dim"] == 64
    plain_info = json.loads((tmp_path / "plain" / "compare.json").read_text())
    assert plain_info["report_inputs"][0]["inputs_sha256"] != info["report_inputs"][0]["inputs_sha256"]
    # a compare checkpoint scores like a `medmm train` one: evaluate rebuilds the entity inputs
    ev = evaluate_checkpoint(tmp_path / "ent" / "unimodal_report" / "model.pt", run, tmp_path / "ev", "all")
    assert ev["n"] == 60 and ev["metrics"]["effusion"]["auroc"]["value"] > 0.9


def test_default_compare_reads_finding_vectors(tmp_path: Path) -> None:
    """Without report_input nothing changes: model names, finding vectors, the same models as an
    explicit `features: [findings]` (bit for bit)."""
    run = make_run(tmp_path / "run", n=30)
    short = {**SETTINGS, "epochs": 2}
    a = compare_models(run, tmp_path / "a", "effusion", ["sum"], dict(short), device="cpu")
    explicit = {**short, "report_input": {"features": ["findings"]}}
    b = compare_models(run, tmp_path / "b", "effusion", ["sum"], explicit, device="cpu")
    assert list(a["model"].unique()) == ["unimodal report", "unimodal signal", "fusion sum"]
    assert a.equals(b)
    for folder in ("unimodal_report", "fusion_sum"):
        ka = torch.load(tmp_path / "a" / folder / "model.pt", weights_only=True)
        kb = torch.load(tmp_path / "b" / folder / "model.pt", weights_only=True)
        assert ka["meta"]["report_inputs"] == {"features": ["findings"], "text_key_check": None}
        assert ka["meta"]["input_shapes"]["report"]["shape"] == [6]
        assert ka["meta"]["data_version"] == kb["meta"]["data_version"]
        assert all(torch.equal(ka["state_dict"][k], kb["state_dict"][k]) for k in ka["state_dict"])


def test_report_input_sets_side_by_side_cli(
    tmp_path: Path,
    strings_in_run: Callable[[Path, Iterable[str]], list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = make_run(tmp_path / "run")
    hashed: list[str] = []  # the input folders whose arrays were hashed for a data version
    real_digest = ArrayStore.digest

    def counting_digest(self: ArrayStore) -> str:
        hashed.append(self.folder.name)
        return real_digest(self)

    monkeypatch.setattr(ArrayStore, "digest", counting_digest)
    out = tmp_path / "cmp"
    args = ["models", "compare", str(run), "--out", str(out), "--target", "effusion", "--strategy", "sum"]
    args += ["--epochs", "12", "--lr", "0.01", "--batch-size", "8", "--n-boot", "20", "--threads", "1"]
    args += ["--report-input", "entity_dim=64", "--report-input", "text={buckets: 512, dim: 8}"]
    args += [
        "--report-features",
        "findings",
        "--report-features",
        "findings+entities+text",
        "--device",
        "cpu",
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out / "compare.csv", keep_default_na=False)
    fused = ["fusion sum (findings)"] * 3 + ["fusion sum (findings+entities+text)"] * 3  # 3 test conditions
    assert list(table["model"]) == [
        "unimodal report (findings)",
        "unimodal report (findings+entities+text)",
        "unimodal signal",
        *fused,
    ]
    assert list(table["report_inputs"]) == [
        "findings",
        "findings+entities+text",
        "",
        *[name[len("fusion sum (") : -1] for name in fused],
    ]
    assert table.groupby("test_modalities")["n_test"].nunique().eq(1).all()  # one split for all rows
    both = "| fusion sum (findings+entities+text) | report+signal |"
    assert both in (out / "compare.md").read_text() and both in res.output
    assert _auroc(table, "unimodal report (findings)", "report") < 0.7
    assert _auroc(table, "unimodal report (findings+entities+text)", "report") > 0.9
    _, config, meta = load_model(out / "fusion_sum_findings+entities+text" / "model.pt")
    assert config.report_input.features == ["findings", "entities", "text"]
    assert meta["report_inputs"]["text_key_check"] is not None  # bound to the site key
    _, config, _ = load_model(out / "fusion_sum_findings" / "model.pt")
    assert config.report_input.features == ["findings"]
    info = json.loads((out / "compare.json").read_text())
    assert [r["features"] for r in info["report_inputs"]] == [["findings"], ["findings", "entities", "text"]]
    assert info["settings"]["report_features"] == [["findings"], ["findings", "entities", "text"]]
    # the signal inputs are hashed once for every report input set (a volume source reads every file)
    assert hashed.count("signal") == 1, hashed
    version = torch.load(out / "fusion_sum_findings+entities+text" / "model.pt", weights_only=True)["meta"][
        "data_version"
    ]
    assert version["signal_inputs_sha256"] == info["data_version"]["signal_inputs_sha256"]
    assert version["report_inputs_sha256"] == info["report_inputs"][1]["inputs_sha256"]
    assert info["report_inputs"][0]["inputs_sha256"] == info["data_version"]["report_inputs_sha256"]
    # the report text (a name in it) reaches no compare output
    assert strings_in_run(out, [NAME, NAME.lower()]) == []


@pytest.mark.parametrize(
    "option",
    [
        ["--report-input", "features=[findings, text]"],
        ["--report-features", "findings", "--report-features", "text"],
    ],
    ids=["report-input", "report-features"],
)
def test_text_without_kept_texts_is_refused(tmp_path: Path, option: list[str]) -> None:
    run = make_run(tmp_path / "run", n=20)
    (run / "report_texts.parquet").unlink()
    out = tmp_path / "cmp"
    res = CliRunner().invoke(
        app, ["models", "compare", str(run), "--out", str(out), "--target", "effusion", *option]
    )
    assert res.exit_code == 2, res.output
    assert f"error: {run}: report_input.features has 'text' but the reports stage kept no text" in res.output
    assert "Fix: re-run `medmm reports parse REPORTS --out RUN_DIR --keep-text`" in res.output
    assert "Traceback" not in res.output
    assert not out.exists()  # refused before any model trained or anything was written
    with pytest.raises(InputError, match="kept no text") as err:
        compare_models(run, out, "effusion", ["sum"], {"report_input": {"features": ["text"]}}, device="cpu")
    assert err.value.path == str(run) and "--keep-text" in err.value.fix


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--report-input", "features=[finding]"], "report_input.features.0: Input should be 'findings'"),
        (
            ["--report-input", "entity_dims=64"],
            "report_input.entity_dims: unknown key (did you mean 'entity_dim'",
        ),
        (["--report-features", "findings", "--report-features", "findings"], "findings is given twice"),
    ],
)
def test_report_input_option_errors(tmp_path: Path, option: list[str], expected: str) -> None:
    run = make_run(tmp_path / "run", n=20)
    out = tmp_path / "cmp"
    res = CliRunner().invoke(
        app, ["models", "compare", str(run), "--out", str(out), "--target", "effusion", *option]
    )
    assert res.exit_code == 2, res.output
    assert expected in res.output, res.output
    assert not out.exists()
