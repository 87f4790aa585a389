"""Encoders (2D/3D imaging, CNN/GRU signals, report vectors), heads, losses and metrics against references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from medmm.errors import ConfigError
from medmm.models.encoders import ImagingEncoder, SignalEncoder, finding_vector
from medmm.models.heads import TaskSpec, build_heads
from medmm.models.losses import MultiTaskLoss, masked_bce
from medmm.models.metrics import binary_metrics, evaluate_predictions


@pytest.mark.parametrize(
    ("arch", "dims", "shape"),
    [
        ("resnet_small", 3, (2, 1, 16, 16, 16)),
        ("resnet18", 2, (2, 1, 32, 32)),
        ("densenet121", 2, (2, 1, 32, 32)),
    ],
)
def test_imaging_encoders(arch: str, dims: int, shape: tuple[int, ...]) -> None:
    enc = ImagingEncoder(out_dim=7, arch=arch, spatial_dims=dims).eval()
    assert enc(torch.randn(*shape)).shape == (2, 7)


def test_signal_encoders_and_unknown_names() -> None:
    x = torch.randn(3, 1, 256)
    assert SignalEncoder(5, arch="gru")(x).shape == (3, 5)
    with pytest.raises(ValueError, match="beat features"):
        SignalEncoder(5, n_features=2)(x)
    with pytest.raises(ConfigError, match="cnn"):
        SignalEncoder(5, arch="lstm")
    with pytest.raises(ConfigError, match="resnet_small"):
        ImagingEncoder(arch="vit")


def test_finding_vector_statuses() -> None:
    v = finding_vector([("a", "uncertain"), ("b", "present"), ("zzz", "present"), ("a", "bogus")], ["a", "b"])
    assert v.tolist() == [0, 0, 1, 1, 0, 0]


def test_heads_and_kinds() -> None:
    heads = build_heads([TaskSpec("dx", "multilabel", ("a", "b", "c")), TaskSpec("an", "anomaly", ("s",))], 4)
    assert heads["dx"](torch.zeros(2, 4)).shape == (2, 3) and heads["an"](torch.zeros(2, 4)).shape == (2, 1)
    with pytest.raises(ConfigError, match="exactly one"):
        build_heads([TaskSpec("an", "anomaly", ("a", "b"))], 4)


def test_losses_mask_missing_labels_and_weight_tasks() -> None:
    logits = torch.tensor([[2.0], [-1.0]])
    assert masked_bce(logits, torch.tensor([[float("nan")], [float("nan")]])).item() == 0.0
    one = masked_bce(logits[:1], torch.tensor([[1.0]]))
    assert torch.isclose(masked_bce(logits, torch.tensor([[1.0], [float("nan")]])), one)
    fixed = MultiTaskLoss(["a", "b"], "fixed", {"a": 2.0})
    assert fixed({"a": torch.tensor(1.0), "b": torch.tensor(3.0)}).item() == 5.0
    unc = MultiTaskLoss(["a", "b"], "uncertainty")
    with torch.no_grad():
        unc.log_vars[0] = 1.0
    val = unc({"a": torch.tensor(1.0), "b": torch.tensor(3.0)}).item()
    assert val == pytest.approx(np.exp(-1.0) * 1.0 + 1.0 + 3.0)
    with pytest.raises(ConfigError):
        MultiTaskLoss(["a"], "magic")


def test_metrics_match_sklearn_and_confusion_counts() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    p = np.round(np.clip(y * 0.3 + rng.random(300) * 0.7, 0, 1), 2)
    m = binary_metrics(y, p)
    assert m["auroc"] == pytest.approx(roc_auc_score(y, p))
    assert m["auprc"] == pytest.approx(average_precision_score(y, p))
    pred = p >= 0.5
    assert m["sensitivity"] == pytest.approx((pred & (y == 1)).sum() / (y == 1).sum())
    assert m["specificity"] == pytest.approx((~pred & (y == 0)).sum() / (y == 0).sum())
    perfect = binary_metrics(np.array([0, 1]), np.array([0.0, 1.0]))
    assert perfect["ece"] == 0.0 and perfect["f1"] == 1.0


def test_bootstrap_is_seeded_and_macro_averages() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, (120, 2)).astype(float)
    y[:10, 1] = np.nan
    p = rng.random((120, 2))
    a = evaluate_predictions(y, p, ["x", "z"], n_boot=100, seed=3)
    b = evaluate_predictions(y, p, ["x", "z"], n_boot=100, seed=3)
    c = evaluate_predictions(y, p, ["x", "z"], n_boot=100, seed=4)
    assert a == b and a != c
    assert a["macro"]["auroc"]["value"] == pytest.approx(
        (a["x"]["auroc"]["value"] + a["z"]["auroc"]["value"]) / 2
    )
    assert a["x"]["auroc"]["lo"] < a["x"]["auroc"]["value"] < a["x"]["auroc"]["hi"]
