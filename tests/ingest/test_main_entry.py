"""``python -m medmm.ingest``: the ingest command alone (same options), importing no torch or MONAI."""

from __future__ import annotations

import subprocess
import sys

from typer.main import get_command

from medmm.ingest.__main__ import app


def test_python_m_medmm_ingest_runs_the_ingest_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "medmm.ingest", "ingest", "--help"], capture_output=True, text=True, check=True
    )
    assert "--workers" in done.stdout and "--key-file" in done.stdout
    params = {p.name for p in get_command(app).commands["ingest"].params}  # type: ignore[attr-defined]
    assert {"archive", "out", "workers", "scheduler", "key_file", "strict", "batch_size"} <= params


def test_entry_module_imports_no_heavy_stage() -> None:
    code = "import sys, medmm.ingest.__main__; print('torch' in sys.modules, 'monai' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]
