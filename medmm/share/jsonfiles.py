"""JSON artifacts of a run (``run.json``, model cards, metrics, volume sidecars) made safe to share.

A string that is exactly a known source path or record name becomes its pseudonym; any other string
holding a path separator (an absolute input root, the key file, a checkpoint path) is dropped, and the
names of the source inside the remaining strings are replaced (:meth:`SourceNames.scrub`). Dict keys
get the same treatment. ``run.json`` keeps only its ``stages`` and ``versions`` (without the machine's
platform string); its ``key_check`` stays home.

>>> from medmm.pseudonym import Pseudonymizer
>>> from medmm.share.names import SourceNames
>>> names = SourceNames.build(["DOE^JOHN/a.dcm"], ["p000020-2183-04-28-17-47"], Pseudonymizer(b"k" * 32))
>>> dropped: list[str] = []
>>> run = {"input": "/data/DOE^JOHN", "skipped": ["p000020-2183-04-28-17-47"], "n": 3}
>>> out = sanitize_json(run, names, dropped)
>>> out["n"], out["skipped"][0].startswith("sig-"), "input" in out, dropped
(3, True, False, ['input'])
"""

from __future__ import annotations

from typing import Any

from medmm.share.names import SourceNames

__all__ = [
    "PATH_OPTIONS",
    "SIDECAR_FREE_TEXT",
    "SIDECAR_VOCAB",
    "sanitize_json",
    "sanitize_run_json",
    "sanitize_sidecar",
]

_DROP = object()
#: Stage options that name a file or folder: dropped from ``run.json`` even when the value holds no
#: separator (``medmm anomaly evaluate demo`` records ``signals_run: "demo"``, a folder's own name).
PATH_OPTIONS = frozenset(
    {"archive", "input", "input_root", "signals_run", "run_dir", "out", "out_dir", "output_dir"}
    | {"model", "checkpoint", "key_file", "ids", "config", "reports", "splits_file"}
)
#: Volume sidecar keys whose values are medmm's own small vocabulary (a DICOM code string for
#: ``modality``, checked at ingest): copied as they are and not searched for source names, as the table
#: policy's ``vocab`` columns (a modality ``CT`` is no patient, though an archive has a folder ``CT/``).
SIDECAR_VOCAB = frozenset(
    {"modality", "source_format", "orientation", "units", "dtype", "photometric_interpretation"}
    | {"spacing_unit"}
)
#: Volume sidecar keys of operator free text (SeriesDescription, ProtocolName: "CHEST JOHN SMITH"),
#: which ingest no longer writes but older runs' sidecars hold: never shared.
SIDECAR_FREE_TEXT = frozenset({"series_description", "protocol_name"})
#: ``run.json``'s top-level sections that are shared.
_RUN_SECTIONS = ("stages", "versions")


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or (len(text) > 1 and text[1] == ":" and text[0].isalpha())


def _key(key: str, names: SourceNames) -> Any:
    """A dict key: medmm's own field names stay; a source path or record name becomes its pseudonym."""
    if key in names.paths:
        return names.path(key)
    if key in names.records:
        return names.record(key)
    return _DROP if _looks_like_path(key) else key


def _string(value: str, names: SourceNames) -> Any:
    if value in names.paths:
        return names.path(value)
    if value in names.records:
        return names.record(value)
    if _looks_like_path(value):
        return _DROP
    return names.scrub_known(value)


def _walk(obj: Any, names: SourceNames, dropped: list[str], where: str) -> Any:
    if isinstance(obj, str):
        return _string(obj, names)
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            new_key = _key(str(key), names)
            at = f"{where}.{key}" if where else str(key)
            if new_key is _DROP:
                dropped.append(f"{where}.<key>" if where else "<key>")
                continue
            new = _walk(value, names, dropped, at if new_key == key else f"{where}.<key>")
            if new is _DROP:
                dropped.append(at if new_key == key else f"{where}.<key>")
                continue
            out[new_key] = new
        return out
    if isinstance(obj, (list, tuple)):
        items = [_walk(v, names, dropped, f"{where}[]") for v in obj]
        if any(v is _DROP for v in items):
            dropped.append(f"{where}[]")
        return [v for v in items if v is not _DROP]
    return obj


def _without_path_options(run: dict[str, Any], dropped: list[str]) -> dict[str, Any]:
    """``run`` with every string stage option of :data:`PATH_OPTIONS` removed (named in ``dropped``)."""
    stages = run.get("stages")
    if not isinstance(stages, dict):
        return run
    clean: dict[str, Any] = {}
    for name, stage in stages.items():
        options = stage.get("options") if isinstance(stage, dict) else None
        if isinstance(options, dict):
            gone = [k for k, v in options.items() if k in PATH_OPTIONS and isinstance(v, str)]
            dropped += [f"stages.{name}.options.{k}" for k in gone]
            stage = {**stage, "options": {k: v for k, v in options.items() if k not in gone}}
        clean[name] = stage
    return {**run, "stages": clean}


def sanitize_json(obj: Any, names: SourceNames, dropped: list[str]) -> Any:
    """``obj`` with source names pseudonymized and path-like strings left out (see the module docstring).

    Parameters
    ----------
    obj
        Parsed JSON.
    names
        The run's :class:`SourceNames`.
    dropped
        Appended with the key path (``stages.ingest.options.archive``) of every value left out; keys
        that were source names show as ``<key>``.
    """
    return _walk(obj, names, dropped, "")


def sanitize_run_json(run: dict[str, Any], names: SourceNames, dropped: list[str]) -> dict[str, Any]:
    """The shareable part of a ``run.json``: ``stages`` (without the options of :data:`PATH_OPTIONS`) and
    ``versions`` (no platform), sanitized.

    >>> from medmm.pseudonym import Pseudonymizer
    >>> names = SourceNames.build([], [], Pseudonymizer(b"k" * 32))
    >>> sorted(sanitize_run_json({"key_check": "ab", "versions": {"platform": "x", "numpy": "1"}}, names, []))
    ['versions']
    """
    out: dict[str, Any] = {}
    run = _without_path_options(run, dropped)
    for section in _RUN_SECTIONS:
        if section in run:
            lost: list[str] = []
            out[section] = sanitize_json(run[section], names, lost)
            dropped += [f"{section}.{where}" for where in lost]
    if isinstance(out.get("versions"), dict) and "platform" in out["versions"]:
        del out["versions"]["platform"]
        dropped.append("versions.platform")
    dropped += [k for k in run if k not in _RUN_SECTIONS]
    return out


def sanitize_sidecar(sidecar: dict[str, Any], names: SourceNames, dropped: list[str]) -> dict[str, Any]:
    """A volume sidecar made safe to share: free-text keys (:data:`SIDECAR_FREE_TEXT`) left out, the
    vocabulary keys (:data:`SIDECAR_VOCAB`) as they are, the rest through :func:`sanitize_json`.

    >>> from medmm.pseudonym import Pseudonymizer
    >>> names = SourceNames.build(["P1/CT/1.dcm"], [], Pseudonymizer(b"k" * 32))
    >>> lost: list[str] = []
    >>> sanitize_sidecar({"modality": "CT", "series_description": "CHEST J SMITH", "kvp": 120}, names, lost)
    {'modality': 'CT', 'kvp': 120}
    >>> lost
    ['series_description']
    """
    out: dict[str, Any] = {}
    for key, value in sidecar.items():
        if key in SIDECAR_FREE_TEXT:
            dropped.append(key)
        elif key in SIDECAR_VOCAB and isinstance(value, str):
            out[key] = value
        else:
            out.update(sanitize_json({key: value}, names, dropped))
    return out
