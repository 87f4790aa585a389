"""`medmm predict` writes the label-free imaging anomaly score and flag (embedding_anomaly_* columns of
predictions.parquet); `medmm evaluate` reports its AUROC; older checkpoints without it still work."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from medmm.cli import app
from medmm.models.checkpoint import load_checkpoint
from medmm.models.config import TrainConfig
from medmm.models.embedding_anomaly import EmbeddingAnomaly
from medmm.models.runner import evaluate_checkpoint, train_from_config
from medmm.predict.predict import predict_run
from medmm.schemas import validate_frame

_spec = importlib.util.spec_from_file_location(
    "models_tiny_run_ea", Path(__file__).resolve().parents[1] / "models" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
_tiny = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_tiny)
make_tiny_run, tiny_config = _tiny.make_tiny_run, _tiny.tiny_config

COLS = ["embedding_anomaly_score", "embedding_anomaly_flag", "embedding_anomaly_threshold"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("ea_predict")
    run = make_tiny_run(root / "run", n=48)
    train_from_config(TrainConfig.model_validate(tiny_config(run, root / "m", epochs=1, n_boot=20)))
    return run, root / "m" / "model.pt"


def _old_checkpoint(ckpt: Path, target: Path) -> Path:
    """The checkpoint as medmm wrote it before the anomaly statistics existed."""
    data = load_checkpoint(ckpt)
    data.pop("embedding_anomaly")
    data["meta"].pop("embedding_anomaly")
    buf = io.BytesIO()
    torch.save(data, buf)
    target.write_bytes(buf.getvalue())
    return target


def test_predict_writes_score_flag_and_threshold_per_record(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    run, ckpt = trained
    out = tmp_path / "p.parquet"
    result = CliRunner().invoke(app, ["predict", "--model", str(ckpt), str(run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    pred = pd.read_parquet(out)
    validate_frame(pred, "predictions")
    records = pd.read_parquet(run / "records.parquet").set_index("record_id")
    has_image = pred["record_id"].map(records["has_image"]).to_numpy(bool)
    assert pred.loc[~has_image, COLS].isna().all().all()
    assert pred.loc[has_image, COLS].notna().all().all()
    anomaly = EmbeddingAnomaly.from_state(load_checkpoint(ckpt)["embedding_anomaly"])
    img = pred[has_image]
    assert (img["embedding_anomaly_threshold"] == anomaly.threshold).all()
    assert (img["embedding_anomaly_flag"] == (img["embedding_anomaly_score"] > anomaly.threshold)).all()
    # one value per record, repeated on each of its label rows
    assert (img.groupby("record_id")["embedding_anomaly_score"].nunique() == 1).all()
    per_record = img.drop_duplicates("record_id")
    flagged = int(per_record["embedding_anomaly_flag"].sum())
    assert f"anomaly_scored={len(per_record)} anomaly_flagged={flagged}" in result.output


def test_anomaly_rate_rederives_the_threshold(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run, ckpt = trained
    base = predict_run(ckpt, run, tmp_path / "a.parquet")
    loose = predict_run(ckpt, run, tmp_path / "b.parquet", anomaly_rate=0.5)
    a, b = pd.read_parquet(tmp_path / "a.parquet"), pd.read_parquet(tmp_path / "b.parquet")
    assert (
        b["embedding_anomaly_threshold"].dropna().iloc[0] < a["embedding_anomaly_threshold"].dropna().iloc[0]
    )
    assert np.allclose(a["embedding_anomaly_score"].dropna(), b["embedding_anomaly_score"].dropna())
    assert loose["anomaly_flagged"] > base["anomaly_flagged"]
    bad = CliRunner().invoke(app, ["predict", "--model", str(ckpt), str(run), "--anomaly-rate", "1.5"])
    assert bad.exit_code == 2 and "--anomaly-rate 1.5" in bad.output and "Traceback" not in bad.output


def test_predict_and_evaluate_read_the_checkpoint_once(
    trained: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, ckpt = trained
    loads: list[str] = []
    real_load = torch.load

    def counting_load(f: object, *args: object, **kwargs: object) -> object:
        loads.append(str(f))
        return real_load(f, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(torch, "load", counting_load)
    counts = predict_run(ckpt, run, tmp_path / "p.parquet")
    assert counts["anomaly_scored"] > 0 and loads == [str(ckpt)]  # the model and the anomaly statistics
    loads.clear()
    result = evaluate_checkpoint(ckpt, run, tmp_path / "e", "all")
    assert "metrics" in result["embedding_anomaly"] and loads == [str(ckpt)]


def test_a_bad_anomaly_rate_is_refused_before_the_model_is_read(tmp_path: Path) -> None:
    # the checkpoint does not exist: the rate error comes first, not after a whole prediction pass
    from medmm.errors import ConfigError

    with pytest.raises(ConfigError, match=r"--anomaly-rate 0\.0"):
        predict_run(tmp_path / "missing.pt", tmp_path, anomaly_rate=0.0)


def test_an_old_checkpoint_predicts_without_the_score_and_says_so(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    run, ckpt = trained
    old = _old_checkpoint(ckpt, tmp_path / "old.pt")
    out = tmp_path / "p.parquet"
    result = CliRunner().invoke(app, ["predict", "--model", str(old), str(run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "no imaging anomaly statistics" in result.output
    pred = pd.read_parquet(out)
    validate_frame(pred, "predictions")
    assert pred[COLS].isna().all().all() and pred["score"].between(0, 1).all()
    evaluated = evaluate_checkpoint(old, run, tmp_path / "eval", split="all")
    assert "no imaging anomaly statistics" in evaluated["embedding_anomaly"]["note"]


def test_evaluate_reports_the_auroc_of_the_score(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run, ckpt = trained
    result = evaluate_checkpoint(ckpt, run, tmp_path / "eval", split="all")
    ea = result["embedding_anomaly"]
    records = pd.read_parquet(run / "records.parquet")
    assert ea["n"] == int(records["has_image"].sum())
    assert set(ea["metrics"]) == {"abnormal", "image_abnormal", "macro"}
    cell = ea["metrics"]["image_abnormal"]["auroc"]
    assert 0 <= cell["lo"] <= cell["value"] <= cell["hi"] <= 1 and "ece" not in ea["metrics"]["abnormal"]
    dropped = evaluate_checkpoint(ckpt, run, tmp_path / "eval2", split="all", drop=("image",))
    assert "--drop image" in dropped["embedding_anomaly"]["note"]
