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
import re
import shutil
import time
import warnings
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

# the table schemas without batch_extract (it imports spaCy: the driver of a Dask parse never needs it)
from medmm.reports.batch_labels import LABEL_SCHEMA
from medmm.reports.entity_table import ENTITY_SCHEMA
from medmm.reports.io.inputs import MAX_CHARS, ReportInput, read_reports
from medmm.reports.nlp import PipelineSpec, check_model, get_pipeline, rules_fingerprint
from medmm.reports.records import EntityRow, ReportLabelRow, ReportManifestRow, ReportTextRow, Status

__all__ = [
    "BatchResult",
    "BatchTables",
    "ParseSummary",
    "auto_batch_size",
    "crash_reason",
    "parse_batch",
    "parse_columns",
    "parse_reports",
    "process_batch",
    "save_part",
]

log = logging.getLogger(__name__)


@dataclass
class BatchResult:
    """Rows produced by one batch as plain dicts (see :func:`process_batch`)."""

    entities: list[dict[str, Any]] = field(default_factory=list)
    labels: list[dict[str, Any]] = field(default_factory=list)
    texts: list[dict[str, Any]] = field(default_factory=list)
    manifest: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class BatchTables:
    """What one batch task sends back: three Arrow tables, built once per batch (typed columns:
    cheap to build from row dicts, to pickle, and to write as a resumable part without conversion).

    ``reports`` has one row per report of the batch: ``report_id, status, reason, n_sections,
    n_entities`` (status ``ingested``, or ``quarantined`` when the pipeline crashed on it). Texts are
    not sent back: the caller has them.
    """

    entities: pa.Table
    labels: pa.Table
    reports: pa.Table


@dataclass
class ParseSummary:
    """What a parse run did: counts per status, pipeline description, output paths."""

    counts: dict[str, int]
    pipeline: str
    outputs: dict[str, str]


#: Tasks per worker aimed at by :func:`auto_batch_size` (in-process batches, or ``--batch-size``'s
#: default before task sizes were planned), and its lower/upper limits on a batch.
TASKS_PER_WORKER = 6
BATCH_LIMITS = (100, 1000)
REPORT_COLUMNS = ["report_id", "status", "reason", "n_sections", "n_entities"]
LABEL_COLUMNS = list(ReportLabelRow.model_fields)
_S, _I = pa.string(), pa.int64()
REPORT_SCHEMA = pa.schema(
    [("report_id", _S), ("status", _S), ("reason", _S), ("n_sections", _I), ("n_entities", _I)]
)


def _manifest(r: ReportInput, status: Status, reason: str = "", **extra: Any) -> dict[str, Any]:
    return ReportManifestRow(
        path=r.path,
        size=r.size,
        format=r.format,
        status=status,
        reason=reason or r.date_reason,
        report_id=r.report_id,
        patient_id=r.patient_id,
        study_id=r.study_id,
        n_chars=len(r.text),
        notes=";".join(r.notes),
        accession_id=r.accession_id,
        report_time=r.report_time,
        report_time_precision=r.report_time_precision,
        **extra,
    ).model_dump(mode="json")


def parse_batch(batch: list[ReportInput], spec: PipelineSpec) -> BatchTables:
    """Parse a batch of reports with the (per-process cached) pipeline of ``spec``; columnar result.

    >>> res = parse_batch([ReportInput("1", "x#1", "csv", "No pneumothorax.", 16)], PipelineSpec())
    >>> res.entities.select(["finding", "negated"]).to_pylist(), res.reports["status"].to_pylist()
    ([{'finding': 'pneumothorax', 'negated': True}], ['ingested'])
    """
    return parse_columns(
        [r.report_id for r in batch],
        [r.text for r in batch],
        [r.sections for r in batch],
        spec,
        paths=[r.path for r in batch],
    )


def parse_columns(
    ids: list[str],
    texts: list[str],
    sections: list[list[tuple[str, int, int, int]] | None],
    spec: PipelineSpec,
    paths: list[str] | None = None,
) -> BatchTables:
    """:func:`parse_batch` over columns: report ids, texts, known sections (or ``None``) and, for the
    log of a quarantined report, the input paths.

    The rows of the whole batch are extracted at once (:func:`~medmm.reports.batch_extract.batch_tables`).
    A batch that fails is redone report by report, so only the report that crashes is quarantined.
    """
    from medmm.reports.batch_extract import batch_tables
    from medmm.reports.batch_sides import clear_side_conflicts_batch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        nlp = get_pipeline(spec)
    n = len(ids)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*\[W036\]")  # scispaCy's empty global matcher
            # streamed: each Doc is read as it comes out of the pipeline and dropped
            docs = nlp.pipe(texts, batch_size=256)
            ents, labels, n_sections = batch_tables(docs, ids, texts, sections, spec)
        n_ents = _counts(ents["report_id"], ids)
        columns: list[list[Any]] = [ids, ["ingested"] * n, [""] * n, n_sections, n_ents]
    except Exception:  # isolate the bad report(s): redo this batch one by one
        e_parts, l_parts, rows = [], [], []
        for k in range(n):
            try:
                one = slice(k, k + 1)
                e, lab, ns = batch_tables([nlp(texts[k])], ids[one], texts[one], sections[one], spec)
            except Exception as exc:
                log.warning("report %s quarantined: %s", paths[k] if paths else ids[k], type(exc).__name__)
                rows.append((ids[k], "quarantined", crash_reason(exc, texts[k]), 0, 0))
                continue
            e_parts.append(e)
            l_parts.append(lab)
            rows.append((ids[k], "ingested", "", ns[0], e.num_rows))
        ents = pa.concat_tables(e_parts) if e_parts else ENTITY_SCHEMA.empty_table()
        labels = pa.concat_tables(l_parts) if l_parts else LABEL_SCHEMA.empty_table()
        columns = [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in REPORT_SCHEMA]
    # "a left effusion" is never in the right lower lobe (laterality.clear_side_conflicts, on the rows
    # whose location names a side: the whole table's columns as Python lists cost ~4% of nlp.pipe)
    ents = clear_side_conflicts_batch(ents, ids, texts)
    arrays = [pa.array(c, f.type) for c, f in zip(columns, REPORT_SCHEMA, strict=True)]
    reports = pa.table(arrays, schema=REPORT_SCHEMA)
    return BatchTables(ents, labels, reports)


def crash_reason(exc: BaseException, text: str) -> str:
    """Manifest reason of a report the pipeline crashed on: the exception's type and message, with
    what the message quotes (``'...'``, ``"..."``) and any run of 12+ characters of the report's text
    left out: an exception message may quote its input, and the text is not de-identified.

    >>> crash_reason(ValueError("could not convert 'John Smith' to float"), "Patient John Smith.")
    "ValueError: could not convert '…' to float (the pipeline failed on this report)"
    >>> crash_reason(KeyError(3), "No effusion.")
    'KeyError: 3 (the pipeline failed on this report)'
    """
    message = str(exc).strip() or type(exc).__name__
    message = re.sub(r"'[^']*'", "'…'", re.sub(r'"[^"]*"', '"…"', message))
    if any(message[i : i + 12] in text for i in range(max(0, len(message) - 11))):
        message = "message not shown (it quotes the report)"
    return f"{type(exc).__name__}: {message[:300]} (the pipeline failed on this report)"


def _counts(ids: pa.ChunkedArray, order: list[str]) -> list[int]:
    """Rows per report id of ``ids``, in ``order`` (0 for ids without rows; ``order`` has no repeats).

    >>> _counts(pa.chunked_array([["b", "a", "b"]]), ["a", "b", "c"])
    [1, 2, 0]
    """
    import numpy as np
    import pyarrow.compute as pc

    at = pc.index_in(ids, value_set=pa.array(order, pa.string())).to_numpy(zero_copy_only=False)
    return np.bincount(at, minlength=len(order)).tolist() if len(at) else [0] * len(order)


def process_batch(batch: list[ReportInput], spec: PipelineSpec) -> BatchResult:
    """:func:`parse_batch` as lists of row dicts (entities, labels, texts, manifest rows).

    >>> res = process_batch([ReportInput("1", "x#1", "csv", "No pneumothorax.", 16)], PipelineSpec())
    >>> [(e["finding"], e["negated"]) for e in res.entities]
    [('pneumothorax', True)]
    """
    t = parse_batch(batch, spec)
    by_id = {r.report_id: r for r in batch}
    manifest, texts = [], []
    for x in t.reports.to_pylist():
        extra = {"n_sections": int(x["n_sections"]), "n_entities": int(x["n_entities"])}
        manifest.append(_manifest(by_id[x["report_id"]], Status(x["status"]), x["reason"], **extra))
        if x["status"] == "ingested":
            texts.append({"report_id": x["report_id"], "text": by_id[x["report_id"]].text})
    return BatchResult(t.entities.to_pylist(), t.labels.to_pylist(), texts, manifest)


def save_part(parts: Any, ids: list[str], keys: list[str], res: BatchTables) -> str:
    """Write one parsed batch as a resumable part (:class:`~medmm.reports.resume.Parts`): its tables,
    each row with its report's key (``ids`` and ``keys``: the batch's report ids and keys, in order).
    Returns the part's name.

    The texts are not written: a report's key is a hash of its text, so the merge takes the text of a
    chosen report from the input (the texts were 18% of a part's bytes, and writing new file pages
    costs the worker ~2 ms of CPU per MB on ext4).
    """
    import pyarrow.compute as pc

    id_arr, keys_arr = pa.array(ids, pa.string()), pa.array(keys, pa.string())

    def keyed(t: pa.Table) -> pa.Table:
        return t.append_column("_key", keys_arr.take(pc.index_in(t["report_id"], value_set=id_arr)))

    return str(parts.write(keys, keyed(res.entities), keyed(res.labels), keyed(res.reports)))


def _outcomes(reports: pd.DataFrame) -> dict[str, tuple[Any, ...]]:
    """Per report id of the merged parts: ``(status, reason, n_sections, n_entities)``, missing values
    as ``None``; read column by column (row dicts of the whole frame cost ~8x more).

    >>> _outcomes(pd.DataFrame({"report_id": ["a"], "status": ["ingested"], "reason": [""],
    ...                         "n_sections": [2], "n_entities": [3]}))
    {'a': ('ingested', '', 2, 3)}
    """
    if not len(reports):
        return {}
    columns = [
        reports[c].astype(object).where(reports[c].notna(), None).tolist()
        for c in ("report_id", "status", "reason", "n_sections", "n_entities")
    ]
    return {str(row[0]): tuple(row[1:]) for row in zip(*columns, strict=True)}


def auto_batch_size(n_reports: int, n_workers: int) -> int:
    """Reports per task: about :data:`TASKS_PER_WORKER` tasks per worker (balance at the end of the
    run), within :data:`BATCH_LIMITS` (per-task overhead below; memory of the docs of one batch above).

    >>> auto_batch_size(10_000, 2), auto_batch_size(300, 2), auto_batch_size(10**6, 4)
    (834, 100, 1000)
    """
    lo, hi = BATCH_LIMITS
    return max(lo, min(hi, -(-n_reports // (TASKS_PER_WORKER * max(1, n_workers)))))


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
    batch_size: int | None = None,
    key_file: Path | None = None,
    max_chars: int = MAX_CHARS,
    keep_text: bool = False,
    keep_report_ids: bool = False,
    accession_column: str | None = None,
    date_column: str | None = None,
) -> ParseSummary:
    """Parse every report of ``input_path`` into ``run_dir`` tables; see :mod:`medmm.reports`.

    ``workers=0`` runs in this process without Dask (debugging, notebooks); otherwise a local Dask
    cluster with ``workers`` processes, or the cluster at ``scheduler``. Re-running over the same
    ``run_dir`` resumes: reports already parsed (same id, text, pipeline and site key) are taken
    from ``run_dir/.reports_parts/`` (:mod:`medmm.reports.resume`) and only the rest is parsed.
    ``batch_size`` is the number of reports per task and per resumable part; ``None`` picks
    :func:`auto_batch_size` in-process and :func:`~medmm.reports.tasks.plan_sizes` on Dask.
    ``keep_text`` writes ``report_texts.parquet`` (the cleaned text, not de-identified); without it
    the text is no output (a stale table is removed) and ``medmm reports show`` re-reads the input.
    Report ids (accession / RIS numbers) are written as pseudonyms ``Pseudonymizer.id(id, "report")``
    with the site key (``key_file``), in every table; ``keep_report_ids`` keeps them as given (data
    already de-identified; recorded in ``run.json``). A report's resume key is made from the id as
    written, so a re-run with the other choice parses everything again (no mix of both kinds of ids).
    ``accession_column`` and ``date_column`` (needs ``patient_column``) give each report an
    ``accession_id`` and a shifted ``report_time`` so ``medmm align`` can link it to its images
    (:func:`~medmm.reports.io.inputs.read_reports`); ``run.json`` counts ``with_accession``,
    ``with_date`` and ``dates_unusable``.
    """
    from medmm.reports.io.files import check_run_dir
    from medmm.reports.resume import Parts, key_fingerprint, report_key
    from medmm.runinfo import Timer, update_run_json
    from medmm.workflows.cluster import TaskFailure, dask_client, run_tasks

    timer = Timer()
    run_dir = Path(run_dir).absolute()  # workers of an existing cluster run in another folder
    check_run_dir(Path(input_path), run_dir)  # not inside a reports folder (read as inputs next time)
    spec = PipelineSpec(model=model)
    with timer("load_pipeline_check"), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        # fail fast on an unknown model, before reading or starting workers; only the in-process
        # parse needs the pipeline here (with Dask, the workers build it)
        get_pipeline(spec) if workers == 0 and not scheduler else check_model(spec)
    pseudonymizer, site, used_key = None, "", None
    if patient_column or study_column or accession_column or date_column or not keep_report_ids:
        from medmm.pseudonym import Pseudonymizer, load_key
        from medmm.runinfo import claim_site_key

        key = load_key(key_file)
        pseudonymizer, site = Pseudonymizer(key), key_fingerprint(key)
        used_key = _key_path(key_file)
        claim_site_key(run_dir, pseudonymizer.check_value())  # a run dir made with another key is refused
    local = workers != 0 and not scheduler  # a local cluster parses
    with ExitStack() as stack:
        if local:
            # the server the local workers are forked from, launched now in the background: it
            # imports spaCy and builds the pipeline while this process reads the input and checks
            # what is done (stopped at once when nothing is left to parse)
            from medmm.reports.preload import worker_server

            stack.enter_context(worker_server(spec))
        with timer("read"):
            batch_in = read_reports(
                input_path,
                id_column=id_column,
                text_columns=text_columns,
                patient_column=patient_column,
                study_column=study_column,
                pseudonymizer=pseudonymizer,
                max_chars=max_chars,
                keep_report_ids=keep_report_ids,
                accession_column=accession_column,
                date_column=date_column,
            )
            # the rules' fingerprint is part of every resume key: results of older rules are never kept
            pipeline = f"{spec.describe()}; rules {rules_fingerprint()}"
            keys = {r.report_id: report_key(r.report_id, r.text, pipeline, site) for r in batch_in.reports}
            parts = Parts(run_dir)
            done = parts.done_keys()
            todo = [r for r in batch_in.reports if keys[r.report_id] not in done]
        failed: list[dict[str, Any]] = []
        size = batch_size

        def save(batch: list[ReportInput], res: BatchTables) -> None:
            ids = [r.report_id for r in batch]
            save_part(parts, ids, [keys[i] for i in ids], res)

        if not todo:
            timer.timings["parse"] = 0.0
            timer.timings["parse_cpu_s"] = 0.0
        elif workers == 0 and not scheduler:
            size = batch_size or auto_batch_size(len(todo), 1)
            cpu0 = time.process_time()
            with timer("parse"):
                for b in _batches(todo, size):
                    save(b, parse_batch(b, spec))
            timer.timings["parse_cpu_s"] = time.process_time() - cpu0
        else:
            from medmm.reports import tasks
            from medmm.reports.preload import local_cluster

            with timer("cluster_start"):
                # a local cluster's workers are forked from the server launched above, which built
                # the pipeline (one build, its tables shared copy-on-write; glibc's adaptive malloc
                # in them: Dask's 64 KB trim threshold costs the tasks ~2.5% more CPU)
                client = stack.enter_context(
                    local_cluster(workers, spec)
                    if local
                    else dask_client(workers, scheduler, quiet=True, malloc_trim=False)
                )
            with timer("warm_workers"):  # built once per worker before the first task (local: already)
                client.run(tasks.warm, spec)
            profiling = [w for w, was in client.run(tasks.profiler, False).items() if was]
            cpu_before = client.run(tasks.cpu_seconds)
            # workers that see the run directory write their parts themselves and send back names
            token = parts.mark()
            n_workers = len(client.scheduler_info(n_workers=-1)["workers"])
            if batch_size:
                batches = _batches(todo, batch_size)
            else:  # shrinking task sizes: the workers finish together
                ends = list(accumulate(tasks.plan_sizes(len(todo), n_workers)))
                batches = [todo[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]
            size = max(len(b) for b in batches)
            driver0 = time.process_time()
            work = [tasks.Work.of(b, [keys[r.report_id] for r in b]) for b in batches]
            items: list[Any] = work
            if all(client.run(tasks.sees_marker, str(run_dir), token).values()):
                # shared file system: each batch goes to a scratch file and the task names it, so
                # the task graph stays small; a retried task reads it again
                items = tasks.stage(parts.folder / f".todo-{token}", work)
            args = (str(run_dir), token, spec.model, spec.lexicon)  # plain values: no scatter
            try:
                with timer("parse"):
                    # a part written by its worker comes back as None (not fetched); no full GC of
                    # this process (the local scheduler's) while the tasks run
                    finished = run_tasks(
                        client,
                        tasks.parse_to_part,
                        items,
                        label="reports",
                        args=args,
                        unfetched=tasks.PartWritten,
                        pause_gc=True,
                    )
                    for i, res in finished:
                        if isinstance(res, TaskFailure):  # not saved as a part: a re-run tries again
                            failed += [_manifest(r, Status.quarantined, res.reason) for r in batches[i]]
                        elif isinstance(res, BatchTables):
                            save(batches[i], res)
            finally:
                if profiling:
                    client.run(tasks.profiler, True, workers=profiling)
                parts.unmark(token)
                shutil.rmtree(parts.folder / f".todo-{token}", ignore_errors=True)
            # this process during the parse phase (client, and the scheduler of a local cluster)
            timer.timings["parse_driver_cpu_s"] = time.process_time() - driver0
            cpu_after = client.run(tasks.cpu_seconds)
            # CPU seconds the workers spent in the parse phase (contention on a shared machine shows
            # as parse wall time >> worker CPU time / workers)
            timer.timings["parse_cpu_s"] = sum(cpu_after[w] - cpu_before.get(w, 0.0) for w in cpu_after)
    with timer("write"):
        entities, labels, reports = parts.merge(keys.values())
        outputs = _write(
            run_dir, batch_in.reports, entities, labels, reports, failed, batch_in.rejected, keep_text
        )
    manifest = pd.read_parquet(outputs["manifest_reports"])
    counts = {str(k): int(v) for k, v in manifest["status"].value_counts().items()}
    counts["reports"] = len(manifest)
    counts["entities"] = len(entities)
    counts["parsed_now"] = len(todo)
    counts["resumed"] = len(batch_in.reports) - len(todo)
    if date_column or batch_in.accession_column:  # the accession column given, or the id column
        counts["with_accession"] = sum(r.accession_id is not None for r in batch_in.reports)
        counts["with_date"] = sum(r.report_time is not None for r in batch_in.reports)
        counts["dates_unusable"] = sum(bool(r.date_reason) for r in batch_in.reports)
    options = {
        "input": str(Path(input_path).resolve()),
        "id_column": batch_in.id_column,
        "text_columns": batch_in.text_columns,
        "patient_column": patient_column,
        "study_column": study_column,
        "model": model,
        "workers": workers,
        "scheduler": scheduler,
        "batch_size": size,
        "max_chars": max_chars,
        "keep_text": keep_text,
        "keep_report_ids": keep_report_ids,
        "accession_column": batch_in.accession_column,
        "date_column": date_column,
        "key_file": used_key,  # where the key is (never the key): `show` finds it there
    }
    update_run_json(
        run_dir,
        "reports",
        options=options,
        counts=counts,
        timings=timer.total(),
        extra={"pipeline": pipeline},
    )
    return ParseSummary(counts, pipeline, {k: str(v) for k, v in outputs.items()})


def _key_path(key_file: Path | None) -> str:
    """The absolute path of the site key file :func:`~medmm.pseudonym.load_key` reads."""
    from medmm.pseudonym import key_file_path

    return str(key_file_path(key_file).resolve())


def _write(
    run_dir: Path,
    inputs: list[ReportInput],
    entities: pd.DataFrame,
    labels: pd.DataFrame,
    reports: pd.DataFrame,
    failed: list[dict[str, Any]],
    rejected: list[ReportManifestRow],
    keep_text: bool = False,
) -> dict[str, Path]:
    """Write the run tables from the merged parts (order: manifest by input path, entities by
    report and offset, labels by report, texts in input order). The texts (identity not removed) only
    with ``keep_text``; otherwise a ``report_texts.parquet`` of an earlier run is removed."""
    from medmm.tables import write_table

    outcome = _outcomes(reports)
    rows = []
    for r in inputs:
        if (o := outcome.get(r.report_id)) is not None:
            status, reason, n_sections, n_entities = o
            extra = {"n_sections": int(n_sections), "n_entities": int(n_entities)}
            rows.append(_manifest(r, Status(status), str(reason), **extra))
    rows += failed + [r.model_dump(mode="json") for r in rejected]
    manifest = pd.DataFrame(rows, columns=list(ReportManifestRow.model_fields))
    manifest = manifest.sort_values("path", key=_natural_key, kind="stable").reset_index(drop=True)
    order = {r.report_id: i for i, r in enumerate(inputs)}

    def in_input_order(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
        if not len(frame):
            return pd.DataFrame(columns=columns)
        pos = frame["report_id"].map(order)
        return frame.assign(_pos=pos).sort_values("_pos", kind="stable")[columns].reset_index(drop=True)

    entity_cols, text_cols = list(EntityRow.model_fields), list(ReportTextRow.model_fields)
    entities = in_input_order(entities, entity_cols).sort_values(["report_id", "start"], kind="stable")
    labels = in_input_order(labels, LABEL_COLUMNS).sort_values(["report_id"], kind="stable")
    out = {
        "entities": write_table(entities, run_dir / "entities.parquet", EntityRow),
        "report_labels": write_table(labels, run_dir / "report_labels.parquet", ReportLabelRow),
        "manifest_reports": write_table(manifest, run_dir / "manifest_reports.parquet", ReportManifestRow),
    }
    texts_path = run_dir / "report_texts.parquet"
    if keep_text:
        ingested = reports[reports["status"] == "ingested"] if len(reports) else reports
        if len(ingested):  # parts hold no texts (a report's key is a hash of its text): the input's
            text_of = {r.report_id: r.text for r in inputs}
            ingested = ingested.assign(text=ingested["report_id"].map(text_of))
        out["report_texts"] = write_table(in_input_order(ingested, text_cols), texts_path, ReportTextRow)
    else:
        texts_path.unlink(missing_ok=True)
    return out


def _natural_key(col: pd.Series) -> pd.Series:
    """Sort ``file#12`` after ``file#2``."""
    parts = col.str.rsplit("#", n=1, expand=True)
    if parts.shape[1] == 1:
        return col
    num = pd.to_numeric(parts[1], errors="coerce").fillna(-1).astype(int).map("{:012d}".format)
    return parts[0].fillna("") + "#" + num
