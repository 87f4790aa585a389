"""`medmm --help` (and every Dask worker, which re-imports the CLI) imports each stage's ``cli`` module;
the stage packages below must not import their own modules then (share: key handling, self-check
vocabulary, table policies; reports: findings, lexicon, negation, measurements, sections and their
pydantic records, ~60 ms), while every exported name still resolves lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("package", ["medmm.share", "medmm.reports"])
def test_importing_the_cli_imports_no_module_of_the_package(package: str) -> None:
    code = (
        "import importlib, sys, medmm.cli\n"
        f"print(sorted(m for m in sys.modules if m.startswith('{package}')))\n"
        f"p = importlib.import_module('{package}')\n"
        "print(sorted(n for n in p.__all__ if getattr(p, n, None) is None))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded, unresolved = out.splitlines()
    assert loaded == str([package, f"{package}.cli"])
    assert unresolved == "[]"  # every exported name still resolves (lazily)
