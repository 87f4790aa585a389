"""pydicom for the ingest workers' server, without the HTTP client it imports for downloads.

pydicom's pixel module imports ``pydicom.data`` (for its palette files), whose downloader imports
``requests`` when it can (``try: import requests``), else falls back to ``urllib``. The workers never
download anything, and ``requests`` with urllib3 costs ~0.1 s of CPU in the server every run. While
pydicom is imported here, ``requests`` looks absent (a ``None`` entry in ``sys.modules``, Python's
documented way to make an import fail); the entry is removed afterwards, so a later ``import requests``
works as usual. pydicom itself is not changed; only its test-data downloader uses urllib. Nothing
happens when ``requests`` or pydicom is already imported.

>>> import medmm.ingest._pydicom_import
>>> import pydicom
>>> pydicom.__name__
'pydicom'
"""

from __future__ import annotations

import sys

__all__: list[str] = []

_OPTIONAL = ("requests", "tqdm")


def _import_pydicom() -> None:
    if "pydicom" in sys.modules:
        return
    hidden = [name for name in _OPTIONAL if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import pydicom  # noqa: F401
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


_import_pydicom()
