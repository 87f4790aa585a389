"""Shared fixtures: the real data folder (skips cleanly when absent) and a throwaway site key."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd
import pytest

from medmm.datasets import shared_data_dir
from medmm.pseudonym import Pseudonymizer


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or ``$MEDMM_DATA``); the test is skipped when it is absent."""
    root = shared_data_dir()
    if root is None:
        pytest.skip("real data not found: set MEDMM_DATA or place shared/data beside the checkout")
    return root


@pytest.fixture()
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh site key for the test, also exported as ``MEDMM_KEY_FILE``."""
    path = tmp_path / "site.key"
    path.write_text("ab" * 32 + "\n")
    path.chmod(0o600)
    monkeypatch.setenv("MEDMM_KEY_FILE", str(path))
    return path


@pytest.fixture()
def pseudonymizer() -> Pseudonymizer:
    return Pseudonymizer(bytes.fromhex("ab" * 32))


@pytest.fixture(autouse=True)
def _throwaway_site_key_for_reports(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Reports tests run with a throwaway ``$MEDMM_KEY_FILE``: report ids are pseudonymized by default, so a
    parse without ``key_file`` would otherwise read or create the user's default key. The key lives outside
    the test's ``tmp_path`` (several tests read that folder as the reports input); a test asking for the
    ``key_file`` fixture gets that one instead. (A fixture here, not a tests/reports/conftest.py: a second
    module named ``conftest`` breaks ``from conftest import ...`` in tests/models.)"""
    if "reports" not in Path(str(request.node.path)).parts or "key_file" in request.fixturenames:
        return
    monkeypatch = request.getfixturevalue("monkeypatch")
    path = tmp_path_factory.mktemp("site-key") / "site.key"
    path.write_text("ab" * 32 + "\n")
    path.chmod(0o600)
    monkeypatch.setenv("MEDMM_KEY_FILE", str(path))


def _strings_in_run(run: Path, strings: Iterable[str]) -> list[str]:
    """``file: string`` for each of ``strings`` found under ``run`` (parts included): in the raw bytes and,
    for tables, in every cell (compressed Parquet/Feather pages would hide a string from a byte scan)."""
    wanted = list(strings)
    hits = []
    for f in sorted(p for p in run.rglob("*") if p.is_file()):
        blobs = [f.read_bytes().decode("utf-8", "replace")]
        if f.suffix in {".parquet", ".arrow", ".feather"}:
            frame = pd.read_parquet(f) if f.suffix == ".parquet" else pd.read_feather(f)
            blobs.append(frame.astype(str).to_csv())
        hits += [f"{f.relative_to(run)}: {s}" for s in wanted if any(s in b for b in blobs)]
    return hits


@pytest.fixture()
def strings_in_run() -> Callable[[Path, Iterable[str]], list[str]]:
    """A function ``(run_dir, strings) -> ['file: string', ...]``: where identifiers leaked into a run."""
    return _strings_in_run
