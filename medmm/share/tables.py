"""Apply the column policies (:mod:`medmm.share.policy`) to one table of a run.

>>> import pandas as pd
>>> from medmm.pseudonym import Pseudonymizer
>>> from medmm.share.names import SourceNames
>>> from medmm.share.policy import TABLES
>>> names = SourceNames.build(["a/100.hea"], ["100"], Pseudonymizer(b"k" * 32))
>>> frame = pd.DataFrame({"path": ["a/100.hea"], "mtime_ns": [1], "record": ["100"], "extra": ["x"],
...                       "size": [5], "format": ["wfdb"], "status": ["ingested"], "reason": [""],
...                       "patient_id": ["pat-1"], "n_channels": [1]})
>>> shared = share_frame(frame, TABLES["manifest_signals.parquet"], names)
>>> list(shared.frame.columns), shared.left_out
(['path', 'record', 'size', 'format', 'status', 'reason', 'patient_id', 'n_channels'], ['extra'])
>>> shared.frame["record"][0] == names.record("100")
True
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from medmm.share.names import SourceNames
from medmm.share.policy import NUMBERS, Policy
from medmm.share.reasons import REMOVED, reduce_text

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SharedTable", "share_frame", "window_record"]

#: Study ids ``align`` makes for items without one: ``stu-<modality>-`` + an unkeyed hash of the item id
#: (for a signal window, of its record name), so they are re-keyed.
_DERIVED_STUDY = re.compile(r"^stu-[a-z]+-[0-9a-f]+$")


@dataclass
class SharedTable:
    """A table after its policies: the frame to write, the policy applied per column, and the
    columns left out (no policy: unknown) or dropped (policy ``drop``, or report text)."""

    frame: pd.DataFrame
    columns: dict[str, str] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    #: free-text column -> cells in which words other than medmm's were removed (:mod:`~medmm.share.reasons`)
    text_removed: dict[str, int] = field(default_factory=dict)


def _map_unique(series: pd.Series, fn: Callable[[str], Any]) -> pd.Series:
    """``fn`` on each distinct non-missing value (as str), missing values kept."""
    mapping = {v: fn(str(v)) for v in series.dropna().unique()}
    return series.map(mapping)


def _each(fn: Callable[[str], Any]) -> Callable[[Any], Any]:
    """A cell function applying ``fn`` to every item of a list cell (missing cells kept)."""

    def cell(value: Any) -> Any:
        if value is None or isinstance(value, float):
            return value
        return [fn(str(v)) for v in value]

    return cell


def window_record(path: str) -> tuple[str, str] | None:
    """``(record, file)`` of medmm's window layout ``windows/<record>/<channel>[.anchored].npy`` (a
    record name may hold ``/``: a record in a subfolder of the input), else ``None``.

    >>> window_record("windows/multi/s1-2704-05-04/II.npy")
    ('multi/s1-2704-05-04', 'II.npy')
    """
    if not path.startswith("windows/") or not path.endswith(".npy") or path.count("/") < 2:
        return None
    record, name = path[len("windows/") :].rsplit("/", 1)
    return record, name


def _window_path(names: SourceNames) -> Callable[[str], str | None]:
    def fn(path: str) -> str | None:
        parts = window_record(path)
        if parts is not None and parts[0] in names.records:
            return f"windows/{names.record(parts[0])}/{names.scrub_known(parts[1])}"
        return None  # not medmm's window layout: not shared

    return fn


def _signal_id(names: SourceNames) -> Callable[[str], str]:
    def fn(value: str) -> str:
        parts = value.rsplit("|", 2)
        if len(parts) == 3:
            return "|".join([names.record(parts[0]), names.scrub_known(parts[1]), parts[2]])
        return names.record(value)

    return fn


def _report_id(names: SourceNames) -> Callable[[str], str]:
    report = names.pseudonymizer.id_function("report")
    return lambda v: report(v) if v.strip() else v


def _rekey(column: str, names: SourceNames) -> Callable[[str], str]:
    p = names.pseudonymizer
    if column == "study_id":
        return lambda v: p.id(v, "study") if _DERIVED_STUDY.match(v) else v
    return lambda v: p.id(v, "record")


def _cells_cut(series: pd.Series) -> int:
    """Cells of a shared free-text column (strings or lists of strings) holding :data:`REMOVED`."""

    def cut(value: Any) -> bool:
        if isinstance(value, str):
            return REMOVED in value
        return value is not None and not isinstance(value, float) and any(REMOVED in str(v) for v in value)

    return int(series.map(cut).sum())


def _is_number(series: pd.Series) -> bool:
    """A column of numbers or flags (for a table's :data:`~medmm.share.policy.NUMBERS` policy)."""
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series))


def share_frame(
    frame: pd.DataFrame,
    policies: dict[str, Policy],
    names: SourceNames,
    *,
    report_text: bool = False,
    raw_report_ids: bool = False,
) -> SharedTable:
    """Apply ``policies`` to ``frame``'s columns.

    Parameters
    ----------
    frame
        The run's table.
    policies
        Column -> :class:`~medmm.share.policy.Policy`; a column not in it is left out (a number or flag
        column is kept when the policies have :data:`~medmm.share.policy.NUMBERS`).
    names
        The run's :class:`~medmm.share.names.SourceNames` (pseudonyms, scrubbing).
    report_text
        Keep ``Policy.report_text`` columns (the reports are de-identified); else they are dropped.
    raw_report_ids
        The run's report ids are the raw ids (``medmm reports parse --keep-report-ids``): they get the
        pseudonym parsing without that option gives (``rep-...``, which is also the accession numbers'
        pseudonym in ``accession_id`` columns), so they still join.
    """
    out = SharedTable(frame=frame.iloc[:, :0].copy())
    per_value: dict[Policy, Callable[[str], Any]] = {  # policies applied to each distinct value
        Policy.path: names.path,
        Policy.record: names.record,
        Policy.text: lambda v: reduce_text(v, names),
        Policy.label: names.scrub_known,
        Policy.signal_id: _signal_id(names),
        Policy.window_path: _window_path(names),
    }
    if raw_report_ids:
        per_value[Policy.report_id] = _report_id(names)
    for column in frame.columns:
        series = frame[column]
        policy = policies.get(str(column)) or (policies.get(NUMBERS) if _is_number(series) else None)
        if policy is None:
            out.left_out.append(str(column))
            continue
        if policy is Policy.drop or (policy is Policy.report_text and not report_text):
            out.dropped.append(str(column))
            continue
        if policy is Policy.rekey:
            series = _map_unique(series, _rekey(str(column), names))
        elif policy in per_value:
            series = _map_unique(series, per_value[policy])
        elif policy is Policy.paths:
            series = series.map(_each(names.path))
        elif policy is Policy.texts:
            series = series.map(_each(lambda v: reduce_text(v, names)))
        out.frame[column] = series
        if policy in (Policy.text, Policy.texts) and (cut := _cells_cut(series)):
            out.text_removed[str(column)] = cut
        kept = policy is Policy.report_id and not raw_report_ids
        out.columns[str(column)] = Policy.keep.value if kept else policy.value
    return out
