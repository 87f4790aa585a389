"""The ``>>>`` examples in medmm.imaging's docstrings run and give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "medmm.imaging.records",
    "medmm.imaging.errors",
    "medmm.imaging.kinds",
    "medmm.imaging._dicom_values",
    "medmm.imaging.dicom_header",
    "medmm.imaging.geometry",
    "medmm.imaging.series",
    "medmm.imaging.series_keys",
    "medmm.imaging.pixels",
    "medmm.imaging.volume_store",
    "medmm.imaging.convert",
    "medmm.imaging.image_file",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
