"""Every fusion strategy x every availability pattern: shapes, masks, and gradient isolation."""

from __future__ import annotations

import itertools

import pytest
import torch

from medmm.models.encoders import ReportEncoder
from medmm.models.fusion import FUSIONS, EmptySampleError, build_fusion, modality_dropout
from medmm.models.heads import TaskSpec
from medmm.models.model import MultimodalModel

DIMS = {"image": 5, "report": 4, "signal": 3}
MODS = list(DIMS)
PATTERNS = [p for r in (1, 2, 3) for p in itertools.combinations(MODS, r)]
TASKS = [TaskSpec("dx", "multilabel", ("abnormal", "other")), TaskSpec("anomaly", "anomaly", ("score",))]


def _embeddings(b: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(b, d, generator=g, requires_grad=True) for m, d in DIMS.items()}


@pytest.mark.parametrize("name", sorted(FUSIONS))
@pytest.mark.parametrize("pattern", PATTERNS, ids=["+".join(p) for p in PATTERNS])
def test_fusion_shapes_weights_and_grad_isolation(name: str, pattern: tuple[str, ...]) -> None:
    torch.manual_seed(0)
    fusion = build_fusion(name, DIMS, out_dim=6)
    b = 4
    # mixed batch: rows 0-1 follow `pattern`, rows 2-3 have everything
    mask = torch.ones(b, len(MODS), dtype=torch.bool)
    for j, m in enumerate(MODS):
        mask[:2, j] = m in pattern
    emb = _embeddings(b)
    out = fusion(emb, mask)
    assert out.fused.shape == (b, 6)
    assert torch.isfinite(out.fused).all()
    if out.weights is not None:
        assert out.weights.shape == (b, len(MODS))
        assert torch.all(out.weights[~mask] == 0)
        assert torch.allclose(out.weights.sum(dim=1), torch.ones(b), atol=1e-5)
    out.fused.sum().backward()
    for j, m in enumerate(MODS):
        grad = emb[m].grad
        assert grad is not None
        absent_rows = ~mask[:, j]
        assert torch.all(grad[absent_rows] == 0), f"{name}: gradient leaked into absent {m}"
        assert grad[mask[:, j]].abs().sum() > 0, f"{name}: no gradient for present {m}"
    # changing an absent modality's embedding must not change the output
    emb2 = {m: t.detach().clone() for m, t in emb.items()}
    for j, m in enumerate(MODS):
        emb2[m][~mask[:, j]] = 1e3
    out2 = fusion(emb2, mask)
    assert torch.allclose(out.fused.detach(), out2.fused.detach(), atol=1e-5)


@pytest.mark.parametrize("name", sorted(FUSIONS))
@pytest.mark.parametrize("pattern", PATTERNS, ids=["+".join(p) for p in PATTERNS])
def test_absent_encoder_params_get_no_gradient(name: str, pattern: tuple[str, ...]) -> None:
    torch.manual_seed(0)
    encoders = {m: ReportEncoder(n_inputs=d, out_dim=8) for m, d in DIMS.items()}
    model = MultimodalModel(encoders, name, TASKS, embed_dim=8)
    b = 3
    inputs = {m: torch.randn(b, DIMS[m]) for m in pattern}
    index = {m: torch.arange(b) for m in pattern}
    mask = torch.tensor([[m in pattern for m in MODS]] * b)
    out = model(inputs, index, mask)
    assert out.logits["dx"].shape == (b, 2) and out.logits["anomaly"].shape == (b, 1)
    sum(v.sum() for v in out.logits.values()).backward()
    for m in MODS:
        grads = [p.grad for p in model.encoders[m].parameters()]
        if m in pattern:
            assert any(g is not None and g.abs().sum() > 0 for g in grads)
        else:
            assert all(g is None or torch.all(g == 0) for g in grads)


@pytest.mark.parametrize("name", sorted(FUSIONS))
def test_sample_without_any_modality_is_an_error(name: str) -> None:
    fusion = build_fusion(name, DIMS, out_dim=4)
    mask = torch.tensor([[True, False, False], [False, False, False]])
    with pytest.raises(EmptySampleError, match="no modality present"):
        fusion(_embeddings(2), mask)


def test_mask_shape_is_checked() -> None:
    with pytest.raises(ValueError, match="bool"):
        build_fusion("sum", DIMS, 4)(_embeddings(2), torch.ones(2, 3))


def test_modality_dropout_is_seeded_and_keeps_one() -> None:
    mask = torch.tensor([[True, True, True], [True, False, True], [False, True, False]] * 20)
    a = modality_dropout(mask, 0.7, torch.Generator().manual_seed(3))
    b = modality_dropout(mask, 0.7, torch.Generator().manual_seed(3))
    c = modality_dropout(mask, 0.7, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.any(dim=1).all()
    assert not (a & ~mask).any()  # never invents a modality
    assert (a != mask).any()
    assert torch.equal(modality_dropout(mask, 0.0, None), mask)


def test_attention_weights_depend_on_sample() -> None:
    torch.manual_seed(0)
    fusion = build_fusion("attention", DIMS, out_dim=6)
    out = fusion(_embeddings(8), torch.ones(8, 3, dtype=torch.bool))
    assert out.weights is not None
    assert out.weights.std(dim=0).sum() > 0


def test_single_present_sample_trains_through_batchnorm() -> None:
    from medmm.models.encoders import ImagingEncoder

    torch.manual_seed(0)
    model = MultimodalModel(
        {"image": ImagingEncoder(8), "report": ReportEncoder(4, 8)}, "attention", TASKS, 8
    )
    model.train()
    inputs = {"image": torch.randn(1, 1, 16, 16), "report": torch.randn(3, 4)}
    index = {"image": torch.tensor([1]), "report": torch.arange(3)}
    mask = torch.tensor([[False, True], [True, True], [False, True]])
    out = model(inputs, index, mask)
    out.logits["dx"].sum().backward()
    assert model.training and model.encoders["image"].training
    assert any(p.grad is not None for p in model.encoders["image"].parameters())
