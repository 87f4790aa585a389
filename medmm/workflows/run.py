"""Run a workflow file: call each stage's own entry point, in order, on one run directory.

No domain logic here: every adapter maps a :class:`~medmm.workflows.config.StageStep` onto the same
function its CLI command calls. A stage that fails stops the workflow with its error; bad *inputs*
never do (stages quarantine them).

>>> from medmm.workflows.config import WorkflowConfig
>>> cfg = WorkflowConfig.model_validate({"name": "x", "run_dir": "r", "stages": [{"stage": "align"}]})
>>> [s.stage.value for s in cfg.stages]
['align']
"""

from __future__ import annotations

import difflib
import errno
import inspect
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medmm.errors import ConfigError, MedmmError
from medmm.workflows.config import StageName, StageStep, WorkflowConfig
from medmm.workflows.lock import sweep_temp_files, workflow_lock
from medmm.workflows.summary import MANIFESTS, outcome, quarantined_inputs, summary_line

__all__ = ["StageContext", "WorkflowResult", "run_workflow"]


@dataclass(frozen=True)
class StageContext:
    """What every stage gets besides its own options."""

    run_dir: Path
    base_dir: Path
    workers: int | None
    scheduler: str | None
    key_file: Path | None

    def resolve(self, path: str) -> Path:
        """A path from the workflow file, relative to the workflow's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.base_dir / p).resolve()


@dataclass
class WorkflowResult:
    """Counts by status per stage; ``stopped`` names the stage an error or a signal stopped.

    >>> r = WorkflowResult(Path("run"), {"ingest": {"ingested": 2, "quarantined": 1}}, strict=True)
    >>> r.n_quarantined, r.exit_code
    (1, 1)
    """

    run_dir: Path
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    strict: bool = False
    stopped: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def n_quarantined(self) -> int:
        """Inputs quarantined over all stages."""
        return sum(c.get("quarantined", 0) for c in self.counts.values())

    @property
    def exit_code(self) -> int:
        """``medmm run``'s exit code for a run that finished: 1 when strict and any input is quarantined."""
        return 1 if self.strict and self.n_quarantined else 0


#: Arguments the workflow itself passes (from ``input``, ``run_dir``, ``cluster`` and ``key_file``).
_FROM_WORKFLOW = {"workers", "scheduler", "key_file", "client", "pseudonymizer"}


def _checked_options(
    fn: Callable[..., Any],
    options: Mapping[str, Any],
    stage: str,
    positional: int = 1,
    *,
    extra: Sequence[str] = (),
    hidden: Sequence[str] = (),
) -> dict[str, Any]:
    """``options`` of a stage, checked against ``fn``'s keyword arguments.

    Its first ``positional`` parameters (input, run directory ...) and the cluster / key arguments are
    set by the workflow file's own fields, not by a stage's options. ``extra`` names options the stage
    adapter handles itself; ``hidden`` names parameters of ``fn`` that the adapter sets from them.
    """
    params = list(inspect.signature(fn).parameters)
    reserved = set(params[:positional]) | _FROM_WORKFLOW
    clash = sorted(set(options) & reserved)
    if clash:
        raise ConfigError(
            f"stage '{stage}': option(s) {clash} come from the workflow file itself (the stage's `input`, "
            "`run_dir`, `cluster: workers/scheduler`, `key_file`); remove them from the stage's options"
        )
    allowed = (set(params) - reserved - set(hidden)) | set(extra)
    unknown = sorted(set(options) - allowed)
    if unknown:
        hints = [
            f"{name!r} -> did you mean {close[0]!r}?"
            for name in unknown
            if (close := difflib.get_close_matches(name, sorted(allowed), n=1))
        ]
        hint = f" ({'; '.join(hints)})" if hints else ""
        raise ConfigError(f"stage '{stage}': unknown option(s) {unknown}{hint}; valid: {sorted(allowed)}")
    return dict(options)


def _call_stage(
    fn: Callable[..., Any],
    step: StageStep,
    ctx: StageContext,
    options: Mapping[str, Any] | None = None,
    **computed: Any,
) -> Any:
    """Call a stage entry point ``fn(input, run_dir, workers=, scheduler=, key_file=, **options)``.

    ``options`` replaces the step's own (what is left once the adapter took its ``computed`` ones).
    """
    opts = _checked_options(fn, step.options if options is None else options, step.stage.value, positional=2)
    return fn(
        ctx.resolve(step.input or ""),
        ctx.run_dir,
        workers=ctx.workers,
        scheduler=ctx.scheduler,
        key_file=ctx.key_file,
        **opts,
        **computed,
    )


def _ingest(step: StageStep, ctx: StageContext) -> dict[str, int]:
    """Ingest ``input``; ``ids`` (a CSV, relative to the workflow file), its ``*_column`` names and
    ``modality`` give ids to image files that carry none, as ``medmm ingest --ids`` does."""
    from dataclasses import asdict

    from medmm.ingest.image_ids import IdColumns, IdTable
    from medmm.ingest.pipeline import ingest_archive

    # the ids table's column options (path_column ... accession_column), defaults as the CLI's: IdColumns'
    defaults = asdict(IdColumns())
    names = ["ids", "modality", *(f"{field}_column" for field in defaults)]
    _checked_options(ingest_archive, step.options, "ingest", positional=2, extra=names, hidden=["ids"])
    opts = dict(step.options)
    ids, modality = opts.pop("ids", None), str(opts.pop("modality", None) or "")
    columns = {field: str(opts.pop(f"{field}_column", default)) for field, default in defaults.items()}
    if ids is None and columns != defaults:
        raise ConfigError(
            "stage 'ingest': the *_column options name columns of the `ids` table; add `ids: FILE.csv` "
            "or remove them"
        )
    table: IdTable | None = None
    if ids is not None:
        table = IdTable.load(ctx.resolve(str(ids)), IdColumns(**columns), modality=modality)
    elif modality:
        table = IdTable({}, source="modality", modality=modality)
    done = _call_stage(ingest_archive, step, ctx, opts, ids=table)
    return {**done.counts, "resumed": done.n_skipped}  # files unchanged since the last run


def _reports(step: StageStep, ctx: StageContext) -> dict[str, int]:
    from medmm.reports.io.files import check_run_dir
    from medmm.reports.pipeline import parse_reports

    check_run_dir(ctx.resolve(step.input or ""), ctx.run_dir)
    return dict(_call_stage(parse_reports, step, ctx).counts)


def _signals(step: StageStep, ctx: StageContext) -> dict[str, int]:
    from medmm.signals.pipeline import run_signals
    from medmm.signals.process import Settings

    try:
        settings = Settings(**step.options)
    except TypeError as exc:
        valid = sorted(Settings.__dataclass_fields__)
        raise ConfigError(f"stage 'signals': {exc}; valid options: {valid}") from exc
    return run_signals(
        ctx.resolve(step.input or ""),
        ctx.run_dir,
        settings=settings,
        workers=ctx.workers,
        scheduler=ctx.scheduler,
        key_file=ctx.key_file,
    )


def _anomaly(step: StageStep, ctx: StageContext) -> dict[str, int]:
    """Score the run's beats with ``options.model``; with ``options.train: true`` train that model first."""
    from medmm.anomaly.stage import score_run, train_on_run

    opts = dict(step.options)
    if "model" not in opts:
        raise ConfigError("stage 'anomaly': option `model` (the model directory) is required")
    model = ctx.resolve(str(opts.pop("model")))
    train = bool(opts.pop("train", False))
    seed, epochs = int(opts.pop("seed", 0)), int(opts.pop("epochs", 10))
    score_opts = _checked_options(score_run, opts, "anomaly", positional=3)
    counts: dict[str, int] = {}
    if train:
        trained = train_on_run(ctx.run_dir, model, seed=seed, epochs=epochs)
        counts["trained_beats"] = int(trained["beats"])
    counts.update(score_run(ctx.run_dir, model, ctx.run_dir, **score_opts))
    if counts.get("skipped"):  # records not scored (waveform not re-readable): what --strict reports
        counts["quarantined"] = counts["skipped"]
    return counts


def _align(step: StageStep, ctx: StageContext) -> dict[str, int]:
    from medmm.align.pipeline import align_run

    opts = _checked_options(align_run, step.options, "align")
    if opts.get("labels") is not None:  # a path, relative to the workflow file as every other one
        opts["labels"] = ctx.resolve(str(opts["labels"]))
    counts = align_run(ctx.run_dir, key_file=ctx.key_file, **opts)
    return {k: int(v) for k, v in counts.items() if isinstance(v, int)}


def _predict(step: StageStep, ctx: StageContext) -> dict[str, int]:
    """Score the run's records with the checkpoint in ``options.model``."""
    from medmm.predict.predict import predict_run

    opts = dict(step.options)
    if "model" not in opts:
        raise ConfigError("stage 'predict': option `model` (a checkpoint, model.pt) is required")
    checkpoint = ctx.resolve(str(opts.pop("model")))
    if opts.get("anomaly_calibration") is not None:  # a run folder, relative to the workflow file as `model`
        opts["anomaly_calibration"] = ctx.resolve(str(opts["anomaly_calibration"]))
    counts = predict_run(checkpoint, ctx.run_dir, **_checked_options(predict_run, opts, "predict", 2))
    return {k: int(v) for k, v in counts.items() if isinstance(v, int)}


def _pseudonymizes(step: StageStep) -> bool:
    """Whether ``step`` pseudonymizes identifiers with the site key (reports: their ids, unless kept)."""
    if step.stage in (StageName.ingest, StageName.signals):
        return True
    if step.stage == StageName.align:  # labels keyed by raw ids are pseudonymized with the key
        return bool(step.options.get("labels"))
    return step.stage == StageName.reports and bool(
        not step.options.get("keep_report_ids")
        or step.options.get("patient_column")
        or step.options.get("study_column")
    )


def _check_outside_inputs(config: WorkflowConfig, ctx: StageContext) -> None:
    """Refuse a run directory inside a stage's input folder (its tables would be read as inputs next
    night), before anything is written there."""
    for step in config.stages:
        folder = ctx.resolve(step.input) if step.input else None
        if folder is not None and folder.is_dir() and ctx.run_dir.is_relative_to(folder.resolve()):
            raise ConfigError(
                f"{ctx.run_dir}: the run directory is inside the input of stage '{step.stage.value}' "
                f"({folder}), so the run's own files would be read as inputs next time. Fix: set run_dir "
                "(or --out) to a folder outside the inputs"
            )


def _check_site_key(config: WorkflowConfig, ctx: StageContext) -> None:
    """Refuse, before any stage runs, a run directory made with another site key than the workflow's.

    Each keyed stage claims the run directory itself (:func:`~medmm.runinfo.claim_site_key`); this
    check only saves the stages before the first keyed one from running in vain.
    """
    if not any(_pseudonymizes(step) for step in config.stages):
        return
    from medmm.pseudonym import key_check_value, load_key
    from medmm.runinfo import claim_site_key

    claim_site_key(ctx.run_dir, key_check_value(load_key(ctx.key_file)), record=False)


#: stages whose tasks run on the Dask cluster
_DISTRIBUTED = (StageName.ingest, StageName.reports, StageName.signals)


def _check_cluster(config: WorkflowConfig, ctx: StageContext) -> None:
    """Before any stage runs on the existing cluster at ``ctx.scheduler``: its workers run this medmm
    and the same package releases (:func:`~medmm.workflows.cluster.dask_client`), see every input of
    the distributed stages and the site key at the same paths, and can write in the run directory
    (:mod:`medmm.workflows.external`)."""
    steps = [s for s in config.stages if s.stage in _DISTRIBUTED]
    if not steps:
        return
    from medmm.workflows.cluster import dask_client
    from medmm.workflows.external import check_paths
    from medmm.workflows.worker_key import check_key, worker_key

    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    address = str(ctx.scheduler)
    with dask_client(scheduler=address, quiet=True) as client:
        inputs = [ctx.resolve(s.input) for s in steps if s.input]
        check_paths(client, address, read=inputs, write=[ctx.run_dir])
        # ingest and signals pseudonymize in their tasks (reports on the driver): the workers read the key
        if any(s.stage in (StageName.ingest, StageName.signals) for s in steps):
            check_key(client, address, worker_key(ctx.key_file))


_STAGES: dict[StageName, Callable[[StageStep, StageContext], dict[str, int]]] = {
    StageName.ingest: _ingest,
    StageName.reports: _reports,
    StageName.signals: _signals,
    StageName.anomaly: _anomaly,
    StageName.align: _align,
    StageName.predict: _predict,
}


def run_workflow(
    config: WorkflowConfig,
    base_dir: Path,
    *,
    run_dir: Path | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    strict: bool | None = None,
    result: WorkflowResult | None = None,
) -> WorkflowResult:
    """Run every stage of ``config``; arguments given here override the file's settings.

    ``workers`` or ``scheduler`` given here replace the file's ``cluster`` section (both: a
    :class:`~medmm.errors.ConfigError`), ``strict`` its ``strict``. Every path is made absolute here:
    with ``scheduler``, the tasks run in worker processes whose working folder is another one.

    One run at a time per run directory (:mod:`medmm.workflows.lock`: a second is refused at once);
    under that lock, the temporary files of atomic writes that a killed run left are removed first
    (:func:`~medmm.workflows.lock.sweep_temp_files`; counted in ``run.json``).
    ``run.json``'s ``workflow`` section says ``running`` while the stages write their tables, then the
    outcome (:mod:`medmm.workflows.summary`). ``result``, when given, is the one filled and returned:
    its counts of the stages that finished survive an error (or ``SIGTERM``) raised by a later stage.
    """
    if workers and scheduler:
        raise ConfigError(
            f"--workers {workers} and --scheduler {scheduler} both given: --workers sizes a local cluster, "
            "an existing cluster has its own workers. Fix: give only one of them"
        )
    if not workers and not scheduler:
        workers, scheduler = config.cluster.workers, config.cluster.scheduler
    ctx = StageContext(
        # relative to where the command runs, as any path on its command line
        run_dir=(
            Path(run_dir).expanduser().resolve()
            if run_dir
            else (base_dir / Path(config.run_dir).expanduser()).resolve()
        ),
        base_dir=base_dir,
        workers=workers,
        scheduler=scheduler,
        # "~/..." is the user's home, not a folder named "~" (a new key there would change every pseudonym)
        key_file=(base_dir / Path(config.key_file).expanduser()).resolve() if config.key_file else None,
    )
    result = result if result is not None else WorkflowResult(run_dir=ctx.run_dir)
    result.run_dir, result.strict = ctx.run_dir, config.strict if strict is None else strict
    _check_outside_inputs(config, ctx)  # before the lock file and run.json are made in the run directory
    started = time.time()
    with workflow_lock(ctx.run_dir):
        try:
            inputs = [ctx.resolve(step.input) for step in config.stages if step.input]
            swept = sweep_temp_files(ctx.run_dir, started, inputs)  # of a run killed mid-write (kill -9)
            record = _Record(config, ctx, result, swept)
        except OSError as exc:  # a disk that filled up last night: run.json's `running` not written
            full = _run_dir_error(exc, ctx, "medmm run started")
            if full is None:
                raise
            raise full from exc
        try:
            _check_site_key(config, ctx)
            if ctx.scheduler:
                _check_cluster(config, ctx)
            for step in config.stages:
                _run_stage(step, ctx, result)
        except BaseException as exc:
            record.stopped(exc)
            raise
        record.finished()
    return result


def _run_stage(step: StageStep, ctx: StageContext, result: WorkflowResult) -> None:
    """Run one stage into ``result``; an error or a signal names the stage (``result.stopped``)."""
    adapter = _STAGES.get(step.stage)
    if adapter is None:
        raise ConfigError(f"stage '{step.stage.value}' cannot run from a workflow in this version")
    start = time.perf_counter()
    manifest = MANIFESTS.get(step.stage.value)
    before = quarantined_inputs(ctx.run_dir / manifest) if manifest else set()
    try:
        result.counts[step.stage.value] = counts = adapter(step, ctx)
        if manifest:  # quarantined this run: new or changed files, not those quarantined night after night
            counts["quarantined_new"] = len(quarantined_inputs(ctx.run_dir / manifest) - before)
    except MedmmError as exc:  # the CLI names the stage that stopped the workflow
        result.stopped = step.stage.value
        where = f"stage '{step.stage.value}'"
        if where not in str(exc):
            exc.add_note(where)
        raise
    except OSError as exc:
        result.stopped = step.stage.value
        full = _run_dir_error(exc, ctx, f"stage '{step.stage.value}' wrote its results")
        if full is None:
            raise
        raise full from exc
    except BaseException:
        result.stopped = step.stage.value
        raise
    finally:
        result.timings[step.stage.value] = time.perf_counter() - start


#: errors of a filesystem that takes no more data: every input would fail alike
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


def _run_dir_error(exc: OSError, ctx: StageContext, during: str) -> ConfigError | None:
    """An error writing in the run directory (``during``: what was writing), as a
    :class:`~medmm.errors.ConfigError` naming the folder and the fix: the disk or quota is full, the
    filesystem read-only, or the run directory not writable. ``None`` for any other error (which stays
    what it is)."""
    name = exc.filename if isinstance(exc.filename, str) else None
    in_run = name is not None and Path(name).absolute().is_relative_to(ctx.run_dir)
    if exc.errno not in _FULL and not (exc.errno in (errno.EACCES, errno.EPERM) and in_run):
        return None
    where = Path(name).parent if name and in_run else Path(name) if name else ctx.run_dir
    return ConfigError(
        f"{where}: {exc.strerror or os.strerror(exc.errno or 0)} while {during}. Fix: free space on that "
        "filesystem (or make it writable), or give another --out; then run "
        "again: the finished inputs of earlier stages are kept"
    )


class _Record:
    """The ``workflow`` section of ``run.json``: ``running`` from the start, the outcome at the end."""

    def __init__(self, config: WorkflowConfig, ctx: StageContext, result: WorkflowResult, swept: int) -> None:
        self.config, self.result, self.swept = config, result, swept
        self.options = {
            "name": config.name,
            "strict": result.strict,
            "workers": ctx.workers,
            "scheduler": ctx.scheduler,
            "stages": [s.stage.value for s in config.stages],
        }
        self.started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self._write("running", None, finished=False)

    def _write(self, status: str, exit_code: int | None, *, finished: bool = True) -> None:
        from medmm.runinfo import update_run_json

        res = self.result
        extra: dict[str, Any] = {
            "status": status,
            "pid": os.getpid(),
            "started_at": self.started,
            "stage_counts": res.counts,
            "stopped_in": res.stopped,
        }
        if not finished:
            extra["finished_at"] = None
        if exit_code is not None:
            extra["exit_code"] = exit_code
            extra["summary"] = summary_line(
                self.config.name, res.counts, res.run_dir, exit_code=exit_code, stopped=res.stopped
            )
        # temp_files_removed: left in the run directory by a run killed mid-write, removed at the start
        counts = {"quarantined": res.n_quarantined, "temp_files_removed": self.swept}
        update_run_json(
            res.run_dir, "workflow", options=self.options, counts=counts, timings=res.timings, extra=extra
        )

    def finished(self) -> None:
        """The stages all ran: ``ok``, or ``quarantined`` when strict and an input is."""
        self._write(outcome(self.result.exit_code), self.result.exit_code)

    def stopped(self, exc: BaseException) -> None:
        """An error or a signal stopped the run (best effort: the run directory may be unwritable)."""
        from medmm.workflows.terminate import Terminated

        if isinstance(exc, Terminated):
            code = exc.exit_code
        elif isinstance(exc, KeyboardInterrupt):
            code = 130
        else:  # as `medmm run` exits: 2 for an error it explains, 3 for a bug
            code = 2 if isinstance(exc, MedmmError) else 3
        try:
            self._write(outcome(code), code)
        except Exception:  # the error that stopped the run is the one to report
            return
