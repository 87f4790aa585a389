"""Every reports test runs with a throwaway site key (``$MEDMM_KEY_FILE``): report ids are pseudonymized
by default, so a parse without ``key_file`` would otherwise read or create the user's default key. The
key lives outside the test's ``tmp_path`` (several tests read that folder as the reports input); a test
asking for the ``key_file`` fixture gets that one instead."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _throwaway_site_key(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path_factory.mktemp("site-key") / "site.key"
    path.write_text("ab" * 32 + "\n")
    path.chmod(0o600)
    monkeypatch.setenv("MEDMM_KEY_FILE", str(path))
    return path
