"""Building the image branch's MONAI transform chain prints no nvImageCodec notice (train/evaluate/predict).

MONAI's ``LoadImage`` logs a WARNING and warns when nvImageCodec is missing (it builds its GPU DICOM reader
even when given ``NibabelReader``); the notice is emitted once per process, so the check runs in a fresh
interpreter.
"""

from __future__ import annotations

import subprocess
import sys

_BUILD = """
import logging
logging.basicConfig(level=logging.WARNING)
from medmm.models.config import ImageInputConfig
from medmm.models.transforms import image_transform
image_transform(ImageInputConfig(), 2)
image_transform(ImageInputConfig(), 3)
print("built")
"""


def test_image_transform_is_built_without_monai_nvimagecodec_notices() -> None:
    res = subprocess.run(
        [sys.executable, "-W", "always", "-c", _BUILD], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    assert "built" in res.stdout
    assert "nvImageCodec" not in res.stdout + res.stderr
