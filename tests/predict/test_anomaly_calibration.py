"""The imaging anomaly threshold's calibration in `medmm predict`.

* the checkpoint's own calibration (`--anomaly-rate`): a threshold calibrated on too few scores for the
  rate is said (a warning naming the bound of the flag rate and the fix) and its promise recorded in
  run.json, instead of a silent "5%";
* `--anomaly-calibration CAL_RUN_DIR`: calibrated on a site's own normal studies (one score per distinct
  image, the same conformal rule), recorded in predictions.parquet and run.json; refused for a run
  without images, with other image shapes, or overlapping the scored records.

One tiny model (trained once per module) serves both."""

from __future__ import annotations

import importlib.util
import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from medmm.align.records import RecordRow
from medmm.cli import app
from medmm.errors import InputError
from medmm.models.checkpoint import load_checkpoint
from medmm.models.config import TrainConfig
from medmm.models.embedding_anomaly import (
    EmbeddingAnomaly,
    calibration_set_id,
    image_representations,
)
from medmm.models.mahalanobis import false_alarm_bound
from medmm.models.runner import load_model, train_from_config
from medmm.models.store import ArrayStore, write_store
from medmm.models.volumes import AbsentSource
from medmm.predict.predict import predict_run
from medmm.schemas import validate_frame
from medmm.tables import write_table

_spec = importlib.util.spec_from_file_location(
    "models_tiny_run_cal", Path(__file__).resolve().parents[1] / "models" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
_tiny = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_tiny)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("anomaly_calibration")
    run = _tiny.make_tiny_run(root / "run", n=48)
    train_from_config(TrainConfig.model_validate(_tiny.tiny_config(run, root / "m", epochs=1, n_boot=0)))
    return run, root / "m" / "model.pt"


def make_normal_run(
    root: Path,
    n_images: int,
    *,
    reuse: int = 0,
    size: int = 16,
    record_ids: dict[int, str] | None = None,
    with_image: bool = True,
    seed: int = 5,
) -> Path:
    """An aligned run of ``n_images`` lesion-free images (the tiny run's normal pattern) of new
    patients; the last ``reuse`` extra records share an image already used; ``record_ids`` overrides
    some record ids."""
    rng = np.random.default_rng(seed)
    img = rng.normal(0, 0.3, (n_images, 1, size, size)).astype(np.float32)
    ids = [f"cal-img-{i:03d}" for i in range(n_images)]
    write_store(root / "inputs" / "image", ids, img)
    rows = []
    for j in range(n_images + reuse):
        i = j if j < n_images else j - n_images
        rows.append(
            RecordRow(
                record_id=(record_ids or {}).get(j, f"cal-rec-{j:03d}"),
                patient_id=f"cal-pat-{j:03d}",
                study_id=f"cal-stu-{j:03d}",
                image_id=ids[i] if with_image else None,
                has_image=with_image,
                has_report=False,
                has_signal=not with_image,
                labels=json.dumps({"abnormal": 0, "image_abnormal": 0}),
            )
        )
    write_table(rows, root / "records.parquet", RecordRow)
    return root


def _predict_args(ckpt: Path, run: Path, out: Path) -> list[str]:
    return ["predict", "--model", str(ckpt), str(run), "--out", str(out)]


def _independent_threshold(ckpt: Path, cal: Path, rate: float) -> tuple[float, int]:
    """The conformal quantile of the calibration run's distinct-image scores, computed here from the
    model's representations and the stored density (not through the predict path)."""
    data = load_checkpoint(ckpt)
    model, _, _ = load_model(ckpt, torch.device("cpu"), data)
    anomaly = EmbeddingAnomaly.from_state(data["embedding_anomaly"])
    records = pd.read_parquet(cal / "records.parquet").drop_duplicates("image_id")
    stores = {"image": ArrayStore(cal / "inputs" / "image")}
    stores.update({m: AbsentSource(m) for m in ("report", "signal")})
    x, _ = image_representations(model, records, stores)
    scores = np.sort(anomaly.score(x))
    k = math.ceil((len(scores) + 1) * (1 - rate))
    return float(scores[k - 1]), len(scores)


def test_site_threshold_is_the_conformal_quantile_of_its_distinct_images(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    run, ckpt = trained
    cal = make_normal_run(tmp_path / "normal_studies", 50, reuse=10)
    out = tmp_path / "p.parquet"
    result = CliRunner().invoke(
        app,
        [*_predict_args(ckpt, run, out), "--anomaly-calibration", str(cal), "--anomaly-rate", "0.1"],
    )
    assert result.exit_code == 0, result.output
    want, n = _independent_threshold(ckpt, cal, 0.1)
    assert n == 50  # the 10 records that reuse an image are not extra draws
    pred = pd.read_parquet(out)
    validate_frame(pred, "predictions")
    img = pred[pred["embedding_anomaly_score"].notna()]
    assert len(img) and np.allclose(img["embedding_anomaly_threshold"], want, rtol=0, atol=1e-9)
    checkpoint_threshold = (
        EmbeddingAnomaly.from_state(load_checkpoint(ckpt)["embedding_anomaly"]).with_rate(0.1).threshold
    )
    assert abs(want - checkpoint_threshold) > 1e-6
    assert (img["embedding_anomaly_flag"] == (img["embedding_anomaly_score"] > want)).all()
    cal_ids = pd.read_parquet(cal / "records.parquet")["image_id"].tolist()
    assert set(img["embedding_anomaly_calibration"]) == {calibration_set_id(cal_ids)}
    assert f"anomaly threshold calibrated on {calibration_set_id(cal_ids)}" in result.output
    assert not pred.astype(str).apply(lambda c: c.str.contains("normal_studies|cal-")).any().any()
    section = json.loads((run / "run.json").read_text())["stages"]["predict"]
    fit = section["embedding_anomaly"]
    assert fit["calibration_source"] == "site" and fit["n_calibration"] == 50
    assert fit["false_alarm_rate"] == 0.1 and fit["threshold"] == pytest.approx(want, abs=1e-9)
    assert fit["false_alarm_upper_95"] == pytest.approx(false_alarm_bound(50, 0.1)[1])
    assert fit["calibration"] == section["options"]["anomaly_calibration"] == calibration_set_id(cal_ids)
    assert str(cal) not in json.dumps(section)


def test_without_the_option_the_checkpoint_calibrates_and_says_so(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    run, ckpt = trained
    predict_run(ckpt, run, tmp_path / "p.parquet")
    pred = pd.read_parquet(tmp_path / "p.parquet")
    img = pred[pred["embedding_anomaly_score"].notna()]
    assert set(img["embedding_anomaly_calibration"]) == {"checkpoint"}
    assert pred.loc[pred["embedding_anomaly_score"].isna(), "embedding_anomaly_calibration"].isna().all()


def test_the_rate_defaults_to_the_checkpoints(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run, ckpt = trained
    cal = make_normal_run(tmp_path / "cal", 70)
    predict_run(ckpt, run, tmp_path / "p.parquet", anomaly_calibration=cal)
    want, _ = _independent_threshold(ckpt, cal, 0.05)
    fit = json.loads((run / "run.json").read_text())["stages"]["predict"]["embedding_anomaly"]
    assert fit["false_alarm_rate"] == 0.05 and fit["threshold"] == pytest.approx(want, abs=1e-9)


def test_overlapping_records_are_refused_with_their_count(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run, ckpt = trained
    cal = make_normal_run(tmp_path / "cal", 30, record_ids={0: "rec-001", 1: "rec-002", 2: "rec-003"})
    result = CliRunner().invoke(
        app,
        [*_predict_args(ckpt, run, tmp_path / "p.parquet"), "--anomaly-calibration", str(cal)],
    )
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {cal / 'records.parquet'}: 3 of the 48 record(s) to score")
    assert "cannot calibrate its own threshold" in result.output and "Fix:" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "p.parquet").exists()


def test_the_scored_run_itself_cannot_calibrate(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run, ckpt = trained
    with pytest.raises(InputError, match="48 of the 48 record"):
        predict_run(ckpt, run, tmp_path / "p.parquet", anomaly_calibration=run)


def test_a_run_without_images_is_refused(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run, ckpt = trained
    cal = make_normal_run(tmp_path / "cal", 30, with_image=False)
    with pytest.raises(InputError, match=r"none of its 30 record\(s\) has an image") as err:
        predict_run(ckpt, run, tmp_path / "p.parquet", anomaly_calibration=cal)
    assert "records.parquet" in err.value.path


def test_images_of_another_shape_are_refused(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run, ckpt = trained
    cal = make_normal_run(tmp_path / "cal", 30, size=8)
    with pytest.raises(InputError, match="shape"):
        predict_run(ckpt, run, tmp_path / "p.parquet", anomaly_calibration=cal)


def test_too_few_normal_images_warn_with_the_bound_and_the_fix(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    run, ckpt = trained
    cal = make_normal_run(tmp_path / "cal", 15)
    counts = predict_run(ckpt, run, tmp_path / "p.parquet", anomaly_calibration=cal)
    note = [n for n in counts["notes"] if "calibrated on 15 site normal-study score(s)" in n]
    assert len(note) == 1 and "too few for the false-alarm rate 0.05" in note[0]
    assert "add normal studies to the --anomaly-calibration run" in note[0]
    section = json.loads((run / "run.json").read_text())["stages"]["predict"]
    assert section["embedding_anomaly"]["rate_exact"] is False and section["notes"] == counts["notes"]


def test_images_without_a_finite_score_are_refused_not_a_traceback(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    run, ckpt = trained
    cal = make_normal_run(tmp_path / "cal", 25)
    ids = [f"cal-img-{i:03d}" for i in range(25)]
    write_store(cal / "inputs" / "image", ids, np.full((25, 1, 16, 16), np.nan, np.float32))
    res = CliRunner().invoke(
        app, [*_predict_args(ckpt, run, tmp_path / "p.parquet"), "--anomaly-calibration", str(cal)]
    )
    assert res.exit_code == 2, res.output
    assert "has a finite anomaly score" in res.output and "Fix:" in res.output
    assert "Traceback" not in res.output


def test_a_directory_without_records_is_refused(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run, ckpt = trained
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(
        app,
        [*_predict_args(ckpt, run, tmp_path / "p.parquet"), "--anomaly-calibration", str(tmp_path / "empty")],
    )
    assert result.exit_code == 2 and "records.parquet: not found" in result.output, result.output
    assert "aligned with `medmm align`" in result.output and "Traceback" not in result.output


def test_a_checkpoint_without_the_statistics_is_refused(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run, ckpt = trained
    data = load_checkpoint(ckpt)
    data.pop("embedding_anomaly")
    data["meta"].pop("embedding_anomaly")
    old = tmp_path / "old.pt"
    torch.save(data, old)
    cal = make_normal_run(tmp_path / "cal", 30)
    with pytest.raises(InputError, match="no imaging anomaly statistics to calibrate") as err:
        predict_run(old, run, tmp_path / "p.parquet", anomaly_calibration=cal)
    assert err.value.path == str(old) and "leave out --anomaly-calibration" in err.value.fix
    assert "Fix:" not in err.value.problem and not (tmp_path / "p.parquet").exists()


def test_a_model_without_an_image_modality_is_refused(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run, _ = trained
    config = _tiny.tiny_config(run, tmp_path / "m", epochs=1, n_boot=0)
    config["modalities"].pop("image")
    train_from_config(TrainConfig.model_validate(config))
    cal = make_normal_run(tmp_path / "cal", 30)
    with pytest.raises(InputError, match="the model has no image modality"):
        predict_run(tmp_path / "m" / "model.pt", run, tmp_path / "p.parquet", anomaly_calibration=cal)


# --- the checkpoint's own calibration: too few scores for the stated rate ---


def _with_calibration(ckpt: Path, scores: torch.Tensor, target: Path) -> Path:
    """The checkpoint with other calibration scores (as if its validation split had been larger)."""
    data = load_checkpoint(ckpt)
    data["embedding_anomaly"]["calibration"] = scores.to(torch.float64).sort().values
    buf = io.BytesIO()
    torch.save(data, buf)
    target.write_bytes(buf.getvalue())
    return target


def test_few_calibration_scores_warn_with_the_bound(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run, ckpt = trained
    n = len(load_checkpoint(ckpt)["embedding_anomaly"]["calibration"])
    assert n < 61  # the tiny run: its 95% bound at 5% is above 10%
    out = tmp_path / "p.parquet"
    result = CliRunner().invoke(app, ["predict", "--model", str(ckpt), str(run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    warning = [line for line in result.output.splitlines() if "anomaly threshold was calibrated" in line]
    assert len(warning) == 1 and warning[0].startswith("warning: ") and f"on {n} " in warning[0]
    assert "Fix:" in warning[0] and "Traceback" not in result.output
    section = json.loads((run / "run.json").read_text())["stages"]["predict"]
    fit = section["embedding_anomaly"]
    assert fit["n_calibration"] == n and fit["false_alarm_rate"] == 0.05
    assert 0.1 < fit["false_alarm_upper_95"] < 1 and fit["false_alarm_expected"] <= 0.2
    assert any("calibrated on" in note for note in section["notes"])


def test_a_strict_rate_on_the_same_scores_is_too_few_and_says_so(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    run, ckpt = trained
    counts = predict_run(ckpt, run, tmp_path / "p.parquet", anomaly_rate=0.01)
    assert any("too few for the false-alarm rate 0.01" in note for note in counts["notes"])


def test_enough_calibration_scores_promise_the_rate_without_a_warning(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    run, ckpt = trained
    many = _with_calibration(ckpt, torch.linspace(0.5, 9.0, 2000), tmp_path / "many.pt")
    result = CliRunner().invoke(
        app, ["predict", "--model", str(many), str(run), "--out", str(tmp_path / "p.parquet")]
    )
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output
    fit = json.loads((run / "run.json").read_text())["stages"]["predict"]["embedding_anomaly"]
    assert fit["n_calibration"] == 2000 and fit["false_alarm_upper_95"] < 0.06
