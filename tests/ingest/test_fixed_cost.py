"""Start-up work a fresh ingest run skips: pandas/Arrow until the tables, ``requests`` in the workers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from medmm.ingest.driver_threads import TABLE_MODULES, import_in_background
from medmm.ingest.journal import Journal
from medmm.ingest.records import IngestManifestRow
from medmm.records import Status


def _python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_fresh_run_dir_loads_without_pandas_or_arrow(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from medmm.ingest.journal import Journal; "
        f"j = Journal(Path({str(tmp_path)!r})); print(j.is_fresh(), j.load(), "
        "sorted({m.split('.')[0] for m in sys.modules} & {'pandas', 'pyarrow'}))"
    )
    assert _python(code) == "True ({}, {}) []"


def test_run_dir_with_a_part_or_table_is_not_fresh(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    row = IngestManifestRow(path="a.txt", size=1, mtime_ns=0, format="text", status=Status.non_image)
    journal.add([row])
    journal.flush()
    assert not journal.is_fresh()
    assert list(journal.load()[0]) == ["a.txt"]  # read from the part, with Arrow
    journal.finish_streamed(lambda: ["a.txt"], {})  # parts merged into manifest.parquet, then removed
    assert not (tmp_path / ".parts").exists()
    assert not journal.is_fresh() and list(journal.load()[0]) == ["a.txt"]


def test_table_modules_import_in_a_background_thread() -> None:
    code = (
        "import sys; from medmm.ingest.driver_threads import TABLE_MODULES, import_in_background; "
        "assert 'pandas' not in sys.modules; import_in_background(TABLE_MODULES).join(); "
        "print(all(m in sys.modules for m in TABLE_MODULES), 'pandas' in sys.modules)"
    )
    assert _python(code) == "True False"  # the tables are written without pandas (arrow_rows)
    thread = import_in_background(["medmm.no_such_module", *TABLE_MODULES])  # a failure is left alone
    thread.join(timeout=60)
    assert not thread.is_alive() and "pyarrow.parquet" in TABLE_MODULES


def test_worker_modules_bring_no_tables_into_the_server() -> None:
    code = (
        "import sys, importlib; from medmm.ingest.workers import WORKER_MODULES; "
        "[importlib.import_module(m) for m in WORKER_MODULES]; "
        "print('pydicom' in sys.modules, 'pandas' in sys.modules, 'pyarrow' in sys.modules)"
    )
    # nor pydicom: a plain DICOM file is scanned and converted without it (nor nibabel, which imports it)
    assert _python(code) == "False False False"
