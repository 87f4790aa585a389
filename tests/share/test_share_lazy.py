"""`medmm --help` (and every Dask worker, which re-imports the CLI) imports `medmm.share.cli`; the share
package must not import its modules (key handling, self-check vocabulary, table policies) then."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_share_cli_imports_no_share_module() -> None:
    code = (
        "import sys, medmm.share.cli\n"
        "print(sorted(m for m in sys.modules if m.startswith('medmm.share')))\n"
        "import medmm.share as s\n"
        "print(sorted(n for n in s.__all__ if getattr(s, n, None) is None))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded, unresolved = out.splitlines()
    assert loaded == "['medmm.share', 'medmm.share.cli']"
    assert unresolved == "[]"  # every exported name still resolves (lazily)
