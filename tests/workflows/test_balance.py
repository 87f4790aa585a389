"""Balancer (adaptive factoring over item costs) and run_balanced on a small cluster."""

from __future__ import annotations

import gc
import heapq
import itertools
from typing import Any

import pytest

from medmm.workflows.balance import Balancer


def _simulate(costs: list[float], speeds: dict[str, float], lo: float, hi: float) -> dict[str, Any]:
    """Run a Balancer against workers of constant ``speeds`` (cost per s), each running its tasks in
    order; each result reaches the balancer when its task stops and the next task is there at once."""
    b = Balancer(costs, list(speeds), lo, hi)
    queue: dict[str, list[tuple[int, int]]] = {w: [] for w in speeds}
    clock = dict.fromkeys(speeds, 0.0)
    running: list[tuple[float, str]] = []
    ranges: list[tuple[int, int]] = []
    tasks = dict.fromkeys(speeds, 0)

    def give(planned: list[tuple[str, int, int]]) -> None:
        for w, a, z in planned:
            queue[w].append((a, z))
            ranges.append((a, z))

    def run_next(w: str) -> None:
        if queue[w] and not any(name == w for _, name in running):
            a, z = queue[w].pop(0)
            clock[w] += sum(costs[a:z]) / speeds[w]
            heapq.heappush(running, (clock[w], w))

    give(b.start(0.0))
    for w in speeds:
        run_next(w)
    while running:
        t, w = heapq.heappop(running)
        tasks[w] += 1
        give(b.finished(w, t))
        for v in speeds:
            run_next(v)
    return {"ends": clock, "ranges": sorted(ranges), "tasks": tasks}


def _costs(n: int) -> list[float]:
    return [float(50 + (i * 37) % 400) for i in range(n)]  # uneven, deterministic


@pytest.mark.parametrize(
    "speeds", [{"a": 1.0, "b": 1.0}, {"a": 1.0, "b": 0.9}, {"a": 1.0, "b": 0.6, "c": 1.2}]
)
def test_every_item_once_in_contiguous_ranges_and_workers_end_together(speeds: dict[str, float]) -> None:
    costs = _costs(2_000)
    mean = sum(costs) / len(costs)
    got = _simulate(costs, speeds, 40 * mean, 600 * mean)
    ranges = got["ranges"]
    assert ranges[0][0] == 0 and ranges[-1][1] == len(costs)
    assert all(z == a2 for (_, z), (a2, _) in itertools.pairwise(ranges))  # no gap, no overlap
    ends = got["ends"].values()
    if max(speeds.values()) / min(speeds.values()) < 1.5:
        assert max(ends) - min(ends) <= 2 * max(costs) / min(speeds.values())  # within ~one item
    else:  # the first two tasks each (3/4 of the work) are planned before any speed is known
        assert max(ends) < 0.8 * sum(costs) / len(speeds) / min(speeds.values())  # vs equal shares
    assert all(2 <= n <= 8 for n in got["tasks"].values())


def test_a_slower_worker_gets_less_and_static_halves_would_not_end_together() -> None:
    costs = _costs(2_000)
    mean = sum(costs) / len(costs)
    got = _simulate(costs, {"a": 1.0, "b": 0.8}, 40 * mean, 600 * mean)
    ends = got["ends"]
    assert abs(ends["a"] - ends["b"]) < 0.01 * max(ends.values())
    # the same work split in two equal halves would leave a idle for 20% of b's time
    assert ends["b"] < 0.95 * (sum(costs) / 2 / 0.8)


def test_first_tasks_follow_factoring_then_shrink() -> None:
    b = Balancer([1.0] * 1_000, ["a", "b"], min_cost=40, max_cost=10_000)
    first = b.start(0.0)
    assert [w for w, _, _ in first] == ["a", "b", "a", "b"]
    assert [z - a for _, a, z in first] == [250, 250, 125, 125]  # a quarter, then an eighth each
    nxt = b.finished("a", 1.0)
    assert len(nxt) == 1 and nxt[0][0] == "a" and nxt[0][2] - nxt[0][1] < 125


def test_limits_small_inputs_and_unknown_workers() -> None:
    b = Balancer([1.0] * 100, ["a", "b"], min_cost=10, max_cost=20)
    assert all(z - a <= 20 for _, a, z in b.start(0.0))  # max_cost caps the first tasks
    assert b.finished("nobody", 1.0) == []
    tiny = Balancer([5.0, 5.0], ["a", "b"], min_cost=100, max_cost=1000)
    assert tiny.start(0.0) == [("a", 0, 2)]  # no crumb: all of it in one task
    assert Balancer([], ["a"], 1, 2).start(0.0) == []
    with pytest.raises(ValueError, match="at least one worker"):
        Balancer([1.0], [], 1, 2)


def _total(item: tuple[int, int]) -> int:
    a, z = item
    if a <= 13 < z:
        raise ValueError("bad range")
    return sum(range(a, z))


def test_run_balanced_yields_every_range_once_on_its_worker_with_gc_paused() -> None:
    from medmm.workflows.cluster import TaskFailure, dask_client, run_balanced

    with dask_client(2, processes=False, quiet=True, dashboard=False) as client:
        workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
        b = Balancer([1.0] * 60, workers, min_cost=4, max_cost=20)
        assert gc.isenabled()
        out, during = [], []
        for rng, res in run_balanced(
            client, _total, b, lambda a, z: (a, z), label="t", show_progress=False, pause_gc=True, retries=0
        ):
            out.append((rng, res))
            during.append(gc.isenabled())
        assert gc.isenabled() and not any(during)
    ranges = sorted(r for r, _ in out)
    assert ranges[0][0] == 0 and ranges[-1][1] == 60
    assert all(z == a2 for (_, z), (a2, _) in itertools.pairwise(ranges))
    assert sum(isinstance(res, TaskFailure) for _, res in out) == 1
    for (a, z), res in out:
        if a <= 13 < z:
            assert isinstance(res, TaskFailure) and "bad range" in res.reason
        else:
            assert res == sum(range(a, z))


class _Recording(Balancer):
    """A Balancer that keeps every task it planned."""

    plan: list[tuple[str, int, int]]

    def start(self, now: float) -> list[tuple[str, int, int]]:
        self.plan = super().start(now)
        return self.plan

    def finished(self, name: str, now: float) -> list[tuple[str, int, int]]:
        out = super().finished(name, now)
        self.plan += out
        return out


def _where(item: tuple[int, int]) -> tuple[str, float]:
    import time

    from distributed import get_worker

    time.sleep(0.01 * (item[1] - item[0]))
    return get_worker().address, time.time()


def test_run_balanced_runs_each_task_on_its_planned_worker_in_the_planned_order() -> None:
    from medmm.workflows.cluster import dask_client, run_balanced

    with dask_client(2, processes=False, quiet=True, dashboard=False) as client:
        workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
        b = _Recording([1.0] * 40, workers, min_cost=2, max_cost=10)
        got = dict(run_balanced(client, _where, b, lambda a, z: (a, z), label="t", show_progress=False))
    assert len(got) == len(b.plan) >= 6
    for w in workers:
        mine = [(a, z) for v, a, z in b.plan if v == w]
        assert all(got[r][0] == w for r in mine)  # on the planned worker
        assert [got[r][1] for r in mine] == sorted(got[r][1] for r in mine)  # in the planned order
