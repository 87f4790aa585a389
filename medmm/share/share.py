"""``share_run``: a de-identified copy of a run directory for collaborators outside the site.

The run directory is the site's internal ledger: its manifests hold the archive's paths and file times,
its signal tables the record names (file stems), ``run.json`` the absolute input roots. A share copies
only the artifacts :mod:`medmm.share.policy` lists, each column by its policy, with paths and record
names replaced by keyed pseudonyms (the same in every table, so the shared tables still join), then
reads everything it wrote back and refuses (removing it) if a source name is found
(:mod:`medmm.share.check`). ``share_report.json`` says what was copied, pseudonymized, dropped and left
out.

>>> report = share_run(Path("runs/demo"), Path("share/demo"))  # doctest: +SKIP
>>> report["self_check"]["findings"]  # doctest: +SKIP
0
"""

from __future__ import annotations

import json
import os
import shutil
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from medmm.errors import ConfigError, InputError, MedmmError
from medmm.pseudonym import Pseudonymizer, key_file_path, load_key
from medmm.runinfo import KEY_CHECK_FIELD, read_run_json
from medmm.share.check import NameMatcher, find_source_names
from medmm.share.jsonfiles import SIDECAR_VOCAB, sanitize_json, sanitize_run_json, sanitize_sidecar
from medmm.share.names import SourceNames
from medmm.share.nifti import copy_nifti_blanked
from medmm.share.policy import (
    JSON_FILES,
    RUN_FOLDERS,
    TABLES,
    Policy,
    dropped_reason,
    id_table_names,
    table_policy,
)
from medmm.share.tables import share_frame, window_record
from medmm.tables import atomic_write_json, atomic_write_text, write_table

__all__ = ["REPORT_NAME", "ShareLeakError", "share_run"]

REPORT_NAME = "share_report.json"
_MANIFESTS = ("manifest.parquet", "manifest_reports.parquet", "manifest_signals.parquet")


class ShareLeakError(MedmmError):
    """The written share still held a source name; it was removed. ``findings`` name file and column."""

    def __init__(self, findings: list[str]) -> None:
        self.findings = findings
        shown = "; ".join(findings[:20]) + (
            f"; ... ({len(findings) - 20} more)" if len(findings) > 20 else ""
        )
        super().__init__(
            f"share refused: a name from the source archive (path, file name or record name) is still in "
            f"{len(findings)} place(s) of the share, which was removed: {shown}. Fix: this is a gap in medmm "
            "share's column policies; report it with this list (it holds no patient data), and do not "
            "copy the run by hand meanwhile"
        )


def _site_key(run_dir: Path, key_file: Path | None) -> tuple[Pseudonymizer, list[str]]:
    """The site key of ``run_dir`` and notes: it must exist (never created here) and match the run's
    ``key_check``; a run that records none (no stage of it pseudonymized anything) takes the key as is."""
    path = key_file_path(key_file)
    if not path.is_file():
        raise ConfigError(
            f"{path}: no site key there; a share pseudonymizes with the key the run was made with. Fix: "
            "pass it with --key-file (or $MEDMM_KEY_FILE)"
        )
    p = Pseudonymizer(load_key(path))
    recorded = read_run_json(run_dir).get(KEY_CHECK_FIELD)
    if recorded is None:
        return p, [
            f"the run records no site key check ({KEY_CHECK_FIELD} in run.json: none of its stages made a "
            "pseudonym), so the key could not be verified; the share's pseudonyms are made with the key given"
        ]
    if recorded != p.check_value():
        raise ConfigError(
            f"{path}: this is not the site key {run_dir} was made with (run.json records key check "
            f"{recorded}, this key gives {p.check_value()}); pseudonyms made with it would not match the "
            "run's. Fix: pass the run's key with --key-file (or $MEDMM_KEY_FILE)"
        )
    return p, []


def _read_frame(path: Path) -> Any:
    """A run table: parquet, or CSV (``medmm anomaly evaluate``, ``medmm models compare``) read as written."""
    import pandas as pd

    if path.suffix == ".csv":
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    return pd.read_parquet(path)


def _column_values(path: Path, column: str) -> list[str]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if path.suffix == ".csv":
        frame = _read_frame(path)
        return [str(v) for v in frame[column].dropna().unique()] if column in frame.columns else []
    if column not in pq.read_schema(path).names:
        return []
    values = pq.read_table(path, columns=[column]).column(0)
    while pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
        values = pc.list_flatten(values)
    return [str(v) for v in values.unique().to_pylist() if v is not None]


def _source_names(run_dir: Path, files: list[str], p: Pseudonymizer) -> SourceNames:
    """Every source path (manifests, volume sources) and record name (record columns, window folders)."""
    paths: list[str] = []
    for name in _MANIFESTS:
        if name in files:
            paths += _column_values(run_dir / name, "path")
    if "volumes.parquet" in files:
        paths += _column_values(run_dir / "volumes.parquet", "sources")
    records: list[str] = []
    for rel in files:
        policy = table_policy(rel)
        if policy is not None and policy.get("record") is Policy.record:
            records += _column_values(run_dir / rel, "record")
        if (found := window_record(rel)) is not None:
            records.append(found[0])
    return SourceNames.build(paths, records, p)


def _run_files(run_dir: Path) -> tuple[list[str], list[str]]:
    """Regular files (POSIX paths relative to the run) and links / special files, sorted."""
    files: list[str] = []
    other: list[str] = []
    for root, dirs, names in os.walk(run_dir):
        for d in list(dirs):
            if os.path.islink(os.path.join(root, d)):
                other.append(Path(root, d).relative_to(run_dir).as_posix())
                dirs.remove(d)
        for n in names:
            full = Path(root, n)
            rel = full.relative_to(run_dir).as_posix()
            (files if full.is_file() and not full.is_symlink() else other).append(rel)
    return sorted(files), sorted(other)


def _group(rel: str) -> str:
    return rel.split("/", 1)[0] + "/" if "/" in rel else rel


def _validate(run_dir: Path, out: Path) -> None:
    if not run_dir.is_dir():
        raise InputError(
            str(run_dir), "no such run directory", "give the folder a medmm stage wrote its outputs to"
        )
    if not (run_dir / "run.json").is_file():
        raise InputError(
            str(run_dir),
            "not a medmm run directory (it has no run.json)",
            "give the folder passed as --out to medmm's stages",
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(
            f"{out}: already exists and is not empty. Fix: give a new --out folder (a share is never merged)"
        )
    if out.resolve() == run_dir.resolve() or run_dir.resolve() in out.resolve().parents:
        raise ConfigError(f"{out}: is inside the run directory. Fix: write the share outside {run_dir}")


def share_run(
    run_dir: Path,
    out: Path,
    *,
    key_file: Path | None = None,
    with_volumes: bool = False,
    with_windows: bool = False,
    reports_deidentified: bool = False,
) -> dict[str, Any]:
    """Write a de-identified copy of ``run_dir`` to ``out`` and return its share report.

    Parameters
    ----------
    run_dir
        The run directory (with ``run.json``).
    out
        New folder for the share (must not exist or be empty).
    key_file
        The site key the run was made with (default ``$MEDMM_KEY_FILE`` or the per-user key); checked
        against the run's ``key_check``.
    with_volumes
        Also copy ``volumes/*.nii.gz`` (text header fields and extensions blanked) and their sidecars.
    with_windows
        Also copy the signal windows (``windows/<record>/<channel>.npy``, under the record's pseudonym).
    reports_deidentified
        The report texts were de-identified before ``medmm reports parse``: keep the entity text spans
        (``text``, ``long_form``, ``location``, ``measurement_text``, ``evidence``). Report texts
        themselves are never shared.

    Raises
    ------
    InputError
        ``run_dir`` is missing or not a run directory.
    ConfigError
        Wrong or missing site key, or ``out`` not empty.
    ShareLeakError
        The self-check found a source name in the written share (then removed).
    """
    run_dir, out = Path(run_dir), Path(out)
    _validate(run_dir, out)
    p, notes = _site_key(run_dir, key_file)
    files, links = _run_files(run_dir)
    names = _source_names(run_dir, files, p)
    mask = _masker(names)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        report = _write(run_dir, tmp, files, names, with_volumes, with_windows, reports_deidentified)
        report["notes"] = notes
        raw_dropped, raw_left_out = report.pop("dropped"), report.pop("left_out")
        sidecars = report.pop("sidecars")
        report["dropped"] = _grouped(list(raw_dropped), raw_dropped, names)
        report["left_out"] = {
            **_grouped(links, "a link or special file: never followed", names),
            **_grouped(raw_left_out, "not on medmm share's allow-list", names),
        }
        vocab = [
            f"{t}:{c}"
            for t, spec in report["tables"].items()
            for c, pol in spec["columns"].items()
            if pol == Policy.vocab.value
        ] + [f"{rel}:{key}" for rel in sidecars for key in SIDECAR_VOCAB]
        atomic_write_json(tmp / REPORT_NAME, _finish_report(report, mask))
        findings = find_source_names(tmp, names.sensitive, vocab)
        if findings:
            raise ShareLeakError(findings)
        report = json.loads((tmp / REPORT_NAME).read_text())
        report["self_check"] = {
            "files": sum(1 for f in tmp.rglob("*") if f.is_file()),
            "names": len(names.sensitive),
            "findings": 0,
        }
        atomic_write_json(tmp / REPORT_NAME, report)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


#: Top-level names of a run that medmm's stages write (shown as they are in the share report).
_MEDMM_NAMES = frozenset(
    {".ingest.lock", ".ingest_state.json", ".reports_parts", ".signals_parts", ".parts", "figures", "inputs"}
    | {"models", "volumes", "windows", "run.json", "report_texts.parquet"}
    | {pattern.split("/", 1)[0] for pattern in TABLES if "*" not in pattern.split("/", 1)[0]}
    | RUN_FOLDERS
)


def _masker(names: SourceNames) -> Any:
    """Render a run-relative path for the report: source names in it pseudonymized."""
    matcher = NameMatcher(names.sensitive)

    def mask(rel: str) -> str:
        if not matcher.hit_path(rel):
            return rel
        scrubbed = names.scrub(rel)
        return scrubbed if not matcher.hit_path(scrubbed) else names.path(rel)

    return mask


def _entry_name(group: str, names: SourceNames) -> str:
    """How the report names a top-level entry of the run: medmm's own names as they are; any other
    (a file someone put in the run, perhaps named after a patient) by a keyed pseudonym, with its
    extension when that is a plain short one (``.csv``)."""
    bare = group.rstrip("/")
    if bare in _MEDMM_NAMES:
        return group
    if group.endswith("/"):
        return f"unknown folder {names.pseudonymizer.id(bare, 'folder')}/"
    ext = bare.rsplit(".", 1)[-1] if "." in bare else ""
    suffix = f".{ext}" if ext.isalpha() and len(ext) <= 5 else ""
    return f"unknown file {names.path(bare)}{suffix}"


def _grouped(rels: list[str], reason: str | dict[str, str], names: SourceNames) -> dict[str, dict[str, int]]:
    """``{entry: {why: files}}`` per top-level entry (keys: the self-check reads JSON values only)."""
    out: dict[str, dict[str, int]] = {}
    for rel in rels:
        why = reason if isinstance(reason, str) else reason[rel]
        entry = out.setdefault(_entry_name(_group(rel), names), {})
        entry[why] = entry.get(why, 0) + 1
    return dict(sorted(out.items()))


def _finish_report(report: dict[str, Any], mask: Any) -> dict[str, Any]:
    for spec in report["tables"].values():
        spec["left_out_columns"] = {mask(c): "not on the allow-list" for c in spec["left_out_columns"]}
    return report


def _write(
    run_dir: Path,
    tmp: Path,
    files: list[str],
    names: SourceNames,
    with_volumes: bool,
    with_windows: bool,
    reports_deidentified: bool,
) -> dict[str, Any]:
    tables: dict[str, Any] = {}
    json_files: dict[str, Any] = {}
    dropped: dict[str, str] = {}
    left_out: list[str] = []
    volume_files = _volume_files(run_dir) if with_volumes and "volumes.parquet" in files else set()
    run_json = read_run_json(run_dir)
    reports_options = run_json.get("stages", {}).get("reports", {}).get("options", {})
    raw_ids = bool(reports_options.get("keep_report_ids"))
    counts = {"volumes": 0, "sidecars": 0, "windows": 0, "nifti_fields_blanked": 0}
    sidecars: list[str] = []
    id_tables = id_table_names(run_json)
    for rel in files:
        src, policy = run_dir / rel, table_policy(rel)
        if rel.rsplit("/", 1)[-1] in id_tables:
            dropped[rel] = (
                "medmm ingest --ids table: raw patient/study ids and paths (manifest.parquet has them)"
            )
        elif policy is not None:
            shared = share_frame(
                _read_frame(src), policy, names, report_text=reports_deidentified, raw_report_ids=raw_ids
            )
            if rel.endswith(".csv"):
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(tmp / rel, shared.frame.to_csv(index=False))
            else:
                write_table(shared.frame, tmp / rel)
            tables[rel] = {
                "rows": len(shared.frame),
                "columns": shared.columns,
                "dropped_columns": {
                    c: "report text" if policy[c] is Policy.report_text else "never shared"
                    for c in shared.dropped
                },
                "left_out_columns": shared.left_out,
                "text_removed": shared.text_removed,  # cells whose non-medmm words were removed
            }
        elif any(fnmatch(rel, pattern) for pattern in JSON_FILES):
            lost: list[str] = []
            data = json.loads(src.read_text())
            stage_run = rel.endswith("run.json") and not fnmatch(rel, "models/*/run.json")
            clean = sanitize_run_json(data, names, lost) if stage_run else sanitize_json(data, names, lost)
            atomic_write_json(tmp / rel, clean)
            json_files[rel] = {"dropped": dict.fromkeys(sorted(set(lost)), "a path, or not shared")}
        elif rel in volume_files and rel.endswith((".nii", ".nii.gz")):
            counts["nifti_fields_blanked"] += len(copy_nifti_blanked(src, tmp / rel))
            counts["volumes"] += 1
        elif rel in volume_files and rel.endswith(".json"):
            lost = []
            atomic_write_json(tmp / rel, sanitize_sidecar(json.loads(src.read_text()), names, lost))
            sidecars.append(rel)
            counts["sidecars"] += 1
        elif with_windows and (found := window_record(rel)) is not None and found[0] in names.records:
            dst = tmp / "windows" / names.record(found[0]) / names.scrub_known(found[1])
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            counts["windows"] += 1
        elif (why := dropped_reason(rel)) is not None:
            dropped[rel] = why
        else:
            left_out.append(rel)
    return {
        "format": "medmm-share-1",
        "options": {
            "with_volumes": with_volumes,
            "with_windows": with_windows,
            "reports_deidentified": reports_deidentified,
        },
        "tables": tables,
        "json": json_files,
        "files": counts,
        "dropped": dropped,
        "left_out": left_out,
        "sidecars": sidecars,
    }


def _volume_files(run_dir: Path) -> set[str]:
    """``volumes/<id>.nii.gz`` and sidecars named by ``volumes.parquet`` (medmm's own layout only)."""
    out: set[str] = set()
    for column in ("path", "sidecar"):
        out.update(
            v
            for v in _column_values(run_dir / "volumes.parquet", column)
            if v.startswith("volumes/") and v.count("/") == 1
        )
    return out
