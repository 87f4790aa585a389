"""Entity-level exact-match precision / recall / F1, per label and micro-averaged (pure Python).

A predicted entity counts as correct only when its start, end and label all equal a gold entity's; a
partial overlap is both a false positive and a false negative (the CoNLL / seqeval convention).

>>> gold = [[(0, 1, "Chemical"), (2, 4, "Disease")]]
>>> pred = [[(0, 1, "Chemical"), (3, 4, "Disease")]]
>>> s = score_spans(gold, pred)
>>> s["micro"]["precision"], s["micro"]["recall"], s["per_label"]["Disease"]["f1"]
(0.5, 0.5, 0.0)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

__all__ = ["Span", "prf", "score_spans"]

Span = tuple[int, int, str]


def prf(n_correct: int, n_gold: int, n_pred: int) -> dict[str, float | int]:
    """Precision, recall and F1 from counts (0.0 where a denominator is 0).

    >>> prf(8, 10, 8)
    {'precision': 1.0, 'recall': 0.8, 'f1': 0.8889, 'n_gold': 10, 'n_pred': 8, 'n_correct': 8}
    """
    p = n_correct / n_pred if n_pred else 0.0
    r = n_correct / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {
        "precision": round(p, 4),
        "recall": round(r, 4),
        "f1": round(f, 4),
        "n_gold": n_gold,
        "n_pred": n_pred,
        "n_correct": n_correct,
    }


def score_spans(gold: Sequence[Iterable[Span]], pred: Sequence[Iterable[Span]]) -> dict[str, object]:
    """Score predicted entity spans against gold ones, document by document.

    Parameters
    ----------
    gold, pred : sequence of iterables of ``(start, end, label)``
        One iterable per document, same order and length; offsets may be tokens or characters, as
        long as gold and prediction use the same.

    Returns
    -------
    dict
        ``{"micro": {...}, "per_label": {label: {...}}, "n_docs": int}`` where each ``{...}`` holds
        ``precision, recall, f1, n_gold, n_pred, n_correct``; JSON-serializable.

    >>> score_spans([[(0, 2, "X")]], [[(0, 2, "X"), (5, 6, "Y")]])["per_label"]["Y"]["n_pred"]
    1
    """
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} documents but pred has {len(pred)}")
    n_gold: Counter[str] = Counter()
    n_pred: Counter[str] = Counter()
    n_ok: Counter[str] = Counter()
    for g_doc, p_doc in zip(gold, pred, strict=True):
        g = set(g_doc)
        p = set(p_doc)
        n_gold.update(label for _, _, label in g)
        n_pred.update(label for _, _, label in p)
        n_ok.update(label for _, _, label in g & p)
    labels = sorted(set(n_gold) | set(n_pred))
    return {
        "micro": prf(sum(n_ok.values()), sum(n_gold.values()), sum(n_pred.values())),
        "per_label": {lab: prf(n_ok[lab], n_gold[lab], n_pred[lab]) for lab in labels},
        "n_docs": len(gold),
    }
