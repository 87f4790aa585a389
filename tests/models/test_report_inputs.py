"""Report encoder inputs beyond finding vectors: entity vectors, keyed text ids, config, encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from medmm.errors import ConfigError
from medmm.models.build import build_model
from medmm.models.config import ReportInputConfig, TrainConfig, load_config
from medmm.models.encoders.report_features import (
    TokenHasher,
    entity_status,
    entity_tokens,
    entity_vectors,
    text_tokens,
)
from medmm.models.encoders.reports import ReportEncoder


def _entity(finding: str | None, negated: bool = False, uncertain: bool = False, **kw: object) -> dict:
    row = {
        "label": "FINDING",
        "finding": finding,
        "text": kw.pop("text", finding),
        "long_form": None,
        "negated": negated,
        "uncertain": uncertain,
        "location": None,
        "section": "FINDINGS",
    }
    row.update(kw)
    return row


def _vec(rows: list[dict], dim: int = 256) -> np.ndarray:
    return entity_vectors([entity_tokens(rows)], dim)[0]


def test_entity_vector_is_deterministic_and_binary() -> None:
    rows = [_entity("pleural effusion"), _entity("nodule", location="Left Lower Lobe"), _entity("nodule")]
    a, b = _vec(rows), _vec(list(reversed(rows)))
    assert np.array_equal(a, b)  # order of mentions does not matter
    assert set(np.unique(a)) <= {0.0, 1.0}
    # 3 distinct tokens: effusion, nodule, nodule@left lower lobe (the repeated nodule counts once)
    assert entity_tokens(rows) == [
        "body|FINDING|nodule@left lower lobe|affirmed",
        "body|FINDING|nodule|affirmed",
        "body|FINDING|pleural effusion|affirmed",
    ]
    assert a.sum() == 3.0


def test_negated_uncertain_and_affirmed_give_different_vectors() -> None:
    affirmed = _vec([_entity("pneumothorax")])
    negated = _vec([_entity("pneumothorax", negated=True)])
    uncertain = _vec([_entity("pneumothorax", uncertain=True)])
    both = _vec([_entity("pneumothorax", negated=True, uncertain=True)])
    vectors = [affirmed, negated, uncertain, both]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.array_equal(vectors[i], vectors[j])
    assert entity_status(True, True) == "negated+uncertain"


def test_historical_and_family_mentions_are_not_the_patients_current_finding(tmp_path: Path) -> None:
    current = _vec([_entity("pneumonia")])
    historical = _vec([_entity("pneumonia", historical=True, experiencer="patient")])
    family = _vec([_entity("lung cancer", experiencer="family")])
    assert not np.array_equal(current, historical)
    assert entity_tokens([_entity("pneumonia", historical=True)]) == [
        "body|FINDING|pneumonia|affirmed+historical"
    ]
    assert entity_tokens([_entity("lung cancer", experiencer="family")]) == [
        "body|FINDING|lung cancer|affirmed+family"
    ]
    assert not np.array_equal(family, _vec([_entity("lung cancer")]))
    # an entities table written before the ConText columns: the plain status, no error
    import pandas as pd

    from medmm.models.report_inputs import ENTITY_COLUMNS, _entity_matrix

    old = pd.DataFrame([{**{c: None for c in ENTITY_COLUMNS}, **_entity("pneumonia"), "report_id": "r1"}])
    old[ENTITY_COLUMNS].to_parquet(tmp_path / "entities.parquet")
    assert np.array_equal(_entity_matrix(tmp_path, ["r1"], 256)[0].toarray()[0], current)
    new = old.assign(historical=[True], experiencer=["patient"])
    new.to_parquet(tmp_path / "entities.parquet")
    assert np.array_equal(_entity_matrix(tmp_path, ["r1"], 256)[0].toarray()[0], historical)


def test_a_checkpoint_scores_with_the_entity_tokens_it_was_trained_on(tmp_path: Path) -> None:
    """A checkpoint trained before the ConText columns learned ``pneumonia|affirmed`` for a history of
    pneumonia; scoring a run parsed since then must build that token again, not ``+historical``
    (silently another feature column). One trained with them refuses a table without them."""
    import pandas as pd

    from medmm.errors import InputError
    from medmm.models.report_inputs import ENTITY_COLUMNS, report_input_meta, with_report_inputs

    cfg = TrainConfig.model_validate(
        {
            "run_dir": str(tmp_path),
            "modalities": {"report": {}},
            "tasks": [{"name": "dx", "labels": ["a"]}],
            "report_input": {"features": ["entities"], "entity_dim": 256},
        }
    )
    row = {**{c: None for c in ENTITY_COLUMNS}, **_entity("pneumonia"), "report_id": "r1"}
    pd.DataFrame([row]).assign(historical=[True], experiencer=["patient"]).to_parquet(
        tmp_path / "entities.parquet"
    )
    records = pd.DataFrame({"has_report": [True], "report_id": ["r1"]})
    absent = {"report": object()}  # the findings store: not read with features [entities]

    def vector(meta: dict | None) -> np.ndarray:
        src = with_report_inputs(cfg, tmp_path, absent, records, meta)["report"]
        return src.get("r1")[0]

    trained_now = with_report_inputs(cfg, tmp_path, absent, records)
    assert report_input_meta(cfg, trained_now)["entity_context"] is True
    old_meta = {"report_inputs": {"features": ["entities"], "text_key_check": None}}  # before the key
    assert np.array_equal(vector(old_meta), _vec([_entity("pneumonia")]))
    assert np.array_equal(vector(None), _vec([_entity("pneumonia", historical=True)]))
    new_meta = {"report_inputs": {**old_meta["report_inputs"], "entity_context": True}}
    assert np.array_equal(vector(new_meta), vector(None))
    pd.DataFrame([row])[ENTITY_COLUMNS].to_parquet(tmp_path / "entities.parquet")  # an older parse
    with pytest.raises(InputError, match="ConText columns"):
        vector(new_meta)
    older_run = with_report_inputs(cfg, tmp_path, absent, records)
    assert report_input_meta(cfg, older_run)["entity_context"] is False


def test_history_section_and_unknown_entities() -> None:
    # the indication's "pneumonia" is not the findings' "pneumonia"
    assert not np.array_equal(
        _vec([_entity("pneumonia")]), _vec([_entity("pneumonia", section="INDICATION")])
    )
    # an entity outside any vocabulary (a model's label, no finding) still gets a column, from its text
    unknown = [_entity(None, label="DISEASE", text="  Sarcoidosis ")]
    assert entity_tokens(unknown) == ["body|DISEASE|sarcoidosis|affirmed"]
    assert _vec(unknown).sum() == 1.0
    # measurements count by kind, never by value
    m = [_entity(None, label="MEASUREMENT", text="12 mm"), _entity(None, label="MEASUREMENT", text="3 cm")]
    assert entity_tokens(m) == ["body|MEASUREMENT|measurement|affirmed"]


def test_empty_report_is_zero() -> None:
    assert entity_tokens([]) == []
    v = entity_vectors([[], ["body|FINDING|mass|affirmed"]], 32)
    assert v.shape == (2, 32) and v[0].sum() == 0 and v[1].sum() == 1
    assert entity_vectors([], 32).shape == (0, 32)
    assert text_tokens("", 2) == [] and text_tokens("...", 2) == []
    assert TokenHasher(b"k" * 32, 64).ids([], 5).tolist() == [0, 0, 0, 0, 0]


def test_text_ids_are_keyed_deterministic_and_padded() -> None:
    tokens = text_tokens("No acute cardiopulmonary disease. Heart size normal.", ngrams=2)
    assert tokens[:3] == ["no", "no acute", "acute"] and tokens[-1] == "normal"
    h1, h2 = TokenHasher(b"a" * 32, 1000), TokenHasher(b"a" * 32, 1000)
    other = TokenHasher(b"b" * 32, 1000)
    ids = h1.ids(tokens, 40)
    assert np.array_equal(ids, h2.ids(tokens, 40))  # same key: same ids
    assert not np.array_equal(ids, other.ids(tokens, 40))  # another site key: other ids
    n = len(tokens)
    assert ids[:n].min() >= 1 and ids[:n].max() <= 1000 and not ids[n:].any()
    cut = h1.ids(tokens, 4)
    assert np.array_equal(cut, ids[:4])  # truncation keeps the start of the text


def test_config_default_keeps_findings_and_validates() -> None:
    base = {"run_dir": "r", "modalities": {"report": {}}, "tasks": [{"name": "dx", "labels": ["a"]}]}
    cfg = TrainConfig.model_validate(base)  # an old config: no report_input
    assert cfg.report_input.features == ["findings"] and cfg.report_input.is_default()
    cfg = TrainConfig.model_validate({**base, "report_input": {"features": ["text", "findings"]}})
    assert cfg.report_input.features == ["findings", "text"]  # canonical order
    bads: list[dict[str, object]] = [
        {"features": ["words"]},
        {"features": []},
        {"features": ["text", "text"]},
        {"entity_dim": 2},
    ]
    for bad in bads:
        with pytest.raises(ValidationError):
            TrainConfig.model_validate({**base, "report_input": bad})
    with pytest.raises(ValidationError, match="modalities has no report"):
        TrainConfig.model_validate(
            {**base, "modalities": {"signal": {}}, "report_input": {"features": ["entities"]}}
        )


def test_config_typo_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text(
        "run_dir: r\nmodalities: {report: {}}\ntasks: [{name: dx, labels: [a]}]\n"
        "report_input: {feature: [text]}\n"
    )
    with pytest.raises(ConfigError, match=r"report_input.feature: unknown key \(did you mean 'features'"):
        load_config(path)


def test_findings_only_encoder_is_the_old_one() -> None:
    """Old checkpoints (finding vectors) load: same parameter names and, seeded, the same initial values."""
    torch.manual_seed(0)
    new = ReportEncoder(9, 8)
    torch.manual_seed(0)
    old = torch.nn.Sequential(
        torch.nn.Linear(9, 64), torch.nn.ReLU(), torch.nn.Dropout(0.1), torch.nn.Linear(64, 8)
    )
    assert list(new.state_dict()) == [f"net.{k}" for k in old.state_dict()]
    for a, b in zip(new.state_dict().values(), old.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert new.text is None


def test_text_encoder_trains_only_used_rows() -> None:
    enc = ReportEncoder(3, 4, text_buckets=20, text_dim=5)
    x = torch.zeros(2, 3)
    tokens = torch.tensor([[4, 7, 0], [0, 0, 0]])  # the second report has no token
    out = enc(x, tokens)
    out.sum().backward()
    grad = enc.text.weight.grad  # type: ignore[union-attr]
    assert grad is not None
    rows = set(torch.nonzero(grad.abs().sum(1)).flatten().tolist())
    assert rows == {4, 7}  # padding (0) and unused buckets get no gradient
    with pytest.raises(ValueError, match="token ids"):
        enc(x)


def test_build_model_follows_report_input() -> None:
    base = {"run_dir": ".", "fusion": "sum", "modalities": {"report": {"out_dim": 4}}, "embed_dim": 4}
    base["tasks"] = [{"name": "dx", "labels": ["a"]}]
    text = TrainConfig.model_validate(
        {**base, "report_input": {"features": ["findings", "text"], "text": {"buckets": 50, "dim": 3}}}
    )
    enc = build_model(text, {"report": {"shape": [9], "n_features": 16}}).encoders["report"]
    assert enc.text.num_embeddings == 51 and enc.net[0].in_features == 12  # type: ignore[union-attr,index]
    plain = build_model(TrainConfig.model_validate(base), {"report": {"shape": [9], "n_features": 0}})
    assert plain.encoders["report"].text is None
    assert ReportInputConfig().features == ["findings"]
