"""Header records on disk, partitioned by study/series group: exact round trip and private files."""

from __future__ import annotations

import stat
from pathlib import Path

from medmm.imaging.series import series_key_of
from medmm.ingest.discover import walk_archive
from medmm.ingest.groups import scan_to_parts
from medmm.ingest.headers import drop_batch, group_id, headers_dir, read_group
from medmm.ingest.tasks import scan_batch
from medmm.pseudonym import Pseudonymizer

KEY = b"k" * 32


def test_group_parts_hold_exactly_the_scanned_records_in_private_files(
    sample: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    archive = sample[0]
    entries, _ = walk_archive(archive)
    run = tmp_path / "run"
    for i in range(0, len(entries), 7):  # several batches, hence several parts per group
        scan_to_parts(entries[i : i + 7], str(archive), KEY, str(run), 1)
    headers = headers_dir(run, 1)

    in_memory = [s for s in scan_batch(entries, str(archive), Pseudonymizer(KEY)) if s.instance is not None]
    images = [s for s in in_memory if s.instance is not None and s.instance.kind.is_image]
    expected: dict[str, list] = {}
    for s in images:
        assert s.instance is not None
        gid = group_id(s.instance.study_uid, series_key_of(s.instance))
        expected.setdefault(gid, []).append((s.instance, s.row))
    assert len(expected) > 3 and {p.name for p in headers.iterdir()} == set(expected)
    for gid, pairs in expected.items():  # records and provisional rows round-trip exactly
        assert read_group(headers, gid) == sorted(pairs, key=lambda p: p[0].path)
    assert any(len(list((headers / gid).glob("*.pkl"))) > 1 for gid in expected)

    parts = list(headers.glob("*/*.pkl"))
    assert not list(headers.glob("*/*.tmp")) and not list(headers.glob("*/.*"))
    assert stat.S_IMODE(headers.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.parent.stat().st_mode) == 0o700 for p in parts)
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in parts)
    uids = {s.instance.study_uid for s in images if s.instance is not None and s.instance.study_uid}
    assert uids and not any(uid in p.as_posix() for p in parts for uid in uids)  # names are digests

    batch = parts[0].stem
    drop_batch(headers, batch)
    assert not list(headers.glob(f"*/{batch}.pkl")) and list(headers.glob("*/*.pkl"))
