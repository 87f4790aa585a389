"""Training determinism, checkpoint round trip (weights_only, hash check), scoring shapes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medmm.anomaly.features import BeatInputs
from medmm.anomaly.model import ModelFileError, load_model, save_model
from medmm.anomaly.score import embed, score_inputs
from medmm.anomaly.train import train_beat_model


@pytest.fixture(scope="module")
def toy_inputs() -> BeatInputs:
    rng = np.random.default_rng(0)
    base = np.sin(np.linspace(0, 3 * np.pi, 64)).astype("f4")
    waves = np.stack([base + 0.05 * rng.normal(size=(300, 64)), 0.05 * rng.normal(size=(300, 64))], axis=1)
    waves[::50, :, 20:35] += 2.0  # a few odd beats
    return BeatInputs(waves.astype("f4"), rng.normal(size=(300, 3)).astype("f4"), np.repeat([0, 1], 150))


def _state(m) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in m.net.state_dict().items()}


def test_training_is_deterministic_with_seed(toy_inputs: BeatInputs) -> None:
    a = train_beat_model(toy_inputs, seed=3, epochs=2, device="cpu")
    b = train_beat_model(toy_inputs, seed=3, epochs=2, device="cpu")
    c = train_beat_model(toy_inputs, seed=4, epochs=2, device="cpu")
    sa, sb, sc = _state(a), _state(b), _state(c)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert a.score.threshold == b.score.threshold


def test_training_does_not_touch_global_rng(toy_inputs: BeatInputs) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_beat_model(toy_inputs, seed=0, epochs=1, device="cpu")
    assert torch.equal(torch.rand(3), expected)


def test_checkpoint_round_trip(tmp_path: Path, toy_inputs: BeatInputs) -> None:
    model = train_beat_model(toy_inputs, seed=0, epochs=1, device="cpu")
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    np.testing.assert_array_equal(embed(model, toy_inputs.waves), embed(loaded, toy_inputs.waves))
    assert loaded.score.threshold == model.score.threshold
    assert loaded.spec == model.spec
    card = json.loads((tmp_path / "model.json").read_text())
    assert len(card["weights_sha256"]) == 64
    out = score_inputs(loaded, toy_inputs)
    np.testing.assert_array_equal(out["score"], score_inputs(model, toy_inputs)["score"])
    assert loaded.spec.baseline_s == (0.2, 0.6)
    # a v0.2 card (no baseline removal, its own RR floor and QRS gate) keeps scoring as it was trained
    del card["config"]["spec"]["baseline_s"]
    card["config"]["score"].update(mad_floor_rr=0.01, qrs_gate_z=1.0)
    assert card["config"]["score"]["kurtosis_sqi"] is True  # v0.6 cards carry the kSQI cap
    for key in ("neighbours", "max_saturated", "noise_z", "qrs_floor", "p_absent", "kurtosis_sqi"):
        del card["config"]["score"][key]
    (tmp_path / "model.json").write_text(json.dumps(card))
    old = load_model(tmp_path)
    assert old.spec.baseline_s == () and old.score.mad_floor_rr == 0.01 and old.score.qrs_gate_z == 1.0
    assert old.score.neighbours == 0 and old.score.max_saturated == 0.0
    assert old.score.noise_z == 0.0  # pre-v0.4 cards keep the fixed noise ratio they were saved with
    assert old.score.qrs_floor == 0.0 and old.score.p_absent is False  # pre-v0.5: no P-wave criterion
    assert old.score.kurtosis_sqi is False  # pre-v0.6: no kSQI cap


def test_ensemble_members_differ_round_trip_and_average(tmp_path: Path, toy_inputs: BeatInputs) -> None:
    from medmm.anomaly.score import score_embeddings

    ens = train_beat_model(toy_inputs, seed=3, epochs=1, device="cpu", ensemble=3)
    single = train_beat_model(toy_inputs, seed=4, epochs=1, device="cpu")
    assert len(ens.nets) == 3
    # member i is the network a single model with seed 3 + i would be
    s1, s4 = ens.nets[1].state_dict(), single.net.state_dict()
    assert all(torch.equal(s1[k], s4[k]) for k in s1)
    save_model(ens, tmp_path)
    card = json.loads((tmp_path / "model.json").read_text())
    assert card["version"] == 2 and card["config"]["ensemble"] == 3
    loaded = load_model(tmp_path)
    assert len(loaded.nets) == 3
    out = score_inputs(loaded, toy_inputs)
    np.testing.assert_array_equal(out["score"], score_inputs(ens, toy_inputs)["score"])
    embs = [embed(ens, toy_inputs.waves, net=net) for net in ens.nets]
    parts = [score_embeddings([e], toy_inputs, ens.score)["morphology_z"] for e in embs]
    np.testing.assert_allclose(out["morphology_z"], np.mean(parts, axis=0), atol=1e-9)
    card["version"] = 7
    (tmp_path / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelFileError, match="version 7"):
        load_model(tmp_path)
    with pytest.raises(ValueError, match="ensemble"):
        train_beat_model(toy_inputs, seed=0, epochs=1, ensemble=0)


def test_checkpoint_tampering_is_detected(tmp_path: Path, toy_inputs: BeatInputs) -> None:
    save_model(train_beat_model(toy_inputs, seed=0, epochs=1, device="cpu"), tmp_path)
    weights = tmp_path / "weights.pt"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="SHA-256"):
        load_model(tmp_path)
    with pytest.raises(ModelFileError, match=r"model\.json"):
        load_model(tmp_path / "nope")


def test_odd_beats_score_highest(toy_inputs: BeatInputs) -> None:
    model = train_beat_model(toy_inputs, seed=0, epochs=3, device="cpu")
    score = score_inputs(model, toy_inputs)["morphology_z"]
    top = set(np.argsort(score)[-6:].tolist())
    assert top == {0, 50, 100, 150, 200, 250}


def test_rr_gap_voids_timing_and_noise_weight_scales_score(toy_inputs: BeatInputs) -> None:
    from medmm.anomaly.model import AnomalyModel, BeatAutoencoder

    n = 150
    ctx = np.zeros((n, 3), "f4")
    ctx[:, 0] = np.random.default_rng(1).normal(0, 0.02, n)
    ctx[:, 1] = np.random.default_rng(2).normal(0, 0.02, n)
    ctx[10, :2] = (np.log(0.6), np.log(1.4))  # premature beat with a compensatory pause
    ctx[20, :2] = (0.0, np.log(2.2))  # the next beat was missed: a gap, not a pause
    quality = np.tile(np.array([1.0, 1.0, 0.0], "f4"), (n, 1))
    quality[30, 0] = 8.0  # noisy
    quality[40, 1] = 0.05  # flat lead
    quality[50, 2] = 0.4  # clipped
    bi = BeatInputs(toy_inputs.waves[:n], ctx, np.zeros(n, np.int64), quality)
    model = AnomalyModel(net=BeatAutoencoder())
    model.score.noise_z = 0.0  # the fixed noise ratio (v0.3)
    out = score_inputs(model, bi)
    assert out["rhythm_z"][10] > 4 and out["pause_z"][10] > 4
    assert out["pause_z"][20] == 0.0 and out["rhythm_z"][20] == 0.0
    assert out["weight"][30] == pytest.approx(model.score.noise_ratio / 8.0)
    assert out["weight"][40] == 0.0 and out["score"][40] == 0.0
    assert out["weight"][50] == 0.0
    assert np.all(out["weight"][:10] == 1.0)
    model.score.gap_rr = 0.0  # switched off: the gap counts as a pause again
    assert score_inputs(model, bi)["pause_z"][20] > 4


def test_noise_limit_is_a_record_relative_outlier_level() -> None:
    from medmm.anomaly.score import noise_limit, quality_weight

    rng = np.random.default_rng(0)
    calm = np.exp(rng.normal(0, 0.05, 500))  # steady noise: a 1.5x burst is an outlier
    busy = np.exp(rng.normal(0, 0.3, 500))  # noisy record: 1.5x is ordinary
    assert noise_limit(calm, 4.0) < 1.5 < noise_limit(busy, 4.0)
    q = np.ones((1000, 3))
    q[:, 0] = np.r_[calm, busy]
    q[:, 2] = 0.0
    q[[0, 500], 0] = 1.5
    w = quality_weight(q, 0.0, 0.3, noise_z=4.0, group=np.repeat([0, 1], 500))
    assert w[0] < 1.0 and w[500] == 1.0
    assert np.median(w) == 1.0


def test_neighbour_timing_lends_look_alikes_timing_to_a_late_ectopic_beat() -> None:
    from medmm.anomaly.score import neighbour_timing, whiten_to_core

    rng = np.random.default_rng(0)
    emb = np.r_[rng.normal(0, 1, (300, 4)), rng.normal(8, 0.3, (12, 4))]  # 300 normal, 12 of one focus
    own = np.zeros(312)
    own[300:311] = 12.0  # eleven of the twelve ectopic beats come early with a pause
    white = whiten_to_core(emb)
    lent = neighbour_timing(white, own, 5)
    assert lent[311] == 12.0  # the late-coupled one inherits its look-alikes' timing
    assert np.all(lent[:300] == 0.0)  # normal beats' neighbours are normal beats
    assert np.all(neighbour_timing(white, own, 0) == 0.0)
    assert np.sqrt((white[:300] ** 2).sum(axis=1)).mean() < np.sqrt((white[300:] ** 2).sum(axis=1)).min()
