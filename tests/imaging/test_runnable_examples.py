"""The ``>>>`` examples of the file-level entry points run as written (no +SKIP, no undefined names)."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

from medmm.imaging import convert, dicom_header
from medmm.imaging.convert import convert_image_file
from medmm.pseudonym import Pseudonymizer


@pytest.mark.parametrize(
    ("module", "names"),
    [
        (convert, ["medmm.imaging.convert", "medmm.imaging.convert.convert_image_file"]),
        (dicom_header, ["medmm.imaging.dicom_header", "medmm.imaging.dicom_header.read_dicom_header"]),
    ],
)
def test_examples_run_unskipped(module: object, names: list[str]) -> None:
    tests = {t.name: t for t in doctest.DocTestFinder().find(module)}
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for name in names:
        examples = tests[name].examples
        assert examples and not any(e.options.get(doctest.SKIP) for e in examples), name
        result = runner.run(tests[name])
        assert result.failed == 0 and result.attempted == len(examples), name


def test_wrong_format_names_the_choices(tmp_path: Path, pseudonymizer: Pseudonymizer) -> None:
    with pytest.raises(ValueError, match=r"fmt must be 'nifti' or 'analyze', not 'nifty' \(a\.nii\)"):
        convert_image_file("a.nii", tmp_path, tmp_path / "run", pseudonymizer, "nifty")
