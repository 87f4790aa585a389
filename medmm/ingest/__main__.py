"""``python -m medmm.ingest ARCHIVE --out RUN``: the ``medmm ingest`` command without the other stages.

Same options and behaviour as ``medmm ingest``. It exists because Dask starts worker processes with
``spawn``, which imports the parent's main module again in every worker: under ``medmm`` that is the
whole CLI with every stage, whereas a package's ``__main__`` is not re-imported, so workers start with
only what ingest needs (see docs/ingest.md, Performance).

>>> from medmm.ingest.__main__ import app
>>> [c.name for c in app.registered_commands]
['ingest']
"""

from __future__ import annotations

import typer

from medmm.ingest.cli import ingest

__all__ = ["app"]

app = typer.Typer(add_completion=False, help="Ingest an imaging archive (same as `medmm ingest`).")
app.command("ingest")(ingest)


@app.callback(invoke_without_command=False)
def _root() -> None:
    """Keep ``ingest`` as an explicit sub-command, as in ``medmm ingest``."""


if __name__ == "__main__":
    app()
