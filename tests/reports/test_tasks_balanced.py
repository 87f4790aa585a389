"""parse's balanced tasks: blocks staged in one scratch file, report costs, outputs equal to in-process."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from medmm.reports import tasks
from medmm.reports.io.inputs import ReportInput

TEXTS = [
    "No pleural effusion. Heart size is normal.",
    "Mild cardiomegaly. 5 mm nodule in the right upper lobe.",
    "Left basilar atelectasis, no pneumothorax.",
    "Healed rib fracture. No acute disease.",
    "Stable 1.2 x 0.8 cm granuloma. Lungs are clear.",
]


def _reports(n: int) -> list[ReportInput]:
    return [ReportInput(f"r{i}", f"x#{i}", "csv", TEXTS[i % len(TEXTS)] * (1 + i % 3), 10) for i in range(n)]


def test_staged_blocks_load_back_any_run_of_whole_blocks(tmp_path: Path) -> None:
    reports = _reports(11)
    work = tasks.Work.of(reports, [f"k{i}" for i in range(11)])
    offsets = tasks.stage_blocks(tmp_path / "b.pkl", work, block=4)
    assert len(offsets) == 4 and offsets[-1] == (tmp_path / "b.pkl").stat().st_size
    for a, z in [(0, 3), (1, 2), (1, 3), (0, 1)]:
        got = tasks.Staged(str(tmp_path / "b.pkl"), offsets[a], offsets[z]).load()
        cut = slice(4 * a, 4 * z)
        assert got == tasks.Work(
            work.ids[cut], work.texts[cut], work.sections[cut], work.paths[cut], work.keys[cut]
        )


def test_report_costs_grow_with_length() -> None:
    assert tasks.report_costs(["ab", "", "abcd"]) == [
        2 + tasks.REPORT_COST,
        tasks.REPORT_COST,
        4 + tasks.REPORT_COST,
    ]


@pytest.fixture(scope="module")
def client() -> Any:
    from medmm.workflows.cluster import dask_client

    with dask_client(1, processes=False, quiet=True, dashboard=False) as c:
        yield c


@pytest.mark.parametrize("shared", [True, False])
def test_balanced_tasks_cover_every_report_once(
    client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared: bool
) -> None:
    from medmm.reports.pipeline import BatchTables, _balanced_tasks

    monkeypatch.setattr(tasks, "BLOCK", 2)
    monkeypatch.setattr(tasks, "TASK_LIMITS", (2, 6))
    todo = _reports(23)
    keys = {r.report_id: f"k-{r.report_id}" for r in todo}
    addresses = sorted(client.scheduler_info(n_workers=-1)["workers"])
    args = (str(tmp_path), "no-marker", None, True)  # no marker: the tables come back
    got = list(_balanced_tasks(client, todo, addresses, keys, shared, tmp_path / "todo", args))
    ranges = sorted(r for r, _ in got)
    assert len(ranges) >= 3 and ranges[0][0] == 0 and ranges[-1][1] == len(todo)
    assert all(z == a2 and z % 2 == 0 for (_, z), (a2, _) in itertools.pairwise(ranges))
    ids = [i for _, res in got for i in res.reports["report_id"].to_pylist()]
    assert all(isinstance(res, BatchTables) for _, res in got)
    assert sorted(ids) == sorted(keys)
    assert (tmp_path / "todo" / "blocks.pkl").exists() == shared


def test_parse_with_two_workers_and_balanced_tasks_equals_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medmm.reports.pipeline import parse_reports
    from medmm.runinfo import read_run_json

    monkeypatch.setattr(tasks, "BLOCK", 2)  # the plan is made in this process
    monkeypatch.setattr(tasks, "TASK_LIMITS", (2, 6))
    n = 30
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(n)], "text": [r.text for r in _reports(n)]})
    frame.to_csv(tmp_path / "r.csv", index=False)
    runs = {w: tmp_path / f"w{w}" for w in (0, 2)}
    for w, run in runs.items():
        parse_reports(tmp_path / "r.csv", run, workers=w, keep_text=True)
    for name in ("entities", "report_labels", "report_texts", "manifest_reports"):
        a, b = (pd.read_parquet(runs[w] / f"{name}.parquet") for w in (0, 2))
        assert len(a) and a.equals(b), name
    options = read_run_json(runs[2])["stages"]["reports"]["options"]
    assert 2 <= options["batch_size"] <= 8  # the largest task: within the (patched) limits, whole blocks
    assert not list((runs[2] / ".reports_parts").glob(".todo-*"))  # scratch removed
