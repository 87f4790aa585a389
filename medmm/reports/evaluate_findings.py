"""Evaluate report-level findings against the IU chest X-ray ``Problems`` labels, next to a regex baseline.

Gold: a report is positive for a finding when its ``Problems`` list holds one of the MeSH terms mapped
to it in ``data/iu_problems.yaml`` (e.g. ``Pulmonary Atelectasis`` -> ``atelectasis``,
``Calcified Granuloma`` / ``Granulomatous Disease`` -> ``granuloma``); ``normal`` when ``Problems`` is
``normal``. Prediction: status ``present`` (``uncertain`` is negative by default: IU indexers did
not label hedged findings - "possible rib fractures" is indexed as Deformity, not Fracture; pass
``uncertain_positive=True`` to count it).

Baseline (:func:`baseline_labels`): the keyword-plus-"no" regex - a finding is positive when one of
its keywords occurs in findings+impression in a sentence without "no"/"without"/"negative" before it;
``normal`` when nothing is positive.

>>> prf([True, False, True], [True, True, False])
(0.5, 0.5, 0.5)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from medmm.errors import InputError
from medmm.reports.lexicon import load_data

__all__ = ["EVAL_FINDINGS", "baseline_labels", "compare", "evaluate_frame", "gold_labels", "prf", "split_ids"]

#: Findings of the IU dev file with >= 50 positives (the evaluated set).
EVAL_FINDINGS = (
    "normal",
    "cardiomegaly",
    "pleural effusion",
    "opacity",
    "atelectasis",
    "nodule",
    "granuloma",
    "emphysema",
    "fracture",
)

_BASELINE_KEYWORDS = {
    "cardiomegaly": r"cardiomegaly|enlarged heart|heart is enlarged",
    "pleural effusion": r"effusion",
    "opacity": r"opacit",
    "atelectasis": r"atelecta",
    "nodule": r"nodul",
    "granuloma": r"granulom",
    "emphysema": r"emphysem",
    "fracture": r"fractur",
}


def prf(gold: Sequence[bool], pred: Sequence[bool]) -> tuple[float, float, float]:
    """Precision, recall, F1 of boolean predictions (0.0 where undefined)."""
    tp = sum(g and p for g, p in zip(gold, pred, strict=True))
    fp = sum((not g) and p for g, p in zip(gold, pred, strict=True))
    fn = sum(g and not p for g, p in zip(gold, pred, strict=True))
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return round(p, 4), round(r, 4), round(2 * p * r / (p + r), 4) if p + r else 0.0


def gold_labels(frame: pd.DataFrame, id_column: str = "uid") -> pd.DataFrame:
    """Boolean frame (index report id, one column per evaluated finding) from the ``Problems`` column.

    >>> frame = pd.DataFrame({"uid": [1], "Problems": ["Calcified Granuloma;Opacity"]})
    >>> gold_labels(frame)["granuloma"].tolist()
    [True]
    """
    mapping = {k.lower(): v for k, v in load_data("iu_problems.yaml")["problems"].items()}
    rows = {}
    for rid, problems in zip(frame[id_column].astype(str), frame["Problems"].fillna(""), strict=True):
        terms = {t.strip().lower() for t in str(problems).split(";") if t.strip()}
        found = {mapping[t] for t in terms if t in mapping}
        rows[rid] = {f: f in found for f in EVAL_FINDINGS}
    return pd.DataFrame.from_dict(rows, orient="index")


def baseline_labels(frame: pd.DataFrame, id_column: str = "uid") -> pd.DataFrame:
    """The keyword-plus-"no" regex baseline, same shape as :func:`gold_labels`.

    >>> f = pd.DataFrame({"uid": [1, 2], "findings": ["No effusion.", "Small effusion."],
    ...                   "impression": ["", ""]})
    >>> baseline_labels(f)["pleural effusion"].tolist()
    [False, True]
    """
    rows = {}
    for rec in frame.to_dict(orient="records"):
        text = " ".join(str(rec.get(c) or "") for c in ("findings", "impression")).lower()
        sentences = re.split(r"(?<=[.!?])\s+", text)
        out = {}
        for finding, kw in _BASELINE_KEYWORDS.items():
            out[finding] = any(
                m and not re.search(r"\b(no|without|negative)\b", s[: m.start()])
                for s in sentences
                for m in [re.search(kw, s)]
            )
        out["normal"] = not any(out.values())
        rows[str(rec[id_column])] = out
    return pd.DataFrame.from_dict(rows, orient="index")[list(EVAL_FINDINGS)]


def predicted_labels(
    report_labels: pd.DataFrame, ids: Sequence[str], uncertain_positive: bool = False
) -> pd.DataFrame:
    """Boolean frame from ``report_labels.parquet`` rows (missing finding = negative)."""
    positive = {"present", "uncertain"} if uncertain_positive else {"present"}
    pos = report_labels[report_labels["status"].isin(positive)]
    pairs = set(zip(pos["report_id"].astype(str), pos["finding"], strict=True))
    return pd.DataFrame({f: [(i, f) in pairs for i in ids] for f in EVAL_FINDINGS}, index=list(ids))


def evaluate_frame(gold: pd.DataFrame, pred: pd.DataFrame) -> dict[str, Any]:
    """Per-finding precision/recall/F1/support and macro-F1 over the rows both frames share."""
    ids = [i for i in gold.index if i in pred.index]
    out: dict[str, Any] = {}
    for f in EVAL_FINDINGS:
        g, p = gold.loc[ids, f].tolist(), pred.loc[ids, f].tolist()
        precision, recall, f1 = prf(g, p)
        out[f] = {"precision": precision, "recall": recall, "f1": f1, "support": int(sum(g))}
    out["macro_f1"] = round(sum(out[f]["f1"] for f in EVAL_FINDINGS) / len(EVAL_FINDINGS), 4)
    out["n_reports"] = len(ids)
    return out


def split_ids(ids: Sequence[str]) -> dict[str, list[str]]:
    """Deterministic halves: ``tune`` (even numeric id) and ``heldout`` (odd), used to report honestly.

    >>> split_ids(["1", "2", "3"])
    {'tune': ['2'], 'heldout': ['1', '3']}
    """
    tune = [i for i in ids if i.isdigit() and int(i) % 2 == 0]
    return {"tune": tune, "heldout": [i for i in ids if i not in set(tune)]}


def _read_gold(csv_path: Path, id_column: str) -> pd.DataFrame:
    """The gold CSV, checked for its id and ``Problems`` columns (errors name the file and the fix)."""
    try:
        frame = pd.read_csv(csv_path, dtype={id_column: str})
    except (
        OSError,
        ValueError,
    ) as exc:  # missing file, empty or malformed CSV (pandas' errors are ValueErrors)
        raise InputError(str(csv_path), f"cannot be read as CSV ({exc})", "give the IU reports CSV") from None
    missing = [c for c in (id_column, "Problems") if c not in frame.columns]
    if missing:
        from medmm.ingest.table_header import describe_columns  # the first line may be data: no values shown

        raise InputError(
            str(csv_path),
            f"no column {missing} ({describe_columns(list(frame.columns))})",
            "give the IU reports CSV (uid and Problems columns), or --id-column",
        )
    return frame


def compare(
    csv_path: Path, run_dir: Path, id_column: str = "uid", key_file: Path | None = None
) -> dict[str, Any]:
    """Evaluate the run's ``report_labels.parquet`` and the regex baseline on all / tune / held-out reports.

    Only reports the run parsed (status ``ingested``) are scored; both methods see the same reports.
    A run whose report ids are pseudonyms is matched to the CSV's ids with its site key (``key_file``,
    else ``$MEDMM_KEY_FILE``; :func:`~medmm.reports.render.run_pseudonymizer`).
    """
    from medmm.reports.io.inputs import report_pseudonymizer
    from medmm.reports.render import run_pseudonymizer

    frame = _read_gold(Path(csv_path), id_column)
    gold = gold_labels(frame, id_column)
    for name in ("manifest_reports.parquet", "report_labels.parquet"):
        if not (Path(run_dir) / name).exists():
            raise InputError(
                str(run_dir), f"has no {name}", f"run `medmm reports parse {csv_path} --out {run_dir}` first"
            )
    manifest = pd.read_parquet(Path(run_dir) / "manifest_reports.parquet")
    labels = pd.read_parquet(Path(run_dir) / "report_labels.parquet")
    pseudonymizer = run_pseudonymizer(Path(run_dir), key_file)
    if pseudonymizer is not None:  # the run's ids back to the CSV's (split_ids reads the CSV's ids)
        hide = report_pseudonymizer(pseudonymizer)
        raw_of = {hide(i): i for i in gold.index}
        manifest = manifest.assign(report_id=manifest["report_id"].map(raw_of))
        labels = labels.assign(report_id=labels["report_id"].map(raw_of))
    ingested = manifest.loc[manifest["status"] == "ingested", "report_id"].dropna().astype(str).tolist()
    parsed: list[str] = [str(i) for i in ingested if i in gold.index]
    pred = predicted_labels(labels, parsed)
    base = baseline_labels(frame, id_column)
    out: dict[str, Any] = {}
    splits: dict[str, list[str]] = {"all": parsed, **split_ids(parsed)}
    for name, ids in splits.items():
        out[name] = {
            "medmm": evaluate_frame(gold.reindex(ids), pred.reindex(ids)),
            "baseline": evaluate_frame(gold.reindex(ids), base.reindex(ids)),
        }
    return out


def format_table(result: dict[str, Any]) -> str:
    """A plain-text side-by-side table (precision/recall/F1 of medmm and baseline per finding)."""
    head = f"{'finding':18s} {'support':>7s} | {'medmm P':>7s} {'R':>6s} {'F1':>6s}"
    lines = [head + f" | {'base P':>7s} {'R':>6s} {'F1':>6s}"]
    for f in EVAL_FINDINGS:
        m, b = result["medmm"][f], result["baseline"][f]
        lines.append(
            f"{f:18s} {m['support']:7d} | {m['precision']:7.3f} {m['recall']:6.3f} {m['f1']:6.3f} | "
            f"{b['precision']:7.3f} {b['recall']:6.3f} {b['f1']:6.3f}"
        )
    lines.append(
        f"{'macro-F1':18s} {result['medmm']['n_reports']:7d} | {'':7s} {'':6s} "
        f"{result['medmm']['macro_f1']:6.3f} | {'':7s} {'':6s} {result['baseline']['macro_f1']:6.3f}"
    )
    return "\n".join(lines)
