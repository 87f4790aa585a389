"""Report-only models on entity vectors and text embeddings: train -> checkpoint -> evaluate / predict,
on a generated run and on real IU chest X-ray reports (``shared_data``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from bench.bench_report_inputs import build_iu_run
from medmm.align.records import RecordRow
from medmm.errors import InputError
from medmm.models.config import TrainConfig
from medmm.models.runner import evaluate_checkpoint, load_model, train_from_config
from medmm.models.store import write_store
from medmm.predict.predict import predict_run
from medmm.tables import write_table

#: a made-up name in the generated texts: it must reach no output of training or prediction
NAME = "Quibblesworth"
FEATURE_SETS = [["findings"], ["entities"], ["text"], ["findings", "entities", "text"]]


@pytest.fixture(autouse=True)
def _site_key(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path_factory.mktemp("key") / "site.key"
    path.write_text("cd" * 32 + "\n")
    monkeypatch.setenv("MEDMM_KEY_FILE", str(path))
    return path


def make_report_run(root: Path, n: int = 40, seed: int = 0) -> Path:
    """``n`` report-only records (one patient each); ``effusion`` = the text affirms an effusion.

    The finding vectors say nothing (all "not mentioned"), the entities and the text carry the label.
    """
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.5
    ids = [f"rep-{i:03d}" for i in range(n)]
    write_store(root / "inputs" / "report", ids, np.zeros((n, 6), np.float32))
    (root / "inputs" / "report" / "vocabulary.json").write_text(json.dumps(["effusion", "normal"]))
    texts, ents, rows = [], [], []
    for i, rid in enumerate(ids):
        lead = "There is a small left pleural effusion." if y[i] else "No pleural effusion."
        texts.append({"report_id": rid, "text": f"FINDINGS: {lead} Seen by Dr {NAME}. Heart size normal."})
        ents.append(
            {
                "report_id": rid,
                "section": "FINDINGS",
                "label": "FINDING",
                "text": "pleural effusion",
                "negated": not y[i],
                "uncertain": False,
                "finding": "pleural effusion",
                "long_form": None,
                "location": "left" if y[i] else None,
            }
        )
        if i % 3:
            ents.append(
                {
                    "report_id": rid,
                    "section": "FINDINGS",
                    "label": "ANATOMY",
                    "text": "Heart",
                    "negated": False,
                    "uncertain": False,
                    "finding": None,
                    "long_form": None,
                    "location": None,
                }
            )
        rows.append(
            RecordRow(
                record_id=f"rec-{i:03d}",
                patient_id=f"pat-{i:03d}",
                study_id=f"stu-{i:03d}",
                report_id=rid,
                has_image=False,
                has_report=True,
                has_signal=False,
                labels=json.dumps({"effusion": int(y[i])}),
            )
        )
    pd.DataFrame(texts).to_parquet(root / "report_texts.parquet")
    pd.DataFrame(ents).to_parquet(root / "entities.parquet")
    write_table(rows, root / "records.parquet", RecordRow)
    return root


def report_config(
    run: Path, out: Path, features: list[str], label: str = "effusion", epochs: int = 3
) -> dict:
    return {
        "run_dir": str(run),
        "out_dir": str(out),
        "fusion": "sum",
        "embed_dim": 8,
        "modalities": {"report": {"out_dim": 8}},
        "report_input": {"features": features, "entity_dim": 64, "text": {"buckets": 512, "dim": 8}},
        "tasks": [{"name": "dx", "labels": [label]}],
        "train": {"epochs": epochs, "batch_size": 8, "progress": False, "n_boot": 10, "lr": 0.01},
    }


@pytest.mark.parametrize("features", FEATURE_SETS, ids=["+".join(f) for f in FEATURE_SETS])
def test_train_predict_round_trip(
    tmp_path: Path, features: list[str], strings_in_run: Callable[[Path, Iterable[str]], list[str]]
) -> None:
    run = make_report_run(tmp_path / "run")
    before = {f: f.stat().st_mtime_ns for f in run.rglob("*") if f.name != "run.json"}
    out = tmp_path / "model"
    summary = train_from_config(TrainConfig.model_validate(report_config(run, out, features)), device="cpu")
    assert summary["folds"][0]["n"]["test"] > 0
    model, config, meta = load_model(out / "model.pt")
    assert config.report_input.features == features  # the checkpoint records the report inputs
    assert meta["report_inputs"]["features"] == features
    assert (meta["report_inputs"]["text_key_check"] is not None) == ("text" in features)
    assert (model.encoders["report"].text is not None) == ("text" in features)
    a = predict_run(out / "model.pt", run, tmp_path / "p1.parquet", device="cpu")
    predict_run(out / "model.pt", run, tmp_path / "p2.parquet", device="cpu")
    p1, p2 = pd.read_parquet(tmp_path / "p1.parquet"), pd.read_parquet(tmp_path / "p2.parquet")
    assert a["records"] == 40 and np.array_equal(p1["score"].to_numpy(), p2["score"].to_numpy())
    assert np.isfinite(p1["score"]).all()
    ev = evaluate_checkpoint(out / "model.pt", run, tmp_path / "eval", split="all", device="cpu")
    assert ev["n"] == 40 and ev["metrics"]["effusion"]["auroc"]["value"] is not None
    # nothing but predict's run.json section is written into the run (entity vectors and token ids are
    # built in memory) ...
    assert {f: f.stat().st_mtime_ns for f in run.rglob("*") if f.name != "run.json"} == before
    assert NAME.lower() not in (run / "run.json").read_text().lower()
    # ... and the report text (here: a name in it) reaches neither the model folder nor the predictions
    assert strings_in_run(out, [NAME, NAME.lower()]) == []
    assert strings_in_run(tmp_path / "eval", [NAME, NAME.lower()]) == []
    assert not p1.astype(str).apply(lambda c: c.str.contains(NAME, case=False)).any().any()


def test_entities_and_text_learn_what_findings_cannot(tmp_path: Path) -> None:
    """The generated label is only in the entities and the text: those models separate it."""
    run = make_report_run(tmp_path / "run", n=60)
    auroc = {}
    for feats in (["entities"], ["text"]):
        name = "+".join(feats)
        cfg = TrainConfig.model_validate(report_config(run, tmp_path / name, feats, epochs=15))
        train_from_config(cfg, device="cpu")
        ev = evaluate_checkpoint(
            tmp_path / name / "model.pt", run, tmp_path / f"e-{name}", "all", device="cpu"
        )
        auroc[name] = ev["metrics"]["effusion"]["auroc"]["value"]
    assert auroc["entities"] > 0.95 and auroc["text"] > 0.95, auroc


def test_text_without_kept_texts_is_a_clear_error(tmp_path: Path) -> None:
    run = make_report_run(tmp_path / "run")
    (run / "report_texts.parquet").unlink()
    cfg = TrainConfig.model_validate(report_config(run, tmp_path / "m", ["findings", "text"]))
    with pytest.raises(InputError, match="kept no text") as err:
        train_from_config(cfg, device="cpu")
    assert err.value.path == str(run) and "--keep-text" in err.value.fix
    # the command line: `error: RUN_DIR: ... Fix: ...`, exit code 2, no traceback
    from medmm.cli import app

    path = tmp_path / "train.yaml"
    path.write_text(json.dumps(report_config(run, tmp_path / "m", ["text"])))
    res = CliRunner().invoke(app, ["train", str(path)])
    assert res.exit_code == 2, res.output
    assert f"error: {run}: report_input.features has 'text'" in res.output and "Fix: re-run" in res.output


def test_scoring_checks_texts_and_site_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _site_key: Path
) -> None:
    run = make_report_run(tmp_path / "run")
    cfg = TrainConfig.model_validate(report_config(run, tmp_path / "m", ["text"], epochs=1))
    train_from_config(cfg, device="cpu")
    other = tmp_path / "other.key"
    other.write_text("ef" * 32 + "\n")
    monkeypatch.setenv("MEDMM_KEY_FILE", str(other))
    with pytest.raises(InputError, match="is not the site key"):
        predict_run(tmp_path / "m" / "model.pt", run, tmp_path / "p.parquet", device="cpu")
    monkeypatch.setenv("MEDMM_KEY_FILE", str(tmp_path / "absent.key"))
    with pytest.raises(InputError, match="no site key there"):
        evaluate_checkpoint(tmp_path / "m" / "model.pt", run, tmp_path / "e", "all", device="cpu")
    assert not (tmp_path / "absent.key").exists()  # scoring never makes a new key
    monkeypatch.setenv("MEDMM_KEY_FILE", str(_site_key))
    predict_run(tmp_path / "m" / "model.pt", run, tmp_path / "p.parquet", device="cpu")  # the right key
    (run / "report_texts.parquet").unlink()
    with pytest.raises(InputError, match="kept no text"):
        predict_run(tmp_path / "m" / "model.pt", run, tmp_path / "p.parquet", device="cpu")


def test_old_checkpoint_defaults_to_findings_and_edits_are_refused(tmp_path: Path) -> None:
    run = make_report_run(tmp_path / "run")
    cfg = TrainConfig.model_validate(report_config(run, tmp_path / "m", ["findings"], epochs=1))
    train_from_config(cfg, device="cpu")
    path = tmp_path / "m" / "model.pt"
    predict_run(path, run, tmp_path / "new.parquet", device="cpu")
    data = torch.load(path, weights_only=True)
    del data["meta"]["config"]["report_input"]  # what checkpoints before report_input hold
    del data["meta"]["report_inputs"]
    torch.save(data, path)
    predict_run(path, run, tmp_path / "old.parquet", device="cpu")
    new, old = pd.read_parquet(tmp_path / "new.parquet"), pd.read_parquet(tmp_path / "old.parquet")
    assert np.array_equal(new["score"].to_numpy(), old["score"].to_numpy())
    data["meta"]["report_inputs"] = {"features": ["text"], "text_key_check": None}
    torch.save(data, path)
    with pytest.raises(InputError, match=r"records report inputs \['text'\] but its config"):
        predict_run(path, run, tmp_path / "x.parquet", device="cpu")


def test_iu_reports_train_and_predict(shared_data: Path, tmp_path: Path) -> None:
    # the first 160 IU reports, parsed with --keep-text and aligned with abnormal = Problems is not
    # "normal" (a human indexer's label): the benchmark's run, built by the same code
    run = build_iu_run(shared_data, tmp_path, 160)
    records = pd.read_parquet(run / "records.parquet")
    assert len(records) > 150 and records["has_report"].all()
    for feats in (["entities"], ["text"]):
        name = "+".join(feats)
        out = tmp_path / name
        cfg = report_config(run, out, feats, label="abnormal", epochs=4)
        cfg["report_input"] = {"features": feats}  # the defaults: 16384 entity columns, 65536 text buckets
        summary = train_from_config(TrainConfig.model_validate(cfg), device="cpu")
        auroc = summary["test"]["abnormal"]["auroc"]
        assert 0 <= auroc["lo"] <= auroc["value"] <= auroc["hi"] <= 1
        res = predict_run(out / "model.pt", run, tmp_path / f"{name}.parquet", device="cpu")
        pred = pd.read_parquet(tmp_path / f"{name}.parquet")
        assert res["records"] == len(records) and len(pred) == len(records)
        assert pred["score"].between(0, 1).all() and pred["score"].std() > 0


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_text_model_trains_under_mixed_precision(tmp_path: Path, dtype: torch.dtype) -> None:
    """The GPU path (autocast) of an entities + text report model, forced on the CPU."""
    from medmm.models.build import build_model, input_shapes
    from medmm.models.data import MultimodalDataset
    from medmm.models.report_inputs import with_report_inputs
    from medmm.models.train import fit
    from medmm.models.volumes import open_sources

    run = make_report_run(tmp_path / "run")
    cfg = TrainConfig.model_validate(report_config(run, tmp_path / "m", ["entities", "text"], epochs=2))
    records = pd.read_parquet(run / "records.parquet")
    stores = with_report_inputs(cfg, run, open_sources(cfg, run, ["report"], records), records)
    model = build_model(cfg, input_shapes(stores))
    before = model.encoders["report"].text.weight.detach().clone()  # type: ignore[union-attr,operator]
    ds = MultimodalDataset(records, stores, cfg.label_names())
    res = fit(model, cfg, ds, None, device=torch.device("cpu"), amp_dtype=dtype, warn=False)
    losses = [h["train_loss"] for h in res.history]
    assert all(np.isfinite(losses)), losses
    after = res.model.encoders["report"].text.weight.detach()  # type: ignore[union-attr,operator]
    assert after.dtype == torch.float32 and not torch.equal(before, after)  # weights stay float32 and learn
