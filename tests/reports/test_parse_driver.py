"""The driver side of ``parse`` on Dask (``run_tasks(..., unfetched=PartWritten, pause_gc=True)``): parts
written by the workers are not fetched, tables and failures are, and the driver's cyclic GC is off only
while the tasks run."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

from medmm.reports.io.inputs import ReportInput


@pytest.fixture(scope="module")
def client() -> Any:
    from medmm.workflows.cluster import dask_client

    with dask_client(1, processes=False, quiet=True, dashboard=False) as c:
        yield c


def run_parse(client: Any, items: list[Any], args: tuple[Any, ...], **options: Any) -> Any:
    """The tasks as ``parse_reports`` runs them."""
    from medmm.reports.tasks import PartWritten, parse_to_part
    from medmm.workflows.cluster import run_tasks

    return run_tasks(
        client,
        parse_to_part,
        items,
        label="reports",
        args=args,
        unfetched=PartWritten,
        pause_gc=True,
        **options,
    )


def _work(i: int) -> Any:
    from medmm.reports.tasks import Work

    return Work.of([ReportInput(f"r{i}", f"x#{i}", "csv", "No pneumothorax.", 16)], [f"k{i}"])


def test_parts_are_not_fetched_tables_and_failures_are(client: Any, tmp_path: Path) -> None:
    from medmm.reports.pipeline import BatchTables
    from medmm.reports.resume import Parts
    from medmm.reports.tasks import stage
    from medmm.workflows.cluster import TaskFailure

    parts = Parts(tmp_path)
    token = parts.mark()
    staged = stage(tmp_path / "todo", [_work(0), _work(1)])
    items = [*staged, str(tmp_path / "todo" / "missing.pkl")]
    got = dict(run_parse(client, items, (str(tmp_path), token, None, True), retries=0, show_progress=False))
    assert sorted(got) == [0, 1, 2]
    assert got[0] is None and got[1] is None  # written by the worker: nothing sent back
    assert parts.done_keys() == {"k0", "k1"}
    assert isinstance(got[2], TaskFailure) and "missing.pkl" in got[2].reason

    # a worker that does not see the marker sends its tables, which the driver fetches
    args = (str(tmp_path), "not-a-token", None, True)
    other = dict(run_parse(client, [_work(2)], args, show_progress=False))
    assert isinstance(other[0], BatchTables) and other[0].entities["finding"].to_pylist() == ["pneumothorax"]


def test_gc_off_while_tasks_run_then_restored(client: Any, tmp_path: Path) -> None:
    from medmm.reports.resume import Parts
    from medmm.reports.tasks import stage

    token = Parts(tmp_path).mark()
    staged = stage(tmp_path / "todo", [_work(3), _work(4)])
    assert gc.isenabled()
    during = [gc.isenabled() for _ in run_parse(client, staged, (str(tmp_path), token, None, True))]
    assert during == [False, False] and gc.isenabled()
    gc.disable()  # a caller that had it off keeps it off
    try:
        list(run_parse(client, staged, (str(tmp_path), token, None, True), show_progress=False))
        assert not gc.isenabled()
    finally:
        gc.enable()
    # stopped early (the consumer raised): restored when the generator is closed
    it = run_parse(client, staged, (str(tmp_path), token, None, True), show_progress=False)
    next(it)
    assert not gc.isenabled()
    it.close()
    assert gc.isenabled()
