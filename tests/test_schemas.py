"""The checked-in JSON Schemas match the pydantic records they are generated from."""

from __future__ import annotations

from medmm.schemas import render_schemas, schema_dir


def test_schemas_are_current() -> None:
    rendered = render_schemas()
    folder = schema_dir()
    stale = [
        name
        for name, text in rendered.items()
        if not (folder / name).exists() or (folder / name).read_text() != text
    ]
    extra = sorted(p.name for p in folder.glob("*.schema.json") if p.name not in rendered)
    assert not stale, f"stale schemas {stale}: run `make schemas` and commit schemas/"
    assert not extra, f"schemas without a record model {extra}: delete them"
