"""JSON Schemas of every artifact, generated from the pydantic records; ``python -m medmm.schemas``.

Each stage's ``records`` module exposes ``SCHEMAS: dict[str, type[BaseModel]]`` (name -> model); the
name is the artifact, e.g. ``manifest``, ``volumes``, ``entities``. Schemas are written to
``schemas/<name>.schema.json`` and checked in; ``tests/test_schemas.py`` fails when they are stale.

>>> "manifest_row" in collect_schemas()
True
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel

from medmm._lazy import import_optional

__all__ = [
    "RECORD_MODULES",
    "collect_schemas",
    "render_schemas",
    "schema_dir",
    "validate_frame",
    "write_schemas",
]

#: Modules holding ``SCHEMAS``; a stage adds its module here.
RECORD_MODULES: tuple[str, ...] = (
    "medmm.records",
    "medmm.imaging.records",
    "medmm.ingest.records",
    "medmm.reports.records",
    "medmm.signals.records",
    "medmm.align.records",
    "medmm.models.records",
    "medmm.anomaly.records",
    "medmm.predict.records",
    "medmm.workflows.config",
)


def collect_schemas() -> dict[str, type[BaseModel]]:
    """All named record models of the installed stages."""
    from medmm.records import ManifestRow

    out: dict[str, type[BaseModel]] = {"manifest_row": ManifestRow}
    for name in RECORD_MODULES:
        module = import_optional(name)
        if module is not None:
            out.update(getattr(module, "SCHEMAS", {}))
    return out


def render_schemas() -> dict[str, str]:
    """File name -> JSON text of every schema."""
    out = {}
    for name, model in sorted(collect_schemas().items()):
        schema = model.model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://medmm.dev/schemas/{name}.schema.json"
        out[f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def schema_dir() -> Path:
    """The repository's ``schemas/`` folder."""
    return Path(__file__).resolve().parent.parent / "schemas"


def write_schemas(out: Path | None = None) -> list[Path]:
    """(Re)write every schema file; returns the paths written."""
    out = out or schema_dir()
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for fname, text in render_schemas().items():
        path = out / fname
        path.write_text(text)
        paths.append(path)
    return paths


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and value != value:  # NaN -> null
        return None
    if hasattr(value, "tolist"):
        return _jsonable(value.tolist())
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def validate_frame(frame: pd.DataFrame, name: str) -> int:
    """Validate every row of a table against ``schemas/<name>.schema.json``; returns rows checked.

    Raises ``jsonschema.ValidationError`` on the first bad row.
    """
    import jsonschema

    schema = json.loads((schema_dir() / f"{name}.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for row in frame.to_dict(orient="records"):
        validator.validate({k: _jsonable(v) for k, v in row.items()})
    return len(frame)


if __name__ == "__main__":
    for p in write_schemas(Path(sys.argv[1]) if len(sys.argv) > 1 else None):
        print(p)
