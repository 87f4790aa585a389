"""Render a parsed report as HTML: entities highlighted (displaCy), negated / uncertain ones marked.

Labels shown: ``FINDING`` (present), ``FINDING-NEG`` (negated), ``FINDING-UNC`` (uncertain),
``FINDING-FAM`` (a relative's: ``experiencer`` family), ``FINDING-HIST`` (historical), ``DEVICE``,
``ANATOMY`` and ``MEASUREMENT`` (with the value in mm); section headers stay in the text.
Works from a run directory, so it needs no spaCy model, only the tables ``parse`` wrote. The text
comes from ``report_texts.parquet`` when the run kept it (``parse --keep-text``); otherwise that one
report is re-read from the run's input (``run.json``: input path, id and text columns, same cleaning)
and checked against what was parsed (length, entity spans, and the resume key when the run used no
site key) before it is shown (:func:`report_text`).

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

__all__ = ["COLORS", "render_html", "render_report", "report_text", "resolve_report_id", "run_pseudonymizer"]

COLORS = {
    "FINDING": "#f4a6a6",
    "FINDING-NEG": "#c8e6c9",
    "FINDING-UNC": "#ffe082",
    "FINDING-FAM": "#d7ccc8",
    "FINDING-HIST": "#e0e0e0",
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
    if row.get("experiencer") == "family":
        return f"{base}-FAM"
    if row.get("historical"):
        return f"{base}-HIST"
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


def _keep_text_fix(run_dir: Path) -> str:
    return (
        "restore the run's input at that path, or re-run `medmm reports parse INPUT --out "
        f"{run_dir} --keep-text` to keep the report text in report_texts.parquet (not de-identified)"
    )


def run_pseudonymizer(run_dir: Path, key_file: Path | None = None) -> Any:
    """The :class:`~medmm.pseudonym.Pseudonymizer` of the site key that made ``run_dir``'s reports, or
    ``None`` when the run kept report ids as given (``parse --keep-report-ids``, or runs made before
    report ids were pseudonymized).

    The key is ``key_file``; else the first of ``$MEDMM_KEY_FILE``, the key file the parse used
    (``run.json`` options) and the default key file that is the run's key (``run.json``'s
    ``key_check``). It is never created here; no matching key: :class:`InputError`.

    >>> run_pseudonymizer(Path("run"))  # doctest: +SKIP
    <medmm.pseudonym.Pseudonymizer object at ...>
    """
    from medmm.pseudonym import Pseudonymizer

    key = _run_key(run_dir, key_file)
    return None if key is None else Pseudonymizer(key)


def _run_key(run_dir: Path, key_file: Path | None) -> bytes | None:
    """:func:`run_pseudonymizer`'s key (``None``: the run's report ids are as given)."""
    import os

    from medmm.pseudonym import KEY_ENV, default_key_file, key_check_value, load_key
    from medmm.runinfo import read_run_json

    info = read_run_json(Path(run_dir))
    opts = info.get("stages", {}).get("reports", {}).get("options", {})
    if opts.get("keep_report_ids", True):  # ids as given (the text is found without the key)
        return None
    fix = "pass the site key file the run was parsed with (--key-file, or $MEDMM_KEY_FILE)"
    recorded = info.get("key_check")
    if key_file:
        candidates = [Path(key_file)]
    else:  # $MEDMM_KEY_FILE, the key file the parse used (run.json), the default key file
        named = [os.environ.get(KEY_ENV), opts.get("key_file"), str(default_key_file())]
        candidates = list(dict.fromkeys(Path(p).expanduser() for p in named if p))
    for path in candidates:
        if path.is_file():
            key = load_key(path)
            if not recorded or recorded == key_check_value(key):
                return key
    if len(candidates) == 1 and candidates[0].is_file():
        raise InputError(str(candidates[0]), f"is not the site key {run_dir} was parsed with", fix)
    tried = ", ".join(str(p) for p in candidates)
    raise InputError(
        str(run_dir), f"its report ids are pseudonyms of a site key not found (tried {tried})", fix
    )


def resolve_report_id(report_id: str, run_dir: Path, key_file: Path | None = None) -> str:
    """The ``report_id`` of the run's tables for ``report_id`` given as in the input (an accession
    number: hashed with the run's site key) or as written in the tables (its pseudonym).

    >>> resolve_report_id("ACC-1", Path("run"))  # doctest: +SKIP
    'rep-3f1c...'
    """
    from medmm.reports.io.inputs import report_pseudonymizer

    run_dir = Path(run_dir)
    report_id = str(report_id).strip()
    manifest_path = run_dir / "manifest_reports.parquet"
    if not manifest_path.exists():
        raise InputError(
            str(run_dir), "has no manifest_reports.parquet", "run `medmm reports parse INPUT --out RUN_DIR`"
        )
    pseudonymizer = run_pseudonymizer(run_dir, key_file)
    if pseudonymizer is None:
        return report_id
    hit = pd.read_parquet(manifest_path, columns=["report_id"], filters=[("report_id", "==", report_id)])
    return report_id if len(hit) else report_pseudonymizer(pseudonymizer)(report_id)


def report_text(
    report_id: str, run_dir: Path, entities: pd.DataFrame | None = None, key_file: Path | None = None
) -> str:
    """The cleaned text of one parsed report of ``run_dir`` (the text entity offsets point into).

    From ``report_texts.parquet`` when ``parse --keep-text`` wrote it; otherwise re-read from the
    run's input as ``run.json`` records it, and checked against the parse: its length (manifest
    ``n_chars``), every entity span (``entities``: the report's rows, read when not given), and, for
    a run without a site key, its resume key among the run's parts. Raises :class:`InputError`
    naming the file and the fix when the report is not parsed, the input is gone or has changed.
    ``report_id`` is the id as in the input or as in the run's tables (:func:`resolve_report_id`);
    ``key_file`` the run's site key, needed for a run whose report ids are pseudonyms.

    >>> report_text("1", Path("run"))  # doctest: +SKIP
    'FINDINGS: Mild cardiomegaly. ...'
    """
    from medmm.pseudonym import Pseudonymizer
    from medmm.reports.io.inputs import MAX_CHARS, read_reports
    from medmm.runinfo import read_run_json

    run_dir = Path(run_dir)
    manifest_path = run_dir / "manifest_reports.parquet"
    if not manifest_path.exists():
        raise InputError(
            str(run_dir), "has no manifest_reports.parquet", "run `medmm reports parse INPUT --out RUN_DIR`"
        )
    report_id = resolve_report_id(report_id, run_dir, key_file)
    every = pd.read_parquet(manifest_path, filters=[("report_id", "==", str(report_id))])
    rows = every[every["status"] == "ingested"]
    if rows.empty and len(every):  # say why: the manifest row's status, input row and reason
        first = every.iloc[0]
        why, _, fix = str(first["reason"]).partition(". Fix: ")
        raise InputError(
            str(run_dir),
            f"no parsed report with id {report_id!r}: it is {first['status']} ({why})",
            (fix.rstrip(".") or "fix that input row") + ", then run `medmm reports parse` again",
        )
    if rows.empty:
        raise InputError(
            str(run_dir),
            f"no parsed report with id {report_id!r}: no report of this run has that id",
            "check the id (as in the input, or its rep-... pseudonym in manifest_reports.parquet) and that "
            "the site key is the run's",
        )
    texts_path = run_dir / "report_texts.parquet"
    if texts_path.exists():
        kept = pd.read_parquet(texts_path, filters=[("report_id", "==", str(report_id))])
        if len(kept):
            return str(kept.iloc[0]["text"])
    stage = read_run_json(run_dir).get("stages", {}).get("reports", {})
    opts = stage.get("options", {})
    if not opts.get("input"):
        raise InputError(str(run_dir / "run.json"), "records no reports input", _keep_text_fix(run_dir))
    src = Path(opts["input"])
    if not src.exists():
        raise InputError(
            str(src),
            "is the input of this run and does not exist (the run kept no report text)",
            _keep_text_fix(run_dir),
        )
    key = _run_key(run_dir, key_file)
    pseudonymizer = None if key is None else Pseudonymizer(key)
    batch = read_reports(
        src,
        id_column=opts.get("id_column"),
        text_columns=opts.get("text_columns"),
        max_chars=int(opts.get("max_chars") or MAX_CHARS),
        pseudonymizer=pseudonymizer,
        keep_report_ids=bool(opts.get("keep_report_ids", True)),
    )
    text = next((r.text for r in batch.reports if r.report_id == str(report_id)), None)
    if entities is None:
        entities = _entities(run_dir, report_id)
    n_chars = int(rows.iloc[0]["n_chars"])
    if text is None or not _same_text(text, n_chars, entities, report_id, run_dir, key):
        raise InputError(
            str(src),
            f"report {report_id!r} is missing or has changed since it was parsed into {run_dir}",
            _keep_text_fix(run_dir),
        )
    return text


def _same_text(
    text: str, n_chars: int, entities: pd.DataFrame, report_id: str, run_dir: Path, key: bytes | None
) -> bool:
    """Whether ``text`` is the text that was parsed: length, entity spans and resume key (made with
    the site key's fingerprint when the run pseudonymized report ids: ``key``; without a key when it
    used none; not checked for a run with ids as given and patient/study columns)."""
    from medmm.reports.resume import Parts, key_fingerprint, report_key
    from medmm.runinfo import read_run_json

    if len(text) != n_chars:
        return False
    spans = zip(entities["start"].tolist(), entities["end"].tolist(), entities["text"].tolist(), strict=True)
    if any(text[int(a) : int(b)] != t for a, b, t in spans):
        return False
    stage = read_run_json(run_dir).get("stages", {}).get("reports", {})
    opts = stage.get("options", {})
    done = Parts(run_dir).done_keys()
    keyed = opts.get("patient_column") or opts.get("study_column")
    keyless = opts.get("keep_report_ids", True) and not keyed
    if done and (keyless or key is not None) and stage.get("pipeline"):
        return report_key(report_id, text, str(stage["pipeline"]), key_fingerprint(key)) in done
    return True


def _entities(run_dir: Path, report_id: str) -> pd.DataFrame:
    return pd.read_parquet(run_dir / "entities.parquet", filters=[("report_id", "==", str(report_id))])


def render_report(report_id: str, run_dir: Path, *, page: bool = False, key_file: Path | None = None) -> str:
    """HTML of one report of a ``medmm reports parse`` run (for notebooks: ``IPython.display.HTML``).

    ``report_id`` is the id as in the input (hashed with the run's site key, ``key_file`` or
    ``$MEDMM_KEY_FILE``, to find it) or its pseudonym as in the tables (:func:`resolve_report_id`);
    the page names the pseudonym only. The text is :func:`report_text`'s: the kept
    ``report_texts.parquet``, else the run's input.

    >>> from IPython.display import HTML  # doctest: +SKIP
    >>> HTML(render_report("1", Path("run")))  # doctest: +SKIP
    """
    run_dir = Path(run_dir)
    report_id = resolve_report_id(report_id, run_dir, key_file)
    ents = _entities(run_dir, report_id) if (run_dir / "entities.parquet").exists() else None
    text = report_text(report_id, run_dir, ents, key_file)
    if ents is None:
        ents = _entities(run_dir, report_id)
    labels = pd.read_parquet(run_dir / "report_labels.parquet", filters=[("report_id", "==", str(report_id))])
    body = render_html(text, ents, title=f"report {report_id}")
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
