"""Silence MONAI's nvImageCodec notices, which tell a user nothing they can act on.

MONAI's ``LoadImage`` builds every reader it knows, the GPU DICOM decoder ``NvImgCodecPydicomReader``
included, even when given another reader (medmm's image branch reads NIfTI with ``NibabelReader``). On a
machine without nvImageCodec that reader logs one WARNING and warns once per transform chain built; pydicom
decodes DICOM as usual, so there is nothing to fix. Only those exact messages are dropped: medmm's own
warnings and every other warning or log record pass.

>>> import warnings
>>> monai = "NvImgCodecPydicomReader: nvImageCodec decoder plugin did not register successfully."
>>> with warnings.catch_warnings(record=True) as seen:
...     warnings.simplefilter("always")
...     with quiet_monai_notices():
...         warnings.warn(monai)
...         warnings.warn("medmm: kept")
>>> [str(w.message) for w in seen]
['medmm: kept']
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

__all__ = ["quiet_monai_notices"]

_NVIMGCODEC_LOGGER = "monai.data.nvimgcodec_pydicom_plugin"
_NVIMGCODEC_LOG = "nvImageCodec is not available; skipping pydicom decoder plugin registration"
_NVIMGCODEC_WARNING = r"NvImgCodecPydicomReader: nvImageCodec decoder plugin did not register successfully"


class _DropMessage(logging.Filter):
    """Drop the log records whose message starts with ``prefix`` (every other record passes)."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


@contextlib.contextmanager
def quiet_monai_notices() -> Iterator[None]:
    """Within the block, drop MONAI's nvImageCodec log record and warning (those exact messages only)."""
    logger = logging.getLogger(_NVIMGCODEC_LOGGER)
    drop = _DropMessage(_NVIMGCODEC_LOG)
    logger.addFilter(drop)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_NVIMGCODEC_WARNING, category=UserWarning)
            yield
    finally:
        logger.removeFilter(drop)
