"""NER benchmark: medmm's trained spaCy NER vs a train-set dictionary (gazetteer) baseline on BC5CDR devel.

Baseline: every entity string seen in the training split, matched case-insensitively on the gold tokens
with spaCy's ``PhraseMatcher`` (longest match wins) -- what you get without learning anything. Both are
scored with the same exact-span metric on the same devel sentences; the table reports micro-F1, the
F1 ratio (model / dictionary), training CPU time and inference speed.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from medmm.datasets import shared_data_dir
from medmm.reports.ner.corpus import NerDoc, read_conll
from medmm.reports.ner.evaluate import predict_spans
from medmm.reports.ner.metrics import score_spans
from medmm.reports.ner.train import train_ner


def _dictionary_spans(train: list[NerDoc], dev: list[NerDoc]) -> list[list[tuple[int, int, str]]]:
    import spacy
    from spacy.matcher import PhraseMatcher
    from spacy.tokens import Doc
    from spacy.util import filter_spans

    nlp = spacy.blank("en")
    matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
    seen: dict[str, set[tuple[str, ...]]] = {}
    for d in train:
        for s, e, lab in d.spans:
            seen.setdefault(lab, set()).add(d.words[s:e])
    for lab, phrases in seen.items():
        matcher.add(lab, [Doc(nlp.vocab, words=list(p)) for p in phrases])
    out = []
    for d in dev:
        doc = Doc(nlp.vocab, words=list(d.words))
        spans = filter_spans(matcher(doc, as_spans=True))
        out.append([(sp.start, sp.end, sp.label_) for sp in spans])
    return out


def run(out_dir: Path, quick: bool) -> dict[str, Any]:
    """Train on BC5CDR train (quick: 500 sentences, 4 epochs), score model and dictionary on devel."""
    import spacy

    root = shared_data_dir()
    if root is None:
        raise FileNotFoundError("shared data not found (set MEDMM_DATA)")
    corpus = root / "text" / "bc5cdr"
    train = read_conll(corpus / "train.tsv")
    dev = read_conll(corpus / "devel.tsv")
    n_train, n_dev = (500, 500) if quick else (None, None)
    train, dev = train[:n_train] if n_train else train, dev[:n_dev] if n_dev else dev
    model_dir = Path(tempfile.mkdtemp(prefix="bench_ner_")) if quick else out_dir / "model"
    res = train_ner(
        corpus,
        model_dir,
        max_docs=n_train,
        max_dev_docs=n_dev,
        max_epochs=4 if quick else 100,
        budget_clock="cpu",
        progress=False,
    )
    nlp = spacy.load(model_dir)
    gold = [list(d.spans) for d in dev]
    t0 = time.perf_counter()
    model_scores = score_spans(gold, predict_spans(nlp, dev))
    model_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    dict_scores = score_spans(gold, _dictionary_spans(train, dev))
    dict_s = time.perf_counter() - t0
    f_model, f_dict = model_scores["micro"]["f1"], dict_scores["micro"]["f1"]  # type: ignore[index]
    rows = [
        ("medmm NER (spaCy, scispaCy tokenizer)", f_model, res.cpu_s, len(dev) / model_s),
        ("baseline: train-set dictionary", f_dict, 0.0, len(dev) / dict_s),
    ]
    print(f"{'method':42s} {'micro-F1':>8s} {'train CPU s':>11s} {'sent/s':>8s}")
    for name, f1, cpu, speed in rows:
        print(f"{name:42s} {f1:8.4f} {cpu:11.1f} {speed:8.0f}")
    ratio = f_model / f_dict if f_dict else float("inf")
    print(f"F1 ratio model / dictionary: {ratio:.2f}")
    return {
        "corpus": "bc5cdr",
        "quick": quick,
        "n_train": len(train),
        "n_dev": len(dev),
        "model_micro_f1": f_model,
        "dictionary_micro_f1": f_dict,
        "f1_ratio_vs_dictionary": round(ratio, 3),
        "model_train_cpu_s": res.cpu_s,
        "model_train_wall_s": res.wall_s,
        "model_sentences_per_s": round(len(dev) / model_s, 1),
        "dictionary_sentences_per_s": round(len(dev) / dict_s, 1),
        "per_label": {"model": model_scores["per_label"], "dictionary": dict_scores["per_label"]},
    }
