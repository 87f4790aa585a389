"""The report branch's item source when ``report_input`` asks for more than the finding vector.

``medmm align`` writes the finding vectors (``inputs/report``); entity vectors and text token ids are
built here, in memory, when a model's sources are opened (``medmm train`` / ``evaluate`` / ``predict``),
from the run's reports tables:

* ``entities``: ``entities.parquet`` -> :func:`~medmm.models.encoders.report_features.entity_vectors`
  (stateless feature hashing: identical at training and prediction time, nothing learned from any split);
* ``text``: ``report_texts.parquet`` (only written by ``medmm reports parse --keep-text``) ->
  :class:`~medmm.models.encoders.report_features.TokenHasher` ids, keyed by the site key. The ids are
  never written: they exist in this process only. The checkpoint records the site key's check value
  (``meta["report_inputs"]["text_key_check"]``), and scoring with another key is refused (the ids
  would mean other words).

:func:`with_report_inputs` replaces the ``report`` entry of opened sources; with the default
``report_input`` (findings only) it returns them unchanged, so such models read exactly what they read
before ``report_input`` existed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from medmm.errors import InputError
from medmm.models.config import ReportInputConfig, TrainConfig
from medmm.models.encoders.report_features import TokenHasher, entity_tokens, entity_vectors, text_tokens

__all__ = ["ReportSource", "report_input_meta", "with_report_inputs"]

log = logging.getLogger(__name__)

ENTITY_COLUMNS = [
    "report_id",
    "section",
    "label",
    "text",
    "negated",
    "uncertain",
    "finding",
    "long_form",
    "location",
]
#: ConText columns of the reports stage since session 9; read when the table has them
CONTEXT_COLUMNS = ["historical", "experiencer"]


def _entity_matrix(
    run_dir: Path, ids: Sequence[str], n_features: int, context: bool | None = None
) -> tuple[Any, bool]:
    """The reports' entity vectors as a CSR matrix (row ``i`` = ``ids[i]``), and whether their tokens
    carry the ConText statuses (``+historical`` / ``+family``, :data:`CONTEXT_COLUMNS`).

    ``context``: ``None`` (training) reads the ConText columns when the table has them; ``False`` (a
    checkpoint trained without them) never reads them, so its tokens are the ones it learned; ``True``
    (a checkpoint trained with them) refuses a table without them.
    """
    path = Path(run_dir) / "entities.parquet"
    if not path.exists():
        raise InputError(
            str(path),
            "report_input.features has 'entities' but the run has no entities table",
            "run `medmm reports parse REPORTS --out RUN_DIR` into this run (it writes entities.parquet), "
            "or remove 'entities' from report_input.features",
        )
    try:
        present = set(pq.read_schema(path).names)
    except Exception as exc:
        raise InputError(
            str(path), f"not a readable entities table ({type(exc).__name__})", "re-run `medmm reports parse`"
        ) from None
    has_context = all(c in present for c in CONTEXT_COLUMNS)
    if context and not has_context:
        raise InputError(
            str(path),
            "the model's entity vectors were trained with the ConText columns (historical, experiencer) "
            "and this entities table has none (written by an older `medmm reports parse`)",
            "re-run `medmm reports parse REPORTS --out RUN_DIR` into this run",
        )
    context = has_context if context is None else context
    try:
        ent = pd.read_parquet(path, columns=ENTITY_COLUMNS + (CONTEXT_COLUMNS if context else []))
    except Exception as exc:
        raise InputError(
            str(path), f"not a readable entities table ({type(exc).__name__})", "re-run `medmm reports parse`"
        ) from None
    ent = ent[ent["report_id"].astype(str).isin(set(ids))]
    groups: dict[str, list[dict[str, Any]]] = {
        str(k): [{str(c): v for c, v in r.items()} for r in g.to_dict("records")]
        for k, g in ent.groupby("report_id", sort=False)
    }
    return entity_vectors([entity_tokens(groups.get(i, [])) for i in ids], n_features, sparse=True), context


def _texts_path(run_dir: Path) -> Path:
    """``RUN_DIR/report_texts.parquet``; an :class:`InputError` naming the run when it is not there."""
    path = Path(run_dir) / "report_texts.parquet"
    if not path.exists():
        raise InputError(
            str(run_dir),
            "report_input.features has 'text' but the reports stage kept no text (no report_texts.parquet)",
            "re-run `medmm reports parse REPORTS --out RUN_DIR --keep-text` (the text is not de-identified: "
            "keep it only where the source reports may be), or remove 'text' from report_input.features",
        )
    return path


def _text_ids(
    run_dir: Path, ids: Sequence[str], cfg: ReportInputConfig, key: bytes
) -> tuple[np.ndarray, np.ndarray]:
    """The reports' token ids, ragged: ``flat[offsets[i]:offsets[i + 1]]`` are report ``ids[i]``'s."""
    path = _texts_path(run_dir)
    texts = pd.read_parquet(path, columns=["report_id", "text"])
    by_id: dict[str, str] = {
        str(r): str(t) for r, t in zip(texts["report_id"].tolist(), texts["text"].tolist(), strict=True)
    }
    lacking = [i for i in ids if i not in by_id]
    if lacking:
        raise InputError(
            str(path),
            f"{len(lacking)} of the {len(ids)} reports of the records have no text there",
            "re-run `medmm reports parse --keep-text` over the same reports into this run",
        )
    hasher = TokenHasher(key, cfg.text.buckets)
    parts, lengths = [], np.zeros(len(ids), np.int64)
    cut = 0
    for n, i in enumerate(ids):
        tokens = text_tokens(by_id[i], cfg.text.ngrams)
        cut += len(tokens) > cfg.text.max_tokens
        lengths[n] = min(len(tokens), cfg.text.max_tokens)
        parts.append(hasher.ids(tokens, cfg.text.max_tokens)[: lengths[n]].astype(np.int32))
    flat = np.concatenate(parts) if parts else np.zeros(0, np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    if cut:
        log.warning(
            "%d of %d report texts have more than report_input.text.max_tokens=%d word n-grams; their end is "
            "not embedded (raise max_tokens to keep it)",
            cut,
            len(ids),
            cfg.text.max_tokens,
        )
    return flat, offsets


class ReportSource:
    """Report items built from the run: dense ``[findings | entities]`` vector and optional token ids.

    Parameters
    ----------
    run_dir
        The run (``entities.parquet``, ``report_texts.parquet``).
    cfg
        The model's ``report_input``.
    findings
        The ``inputs/report`` store (finding vectors), or ``None`` when ``findings`` is not used.
    report_ids
        The reports to serve (built once, eagerly).
    key
        The site key, for ``text``.
    entity_context
        Whether entity tokens carry the ConText statuses: ``None`` when the table has the columns
        (training), else the checkpoint's (``meta["report_inputs"]["entity_context"]``); see
        :attr:`entity_context` for what was used.

    Examples
    --------
    >>> import tempfile
    >>> run = Path(tempfile.mkdtemp())
    >>> pd.DataFrame({c: [] for c in ENTITY_COLUMNS}).to_parquet(run / "entities.parquet")
    >>> src = ReportSource(run, ReportInputConfig(features=["entities"], entity_dim=16), None, ["r1"])
    >>> src.item_shape, src.n_features, src.get("r1")[0].sum()
    ((16,), 0, 0.0)
    """

    kind = "arrays"

    def __init__(
        self,
        run_dir: Path,
        cfg: ReportInputConfig,
        findings: Any,
        report_ids: Sequence[str],
        key: bytes | None = None,
        entity_context: bool | None = None,
    ) -> None:
        self.cfg = cfg
        self.ids = sorted({str(i) for i in report_ids})
        self.index = {i: n for n, i in enumerate(self.ids)}
        self.findings: np.ndarray | None = None
        if "findings" in cfg.features:
            self.findings = (
                np.stack([findings.get(i)[0] for i in self.ids])
                if self.ids
                else np.zeros((0, *findings.item_shape), np.float32)
            )
        self.entities = None
        self.entity_context: bool | None = None  # the ConText statuses in the entity tokens
        if "entities" in cfg.features:
            self.entities, self.entity_context = _entity_matrix(
                Path(run_dir), self.ids, cfg.entity_dim, entity_context
            )
        self.tokens: tuple[np.ndarray, np.ndarray] | None = None
        if "text" in cfg.features:
            if key is None:
                raise ValueError("report_input text needs the site key")
            self.tokens = _text_ids(Path(run_dir), self.ids, cfg, key)

    @property
    def item_shape(self) -> tuple[int, ...]:
        """Shape of one dense vector (finding one-hot, then entity columns)."""
        n = 0 if self.findings is None else int(self.findings.shape[1])
        return (n + (0 if self.entities is None else int(self.entities.shape[1])),)

    @property
    def n_features(self) -> int:
        """Token ids per item (``report_input.text.max_tokens``, zero-padded), 0 without text."""
        return 0 if self.tokens is None else self.cfg.text.max_tokens

    def get(self, item_id: str) -> tuple[np.ndarray, np.ndarray | None]:
        """The report's dense vector and its ``[max_tokens]`` int64 token ids (``None`` without text)."""
        n = self.index.get(str(item_id))
        if n is None:
            raise InputError("report inputs", f"report {item_id!r} was not built", "re-run `medmm align`")
        parts = [] if self.findings is None else [self.findings[n]]
        if self.entities is not None:
            parts.append(np.asarray(self.entities[n].toarray()[0], np.float32))
        x = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        if self.tokens is None:
            return x, None
        flat, offsets = self.tokens
        ids = np.zeros(self.cfg.text.max_tokens, np.int64)
        row = flat[offsets[n] : offsets[n + 1]]
        ids[: len(row)] = row
        return x, ids

    def digest(self) -> str:
        """SHA-256 of the input settings and every served array (part of a checkpoint's data version)."""
        h = hashlib.sha256(json.dumps(self.cfg.model_dump(mode="json"), sort_keys=True).encode())
        h.update("\x1f".join(self.ids).encode())
        if self.findings is not None:
            h.update(np.ascontiguousarray(self.findings).tobytes())
        if self.entities is not None:
            for a in (self.entities.indptr, self.entities.indices, self.entities.data):
                h.update(np.ascontiguousarray(a).tobytes())
        if self.tokens is not None:
            for a in self.tokens:
                h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()


def _site_key(meta: Mapping[str, Any] | None) -> bytes:
    """The site key for text hashing; when scoring (``meta`` given) it must be the training one."""
    from medmm.pseudonym import KEY_ENV, key_check_value, key_file_path, load_key

    if meta is None:
        return load_key()
    path = key_file_path()
    want = (meta.get("report_inputs") or {}).get("text_key_check")
    if not path.exists():
        raise InputError(
            str(path),
            "no site key there; the model embeds report text hashed with the site key it was trained with",
            f"set ${KEY_ENV} to that site key file",
        )
    key = load_key()
    if want is not None and key_check_value(key) != want:
        raise InputError(
            str(path),
            "is not the site key the model's report text embedding was trained with (its token ids would "
            "stand for other words)",
            f"set ${KEY_ENV} to the training site's key file, or train a model with this key",
        )
    return key


def with_report_inputs(
    config: TrainConfig,
    run_dir: Path,
    sources: Mapping[str, Any],
    records: pd.DataFrame,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``sources`` with ``report`` replaced by a :class:`ReportSource` when ``config.report_input`` asks
    for entities or text; unchanged otherwise (also when the report modality is absent from the run).

    Only the reports of ``records`` (those with ``has_report``) are built; ``meta`` (a checkpoint's metadata,
    when scoring) is checked against the config and the site key. Errors name the file and the fix.

    >>> cfg = TrainConfig.model_validate({"run_dir": ".", "modalities": {"report": {}},
    ...     "tasks": [{"name": "dx", "labels": ["a"]}]})
    >>> src = {"report": object()}
    >>> with_report_inputs(cfg, Path("."), src, pd.DataFrame()) == src
    True
    """
    out = dict(sources)
    cfg = config.report_input
    recorded = (meta or {}).get("report_inputs")
    if recorded is not None and list(recorded.get("features", [])) != cfg.features:
        raise InputError(
            "checkpoint",
            f"its metadata records report inputs {recorded.get('features')} but its config {cfg.features}",
            "re-run `medmm train` (the checkpoint was edited)",
        )
    src = out.get("report")
    if src is None or cfg.is_default() or getattr(src, "kind", "") == "absent":
        return out
    has = records["has_report"].to_numpy(bool)
    ids = records.loc[has, "report_id"].dropna().astype(str).tolist()
    key = None
    if "text" in cfg.features:
        _texts_path(run_dir)  # before the key: a run without texts cannot be scored with any key
        key = _site_key(meta)
    # scoring: the entity tokens the checkpoint learned (one trained before the ConText columns: without)
    context = None if meta is None else bool((recorded or {}).get("entity_context", False))
    out["report"] = ReportSource(
        run_dir, cfg, src if "findings" in cfg.features else None, ids, key, entity_context=context
    )
    return out


def report_input_meta(config: TrainConfig, sources: Mapping[str, Any]) -> dict[str, Any] | None:
    """What a checkpoint records of its report inputs: ``features``, with text the site key's check
    value (:func:`medmm.pseudonym.key_check_value`), and with entities ``entity_context``: whether the
    entity tokens carry the ConText statuses (scoring builds them the same way; a checkpoint without the
    key was trained without them); ``None`` for models without a report branch.

    >>> cfg = TrainConfig.model_validate({"run_dir": ".", "modalities": {"report": {}},
    ...     "tasks": [{"name": "dx", "labels": ["a"]}]})
    >>> report_input_meta(cfg, {})
    {'features': ['findings'], 'text_key_check': None}
    """
    from medmm.pseudonym import key_check_value, load_key

    if "report" not in config.modalities:
        return None
    cfg = config.report_input
    check = key_check_value(load_key()) if "text" in cfg.features else None
    out: dict[str, Any] = {"features": list(cfg.features), "text_key_check": check}
    if "entities" in cfg.features:
        out["entity_context"] = bool(getattr(sources.get("report"), "entity_context", False))
    return out
