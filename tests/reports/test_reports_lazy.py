"""`medmm --help` (and every Dask worker, which re-imports the CLI) imports `medmm.reports.cli`; the
reports package must not import its rule modules (findings, lexicon, negation, measurements, sections and
their pydantic records: ~60 ms) then."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_cli_imports_no_reports_module() -> None:
    code = (
        "import sys, medmm.cli\n"
        "print(sorted(m for m in sys.modules if m.startswith('medmm.reports')))\n"
        "import medmm.reports as r\n"
        "print(sorted(n for n in r.__all__ if getattr(r, n, None) is None))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded, unresolved = out.splitlines()
    assert loaded == "['medmm.reports', 'medmm.reports.cli']"
    assert unresolved == "[]"  # every exported name still resolves (lazily)
