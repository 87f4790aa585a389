"""A validation split without any known label has no validation loss: it is undefined (None / JSON
null), a warning names the task(s) and the fix, there is no early stopping, `schedule: plateau` does not
step, and the last epoch is kept.

Before, each task's masked loss was 0 on such a split, so the validation loss was 0.0 every epoch: the
first epoch was "best" and kept (the demo shipped its epoch-1 weights), early stopping stopped after
`patience` epochs, plateau halved the LR on a constant 0, all silently. With some tasks unlabelled, their
0 was added in, and the loss was a per-batch mean weighted by batch size (a batch with one known label
weighed as much as a batch full of them); it is now each task's mean over all known validation labels,
averaged over the tasks that have them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import make_tiny_run, tiny_config
from typer.testing import CliRunner

from medmm.cli import app
from medmm.models.build import build_model, input_shapes
from medmm.models.config import TrainConfig
from medmm.models.data import MultimodalDataset
from medmm.models.plots import plot_history
from medmm.models.store import open_stores
from medmm.models.train import FitResult, fit, make_loader, predict_loader, seed_everything
from medmm.models.validation import validation_loss
from medmm.tables import write_table

MODS = ["image", "report", "signal"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame, dict]:
    run = make_tiny_run(tmp_path_factory.mktemp("valundef") / "run", n=32)
    return run, pd.read_parquet(run / "records.parquet"), open_stores(run, MODS)


def _unlabel(rows: pd.DataFrame, keep: tuple[str, ...] = ()) -> pd.DataFrame:
    """``rows`` with every label but ``keep`` removed from the labels JSON."""
    out = rows.copy()
    out["labels"] = [json.dumps({k: v for k, v in json.loads(t).items() if k in keep}) for t in out["labels"]]
    return out


def _fit(
    data: tuple, val: pd.DataFrame | None, tasks: list[dict] | None = None, **train: object
) -> FitResult:
    run, records, stores = data
    raw = tiny_config(run, run / "m", "attention", **{"epochs": 3, **train})
    if tasks is not None:
        raw["tasks"] = tasks
    cfg = TrainConfig.model_validate(raw)
    seed_everything(0)
    model = build_model(cfg, input_shapes(stores))
    labels = cfg.label_names()
    val_set = MultimodalDataset(val, stores, labels) if val is not None else None
    return fit(
        model, cfg, MultimodalDataset(records[:24], stores, labels), val_set, device=torch.device("cpu")
    )


def _same_weights(a: FitResult, b: FitResult) -> bool:
    sa, sb = a.model.state_dict(), b.model.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def test_unlabelled_val_split_keeps_the_last_epoch_and_says_why(
    data: tuple, caplog: pytest.LogCaptureFixture
) -> None:
    val = _unlabel(data[1][24:])
    with caplog.at_level("WARNING", logger="medmm.models.train"):
        res = _fit(data, val)
    assert [h["val_loss"] for h in res.history] == [None, None, None]  # was [0.0, 0.0, 0.0]
    assert all(h["val_task_loss"] == {"diagnosis": None} for h in res.history)
    assert res.best_epoch == 3 and res.selected_by == "last_epoch"  # was 1
    # the model is the last epoch's: the same as training 3 epochs without a val split ...
    assert _same_weights(res, _fit(data, None))
    assert not _same_weights(res, _fit(data, None, epochs=1))  # ... not the first epoch's
    [note] = res.notes
    assert "no known label of task(s) ['diagnosis'] (labels ['abnormal', 'image_abnormal'])" in note
    assert "the validation loss is undefined" in note and "the last epoch (3) is kept" in note
    assert "Fix: a larger train.val_fraction" in note
    assert [r.getMessage() for r in caplog.records] == [note]  # fit warns once, not per epoch


def test_no_early_stopping_and_no_plateau_step_on_an_undefined_loss(data: tuple) -> None:
    res = _fit(data, _unlabel(data[1][24:]), epochs=6, patience=4, schedule="plateau")
    assert len(res.history) == 6  # stopped after epoch 5 before (0.0 never improved)
    assert {h["lr"] for h in res.history} == {1e-3}  # plateau halved the LR on a constant 0.0 before
    assert "schedule plateau keeps its learning rate" in res.notes[0]
    labelled = _fit(data, data[1][24:], epochs=2)
    assert labelled.selected_by == "val_loss" and labelled.notes == []
    assert all(isinstance(h["val_loss"], float) for h in labelled.history)


def test_a_task_without_val_labels_is_left_out_of_the_mean(data: tuple) -> None:
    _, records, stores = data
    tasks = [{"name": "dx", "labels": ["abnormal"]}, {"name": "img", "labels": ["image_abnormal"]}]
    # 'img' has no validation label; 'dx' is known in some records only, unevenly over the batches
    val = _unlabel(records[24:], keep=("abnormal",))
    val.loc[val.index[[1, 2, 3]], "labels"] = "{}"
    res = _fit(data, val, tasks, epochs=1, batch_size=2)
    [h] = res.history
    assert h["val_task_loss"]["img"] is None
    assert "no known label of task(s) ['img']" in res.notes[0]
    assert "the validation loss rests on the other task(s) ['dx'] only" in res.notes[0]
    # dx's loss is its mean binary cross-entropy over its known validation labels (best epoch = epoch 1),
    # and it stands in for img's: twice it (two tasks of weight 1), where img used to add 0
    pred = predict_loader(
        res.model, make_loader(MultimodalDataset(val, stores, ["abnormal", "image_abnormal"]), 2, False, 0)
    )
    y, p = pred.labels[:, 0], pred.probs[:, 0].astype(np.float64)
    known = ~np.isnan(y)
    bce = -np.mean(y[known] * np.log(p[known]) + (1 - y[known]) * np.log(1 - p[known]))
    assert h["val_task_loss"]["dx"] == pytest.approx(bce, rel=1e-5)
    assert h["val_loss"] == pytest.approx(2 * bce, rel=1e-5)


def test_the_loss_combines_the_labelled_tasks_on_the_training_loss_scale() -> None:
    assert validation_loss({"a": 0.4, "b": 0.8}) == pytest.approx(1.2)  # all labelled: the fixed-weight sum
    assert validation_loss({"a": 0.4, "b": 0.8}, {"a": 1.0, "b": 3.0}) == pytest.approx(2.8)
    assert validation_loss({"a": 0.4, "b": None}) == pytest.approx(0.8)  # b counted at a's loss, not 0
    assert validation_loss({"a": 0.4, "b": None, "c": 0.1}, {"a": 1, "b": 2, "c": 3}) == pytest.approx(
        (0.4 + 0.3) / 4 * 6
    )
    assert validation_loss({"a": 0.4, "b": None}, {"a": 0.0, "b": 1.0}) == pytest.approx(0.8)
    assert validation_loss({}) is None and validation_loss({"a": None}) is None


def test_metrics_json_has_null_and_medmm_train_warns(data: tuple, tmp_path: Path) -> None:
    run, records, _ = data
    # a fixed split whose val records carry no label (like the demo's, whose 2 val records lack 'pvc')
    local = tmp_path / "run"
    local.mkdir()
    (local / "inputs").symlink_to(run / "inputs")
    split = np.where(
        np.arange(len(records)) < 24, "train", np.where(np.arange(len(records)) < 28, "val", "test")
    )
    is_val = split == "val"
    table = records.copy()
    table.loc[is_val, "labels"] = "{}"
    write_table(table, local / "records.parquet")
    write_table(
        pd.DataFrame({"record_id": records["record_id"], "split": split, "fold": 0}),
        tmp_path / "splits.parquet",
    )
    cfg = tiny_config(local, tmp_path / "m", epochs=2, n_boot=0)
    cfg["splits_file"] = str(tmp_path / "splits.parquet")
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(app, ["train", str(path)])
    assert res.exit_code == 0, res.output
    assert (
        "warning: the validation split (4 sample(s)) has no known label of task(s) ['diagnosis']"
        in res.output
    )
    assert res.output.count("no known label") == 1  # printed once (fit's own log warning is off here)
    text = (tmp_path / "m" / "metrics.json").read_text()
    metrics = json.loads(text)
    fold = metrics["folds"][0]
    assert [h["val_loss"] for h in fold["history"]] == [None, None]
    assert '"val_loss": null' in text and ": NaN" not in text
    assert fold["best_epoch"] == 2 and fold["selected_by"] == "last_epoch"
    assert any("no known label" in n for n in metrics["notes"])
    from medmm.models.checkpoint import load_checkpoint

    meta = load_checkpoint(tmp_path / "m" / "model.pt")["meta"]
    assert meta["best_epoch"] == 2 and meta["selected_by"] == "last_epoch"
    assert (tmp_path / "m" / "history.png").stat().st_size > 0


def test_history_plot_of_an_undefined_validation_loss(tmp_path: Path) -> None:
    history = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": None, "lr": 0.1} for e in (1, 2, 3)]
    assert plot_history(history, tmp_path / "h.png").stat().st_size > 1000
