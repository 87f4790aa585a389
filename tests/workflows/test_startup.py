"""Start-up of local clusters: frozen worker server, a client that sees workers join at once, early launch."""

from __future__ import annotations

import gc
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_all_start_methods, get_context
from typing import Any

import pytest

from medmm.ingest.workers import start_workers_for_argv
from medmm.workflows import forkserver
from medmm.workflows.cluster import LOCAL_QUIET_CONFIG, dask_client

needs_forkserver = pytest.mark.skipif(
    "forkserver" not in get_all_start_methods(), reason="platform without forkserver"
)


@needs_forkserver
def test_worker_server_freezes_its_objects_before_forking() -> None:
    """Children forked from the server find its objects frozen: their first full collection skips them."""
    assert forkserver.start_worker_server(["json"], malloc_trim=False)
    try:
        with ProcessPoolExecutor(1, mp_context=get_context("forkserver")) as pool:
            frozen = pool.submit(gc.get_freeze_count).result(timeout=120)
    finally:
        forkserver.stop_worker_server()
    assert frozen > 10_000  # the server's modules, classes and functions (~90,000 with distributed)


def _counting_identity(cluster: Any) -> list[float]:
    """Record when the scheduler answers ``identity`` (what ``Client.wait_for_workers`` polls)."""
    scheduler = cluster.scheduler
    calls: list[float] = []
    original = scheduler.handlers["identity"]

    def identity(*args: Any, **kwargs: Any) -> Any:
        calls.append(time.monotonic())
        return original(*args, **kwargs)

    scheduler.handlers["identity"] = identity
    return calls


def test_local_client_sees_a_joining_worker_without_polling_the_scheduler() -> None:
    """The wait ends when the worker joins, with one ``identity`` message instead of one per 0.1 s."""
    with dask_client(workers=1, processes=False, quiet=True) as client:
        cluster = client.cluster
        calls = _counting_identity(cluster)
        joined: list[float] = []

        from distributed.diagnostics.plugin import SchedulerPlugin

        class Joined(SchedulerPlugin):
            def add_worker(self, scheduler: Any = None, worker: str = "") -> None:
                joined.append(time.monotonic())

        cluster.scheduler.add_plugin(Joined(), name="joined")
        timer = threading.Timer(0.5, cluster.scale, args=(2,))  # a second worker joins in 0.5 s
        timer.start()
        client.wait_for_workers(2, timeout=60)
        done = time.monotonic()
        timer.join()
    assert joined and done >= joined[-1]
    # the stock client asks the scheduler every 0.1 s (>= 5 messages here) and sees the worker up to
    # 0.1 s late; this one reads the scheduler's state in this process and asks once at the end
    assert len(calls) <= 2


def test_local_client_wait_times_out_like_the_stock_client() -> None:
    with dask_client(workers=1, processes=False, quiet=True) as client:
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            client.wait_for_workers(3, timeout=0.3)
        assert 0.3 <= time.monotonic() - start < 5
        client.wait_for_workers(1, timeout=5)  # one is there


def test_client_of_an_existing_scheduler_is_the_stock_client() -> None:
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
    with cluster, dask_client(scheduler=cluster.scheduler_address, quiet=True) as client:
        assert getattr(client, "_medmm_scheduler", None) is None
        client.wait_for_workers(1, timeout=30)
        assert sum(client.nthreads().values()) == 1


@needs_forkserver
@pytest.mark.parametrize(
    ("argv", "launched"),
    [
        (["ingest", "arch", "--out", "run", "--workers", "2"], True),
        (["-v", "ingest", "arch", "--out", "run"], True),
        (["ingest", "arch", "--out", "run", "--scheduler", "tcp://host:8786"], False),
        (["ingest", "arch", "--out", "run", "--scheduler=tcp://host:8786"], False),
        (["ingest", "--help"], False),
        (["reports", "parse", "x"], False),
        ([], False),
    ],
)
def test_early_launch_only_for_a_local_ingest(argv: list[str], launched: bool) -> None:
    assert forkserver.worker_server_pid() is None
    try:
        assert start_workers_for_argv(argv) is launched
        assert (forkserver.worker_server_pid() is not None) is launched
    finally:
        forkserver.stop_worker_server()
    assert forkserver.worker_server_pid() is None


def _intervals() -> dict[str, Any]:
    import dask

    return {k: dask.config.get(k) for k in LOCAL_QUIET_CONFIG}


@needs_forkserver
def test_local_clusters_get_the_quiet_intervals_then_config_is_restored() -> None:
    import distributed  # noqa: F401  # its defaults in dask's configuration

    before = _intervals()
    with dask_client(workers=1, quiet=True, malloc_trim=False, worker_preload=["json"]) as client:
        (in_worker,) = client.run(_intervals).values()
        in_scheduler = client.run_on_scheduler(_intervals)
        scheduler_tick = client.cluster.scheduler.periodic_callbacks["tick"].callback_time
    assert in_worker == in_scheduler == LOCAL_QUIET_CONFIG
    assert before != LOCAL_QUIET_CONFIG and _intervals() == before  # the driver's config as it was
    assert scheduler_tick == 200  # ms


def test_unattended_runs_import_no_rich() -> None:
    """Without progress bars and messages, neither ``dask_client`` nor ``run_tasks`` imports rich."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from medmm.workflows.cluster import dask_client, run_tasks\n"
        "with dask_client(workers=1, processes=False, quiet=True) as c:\n"
        "    out = sorted(r for _, r in run_tasks(c, abs, [-1, -2], label='t', show_progress=False))\n"
        "print(out, 'rich' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("]")[-1].split() == ["False"] and done.stdout.startswith("[1, 2]")


def test_progress_bars_still_report_every_result(capsys: pytest.CaptureFixture[str]) -> None:
    from medmm.workflows.cluster import run_tasks

    with dask_client(workers=1, processes=False, quiet=True) as client:
        got = dict(run_tasks(client, abs, [-1, -2, -3], label="abs", show_progress=True))
    assert got == {0: 1, 1: 2, 2: 3}
    assert "abs" in capsys.readouterr().err
