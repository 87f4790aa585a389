"""The ``medmm`` console script and ``python -m medmm``: the ingest workers' server before typer."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_console_script_points_at_the_light_entry() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["medmm"] == "medmm._entry:main"


def test_entry_module_imports_neither_typer_nor_the_command_line() -> None:
    out = _run(
        "import sys, medmm._entry, medmm.__main__; print('typer' in sys.modules, 'medmm.cli' in sys.modules)"
    )
    assert out.split() == ["False", "False"]


def test_server_is_launched_before_the_command_line_is_imported() -> None:
    code = (
        "import sys\n"
        "import medmm.ingest.workers as w\n"
        "seen = []\n"
        "w.start_workers_for_argv = lambda argv: seen.append((list(argv), 'medmm.cli' in sys.modules))\n"
        "sys.argv = ['medmm', 'ingest', '--help']\n"
        "from medmm._entry import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    print(exc.code, seen)\n"
    )
    out = _run(code).splitlines()[-1]
    assert out == "0 [(['ingest', '--help'], False)]"


def test_python_m_medmm_runs_every_command(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "medmm", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("ingest", "reports", "signals", "demo", "version"):
        assert command in done.stdout
    from medmm.ingest.sample import build_sample_archive

    archive = build_sample_archive(tmp_path / "archive")
    key = tmp_path / "site.key"
    key.write_text("5a" * 32 + "\n")
    key.chmod(0o600)
    cmd = [sys.executable, "-m", "medmm", "ingest", str(archive), "--out", str(tmp_path / "run")]
    done = subprocess.run(
        [*cmd, "--workers", "1", "--key-file", str(key)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = pd.read_parquet(tmp_path / "run" / "manifest.parquet")
    assert manifest["path"].is_unique and (manifest["status"] == "ingested").any()
    assert "medmm ingest:" in done.stdout  # unattended: a plain table, without rich
    table = dict(line.split() for line in done.stdout.splitlines()[1:] if len(line.split()) == 2)
    assert int(table["total"]) == len(manifest) and int(table["ingested"]) > 0
