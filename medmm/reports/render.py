"""Render a parsed report as HTML: entities highlighted (displaCy), negated / uncertain ones marked.

Labels shown: ``FINDING`` (present), ``FINDING-NEG`` (negated), ``FINDING-UNC`` (uncertain),
``DEVICE``, ``ANATOMY`` and ``MEASUREMENT`` (with the value in mm); section headers stay in the text.
Works from a run directory, so it needs no spaCy model, only the tables ``parse`` wrote.

>>> import pandas as pd
>>> ents = pd.DataFrame([dict(start=3, end=11, label="FINDING", negated=True, uncertain=False,
...                           finding="pleural effusion", measurement_mm=None)])
>>> "FINDING-NEG" in render_html("No effusion.", ents)
True
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pandas as pd

from medmm.errors import InputError

__all__ = ["COLORS", "render_html", "render_report"]

COLORS = {
    "FINDING": "#f4a6a6",
    "FINDING-NEG": "#c8e6c9",
    "FINDING-UNC": "#ffe082",
    "DEVICE": "#b3e5fc",
    "ANATOMY": "#e1bee7",
    "MEASUREMENT": "#ffcc80",
}


def _label(row: Any) -> str:
    label = str(row["label"])
    if label == "MEASUREMENT":
        mm = row.get("measurement_mm")
        return f"MEASUREMENT {mm:g} mm" if mm is not None and mm == mm else label
    if label in {"ANATOMY", "DEVICE"}:
        suffix = "-NEG" if row.get("negated") else ""
        return label + suffix
    base = "FINDING" if label == "FINDING" else label
    if row.get("negated"):
        return f"{base}-NEG"
    if row.get("uncertain"):
        return f"{base}-UNC"
    return base


def render_html(text: str, entities: pd.DataFrame, *, title: str | None = None, page: bool = False) -> str:
    """displaCy HTML of ``text`` with the ``entities`` rows (char offsets into ``text``) highlighted.

    Overlapping spans (a measurement inside a pattern entity) keep the first, longest one.
    """
    from spacy import displacy

    spans: list[dict[str, Any]] = []
    last_end = -1
    rows = entities.sort_values(["start", "end"], ascending=[True, False]).to_dict(orient="records")
    colors = dict(COLORS)
    for row in rows:
        start, end = int(row["start"]), int(row["end"])
        if start < last_end:
            continue
        label = _label(row)
        if label.startswith("MEASUREMENT"):
            colors[label] = COLORS["MEASUREMENT"]
        spans.append({"start": start, "end": end, "label": label})
        last_end = end
    doc = {"text": text, "ents": spans, "title": html.escape(title) if title else None}
    out: str = displacy.render(
        doc, style="ent", manual=True, page=page, jupyter=False, options={"colors": colors}
    )
    return out


def render_report(report_id: str, run_dir: Path, *, page: bool = False) -> str:
    """HTML of one report of a ``medmm reports parse`` run (for notebooks: ``IPython.display.HTML``).

    >>> from IPython.display import HTML  # doctest: +SKIP
    >>> HTML(render_report("1", Path("run")))  # doctest: +SKIP
    """
    run_dir = Path(run_dir)
    texts_path = run_dir / "report_texts.parquet"
    if not texts_path.exists():
        raise InputError(
            str(run_dir), "has no report_texts.parquet", "run `medmm reports parse INPUT --out RUN_DIR`"
        )
    texts = pd.read_parquet(texts_path)
    match = texts[texts["report_id"].astype(str) == str(report_id)]
    if match.empty:
        raise InputError(
            str(run_dir),
            f"no parsed report with id {report_id!r}",
            "check manifest_reports.parquet: the report may be quarantined or a duplicate",
        )
    ents = pd.read_parquet(run_dir / "entities.parquet", filters=[("report_id", "==", str(report_id))])
    labels = pd.read_parquet(run_dir / "report_labels.parquet", filters=[("report_id", "==", str(report_id))])
    body = render_html(str(match.iloc[0]["text"]), ents, title=f"report {report_id}")
    rows = "".join(
        f"<tr><td>{html.escape(str(r['finding']))}</td><td>{html.escape(str(r['status']))}</td>"
        f"<td>{html.escape(str(r['evidence']))}</td></tr>"
        for r in labels.to_dict(orient="records")
    )
    table = (
        f"<table style='font-family:sans-serif;font-size:13px'><tr><th>finding</th><th>status</th>"
        f"<th>evidence</th></tr>{rows}</table>"
    )
    content = body + table
    if page:
        return (
            f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>report {html.escape(str(report_id))}"
            f"</title></head><body>{content}</body></html>"
        )
    return content
