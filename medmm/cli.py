"""The ``medmm`` command line (typer).

Each stage owns its commands in ``medmm/<stage>/cli.py`` with a ``register(app)`` function; those
modules import only typer at module level (heavy imports happen inside commands), so ``medmm --help``
is instant.

>>> from typer.testing import CliRunner
>>> CliRunner().invoke(app, ["--help"]).exit_code
0
"""

from __future__ import annotations

import logging

import typer

from medmm._lazy import import_optional

__all__ = ["app", "main"]

#: Command modules, in help order. Each has ``register(app: typer.Typer) -> None``.
COMMAND_MODULES: tuple[str, ...] = (
    "medmm.ingest.cli",
    "medmm.reports.cli",
    "medmm.signals.cli",
    "medmm.align.cli",
    "medmm.models.cli",
    "medmm.anomaly.cli",
    "medmm.predict.cli",
    "medmm.workflows.cli",
    "medmm.demo.cli",
    "medmm.share.cli",
)

app = typer.Typer(
    name="medmm",
    help="Medical multimodal analysis: archive -> manifest -> imaging/reports/signals -> records -> models.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details (never PHI)."),
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command()
def version() -> None:
    """Print medmm's version and the versions of its key dependencies."""
    from medmm.runinfo import package_versions

    for name, ver in package_versions().items():
        typer.echo(f"{name:20s} {ver}")


def _register_all() -> None:
    for name in COMMAND_MODULES:
        module = import_optional(name)
        if module is not None:
            module.register(app)


_register_all()


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
