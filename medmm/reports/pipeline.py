"""``medmm reports parse``: read reports, run the pipeline over batches on Dask, write the run tables.

Tasks take batches of :class:`~medmm.reports.io.inputs.ReportInput` (small picklable records); each
worker builds its pipeline once (:func:`~medmm.reports.nlp.get_pipeline`) and runs ``nlp.pipe`` over
the batch. A batch that fails is retried report by report so one bad report is quarantined alone.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "r.csv").write_text("uid,findings,impression\\n1,Mild cardiomegaly. No effusion.,Stable.\\n")
>>> summary = parse_reports(d / "r.csv", d / "run", workers=0)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
import warnings
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel

from medmm.errors import reason_of
from medmm.reports.io.inputs import MAX_CHARS, ReportInput, read_reports
from medmm.reports.nlp import PipelineSpec, get_pipeline
from medmm.reports.records import EntityRow, ReportLabelRow, ReportManifestRow, ReportTextRow, Status

__all__ = ["BatchResult", "ParseSummary", "parse_reports", "process_batch"]

log = logging.getLogger(__name__)


@dataclass
class BatchResult:
    """Rows produced by one batch (plain dicts, cheap to send back from a worker)."""

    entities: list[dict[str, Any]] = field(default_factory=list)
    labels: list[dict[str, Any]] = field(default_factory=list)
    texts: list[dict[str, Any]] = field(default_factory=list)
    manifest: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ParseSummary:
    """What a parse run did: counts per status, pipeline description, output paths."""

    counts: dict[str, int]
    pipeline: str
    outputs: dict[str, str]


def _manifest(r: ReportInput, status: Status, reason: str = "", **extra: Any) -> dict[str, Any]:
    return ReportManifestRow(
        path=r.path,
        size=r.size,
        format=r.format,
        status=status,
        reason=reason,
        report_id=r.report_id,
        patient_id=r.patient_id,
        study_id=r.study_id,
        n_chars=len(r.text),
        notes=";".join(r.notes),
        **extra,
    ).model_dump(mode="json")


def process_batch(batch: list[ReportInput], spec: PipelineSpec) -> BatchResult:
    """Parse a batch of reports with the (per-process cached) pipeline of ``spec``.

    >>> res = process_batch([ReportInput("1", "x#1", "csv", "No pneumothorax.", 16)], PipelineSpec())
    >>> [(e["finding"], e["negated"]) for e in res.entities]
    [('pneumothorax', True)]
    """
    from medmm.reports.extract import doc_rows, sections_of

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        nlp = get_pipeline(spec)
    out = BatchResult()

    def one(r: ReportInput, doc: Any) -> None:
        ents, labels = doc_rows(doc, r.report_id, spec, r.sections, text=r.text)
        out.entities += [e.model_dump(mode="json") for e in ents]
        out.labels += [lab.model_dump(mode="json") for lab in labels]
        out.texts.append(ReportTextRow(report_id=r.report_id, text=r.text).model_dump(mode="json"))
        n_sections = len(sections_of(r.text, r.sections))
        out.manifest.append(_manifest(r, Status.ingested, n_sections=n_sections, n_entities=len(ents)))

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*\[W036\]")  # scispaCy's empty global matcher
            # stream: each Doc is turned into rows and dropped (less memory, less GC work)
            for r, doc in zip(batch, nlp.pipe([r.text for r in batch], batch_size=64), strict=True):
                one(r, doc)
    except Exception:  # isolate the bad report(s): redo this batch one by one
        out = BatchResult()
        for r in batch:
            try:
                one(r, nlp(r.text))
            except Exception as exc:
                log.warning("report %s quarantined: %s", r.path, type(exc).__name__)
                out.manifest.append(_manifest(r, Status.quarantined, reason_of(exc)))
    return out


def _cpu_seconds() -> float:
    """User + system CPU seconds of this (worker) process so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return float(usage.ru_utime + usage.ru_stime)


def _warm(spec: PipelineSpec) -> str:
    """Build (and cache) the pipeline in a worker process; returns its description."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        get_pipeline(spec)
    return spec.describe()


def _batches(reports: list[ReportInput], size: int) -> list[list[ReportInput]]:
    return [reports[i : i + size] for i in range(0, len(reports), size)]


def parse_reports(
    input_path: Path,
    run_dir: Path,
    *,
    id_column: str | None = None,
    text_columns: list[str] | None = None,
    patient_column: str | None = None,
    study_column: str | None = None,
    model: str | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    batch_size: int = 100,
    key_file: Path | None = None,
    max_chars: int = MAX_CHARS,
) -> ParseSummary:
    """Parse every report of ``input_path`` into ``run_dir`` tables; see :mod:`medmm.reports`.

    ``workers=0`` runs in this process without Dask (debugging, notebooks); otherwise a local Dask
    cluster with ``workers`` processes, or the cluster at ``scheduler``.
    """
    from medmm.runinfo import Timer, update_run_json
    from medmm.tables import write_table
    from medmm.workflows.cluster import TaskFailure, dask_client, run_tasks

    timer = Timer()
    run_dir = Path(run_dir)
    spec = PipelineSpec(model=model)
    with timer("load_pipeline_check"), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        get_pipeline(spec)  # fail fast on an unknown model, before reading or starting workers
    pseudonymizer = None
    if patient_column or study_column:
        from medmm.pseudonym import Pseudonymizer, load_key

        pseudonymizer = Pseudonymizer(load_key(key_file))
    with timer("read"):
        batch_in = read_reports(
            input_path,
            id_column=id_column,
            text_columns=text_columns,
            patient_column=patient_column,
            study_column=study_column,
            pseudonymizer=pseudonymizer,
            max_chars=max_chars,
        )
    results: list[BatchResult] = []
    batches = _batches(batch_in.reports, batch_size)
    if workers == 0 and not scheduler:
        cpu0 = time.process_time()
        with timer("parse"):
            results = [process_batch(b, spec) for b in batches]
        timer.timings["parse_cpu_s"] = time.process_time() - cpu0
    else:
        with ExitStack() as stack:
            with timer("cluster_start"):
                client = stack.enter_context(dask_client(workers, scheduler, quiet=True))
            with timer("warm_workers"):  # each worker builds its pipeline once, before the first task
                client.run(_warm, spec)
            cpu_before = client.run(_cpu_seconds)
            with timer("parse"):
                for i, res in run_tasks(client, process_batch, batches, label="reports", args=(spec,)):
                    if isinstance(res, TaskFailure):
                        failed = [_manifest(r, Status.quarantined, res.reason) for r in batches[i]]
                        results.append(BatchResult(manifest=failed))
                    else:
                        results.append(res)
            cpu_after = client.run(_cpu_seconds)
            # CPU seconds the workers spent in the parse phase (contention on a shared machine shows
            # as parse wall time >> worker CPU time / workers)
            timer.timings["parse_cpu_s"] = sum(cpu_after[w] - cpu_before.get(w, 0.0) for w in cpu_after)
    with timer("write"):
        outputs = _write(run_dir, results, batch_in.rejected, write_table)
    manifest = pd.read_parquet(outputs["manifest_reports"])
    counts = {str(k): int(v) for k, v in manifest["status"].value_counts().items()}
    counts["reports"] = len(manifest)
    counts["entities"] = int(sum(len(r.entities) for r in results))
    options = {
        "input": str(input_path),
        "id_column": batch_in.id_column,
        "text_columns": batch_in.text_columns,
        "patient_column": patient_column,
        "study_column": study_column,
        "model": model,
        "workers": workers,
        "scheduler": scheduler,
        "batch_size": batch_size,
        "max_chars": max_chars,
    }
    update_run_json(
        run_dir,
        "reports",
        options=options,
        counts=counts,
        timings=timer.total(),
        extra={"pipeline": spec.describe()},
    )
    return ParseSummary(counts, spec.describe(), {k: str(v) for k, v in outputs.items()})


def _write(
    run_dir: Path, results: list[BatchResult], rejected: list[ReportManifestRow], write_table: Any
) -> dict[str, Path]:
    def frame(key: str, model: type[BaseModel]) -> pd.DataFrame:
        rows = [row for r in results for row in getattr(r, key)]
        return pd.DataFrame(rows, columns=list(model.model_fields))

    manifest = frame("manifest", ReportManifestRow)
    if rejected:
        extra = pd.DataFrame(
            [r.model_dump(mode="json") for r in rejected], columns=list(ReportManifestRow.model_fields)
        )
        manifest = pd.concat([manifest, extra], ignore_index=True) if len(manifest) else extra
    manifest = manifest.sort_values("path", key=_natural_key, kind="stable").reset_index(drop=True)
    entities = frame("entities", EntityRow).sort_values(["report_id", "start"], kind="stable")
    labels = frame("labels", ReportLabelRow).sort_values(["report_id"], kind="stable")
    return {
        "entities": write_table(entities, run_dir / "entities.parquet", EntityRow),
        "report_labels": write_table(labels, run_dir / "report_labels.parquet", ReportLabelRow),
        "report_texts": write_table(
            frame("texts", ReportTextRow), run_dir / "report_texts.parquet", ReportTextRow
        ),
        "manifest_reports": write_table(manifest, run_dir / "manifest_reports.parquet", ReportManifestRow),
    }


def _natural_key(col: pd.Series) -> pd.Series:
    """Sort ``file#12`` after ``file#2``."""
    parts = col.str.rsplit("#", n=1, expand=True)
    if parts.shape[1] == 1:
        return col
    num = pd.to_numeric(parts[1], errors="coerce").fillna(-1).astype(int).map("{:012d}".format)
    return parts[0].fillna("") + "#" + num
