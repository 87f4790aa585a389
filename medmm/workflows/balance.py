"""Task sizes for a run whose workers should all finish together: adaptive factoring over item costs.

A :class:`Balancer` cuts a sequence of items with known (estimated) costs into contiguous ranges, one
task each, and says which worker runs each one. At the start every worker gets two tasks (one to run,
one queued behind it: a worker never waits for the driver between tasks); then, each time a worker
finishes a task, it gets one more, sized from what is left and from every worker's measured speed so
that all of them are predicted to end at the same moment. Tasks shrink towards the end (each new one
is half of its worker's fair share of what is left, until that share is small), so a worker's last
task is decided only ~2 short tasks before its end, from speeds measured on the same run: a worker
slowed by other processes gets less of the end, a fast one more.

Pure Python, no Dask (:func:`medmm.workflows.cluster.run_balanced` runs it on a cluster); times are
whatever clock the caller passes (seconds).

>>> b = Balancer([1.0] * 100, ["a", "b"], min_cost=5, max_cost=50)
>>> b.start(0.0)
[('a', 0, 25), ('b', 25, 50), ('a', 50, 63), ('b', 63, 76)]
>>> b.finished("b", 1.0)  # b ran 25 in 1 s; a is predicted at the same speed
[('b', 76, 82)]
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate

__all__ = ["Balancer"]


@dataclass
class _Worker:
    tasks: list[float] = field(default_factory=list)  # costs of its running task, then its queued ones
    since: float = 0.0  # when its running task started (the caller's clock)
    done: float = 0.0  # cost of its finished tasks
    busy: float = 0.0  # seconds it spent on them


class Balancer:
    """Plan contiguous tasks over items of given ``costs`` for ``workers`` (see the module).

    Parameters
    ----------
    costs
        Estimated cost of each item, in any unit (e.g. characters), in the order the items are cut.
    workers
        Names of the workers (e.g. Dask addresses); each task is planned for one of them.
    min_cost, max_cost
        A task's cost stays within these (except the last piece of the input, and a worker's last
        task, which may be smaller so that the workers end together; pieces under ``min_cost / 4``
        are not given out on their own).
    """

    def __init__(
        self, costs: Sequence[float], workers: Sequence[str], min_cost: float, max_cost: float
    ) -> None:
        if not workers:
            raise ValueError("Balancer needs at least one worker")
        self.ends = list(accumulate(float(c) for c in costs))
        self.total = self.ends[-1] if self.ends else 0.0
        self.lo, self.hi = float(min_cost), max(float(min_cost), float(max_cost))
        self.next = 0  # first item not planned yet
        self.planned = 0.0  # cost of items[: self.next]
        self.workers = {w: _Worker() for w in workers}

    @property
    def left(self) -> float:
        """Cost of the items not planned yet."""
        return self.total - self.planned

    def start(self, now: float) -> list[tuple[str, int, int]]:
        """The first tasks, ``(worker, start, stop)``: two per worker (fewer for a small input)."""
        out = []
        for w in self.workers.values():
            w.since = now
        for _ in range(2):
            for name in self.workers:
                out += self._give(name, now, idle=True)
        return out

    def finished(self, name: str, now: float) -> list[tuple[str, int, int]]:
        """Worker ``name`` finished its running task at ``now``: the task it gets next (if any)."""
        w = self.workers.get(name)
        if w is None or not w.tasks:  # unknown worker, or a task reported twice (retried)
            return []
        w.done += w.tasks.pop(0)
        w.busy += max(0.0, now - w.since)
        w.since = now  # its queued task (if any) starts now
        return self._give(name, now, idle=not w.tasks)

    def _rate(self, w: _Worker) -> float:
        if w.busy > 0 and w.done > 0:
            return w.done / w.busy
        known = [v.done / v.busy for v in self.workers.values() if v.busy > 0 and v.done > 0]
        return sum(known) / len(known) if known else 1.0  # before any result: all alike

    def _free_at(self, w: _Worker, rate: float, now: float) -> float:
        """When ``w`` is predicted to have finished everything it holds."""
        if not w.tasks:
            return now
        running = max(0.0, w.tasks[0] - rate * max(0.0, now - w.since))
        return now + (running + sum(w.tasks[1:])) / rate

    def share(self, name: str, now: float) -> float:
        """Cost of what is left that ``name`` should take for every worker to end together."""
        rates = {n: self._rate(w) for n, w in self.workers.items()}
        free = {n: self._free_at(w, rates[n], now) for n, w in self.workers.items()}
        # water filling: the common end T with sum(rate * (T - free)) == left over the workers
        # free before T (a worker that holds more than its share takes nothing more)
        order = sorted(free, key=free.__getitem__)
        left, r_sum, rf_sum, end = self.left, 0.0, 0.0, now
        for i, n in enumerate(order):
            r_sum += rates[n]
            rf_sum += rates[n] * free[n]
            end = (left + rf_sum) / r_sum
            if i + 1 == len(order) or end <= free[order[i + 1]]:
                break
        return max(0.0, rates[name] * (end - free[name]))

    def _give(self, name: str, now: float, idle: bool) -> list[tuple[str, int, int]]:
        left = self.left
        if left <= 0:
            return []
        fair = self.share(name, now)
        if fair < self.lo / 4 and not idle:
            return []  # not worth a task; the others take the rest
        cost = fair if fair < 2 * self.lo else max(self.lo, fair / 2)
        cost = min(self.hi, max(cost, self.lo / 4))
        if left - cost < self.lo / 4:  # no crumb left behind
            cost = left
        start = self.next
        stop = bisect.bisect_left(self.ends, self.planned + cost - 1e-9, lo=start) + 1
        stop = min(max(stop, start + 1), len(self.ends))
        # the item boundary nearest to the wanted cost
        if stop - 1 > start and (self.ends[stop - 1] - self.planned - cost) > (
            cost - (self.ends[stop - 2] - self.planned)
        ):
            stop -= 1
        got = self.ends[stop - 1] - self.planned
        self.next, self.planned = stop, self.ends[stop - 1]
        self.workers[name].tasks.append(got)
        return [(name, start, stop)]
