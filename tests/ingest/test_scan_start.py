"""The scan's first batches are submitted before any worker of a starting cluster has joined."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from medmm.ingest import scan_phase
from medmm.ingest.stream import run_streamed, submit_now


@pytest.fixture
def empty_cluster() -> Iterator[tuple[Any, Any]]:
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=0, threads_per_worker=1, processes=False, dashboard_address=None)
    client = Client(cluster)
    try:
        yield client, cluster
    finally:
        client.close()
        cluster.close()


def _slow_double(x: int) -> int:
    time.sleep(0.01)
    return 2 * x


def test_started_tasks_count_in_the_window_and_are_yielded(empty_cluster: tuple[Any, Any]) -> None:
    client, cluster = empty_cluster
    early = submit_now(client, _slow_double, [0, 1, 2])  # no worker yet: they wait in the scheduler
    assert all(fut.status == "pending" for _, fut in early)
    cluster.scale(1)
    client.wait_for_workers(1, timeout=30)
    seen = dict(run_streamed(client, _slow_double, iter(range(3, 40)), label="x", window=4, started=early))
    assert seen == {i: 2 * i for i in range(40)}
    only_early = submit_now(client, _slow_double, [7])
    assert list(run_streamed(client, _slow_double, iter([]), label="x", started=only_early)) == [(7, 14)]


def test_a_starting_cluster_gets_its_first_batches_before_a_worker_joins(
    tmp_path: Path, empty_cluster: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from medmm.ingest.discover import iter_archive
    from medmm.ingest.journal import Journal

    client, cluster = empty_cluster
    archive = tmp_path / "archive"
    archive.mkdir()
    for i in range(40):
        (archive / f"note{i:02d}.txt").write_text("not an image")
    submitted: list[tuple[int, int]] = []  # (tasks, workers at the time)
    real_submit, real_wait = scan_phase.submit_now, client.wait_for_workers

    def submit(client: Any, fn: Any, items: list[Any], **kwargs: Any) -> list[Any]:
        submitted.append((len(items), len(client.nthreads())))
        return real_submit(client, fn, items, **kwargs)

    def wait(n: int, timeout: float | None = None) -> None:  # a worker joins while the driver waits
        cluster.scale(1)
        real_wait(n, timeout=30)

    monkeypatch.setattr(scan_phase, "submit_now", submit)
    monkeypatch.setattr(client, "wait_for_workers", wait)
    key = b"k" * 32
    entries = list(iter_archive(archive, []))
    found = scan_phase.scan_entries(
        client, iter(entries), len(entries), archive, key, 5, False, tmp_path / "run", 1,
        Journal(tmp_path / "run"), 1, set(), starting=True,
    )  # fmt: skip
    assert submitted == [(scan_phase.EARLY_BATCHES_PER_THREAD, 0)]  # 2 batches waited for the worker
    assert sum(found.groups.values()) == 0 and not found.images  # text files: final rows, no groups
    rows = sum(len(r) for r in _row_parts(tmp_path / "run"))
    assert rows == 40  # every file scanned once: early batches, then the stream


def _row_parts(run: Path) -> list[list[Any]]:
    import pickle

    from medmm.ingest.journal import row_parts

    return [pickle.loads(p.read_bytes()) for p in row_parts(run / ".parts")]
