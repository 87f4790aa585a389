"""Binary classification metrics per label and macro, with seeded bootstrap confidence intervals.

AUROC (Mann-Whitney ranks), AUPRC (average precision), accuracy, sensitivity, specificity and F1 at a
threshold, and ECE (expected calibration error, equal-width bins). Metrics undefined on a sample (e.g.
AUROC with one class) are NaN and skipped by the macro mean and the bootstrap percentiles.

>>> import numpy as np
>>> m = binary_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9]))
>>> m["auroc"], m["accuracy"], m["sensitivity"]
(0.75, 0.5, 0.5)
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

__all__ = [
    "METRICS",
    "binary_metrics",
    "evaluate_predictions",
    "format_ci",
    "json_safe",
    "undefined_metric_notes",
]

METRICS = ("auroc", "auprc", "accuracy", "sensitivity", "specificity", "f1", "ece")


def _auroc(y: np.ndarray, p: np.ndarray) -> float:
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _auprc(y: np.ndarray, p: np.ndarray) -> float:
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-p, kind="mergesort")
    ys, ps = y[order], p[order]
    tp = np.cumsum(ys)
    # evaluate at the last index of each distinct score (ties share a threshold)
    last = np.r_[np.flatnonzero(np.diff(ps)), len(ps) - 1]
    precision = tp[last] / (last + 1)
    recall = tp[last] / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _ece(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    which = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            total += sel.mean() * abs(p[sel].mean() - y[sel].mean())
    return float(total)


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """All :data:`METRICS` for labels ``y`` (0/1) and probabilities ``p``."""
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    pred = p >= threshold
    tp = int(np.sum(pred & (y == 1)))
    tn = int(np.sum(~pred & (y == 0)))
    fp = int(np.sum(pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    nan = float("nan")
    sens = tp / (tp + fn) if tp + fn else nan
    spec = tn / (tn + fp) if tn + fp else nan
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else nan
    return {
        "auroc": _auroc(y, p),
        "auprc": _auprc(y, p),
        "accuracy": (tp + tn) / len(y) if len(y) else nan,
        "sensitivity": sens,
        "specificity": spec,
        "f1": f1,
        "ece": _ece(y, p) if len(y) else nan,
    }


def _per_label(y: np.ndarray, p: np.ndarray, names: Sequence[str], threshold: float) -> dict[str, dict]:
    out = {}
    for j, name in enumerate(names):
        known = ~np.isnan(y[:, j])
        out[name] = binary_metrics(y[known, j], p[known, j], threshold)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN metric gives a NaN macro
        out["macro"] = {k: float(np.nanmean([out[n][k] for n in names])) for k in METRICS}
    return out


def evaluate_predictions(
    y: np.ndarray,
    p: np.ndarray,
    names: Sequence[str],
    n_boot: int = 1000,
    seed: int = 0,
    threshold: float = 0.5,
    alpha: float = 0.05,
) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics per label and macro with percentile bootstrap CIs (resampling records, seeded).

    Returns ``{label|"macro": {metric: {"value", "lo", "hi"}}}``; labels ``y`` ``[N, L]`` may hold NaN.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, (200, 1)).astype(float)
    >>> r = evaluate_predictions(y, np.clip(y * 0.6 + rng.random((200, 1)) * 0.4, 0, 1), ["a"], n_boot=200)
    >>> r["a"]["auroc"]["lo"] <= r["a"]["auroc"]["value"] <= r["a"]["auroc"]["hi"]
    True
    """
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    point = _per_label(y, p, names, threshold)
    rng = np.random.default_rng(seed)
    boots: dict[str, dict[str, list[float]]] = {k: {m: [] for m in METRICS} for k in point}
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        res = _per_label(y[idx], p[idx], names, threshold)
        for k, ms in res.items():
            for m, v in ms.items():
                boots[k][m].append(v)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for k, ms in point.items():
        out[k] = {}
        for m, v in ms.items():
            arr = np.asarray(boots[k][m], dtype=float)
            arr = arr[~np.isnan(arr)]
            lo, hi = np.quantile(arr, [alpha / 2, 1 - alpha / 2]) if len(arr) else (np.nan, np.nan)
            out[k][m] = {"value": float(v), "lo": float(lo), "hi": float(hi)}
    return out


def undefined_metric_notes(
    y: np.ndarray,
    names: Sequence[str],
    what: str = "the test set",
    metrics: dict[str, dict[str, dict[str, float]]] | None = None,
) -> list[str]:
    """Say which metrics are undefined (NaN) on ``y`` and why, one sentence per label concerned.

    A label with no known value makes every metric NaN; one with a single class makes AUROC (and, with
    no positive, AUPRC and sensitivity; with no negative, specificity) NaN, and the macro mean skips it.
    With ``metrics`` (from :func:`evaluate_predictions`) the note lists the metrics that are NaN there.

    >>> import numpy as np
    >>> y = np.array([[1.0, np.nan], [1.0, np.nan]])
    >>> for note in undefined_metric_notes(y, ["pvc", "af"], "val"):
    ...     print(note)
    label 'pvc': val has 2 records with a known value, all positive: auroc, specificity undefined (NaN)
    label 'af': val has no record with a known value: every metric undefined (NaN)
    """
    y = np.asarray(y, dtype=float).reshape(len(y), len(names))
    notes = []
    for j, name in enumerate(names):
        known = y[~np.isnan(y[:, j]), j]
        n_pos = int((known == 1).sum())
        n_neg = len(known) - n_pos
        if not len(known):
            notes.append(
                f"label {name!r}: {what} has no record with a known value: every metric undefined (NaN)"
            )
        elif n_pos == 0 or n_neg == 0:
            cls, bad = (
                ("positive", "auroc, specificity")
                if n_neg == 0
                else ("negative", "auroc, auprc, sensitivity")
            )
            if metrics is not None and name in metrics:
                bad = ", ".join(m for m in METRICS if np.isnan(metrics[name][m]["value"]))
            notes.append(
                f"label {name!r}: {what} has {len(known)} records with a known value, all {cls}: "
                f"{bad} undefined (NaN)"
            )
    return notes


def json_safe(obj: Any) -> Any:
    """``obj`` with every NaN / infinite float replaced by ``None``, so ``metrics.json`` is strict JSON
    (``NaN`` is not JSON: ``jq`` and JavaScript reject it); undefined metrics become ``null``.

    >>> json_safe({"auroc": {"value": float("nan"), "lo": 0.5}, "n": [1, float("inf")]})
    {'auroc': {'value': None, 'lo': 0.5}, 'n': [1, None]}
    """
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def format_ci(cell: dict[str, Any], digits: int = 3) -> str:
    """``"0.912 [0.871, 0.948]"``.

    >>> format_ci({"value": 0.5, "lo": 0.4, "hi": 0.61})
    '0.500 [0.400, 0.610]'
    """
    return f"{cell['value']:.{digits}f} [{cell['lo']:.{digits}f}, {cell['hi']:.{digits}f}]"
