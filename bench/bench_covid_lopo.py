"""COVID-19 vs other findings on ``covid_chestxray_subset`` (image + clinical notes), leave-one-patient-out.

``python -m bench covid_lopo [--quick]`` or ``python -m bench.bench_covid_lopo [--quick] [OUT_DIR]``.
34 images of 19 patients; every model is refitted 19 times, each time without one patient, and scores all
images of that patient. Models are scikit-learn logistic regressions (L2, ``class_weight="balanced"``,
standardised inputs) over fixed features (see :mod:`bench._covid`; nothing is trained end to end and
nothing is downloaded):

``majority`` (the training fold's majority class), ``acquisition`` (confounder probe: CT?, lateral view?,
PNG?, native height/width/aspect - no pixels, no notes), ``source`` (confounder probe: one-hot country of
the contributing hospital, ``unknown`` when not given), ``image_stats`` (radiomics-like intensity and
texture statistics), ``image_randconv`` (frozen random conv net), ``notes_findings`` (medmm report pipeline
present/absent/uncertain vector), ``notes_tfidf`` (TF-IDF of the masked notes, fitted per fold), ``late``
(mean of the ``image_stats`` and ``notes_findings`` probabilities), ``early`` (one regression on both
feature sets concatenated), ``late_tfidf`` (mean of ``image_stats`` and ``notes_tfidf``).

Metrics per image (bootstrap resampling *patients*, all their images together) and per patient (mean
score of the patient's images; bootstrap over patients via :func:`medmm.models.metrics.evaluate_predictions`),
plus an exact Clopper-Pearson interval for accuracy. Patient ids are pseudonymised with the site key.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "MODELS",
    "clopper_pearson",
    "cluster_bootstrap",
    "patient_scores",
    "permutation_pvalue",
    "run",
    "summarise",
]

MODELS = (
    "majority",
    "acquisition",
    "source",
    "image_stats",
    "image_randconv",
    "notes_findings",
    "notes_tfidf",
    "late",
    "early",
    "late_tfidf",
)
METRICS = ("auroc", "accuracy", "sensitivity", "specificity")


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact binomial (Clopper-Pearson) interval for ``k`` successes out of ``n``.

    >>> tuple(round(v, 3) for v in clopper_pearson(13, 19))
    (0.434, 0.874)
    """
    from scipy.stats import beta

    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def cluster_bootstrap(
    y: np.ndarray, p: np.ndarray, groups: np.ndarray, n_boot: int, seed: int, alpha: float = 0.05
) -> dict[str, dict[str, float]]:
    """Image-level metrics with percentile CIs from resampling whole groups (patients) with replacement.

    >>> y = np.array([0, 0, 1, 1, 1, 0]); p = np.array([0.2, 0.3, 0.8, 0.7, 0.6, 0.4])
    >>> r = cluster_bootstrap(y, p, np.array(list("aabbcd")), n_boot=50, seed=0)
    >>> r["auroc"]["value"], r["auroc"]["lo"] <= 1.0 <= r["auroc"]["hi"]
    (1.0, True)
    """
    from medmm.models.metrics import binary_metrics

    point = binary_metrics(y, p)
    uniq = np.unique(groups)
    members = [np.flatnonzero(groups == g) for g in uniq]
    rng = np.random.default_rng(seed)
    boots: dict[str, list[float]] = {m: [] for m in METRICS}
    for _ in range(n_boot):
        idx = np.concatenate([members[i] for i in rng.integers(0, len(uniq), len(uniq))])
        res = binary_metrics(y[idx], p[idx])
        for m in METRICS:
            boots[m].append(res[m])
    out = {}
    for m in METRICS:
        arr = np.asarray(boots[m], dtype=float)
        arr = arr[~np.isnan(arr)]
        lo, hi = np.quantile(arr, [alpha / 2, 1 - alpha / 2]) if len(arr) else (np.nan, np.nan)
        out[m] = {"value": float(point[m]), "lo": float(lo), "hi": float(hi)}
    return out


def patient_scores(y: np.ndarray, p: np.ndarray, groups: np.ndarray) -> pd.DataFrame:
    """One row per patient: label and mean score over the patient's images.

    >>> patient_scores(np.array([1, 1, 0]), np.array([0.2, 0.6, 0.1]), np.array(["a", "a", "b"]))
      group  y    p
    0     a  1  0.4
    1     b  0  0.1
    """
    df = pd.DataFrame({"group": groups, "y": y, "p": p})
    return df.groupby("group", sort=True).agg(y=("y", "max"), p=("p", "mean")).reset_index()


def summarise(
    y: np.ndarray, p: np.ndarray, groups: np.ndarray, n_boot: int, seed: int
) -> dict[str, dict[str, Any]]:
    """``{"image": {...}, "patient": {...}}`` metrics with bootstrap CIs and Clopper-Pearson accuracy.

    >>> y = np.array([1, 1, 0, 0, 1]); p = np.array([0.9, 0.7, 0.2, 0.6, 0.8])
    >>> r = summarise(y, p, np.array(["a", "a", "b", "c", "d"]), n_boot=50, seed=0)
    >>> r["patient"]["accuracy_exact"]["k"], r["image"]["accuracy"]["value"]
    (3, 0.8)
    """
    from medmm.models.metrics import evaluate_predictions

    image = cluster_bootstrap(y, p, groups, n_boot, seed)
    pat = patient_scores(y, p, groups)
    per = evaluate_predictions(pat[["y"]].to_numpy(float), pat[["p"]].to_numpy(), ["covid"], n_boot, seed)
    patient = {m: per["covid"][m] for m in METRICS}
    out: dict[str, dict[str, Any]] = {"image": image, "patient": patient}
    for level, yy, pp in (("image", y, p), ("patient", pat["y"].to_numpy(), pat["p"].to_numpy())):
        k = int(((pp >= 0.5) == (yy == 1)).sum())
        lo, hi = clopper_pearson(k, len(yy))
        out[level]["accuracy_exact"] = {"value": k / len(yy), "lo": lo, "hi": hi, "k": k, "n": len(yy)}
    return out


class _Majority:
    """Predicts the training fold's majority class with score 1.0 / 0.0 (a constant)."""

    def fit(self, x: Any, y: np.ndarray) -> _Majority:
        self.label_ = float(np.mean(y) >= 0.5)
        return self

    def predict_proba(self, x: Any) -> np.ndarray:
        n = len(x)
        return np.column_stack([np.full(n, 1.0 - self.label_), np.full(n, self.label_)])


def _logreg() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, class_weight="balanced", max_iter=2000))


def _tfidf() -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(
        TfidfVectorizer(min_df=2, sublinear_tf=True, stop_words="english"),
        LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000),
    )


def _features(cases: pd.DataFrame, run_dir: Path, size: int, seed: int) -> tuple[dict[str, Any], np.ndarray]:
    """Every model's inputs from the standard run: pictures via the models' VolumeSource, the report
    vector ``medmm align`` wrote, the masked notes, and the confounder probes (from volumes / metadata)."""
    from bench._covid import intensity_texture_features, load_images, random_conv_features, report_matrix

    images = load_images(run_dir, cases["image_id"].tolist(), size)
    h, w = cases["height"].to_numpy(float), cases["width"].to_numpy(float)
    acq = np.column_stack(
        [
            (cases["modality"] == "CT").to_numpy(float),
            (cases["view"] == "L").to_numpy(float),
            (cases["source_format"] == "png").to_numpy(float),
            np.log(h),
            np.log(w),
            h / w,
        ]
    )
    country = cases["location"].str.split(",").str[-1].str.strip().str.lower()
    source = pd.get_dummies(country).to_numpy(float)
    stats = np.stack([intensity_texture_features(im) for im in images])
    notes, vocab = report_matrix(run_dir, cases["record_id"].tolist())
    feats = {
        "acquisition": acq,
        "source": source,
        "image_stats": stats,
        "image_randconv": random_conv_features(images, seed),
        "notes_findings": notes,
        "notes_tfidf": cases["notes"].tolist(),
        "early": np.hstack([stats, notes]),
        "vocabulary": vocab,
    }
    return feats, images


def _country_table(cases: pd.DataFrame) -> dict[str, dict[str, int]]:
    country = cases["location"].str.split(",").str[-1].str.strip()
    per = cases.assign(country=country).groupby("patient").agg(country=("country", "first"), y=("y", "max"))
    out: dict[str, dict[str, int]] = {}
    for c, label in zip(per["country"], per["y"], strict=True):
        cell = out.setdefault(str(c), {})
        key = "covid" if label else "other"
        cell[key] = cell.get(key, 0) + 1
    return out


def _table(results: dict[str, dict], level: str) -> str:
    from medmm.models.metrics import format_ci

    head = f"| model | AUROC | accuracy | accuracy (exact CI) | sensitivity | specificity |\n|{'---|' * 6}"
    lines = [head]
    for name, res in results.items():
        r = res[level]
        ex = r["accuracy_exact"]
        exact = f"{ex['k']}/{ex['n']} [{ex['lo']:.3f}, {ex['hi']:.3f}]"
        cells = [format_ci(r[m]) for m in METRICS]
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | {exact} | {cells[2]} | {cells[3]} |")
    return "\n".join(lines)


def permutation_pvalue(
    x: Any, y: np.ndarray, groups: np.ndarray, make_model: Callable[[], Any], n_perm: int, seed: int
) -> float:
    """One-sided p-value of the per-patient LOPO AUROC under permutation of the *patients'* labels.

    Each permutation shuffles the labels among patients (all images of a patient keep one label) and
    reruns the whole leave-one-patient-out; ``p = (1 + #{AUROC_perm >= AUROC_obs}) / (1 + n_perm)``.

    >>> from sklearn.linear_model import LogisticRegression
    >>> x = np.r_[np.zeros(6), np.ones(6)][:, None] + np.arange(12)[:, None] * 0.01
    >>> y = np.r_[np.zeros(6), np.ones(6)].astype(int)
    >>> permutation_pvalue(x, y, np.arange(12), LogisticRegression, n_perm=19, seed=0) <= 0.1
    True
    """
    from bench._covid import lopo_predict
    from medmm.models.metrics import binary_metrics

    def auroc(labels: np.ndarray) -> float:
        pat = patient_scores(labels, lopo_predict(x, labels, groups, make_model)[0], groups)
        return float(binary_metrics(pat["y"].to_numpy(), pat["p"].to_numpy())["auroc"])

    observed = auroc(y)
    uniq, inverse = np.unique(groups, return_inverse=True)
    per_patient = np.array([y[inverse == i].max() for i in range(len(uniq))])
    rng = np.random.default_rng(seed)
    hits = sum(auroc(rng.permutation(per_patient)[inverse]) >= observed - 1e-12 for _ in range(n_perm))
    return (1 + hits) / (1 + n_perm)


def _lopo_scores(feats: dict[str, Any], y: np.ndarray, groups: np.ndarray) -> dict[str, np.ndarray]:
    """Held-out scores of every model of :data:`MODELS` (late fusions = mean of two probabilities)."""
    from bench._covid import lopo_predict

    makers: dict[str, tuple[str, Callable[[], Any]]] = {
        "majority": ("acquisition", _Majority),
        "acquisition": ("acquisition", _logreg),
        "source": ("source", _logreg),
        "image_stats": ("image_stats", _logreg),
        "image_randconv": ("image_randconv", _logreg),
        "notes_findings": ("notes_findings", _logreg),
        "notes_tfidf": ("notes_tfidf", _tfidf),
        "early": ("early", _logreg),
    }
    scores = {name: lopo_predict(feats[key], y, groups, make)[0] for name, (key, make) in makers.items()}
    scores["late"] = (scores["image_stats"] + scores["notes_findings"]) / 2
    scores["late_tfidf"] = (scores["image_stats"] + scores["notes_tfidf"]) / 2
    return scores


def run(out_dir: Path, quick: bool, seed: int = 0, key_file: Path | None = None) -> dict[str, Any]:
    """Run the study; writes ``run/`` (the standard stages' outputs), ``predictions.csv``,
    ``metrics.json`` and ``tables.md`` under ``out_dir``.

    ``run/`` is made by :func:`bench._covid.build_run` (``medmm ingest`` + ``reports parse`` + ``align`` +
    the labels; a re-run resumes). ``quick``: 64x64 images and 200 bootstrap resamples (full: 128x128,
    2000). Returns the summary (data balance, metrics per model and level, timings).

    >>> summary = run(Path("runs/covid_lopo"), quick=True)  # doctest: +SKIP
    """
    from bench._covid import METADATA, build_run, load_cases
    from medmm.datasets import shared_data_dir
    from medmm.models.metrics import binary_metrics
    from medmm.tables import atomic_write_json, atomic_write_text

    root = shared_data_dir()
    if root is None:
        raise RuntimeError("shared data not found: set MEDMM_DATA or place shared/data beside the checkout")
    data = root / "covid_chestxray_subset"
    out_dir = Path(out_dir)
    run_dir = out_dir / "run"
    t0 = time.perf_counter()
    stages = build_run(data, run_dir, key_file)
    t_run = time.perf_counter() - t0
    size, n_boot = (64, 200) if quick else (128, 2000)
    cases = load_cases(run_dir, data / METADATA)
    feats, images = _features(cases, run_dir, size, seed)
    t_feat = time.perf_counter() - t0 - t_run
    y = cases["y"].to_numpy()
    groups = cases["patient"].to_numpy()
    vocabulary = feats.pop("vocabulary")
    scores = _lopo_scores(feats, y, groups)
    xray = cases["modality"].to_numpy() == "X-ray"
    xfeats = {
        k: [v[i] for i in np.flatnonzero(xray)] if isinstance(v, list) else v[xray] for k, v in feats.items()
    }
    xscores = _lopo_scores(xfeats, y[xray], groups[xray])
    seed_auroc, pvalues = {}, {}
    if not quick:
        probes = {"source": _logreg, "image_stats": _logreg, "notes_findings": _logreg, "notes_tfidf": _tfidf}
        for name, make in probes.items():
            pvalues[name] = permutation_pvalue(feats[name], y, groups, make, n_perm=200, seed=seed)
        # how much the random frozen encoder's seed alone moves the result
        from bench._covid import lopo_predict, random_conv_features

        for s in range(5):
            p = lopo_predict(random_conv_features(images, seed + s), y, groups, _logreg)[0]
            pat = patient_scores(y, p, groups)
            seed_auroc[seed + s] = round(
                float(binary_metrics(pat["y"].to_numpy(), pat["p"].to_numpy())["auroc"]), 3
            )
    t_fit = time.perf_counter() - t0 - t_run - t_feat
    results = {name: summarise(y, scores[name], groups, n_boot, seed) for name in MODELS}
    xresults = {name: summarise(y[xray], xscores[name], groups[xray], n_boot, seed) for name in MODELS}

    pred = pd.DataFrame(
        {
            "patient": groups,  # the run's pseudonyms (site key), as in records.parquet
            "image": cases["file"],
            "modality": cases["modality"],
            "view": cases["view"],
            "y": y,
            **{name: scores[name] for name in MODELS},
        }
    )
    atomic_write_text(out_dir / "predictions.csv", pred.to_csv(index=False, float_format="%.4f"))
    balance = {
        "images": len(cases),
        "patients": int(cases["patient"].nunique()),
        "covid_images": int(y.sum()),
        "covid_patients": int(cases.groupby("patient")["y"].max().sum()),
        "findings_patients": {
            str(k): int(v) for k, v in cases.groupby("finding")["patient"].nunique().items()
        },
        "modality_images": {str(k): int(v) for k, v in cases["modality"].value_counts().items()},
        "ct_images_covid": int(y[cases["modality"].to_numpy() == "CT"].sum()),
        "patients_by_country_and_label": _country_table(cases),
        "stages": stages,
    }
    summary = {
        "balance": balance,
        "settings": {
            "image_size": size,
            "image_input": "medmm.models.volumes.VolumeSource: normalize zscore, resize (area), no cache",
            "n_boot": n_boot,
            "seed": seed,
            "notes_vocabulary": vocabulary,
        },
        "metrics": results,
        "metrics_xray_only": xresults,
        "image_randconv_patient_auroc_by_seed": seed_auroc,
        "permutation_pvalue_patient_auroc": pvalues,
        "timings_s": {
            "standard_run": round(t_run, 2),
            "features": round(t_feat, 2),
            "lopo_fits": round(t_fit, 2),
        },
    }
    atomic_write_json(out_dir / "metrics.json", summary)
    md = "\n\n".join(f"### per {lvl}\n\n{_table(results, lvl)}" for lvl in ("patient", "image"))
    md += f"\n\n### X-ray images only, per patient\n\n{_table(xresults, 'patient')}"
    atomic_write_text(out_dir / "tables.md", md + "\n")
    print(f"balance: {balance}")
    print(f"image_randconv patient AUROC by seed: {seed_auroc}; permutation p-values: {pvalues}")
    print(md)
    return summary


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.bench_covid_lopo [--quick] [OUT_DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?", default=Path(__file__).parent / "results" / "covid_lopo")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    run(args.out, args.quick, args.seed)


if __name__ == "__main__":
    main()
