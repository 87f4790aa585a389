"""Report encoder inputs beyond the finding vector: hashed entity vectors and hashed text token ids.

* **Entity vectors** (:func:`entity_tokens`, :func:`entity_vectors`): each entity of the reports stage
  (``entities.parquet``) becomes a token ``<where>|<label>|<normalised form>|<status>`` (and the same with
  ``@<location>`` when the sentence names an anatomy), ``status`` being ``affirmed``, ``negated``,
  ``uncertain`` or ``negated+uncertain``, with ``+historical`` / ``+family`` appended for the patient's
  history ("history of pneumonia") and a relative's condition ("family history of lung cancer"), so
  neither reads as a current finding of the patient (entity tables written before those columns
  existed give the plain status); a report's distinct tokens are hashed into a fixed-size binary
  vector with scikit-learn's :class:`~sklearn.feature_extraction.FeatureHasher`. The hashing is
  stateless: no vocabulary is learned from any split, so nothing of the test reports can leak into
  training, and an entity never seen in training still gets a column (shared with colliding tokens).
* **Text token ids** (:class:`TokenHasher`, :func:`text_tokens`): words and word n-grams of the report
  text hashed to ``1..buckets`` (0 pads) with BLAKE2b keyed by a key derived from the site key. Token ids
  of un-de-identified text are as sensitive as the text, and an unkeyed hash of a name could be
  reversed by hashing a list of names; keyed, it cannot without the site key. They are only computed in
  memory (never written).

>>> rows = [{"label": "FINDING", "finding": "pleural effusion", "text": "effusions", "negated": True,
...          "uncertain": False, "location": None, "section": "FINDINGS"}]
>>> entity_tokens(rows)
['body|FINDING|pleural effusion|negated']
>>> text_tokens("No acute disease.", ngrams=2)
['no', 'no acute', 'acute', 'acute disease', 'disease']
>>> h = TokenHasher(b"k" * 32, buckets=100)
>>> ids = h.ids(text_tokens("No acute disease."), max_tokens=8)
>>> ids.shape, bool((ids[:5] >= 1).all() and (ids[:5] <= 100).all()), ids[5:].tolist()
((8,), True, [0, 0, 0])
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "ENTITY_STATUSES",
    "HISTORY_SECTIONS",
    "TokenHasher",
    "entity_status",
    "entity_tokens",
    "entity_vectors",
    "normalise_term",
    "text_tokens",
]

ENTITY_STATUSES = ("affirmed", "negated", "uncertain", "negated+uncertain")
#: Sections that describe the reason for the exam, not what was seen: their entities are tokens of their
#: own (``history|...``), so "rule out pneumonia" in the indication is not "pneumonia" in the findings.
HISTORY_SECTIONS = frozenset({"INDICATION", "HISTORY", "COMPARISON", "TECHNIQUE"})
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"[^\W_]+")
#: domain separation of the text-hashing key from every other use of the site key
_TEXT_KEY_MESSAGE = b"medmm-report-text-tokens-v1"


def normalise_term(text: object) -> str:
    """Lower case, single spaces, no surrounding space (``""`` for missing values).

    >>> normalise_term("  Pleural\\n Effusions ")
    'pleural effusions'
    """
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return ""
    return _SPACE.sub(" ", str(text)).strip().lower()


def entity_status(
    negated: object, uncertain: object, historical: object = False, experiencer: object = "patient"
) -> str:
    """The assertion status of one entity mention: one of :data:`ENTITY_STATUSES`, then ``+historical``
    when it is the patient's history and ``+family`` when it is a relative's (``experiencer``).

    >>> entity_status(False, False), entity_status(True, False), entity_status(True, True)
    ('affirmed', 'negated', 'negated+uncertain')
    >>> entity_status(False, False, historical=True), entity_status(False, False, experiencer="family")
    ('affirmed+historical', 'affirmed+family')
    """
    neg, unc = bool(negated), bool(uncertain)
    status = ENTITY_STATUSES[int(neg) + 2 * int(unc)]
    if _true(historical):
        status += "+historical"
    if str(experiencer or "patient") == "family":
        status += "+family"
    return status


def _true(value: object) -> bool:
    """A boolean cell that may be missing (``None`` / NaN: an entity table written before the column)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return False
    return bool(value)


def entity_tokens(rows: Iterable[Mapping[Any, Any]]) -> list[str]:
    """The distinct tokens of one report's entity rows (``entities.parquet`` columns), sorted.

    The normalised form is the lexicon's ``finding`` when there is one, else the abbreviation's
    ``long_form``, else the mention ``text`` (lower case, single spaces); ``MEASUREMENT`` entities are
    counted by kind only (``measurement``: the value is not a term). Entities of the
    :data:`HISTORY_SECTIONS` are prefixed ``history``, the others ``body``.
    """
    out: set[str] = set()
    for r in rows:
        label = str(r.get("label") or "ENTITY").upper()
        if label == "MEASUREMENT":
            term = "measurement"
        else:
            term = normalise_term(r.get("finding")) or normalise_term(r.get("long_form"))
            term = term or normalise_term(r.get("text"))
        if not term:
            continue
        where = "history" if str(r.get("section") or "").upper() in HISTORY_SECTIONS else "body"
        status = entity_status(
            r.get("negated"), r.get("uncertain"), r.get("historical"), r.get("experiencer")
        )
        out.add(f"{where}|{label}|{term}|{status}")
        location = normalise_term(r.get("location"))
        if location and label != "ANATOMY":
            out.add(f"{where}|{label}|{term}@{location}|{status}")
    return sorted(out)


def entity_vectors(token_lists: Sequence[Sequence[str]], n_features: int, sparse: bool = False) -> Any:
    """``[N, n_features]`` float32 binary vectors: column ``h(token)`` is 1 for each token of a report.

    :class:`~sklearn.feature_extraction.FeatureHasher` (MurmurHash3, no sign alternation, so a column
    counts its tokens; values clipped to 1 when two tokens of one report collide). Deterministic across
    processes and machines; an empty report is all zeros. ``sparse=True`` returns a SciPy CSR matrix
    (a few non-zeros per report instead of ``n_features`` floats).

    >>> v = entity_vectors([["body|FINDING|nodule|affirmed"], []], 64)
    >>> v.shape, float(v[0].sum()), float(v[1].sum())
    ((2, 64), 1.0, 0.0)
    >>> entity_vectors([["body|FINDING|nodule|affirmed"], []], 64, sparse=True).nnz
    1
    """
    import scipy.sparse
    from sklearn.feature_extraction import FeatureHasher

    if not len(token_lists):
        empty = scipy.sparse.csr_matrix((0, n_features), dtype=np.float32)
        return empty if sparse else empty.toarray()
    hasher = FeatureHasher(n_features=n_features, input_type="string", alternate_sign=False)
    x = scipy.sparse.csr_matrix(hasher.transform([list(t) for t in token_lists]), dtype=np.float32)
    x.data = np.minimum(x.data, 1.0)
    return x if sparse else x.toarray()


def text_tokens(text: str, ngrams: int = 2) -> list[str]:
    """Lower-case words (letters and digits) of ``text`` and, interleaved, the n-grams starting at each
    word (up to ``ngrams`` words), so truncating the list cuts the end of the text, not the n-grams.

    >>> text_tokens("Heart size normal", ngrams=3)
    ['heart', 'heart size', 'heart size normal', 'size', 'size normal', 'normal']
    """
    words = _WORD.findall(str(text).lower())
    out: list[str] = []
    for i in range(len(words)):
        for n in range(1, ngrams + 1):
            if i + n <= len(words):
                out.append(" ".join(words[i : i + n]))
    return out


class TokenHasher:
    """Token -> id in ``1..buckets`` by BLAKE2b keyed with a key derived from the site key (0 pads).

    Parameters
    ----------
    site_key
        The site key (:func:`medmm.pseudonym.load_key`); only an HMAC of it is used as the hash key, so
        the token ids cannot be compared with other keyed values of medmm.
    buckets
        Number of ids (the embedding table has ``buckets + 1`` rows, row 0 for padding).

    Examples
    --------
    >>> a, b = TokenHasher(b"k" * 32, 1000), TokenHasher(b"j" * 32, 1000)
    >>> a.id("smith") == a.id("smith"), a.id("smith") == b.id("smith")
    (True, False)
    """

    def __init__(self, site_key: bytes, buckets: int) -> None:
        self.buckets = int(buckets)
        self._key = hmac.new(bytes(site_key), _TEXT_KEY_MESSAGE, hashlib.sha256).digest()
        self._cache: dict[str, int] = {}

    def id(self, token: str) -> int:
        """The id of one token."""
        got = self._cache.get(token)
        if got is None:
            digest = hashlib.blake2b(token.encode(), key=self._key, digest_size=8).digest()
            got = 1 + int.from_bytes(digest, "little") % self.buckets
            self._cache[token] = got
        return got

    def ids(self, tokens: Sequence[str], max_tokens: int) -> np.ndarray:
        """``[max_tokens]`` int64 ids of the first ``max_tokens`` tokens, zero-padded."""
        out = np.zeros(max_tokens, np.int64)
        for i, tok in enumerate(tokens[:max_tokens]):
            out[i] = self.id(tok)
        return out
