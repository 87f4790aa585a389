"""``medmm reports``: parse reports, show one, evaluate findings, train / evaluate NER models.

Only typer and the standard library are imported here; the work is imported inside each command.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

__all__ = ["register"]

reports_app = typer.Typer(
    help="Radiology reports: sections, entities, negation, measurements, findings.", no_args_is_help=True
)


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


@reports_app.command("parse")
def parse_cmd(
    input_path: Path = typer.Argument(..., help="CSV/TSV/JSONL/Parquet table, or a folder of .txt files."),
    out: Path = typer.Option(..., "--out", help="Run directory (tables + run.json)."),
    id_column: str | None = typer.Option(
        None,
        help="Report id column (default: report_id, id, uid, accession; else the --accession-column).",
    ),
    text_columns: str | None = typer.Option(
        None,
        help="Comma-separated text columns; each is a section (default: text, or the section columns). "
        "Quote a name holding a comma: '\"Findings, final\",impression'.",
    ),
    patient_column: str | None = typer.Option(
        None, help="Patient id column (pseudonymized with the site key)."
    ),
    study_column: str | None = typer.Option(None, help="Study id column (pseudonymized with the site key)."),
    accession_column: str | None = typer.Option(
        None,
        help="Accession number column (pseudonymized with the site key like DICOM AccessionNumber, so "
        "`medmm align` links reports to their images; default: the id column when it is named accession).",
    ),
    date_column: str | None = typer.Option(
        None,
        help="Report / exam date column (shifted by the patient's keyed date shift; needs "
        "--patient-column). ISO, yyyymmdd, dd.mm.yyyy, nn/nn/yyyy (order decided from the column).",
    ),
    model: str | None = typer.Option(
        None, help="Installed spaCy/scispaCy package or pipeline path; default: the radiology lexicon."
    ),
    workers: int | None = typer.Option(None, min=0, help="Local Dask workers (0 = in this process)."),
    scheduler: str | None = typer.Option(None, help="Address of an existing Dask scheduler."),
    batch_size: int = typer.Option(
        0,
        min=0,
        help="Reports per Dask task (and per resumable part); 0 = shrinking sizes (half of what is left "
        "per round of one task per worker, 400-5000 each).",
    ),
    key_file: Path | None = typer.Option(
        None, help="Site key file (default $MEDMM_KEY_FILE or ~/.config/medmm/site.key)."
    ),
    strict: bool = typer.Option(False, "--strict", help="Exit with code 1 when any report is quarantined."),
    keep_report_ids: bool = typer.Option(
        False,
        "--keep-report-ids",
        help="Write report ids as given (only for data already de-identified); default: pseudonyms "
        "of the ids with the site key (accession numbers are identifiers).",
    ),
    keep_text: bool = typer.Option(
        False,
        "--keep-text",
        help="Also write report_texts.parquet: the report text as given, NOT de-identified (names, birth "
        "dates in the text stay). Without it `show` re-reads the text from INPUT.",
    ),
) -> None:
    """Parse reports into entities.parquet, report_labels.parquet, manifest_reports.parquet, run.json
    (and report_texts.parquet with --keep-text)."""
    from medmm.errors import MedmmError
    from medmm.reports.io.inputs import split_columns
    from medmm.reports.pipeline import parse_reports

    cols = split_columns(text_columns) if text_columns else None
    try:
        summary = parse_reports(
            input_path,
            out,
            id_column=id_column,
            text_columns=cols,
            patient_column=patient_column,
            study_column=study_column,
            model=model,
            workers=workers,
            scheduler=scheduler,
            batch_size=batch_size or None,
            key_file=key_file,
            keep_text=keep_text,
            keep_report_ids=keep_report_ids,
            accession_column=accession_column,
            date_column=date_column,
        )
    except MedmmError as exc:
        _fail(exc)
        return
    typer.echo(f"pipeline: {summary.pipeline}")
    typer.echo("counts: " + ", ".join(f"{k}={v}" for k, v in sorted(summary.counts.items())))
    for name, path in summary.outputs.items():
        typer.echo(f"{name}: {path}")
    if strict and summary.counts.get("quarantined"):
        typer.echo(
            f"--strict: {summary.counts['quarantined']} reports quarantined (see manifest_reports.parquet)",
            err=True,
        )
        raise typer.Exit(code=1)


@reports_app.command("show")
def show_cmd(
    report_id: str = typer.Argument(
        ..., help="Report id as given in the input (hashed with the site key) or its pseudonym (rep-...)."
    ),
    run: Path = typer.Option(..., "--run", help="Run directory of `medmm reports parse`."),
    html_out: Path | None = typer.Option(None, "--html", help="Write a standalone HTML page here."),
    key_file: Path | None = typer.Option(
        None, help="The run's site key file (default $MEDMM_KEY_FILE or ~/.config/medmm/site.key)."
    ),
) -> None:
    """Show one report with highlighted entities, negations and measurements (the text from
    report_texts.parquet of a --keep-text run, else re-read from the run's input)."""
    import pandas as pd

    from medmm.errors import MedmmError
    from medmm.reports.render import render_report, resolve_report_id

    try:
        report_id = resolve_report_id(report_id, run, key_file)
        page = render_report(report_id, run, page=True, key_file=key_file)
    except MedmmError as exc:
        _fail(exc)
        return
    if html_out:
        from medmm.tables import atomic_write_text

        atomic_write_text(html_out, page)
        typer.echo(f"wrote {html_out}")
        return
    ents = pd.read_parquet(run / "entities.parquet", filters=[("report_id", "==", report_id)])
    labels = pd.read_parquet(run / "report_labels.parquet", filters=[("report_id", "==", report_id)])
    cols = [
        "section",
        "text",
        "label",
        "negated",
        "uncertain",
        "historical",
        "experiencer",
        "finding",
        "location",
        "laterality",
        "measurement_mm",
        "source",
    ]
    typer.echo(ents[[c for c in cols if c in ents.columns]].to_string(index=False))  # older runs: fewer
    typer.echo("")
    typer.echo(labels[["finding", "status", "evidence"]].to_string(index=False))


@reports_app.command("evaluate-findings")
def evaluate_findings_cmd(
    csv_path: Path = typer.Argument(..., help="IU reports CSV with a Problems column."),
    run: Path = typer.Option(..., "--run", help="Run directory of `medmm reports parse` over that CSV."),
    id_column: str = typer.Option("uid", help="Id column of the CSV."),
    key_file: Path | None = typer.Option(
        None, help="The run's site key file (default $MEDMM_KEY_FILE or ~/.config/medmm/site.key)."
    ),
) -> None:
    """Per-finding P/R/F1 of the run's report labels and of the keyword+"no" regex baseline."""
    from medmm.errors import MedmmError
    from medmm.reports.evaluate_findings import compare, format_table

    try:
        result = compare(csv_path, run, id_column, key_file=key_file)
    except MedmmError as exc:
        _fail(exc)
        return
    for split, res in result.items():
        typer.echo(f"\n[{split}]")
        typer.echo(format_table(res))


@reports_app.command("train-ner")
def train_ner_cmd(
    corpus: Path = typer.Option(..., "--corpus", help="Folder with train.tsv/devel.tsv BIO files."),
    out: Path = typer.Option(..., "--out", help="Where to save the spaCy pipeline."),
    max_minutes: float = typer.Option(18, "--max-minutes", help="Time budget."),
    seed: int = typer.Option(0, help="Random seed."),
    budget_clock: str = typer.Option(
        "wall", "--budget-clock", help="Count --max-minutes as 'wall' or this process' 'cpu' time."
    ),
    train_text: Path | None = typer.Option(
        None, "--train-text", help="Train on raw PubTator abstracts (scispaCy tokens) instead of BIO tokens."
    ),
    dev_text: Path | None = typer.Option(None, "--dev-text", help="Early-stop on raw PubTator dev text."),
    ncbi_types: bool = typer.Option(False, "--ncbi-types", help="Map NCBI's mention types to 'Disease'."),
) -> None:
    """Train a NER model (scispaCy tokenizer + spaCy ner); prints the result as JSON."""
    from medmm.reports.ner.pubtator import NCBI_DISEASE_TYPES
    from medmm.reports.ner.train import train_ner

    if budget_clock not in {"wall", "cpu"}:
        typer.echo("error: --budget-clock takes 'wall' or 'cpu'", err=True)
        raise typer.Exit(2)
    from medmm.errors import MedmmError

    try:
        result = train_ner(
            corpus,
            out,
            max_minutes=max_minutes,
            seed=seed,
            budget_clock=budget_clock,
            train_text=train_text,
            train_text_label_map=NCBI_DISEASE_TYPES if ncbi_types else None,
            dev_text=dev_text,
        )
    except MedmmError as exc:  # a missing or malformed corpus
        _fail(exc)
        return
    data = result.to_dict() if hasattr(result, "to_dict") else result
    json.dump(data, sys.stdout, indent=2, default=str)
    typer.echo("")


@reports_app.command("evaluate-ner")
def evaluate_ner_cmd(
    model: str = typer.Option(..., "--model", help="Saved pipeline path or installed package."),
    corpus: Path = typer.Option(..., "--corpus", help="BIO file to score on."),
    label_map: str | None = typer.Option(
        None, help="Model label -> corpus label, e.g. CHEMICAL=Chemical,DISEASE=Disease."
    ),
) -> None:
    """Exact-span P/R/F1 per label and micro of a NER model; prints JSON."""
    from medmm.reports.ner.evaluate import evaluate_ner

    mapping = None
    if label_map:
        pairs = [item.split("=", 1) for item in label_map.split(",") if item.strip()]
        if any(len(p) != 2 for p in pairs):
            typer.echo("error: --label-map takes MODEL=CORPUS pairs separated by commas", err=True)
            raise typer.Exit(2)
        mapping = {a.strip(): b.strip() for a, b in pairs}
    from medmm.errors import MedmmError

    try:
        scores = evaluate_ner(model, corpus, label_map=mapping)
    except MedmmError as exc:  # an unknown model, a missing or malformed corpus
        _fail(exc)
        return
    json.dump(scores, sys.stdout, indent=2, default=str)
    typer.echo("")


def register(app: typer.Typer) -> None:
    """Add the ``reports`` sub-app to the ``medmm`` CLI."""
    app.add_typer(reports_app, name="reports")
