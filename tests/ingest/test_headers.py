"""Header records spilled to disk: exact round trip, private files, and the same plan as in memory."""

from __future__ import annotations

import stat
from pathlib import Path

from medmm.imaging.records import DicomInstance
from medmm.ingest.discover import pair_units, walk_archive
from medmm.ingest.headers import InstanceRef, load_instances
from medmm.ingest.resolve import RowBook, plan_jobs
from medmm.ingest.tasks import scan_batch
from medmm.pseudonym import Pseudonymizer


def _scan(archive: Path, headers: Path | None) -> tuple[list, dict, dict]:
    entries, _ = walk_archive(archive)
    by_rel = {e.rel: e for e in entries}
    pz = Pseudonymizer(b"k" * 32)
    scanned = []
    for i in range(0, len(entries), 7):  # several batches, hence several header parts
        scanned += scan_batch(entries[i : i + 7], str(archive), pz, None if headers is None else str(headers))
    return scanned, by_rel, pair_units(by_rel)


def test_spilled_headers_give_the_same_records_and_plan(
    sample: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    archive = sample[0]
    headers = tmp_path / "run" / ".parts" / "headers"
    kept, by_rel, pairs = _scan(archive, None)
    spilled, _, _ = _scan(archive, headers)

    records = {s.row.path: s.instance for s in kept if s.instance is not None}
    refs = {s.row.path: s.instance for s in spilled if s.instance is not None}
    assert len(records) > 10 and set(refs) == set(records)
    assert all(isinstance(r, InstanceRef) for r in refs.values())
    assert all(isinstance(r, DicomInstance) for r in records.values())
    paths = sorted(refs)
    assert load_instances([refs[p] for p in paths]) == [records[p] for p in paths]
    assert [s.row for s in spilled] == [s.row for s in kept]

    parts = list(headers.glob("*.pkl"))
    assert len(parts) > 1 and not list(headers.glob("*.tmp"))
    assert stat.S_IMODE(headers.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in parts)

    book_a, book_b = RowBook(None, by_rel), RowBook(None, by_rel)
    jobs_a = plan_jobs(kept, book_a, pairs)
    jobs_b = plan_jobs(spilled, book_b, pairs)
    assert book_b.rows == book_a.rows and len(book_a.rows) > 0
    assert any(r.status.value == "duplicate" for r in book_a.rows.values())
    assert any(r.status.value == "non_image" for r in book_a.rows.values())
    assert [(j.key, j.paths, j.stack) for j in jobs_b] == [(j.key, j.paths, j.stack) for j in jobs_a]
    dicom_b = [j for j in jobs_b if j.stack is not None]
    assert dicom_b and all(isinstance(i, InstanceRef) for j in dicom_b for i in j.instances)
    for ja, jb in zip(jobs_a, jobs_b, strict=True):
        if ja.stack is not None:
            assert load_instances(jb.instances) == ja.instances
