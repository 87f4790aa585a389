"""covid_chestxray_subset leave-one-patient-out study (bench/bench_covid_lopo.py, bench/_covid.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from bench._covid import LEAK, METADATA, load_cases, lopo_predict, lopo_splits, mask_label_words
from bench.bench_covid_lopo import MODELS, _Majority, clopper_pearson, cluster_bootstrap, run


@pytest.fixture(scope="module")
def study(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The quick study, run once: its summary, output folder and CPU seconds."""
    tmp = tmp_path_factory.mktemp("covid_lopo")
    key = tmp / "site.key"
    key.write_text("cd" * 32 + "\n")
    key.chmod(0o600)
    # CPU seconds of this process, not wall time: the shared CI/dev machine may be heavily loaded
    t0 = time.process_time()
    summary = run(tmp / "out", quick=True, key_file=key)
    return {"summary": summary, "out": tmp / "out", "cpu_s": time.process_time() - t0}


@pytest.fixture(scope="module")
def cases(study: dict[str, Any], shared_data: Path) -> pd.DataFrame:
    return load_cases(study["out"] / "run", shared_data / "covid_chestxray_subset" / METADATA)


def test_lopo_never_shares_a_patient(cases: pd.DataFrame) -> None:
    groups = cases["patient"].to_numpy()
    held_out = []
    for train, test in lopo_splits(groups):
        assert set(groups[train]).isdisjoint(groups[test])
        assert len(set(groups[test])) == 1
        assert sorted(np.r_[train, test]) == list(range(len(groups)))
        held_out.append(groups[test[0]])
        # every image of the held-out patient is in test
        assert len(test) == int((groups == groups[test[0]]).sum())
    assert sorted(held_out) == sorted(set(groups)) and len(held_out) == 19


def test_lopo_predict_scores_each_image_once_from_a_model_without_its_patient() -> None:
    seen: list[set[str]] = []

    class Spy(_Majority):
        def fit(self, x: np.ndarray, y: np.ndarray) -> Spy:
            seen.append({str(v) for v in x[:, 0]})
            super().fit(x, y)
            return self

    groups = np.array(["a", "a", "b", "c", "c", "c"])
    x = groups[:, None]
    scores, folds = lopo_predict(x, np.array([1, 1, 0, 1, 1, 0]), groups, Spy)
    assert not np.isnan(scores).any()
    assert [f["group"] for f in folds] == ["a", "b", "c"]
    assert [sorted(s) for s in seen] == [["b", "c"], ["a", "c"], ["a", "b"]]


def test_notes_lose_every_label_word(cases: pd.DataFrame) -> None:
    assert len(cases) == 34 and cases["patient"].nunique() == 19
    for text in cases["notes"]:
        assert LEAK.search(text) is None
        low = text.lower()
        assert "covid" not in low and "pneumocystis" not in low and "streptococc" not in low
    assert mask_label_words("COVID-19 pneumonia") == "pneumonia"


def test_clopper_pearson_matches_scipy() -> None:
    for k, n in ((0, 19), (13, 19), (19, 19), (24, 34)):
        ci = binomtest(k, n).proportion_ci(method="exact")
        assert clopper_pearson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_cluster_bootstrap_keeps_patients_together() -> None:
    # two patients, each perfectly classified on its own images but with opposite score scales:
    # resampling whole patients keeps accuracy at 1.0 in every replicate
    y = np.array([1, 0, 1, 0])
    p = np.array([0.9, 0.1, 0.8, 0.2])
    r = cluster_bootstrap(y, p, np.array(["a", "a", "b", "b"]), n_boot=100, seed=1)
    assert r["accuracy"] == {"value": 1.0, "lo": 1.0, "hi": 1.0}


def test_quick_study_end_to_end(study: dict[str, Any], shared_data: Path) -> None:
    assert study["cpu_s"] < 60
    summary, out = study["summary"], study["out"]
    bal = summary["balance"]
    assert (bal["images"], bal["patients"], bal["covid_images"], bal["covid_patients"]) == (34, 19, 24, 13)
    # every picture went through the standard stages: ingested, parsed, aligned, labelled
    stages = bal["stages"]
    assert stages["ingest"] == {"ingested": 34}
    assert stages["align"]["with_image"] == stages["align"]["with_report"] == 34
    metrics = summary["metrics"]
    assert set(metrics) == set(MODELS)
    for name, levels in metrics.items():
        for level in ("image", "patient"):
            for metric, cell in levels[level].items():
                if np.isnan(cell["value"]):
                    continue
                assert cell["lo"] - 1e-9 <= cell["value"] <= cell["hi"] + 1e-9, (name, level, metric)
    # majority baseline: every training fold is mostly COVID-19 -> always predicts COVID-19
    maj = metrics["majority"]
    assert maj["image"]["accuracy"]["value"] == pytest.approx(24 / 34)
    assert maj["patient"]["accuracy"]["value"] == pytest.approx(13 / 19)
    assert maj["patient"]["accuracy_exact"]["k"] == 13
    assert maj["patient"]["sensitivity"]["value"] == 1.0 and maj["patient"]["specificity"]["value"] == 0.0
    assert maj["patient"]["auroc"]["value"] == 0.5
    pred = pd.read_csv(out / "predictions.csv")
    assert len(pred) == 34 and pred["patient"].nunique() == 19
    # the predictions carry the run's pseudonyms, so they join records.parquet
    records = pd.read_parquet(out / "run" / "records.parquet")
    assert set(pred["patient"]) == set(records["patient_id"])
    raw_ids = set(pd.read_csv(shared_data / "covid_chestxray_subset" / METADATA)["Patientid"])
    assert not set(pred["patient"].astype(str)) & {str(i) for i in raw_ids}
    assert json.loads((out / "metrics.json").read_text())["settings"]["n_boot"] == 200
